//! Sends from the connection's own task without its lock.
//!
//! While a session dispatches what it read, it registers a [`Turn`] as its
//! thread's current connection, with what a send has to check (the bytes
//! queued, the permessage-deflate threshold). A handler answering from
//! inside the event (the native echo, any native handler replying at once)
//! then queues into the turn's own queue, and the session hands all of it
//! to the connection's queue under one lock when the read is done: one lock
//! per read instead of one per message.
//!
//! Any other access to the connection's state under its lock (another
//! thread's send, a close, a MessageLength, a SendFile) ends the shortcut
//! for the rest of the turn (the connection's `owner_fast` flag goes false)
//! and marks where the queue stood, so what the turn queued before goes out
//! before what the other side queued, and a message sent in parts by the
//! other side is never cut by one of the turn's. The owner's own locked
//! calls take what the turn queued first ([`take_queued`]), so they see
//! every byte of it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

use super::outbound::OutboundQueue;
use crate::protocol::frame::OpCode;
use crate::protocol::mask::MaskedPayload;
use crate::protocol::receiver::MessageKind;

thread_local! {
    static CURRENT: RefCell<Option<Turn>> = const { RefCell::new(None) };
}

/// What the thread's current connection may queue without its lock.
#[derive(Debug)]
pub(crate) struct Turn {
    /// The connection, as an address: compared, never dereferenced.
    conn: usize,
    queued: Queued,
    /// Bytes queued on the connection when the turn began.
    queued_before: usize,
    deflate_threshold: Option<usize>,
}

/// What a turn queued, for the connection's queue.
#[derive(Debug, Default)]
pub(crate) struct Queued {
    pub out: OutboundQueue,
    /// BytesSent of the turn's last send.
    pub bytes_sent: Option<u64>,
}

impl Turn {
    pub fn new(conn: usize, queued_before: usize, deflate_threshold: Option<usize>) -> Self {
        Self {
            conn,
            queued: Queued::default(),
            queued_before,
            deflate_threshold,
        }
    }
}

/// Makes `turn` the thread's current one; false if one is already
/// registered (a handler polling another connection from inside an event).
pub(crate) fn register(turn: Turn) -> bool {
    CURRENT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) if slot.is_none() => {
            *slot = Some(turn);
            true
        }
        _ => false,
    })
}

/// Ends the thread's current turn; returns what it still holds.
pub(crate) fn unregister() -> Option<Queued> {
    CURRENT.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        slot.take().map(|turn| turn.queued)
    })
}

/// Takes what `conn`'s turn queued so far, when it is this thread's
/// current connection.
pub(crate) fn take_queued(conn: usize) -> Option<Queued> {
    CURRENT.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let turn = slot.as_mut().filter(|turn| turn.conn == conn)?;
        Some(std::mem::take(&mut turn.queued))
    })
}

/// The queue of the thread's current turn, lent for a run of sends to
/// its connection under one borrow of the thread-local. Nothing that locks
/// a connection may run while it is lent: the lock could not take over
/// what the turn queued.
pub(crate) struct OwnSends<'t> {
    turn: &'t mut Turn,
    max_send_queue: usize,
    max_frame_size: usize,
}

impl OwnSends<'_> {
    /// Queues a whole data message; false when the queue is full, so the
    /// send may be refused and the locked path must decide.
    #[inline]
    pub fn try_send(&mut self, kind: MessageKind, payload: &[u8]) -> bool {
        if !self.has_room(payload.len()) {
            return false;
        }
        let op = OpCode::from(kind);
        let compress = self.compresses(payload.len());
        let out = &mut self.turn.queued.out;
        if compress {
            out.push_deflate(op, payload, true);
        } else {
            out.push_data(op, payload, true, self.max_frame_size);
        }
        self.turn.queued.bytes_sent = Some(payload.len() as u64);
        true
    }

    /// Queues a whole binary message from a payload still masked, when it
    /// goes out as it is, in one frame; false otherwise (or when the queue
    /// is full), and it takes the other paths unmasked.
    #[inline]
    pub fn try_send_masked(&mut self, payload: &MaskedPayload<'_>) -> bool {
        let len = payload.len();
        if !self.has_room(len) || self.compresses(len) || len > self.max_frame_size {
            return false;
        }
        let queued = &mut self.turn.queued;
        queued.out.push_masked_message(OpCode::Binary, payload);
        queued.bytes_sent = Some(len as u64);
        true
    }

    /// Whether `len` more bytes fit the connection's MaxSendQueue (a
    /// message always fits an empty queue).
    fn has_room(&self, len: usize) -> bool {
        let queued = self.turn.queued_before + self.turn.queued.out.queued();
        queued == 0 || queued + len <= self.max_send_queue
    }

    /// Whether a message of `len` bytes is compressed.
    fn compresses(&self, len: usize) -> bool {
        self.turn
            .deflate_threshold
            .is_some_and(|threshold| len >= threshold)
    }
}

/// Runs `sends` with `conn`'s turn's queue when `conn` is the thread's
/// current connection and `fast` says nothing else has touched its state;
/// `None` otherwise, and the locked path must take the sends. The pair is
/// the connection's MaxSendQueue and MaxFrameSize.
pub(crate) fn with_own_sends<R>(
    conn: usize,
    fast: &AtomicBool,
    (max_send_queue, max_frame_size): (usize, usize),
    sends: impl FnOnce(&mut OwnSends<'_>) -> R,
) -> Option<R> {
    CURRENT.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let turn = slot.as_mut()?;
        if turn.conn != conn || !fast.load(Ordering::Acquire) {
            return None;
        }
        Some(sends(&mut OwnSends {
            turn,
            max_send_queue,
            max_frame_size,
        }))
    })
}
