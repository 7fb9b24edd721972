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

/// Queues a whole data message from inside `conn`'s own turn; false when
/// the locked path must take it (another thread touched the state, so
/// `fast` is false, or the queue is full and the send may be refused).
/// The pair is the connection's MaxSendQueue and MaxFrameSize.
pub(crate) fn try_send(
    conn: usize,
    fast: &AtomicBool,
    (max_send_queue, max_frame_size): (usize, usize),
    op: OpCode,
    payload: &[u8],
) -> bool {
    CURRENT.with(|cell| {
        let Ok(mut slot) = cell.try_borrow_mut() else {
            return false;
        };
        let Some(turn) = slot.as_mut() else {
            return false;
        };
        if turn.conn != conn || !fast.load(Ordering::Acquire) {
            return false;
        }
        let out = &mut turn.queued.out;
        let queued = turn.queued_before + out.queued();
        if queued > 0 && queued + payload.len() > max_send_queue {
            return false;
        }
        if turn
            .deflate_threshold
            .is_some_and(|threshold| payload.len() >= threshold)
        {
            out.push_deflate(op, payload, true);
        } else {
            out.push_data(op, payload, true, max_frame_size);
        }
        turn.queued.bytes_sent = Some(payload.len() as u64);
        true
    })
}
