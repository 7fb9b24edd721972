//! Parking: a plain session that has stayed at rest leaves tokio for its
//! thread's parking lot ([`lot`](super::lot)). Its task ends (freeing
//! tokio's task cell) and its socket leaves tokio's reactor (freeing its
//! `ScheduledIo`); what it keeps is [`Parked`] in the lot's slab. Its
//! socket turning readable, or anything that wakes the connection (a send
//! from any thread, a close request, shutdown), brings it back as a task.
//!
//! Which sessions park: plain TCP only (a TLS session keeps rustls's
//! state, which is most of its memory anyway), in the Open phase without
//! an IdleTimeout timer (a parked session has no timer), at rest (no
//! compression context: permessage-deflate with context takeover keeps
//! its working state), accepting data (a paused connection does not read,
//! so its readable socket would bring it straight back), with nothing
//! queued and no SendFile or message sent in parts under way.
//!
//! When: not at every rest, since an unpipelined echo rests after every
//! message and a park costs a few epoll calls and a task. A session at
//! rest enrols its task to be woken at the lot's next tick (once per
//! tick); one that has done no work for two ticks of the lot's clock
//! parks: between one and two `ParkDelay`s after its last work.

use std::io;
use std::sync::Arc;
use std::task::Context;

use tokio::net::TcpStream;

use super::closing::CloseHandshake;
use super::lot::Lot;
use super::{Registration, Session, SessionParts};
use crate::server::connection::ConnState;

/// The parking lot of plain sessions.
pub(crate) type ParkingLot = Lot<Parked>;

/// What a session keeps while parked: its socket outside tokio and what
/// its session record is made again from.
pub(crate) struct Parked(SessionParts<std::net::TcpStream>);

impl std::os::fd::AsFd for Parked {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.stream.as_fd()
    }
}

/// A session's watch on its own rest (in its record).
pub(super) struct Rest {
    /// None: the session never parks (TLS, or parking is off).
    lot: Option<Arc<ParkingLot>>,
    /// The lot's epoch when the session last worked (its low 8 bits:
    /// plenty for a difference of two).
    since: u8,
    /// The epoch whose tick the session's task is enrolled for (low 8
    /// bits), and its key in the lot's list.
    enrolled: u8,
    enrolled_key: u32,
    /// The session worked (read, wrote, held state) since it last looked.
    pub worked: bool,
}

/// The clock's low 8 bits, as a session keeps them.
fn low(epoch: u32) -> u8 {
    epoch as u8
}

impl Rest {
    pub fn new(lot: Option<Arc<ParkingLot>>) -> Self {
        Self {
            lot,
            since: 0,
            enrolled: 0,
            enrolled_key: u32::MAX,
            worked: true,
        }
    }

    /// Whether the session parks once it has rested (it has a lot).
    pub fn parks(&self) -> bool {
        self.lot.is_some()
    }
}

impl Drop for Rest {
    /// A session that ends or parks withdraws its task's waker from the
    /// lot's list, so the task's memory goes now, not at the next tick.
    fn drop(&mut self) {
        if let Some(lot) = &self.lot
            && self.enrolled_key != u32::MAX
        {
            let enrolled = self.enrolled;
            lot.withdraw(self.enrolled_key as usize, |now| low(now) == enrolled);
        }
    }
}

impl Session<TcpStream> {
    /// After a turn that ended waiting: whether the session has stayed at
    /// rest for long enough to park. Otherwise, at rest, its task is
    /// enrolled to look again at the lot's next tick.
    pub(super) fn rested_enough(&mut self, cx: &Context<'_>) -> bool {
        let Some(lot) = &self.rest.lot else {
            return false;
        };
        // Its working state, if kept, is dropped as it parks.
        let parkable = self.busy.as_ref().is_none_or(|busy| busy.is_at_rest())
            && self.closing.is_quiet()
            && self.conn.accepting_data();
        let epoch = low(lot.epoch());
        if !parkable {
            self.rest.since = epoch;
            return false;
        }
        if std::mem::take(&mut self.rest.worked) {
            self.rest.since = epoch;
        } else if epoch.wrapping_sub(self.rest.since) >= 2 {
            return true;
        }
        if self.rest.enrolled != epoch || self.rest.enrolled_key == u32::MAX {
            let (enrolled, key) = lot.enroll(cx.waker());
            self.rest.enrolled = low(enrolled);
            // Keys are fewer than connections; past u32 the enrolment is
            // simply not withdrawn early.
            self.rest.enrolled_key = u32::try_from(key).unwrap_or(u32::MAX);
        }
        false
    }

    /// Moves the session into its lot; the session back when it must stay
    /// at work (something came for it meanwhile), None once it is parked
    /// (or has ended: its socket could not leave tokio).
    pub(super) fn park_in_lot(mut self) -> Option<Self> {
        let Some(lot) = self.rest.lot.clone() else {
            return Some(self);
        };
        // Checked again in the lot, where it counts; here it saves moving
        // the socket out of tokio and back (a SendFile waiting for room).
        if has_work(&self.conn.lock()) {
            self.rest.worked = true;
            return Some(self);
        }
        let parked = self.into_parked()?;
        let refused = lot.park(|waker| {
            let mut st = parked.0.conn.lock();
            let work_came = has_work(&st);
            if !work_came {
                // From now on the connection's wakers reach the lot.
                st.waker = Some(waker);
                st.task_active = false;
            }
            drop(st);
            if work_came { Err(parked) } else { Ok(parked) }
        });
        match refused {
            Ok(()) => None,
            Err(parked) => {
                let mut session = parked.into_session(&lot)?;
                session.rest.worked = true;
                Some(session)
            }
        }
    }

    /// Takes the socket out of tokio; None if it could not be (the
    /// connection has ended).
    fn into_parked(self) -> Option<Parked> {
        let (parts, mut closing) = self.into_parts();
        match parts.map_stream(TcpStream::into_std) {
            Ok(parts) => {
                parts.conn.0.server.metrics.connection_parked();
                Some(Parked(parts))
            }
            Err((conn, e)) => {
                end_broken(conn, &mut closing, &e);
                None
            }
        }
    }
}

/// Whether the connection has something under way that its task must
/// see to: frames queued, a close asked for, a SendFile or a message sent
/// in parts, or it is closing.
fn has_work(st: &ConnState) -> bool {
    st.out.has_chunks() || st.occasional_in_use() || st.closing
}

/// A session that broke while changing places: ended as after a failed
/// read (the Error and Disconnected events).
fn end_broken(conn: Registration, closing: &mut CloseHandshake, e: &io::Error) {
    closing.io_failed(&conn, e);
    closing.report_end(&conn);
}

impl Parked {
    /// The session again, its socket back in tokio (of the current
    /// runtime); None if it could not be (the connection has ended).
    pub(super) fn into_session(self, lot: &Arc<ParkingLot>) -> Option<Session<TcpStream>> {
        let Self(parts) = self;
        parts.conn.0.server.metrics.connection_resumed();
        {
            let mut st = parts.conn.lock();
            st.waker = None;
            // The new task's first turn looks at the queue anyway.
            st.task_active = true;
        }
        let mut closing = CloseHandshake::new(&parts.settings);
        match parts.map_stream(TcpStream::from_std) {
            Ok(parts) => Some(Session::from_parts(
                parts,
                closing,
                Rest::new(Some(lot.clone())),
            )),
            Err((conn, e)) => {
                end_broken(conn, &mut closing, &e);
                None
            }
        }
    }
}
