//! Sends from the connection's own task without its lock.
//!
//! While a session dispatches what it read, it registers an [`OwnerTurn`]
//! as its thread's current connection, with what a send has to check (the
//! bytes queued, the permessage-deflate threshold). A handler answering
//! from inside the event (the native echo, any native handler replying at
//! once) then queues into the turn's own queue, and the turn hands all of
//! it to the connection's queue under one lock when the read is done: one
//! lock per read instead of one per message.
//!
//! Any other access to the connection's state under its lock (another
//! thread's send, a close, a MessageLength, a SendFile) ends the shortcut
//! for the rest of the turn ([`ConnShared::owner_fast`] goes false) and
//! marks where the queue stood, so what the turn queued before goes out
//! before what the other side queued, and a message sent in parts by the
//! other side is never cut by one of the turn's. The owner's own locked
//! calls take what the turn queued first, so they see every byte of it.

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use super::connection::{ConnShared, ConnState, Connection};
use super::outbound::OutboundQueue;
use crate::protocol::frame::OpCode;

thread_local! {
    static CURRENT: RefCell<Option<Turn>> = const { RefCell::new(None) };
}

/// What the thread's current connection may queue without its lock.
#[derive(Debug)]
struct Turn {
    /// The connection, as an address: compared, never dereferenced.
    conn: usize,
    out: OutboundQueue,
    /// Bytes queued on the connection when the turn began.
    queued_before: usize,
    deflate_threshold: Option<usize>,
    /// BytesSent of the turn's last send.
    bytes_sent: Option<u64>,
}

fn address(shared: &ConnShared) -> usize {
    shared as *const ConnShared as usize
}

/// The session's registration as its thread's current connection; hands
/// what was queued to the connection when dropped.
pub(crate) struct OwnerTurn<'a> {
    conn: &'a Connection,
}

impl<'a> OwnerTurn<'a> {
    /// Begins a turn when no message is being sent in parts and the
    /// connection is not closing; None otherwise (sends take the lock).
    pub fn begin(conn: &'a Connection) -> Option<Self> {
        let turn = {
            let mut st = conn.lock_state();
            let eligible = !st.closing
                && st.close_request.is_none()
                && st.transfer.is_none()
                && st.message_length == 0
                && st.message_remaining == 0;
            if !eligible {
                return None;
            }
            st.owner_mark = None;
            conn.0.owner_fast.store(true, Ordering::Release);
            Turn {
                conn: address(&conn.0),
                out: OutboundQueue::default(),
                queued_before: st.out.queued(),
                deflate_threshold: st.deflate_threshold,
                bytes_sent: None,
            }
        };
        let registered = CURRENT.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) if slot.is_none() => {
                *slot = Some(turn);
                true
            }
            _ => false,
        });
        if !registered {
            conn.0.owner_fast.store(false, Ordering::Release);
            return None;
        }
        Some(Self { conn })
    }
}

impl Drop for OwnerTurn<'_> {
    fn drop(&mut self) {
        let turn = CURRENT.with(|cell| cell.try_borrow_mut().ok().and_then(|mut t| t.take()));
        let mut st = self.conn.lock_state();
        self.conn.0.owner_fast.store(false, Ordering::Release);
        if let Some(mut turn) = turn {
            hand_over(&mut turn, &mut st);
        }
        st.owner_mark = None;
    }
}

/// Moves what a turn queued into the connection's queue, before whatever
/// others queued since the shortcut ended.
fn hand_over(turn: &mut Turn, st: &mut ConnState) {
    if let Some(bytes) = turn.bytes_sent.take() {
        st.bytes_sent = bytes;
    }
    let at = st.owner_mark.take();
    st.out.insert_from(at, &mut turn.out);
}

/// Queues a whole data message from inside the connection's own turn;
/// false when the locked path must take it (another thread touched the
/// state, or the queue is full and the send may have to be refused).
pub(crate) fn try_send(shared: &ConnShared, op: OpCode, payload: &[u8]) -> bool {
    CURRENT.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return false;
        };
        let Some(turn) = slot.as_mut() else {
            return false;
        };
        if turn.conn != address(shared) || !shared.owner_fast.load(Ordering::Acquire) {
            return false;
        }
        let queued = turn.queued_before + turn.out.queued();
        if queued > 0 && queued + payload.len() > shared.limits.max_send_queue {
            return false;
        }
        if turn
            .deflate_threshold
            .is_some_and(|threshold| payload.len() >= threshold)
        {
            turn.out.push_deflate(op, payload, true);
        } else {
            turn.out
                .push_data(op, payload, true, shared.limits.max_frame_size);
        }
        turn.bytes_sent = Some(payload.len() as u64);
        true
    })
}

/// Called with the lock held by every locked access: ends the shortcut
/// (marking where the queue stands) and, on the owner's own thread, hands
/// over what the turn queued so far.
pub(crate) fn on_lock(shared: &ConnShared, st: &mut ConnState) {
    if shared.owner_fast.load(Ordering::Relaxed) {
        shared.owner_fast.store(false, Ordering::Relaxed);
        st.owner_mark = Some(st.out.seal());
    }
    // Without a mark no turn of this connection holds anything.
    if st.owner_mark.is_none() {
        return;
    }
    CURRENT.with(|cell| {
        if let Ok(mut slot) = cell.try_borrow_mut()
            && let Some(turn) = slot.as_mut()
            && turn.conn == address(shared)
        {
            hand_over(turn, st);
        }
    });
}
