//! What waits for a plugin's actor: event batches, open requests, paused
//! connections, flushes, swap orders and the hibernation request.
//!
//! Events arrive in the packed layout, already staged per read by the
//! connection's thread; an inbox with nothing waiting takes the staged
//! buffer as it is (no copy), and a handled batch's buffer comes back for
//! the next one, so a busy tenant's batches cost no allocation.

use std::sync::{Arc, mpsc};

use tokio::sync::oneshot;
use wsserver_packed as packed;
use wsserver_plugin_bindings::wsserver::plugin::types as wit;

use super::version::{Live, Version};
use crate::server::{Connection, ConnectionId, OpenResponse};

/// An open request waiting for the plugin's answer.
pub(crate) struct PendingOpen {
    pub request: wit::OpenRequest,
    pub offered: Vec<String>,
    pub conn: Connection,
    pub reply: oneshot::Sender<OpenResponse>,
}

/// A switch to another version, prepared by the tenant: the new version's
/// instance is already made.
pub(crate) struct SwapOrder {
    pub version: Arc<Version>,
    pub next: Live,
    /// Where the actor says whether the new instance is ready (the state
    /// restored, when both versions export `lifecycle`), or why not. The
    /// tenant's verdict comes back through [`PluginHandle::push_verdict`](super::instance::PluginHandle::push_verdict).
    pub prepared: mpsc::SyncSender<Result<(), String>>,
}

/// Staged bytes beyond which a serving thread hands them over at once
/// (`staging`): the largest batch of events, but for its last event.
pub(super) const STAGE_LIMIT: usize = 64 * 1024;

/// The largest handled batch buffer kept for the next batch: beyond it
/// the buffer is freed, so a burst does not stay in a tenant's cost. A
/// read's staged events are handed over once they pass `STAGE_LIMIT`, by
/// the last event appended, in a buffer that doubled past it: a limit of
/// `STAGE_LIMIT` itself freed every full batch's buffer, and the next one
/// grew again from nothing (six reallocations and 128 KiB copied per
/// batch of 4 KiB echoes). The price: a busy instance keeps up to
/// 128 KiB between batches, until it hibernates.
const KEEP_CAPACITY: usize = 2 * STAGE_LIMIT;

/// What a run of packed events holds, kept as they are queued so a turn
/// need not read a batch of messages twice (once for the actor's
/// bookkeeping, once in the guest).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub events: usize,
    /// Some of them change the actor's view of its connections
    /// (connected, ready-to-send, disconnected): the turn reads the batch
    /// for them.
    pub bookkeeping: bool,
}

impl Tally {
    /// No events (the `Default`, usable in a `const`).
    pub const NONE: Self = Self {
        events: 0,
        bookkeeping: false,
    };

    /// One event the actor's view of its connections does not depend on
    /// (a DataIn).
    pub const DATA: Self = Self {
        events: 1,
        bookkeeping: false,
    };

    pub fn of(event: &packed::Event<'_>) -> Self {
        Self {
            events: 1,
            bookkeeping: matches!(
                event,
                packed::Event::Connected(_)
                    | packed::Event::ReadyToSend(_)
                    | packed::Event::Disconnected { .. }
            ),
        }
    }

    pub fn add(&mut self, other: Self) {
        self.events += other.events;
        self.bookkeeping |= other.bookkeeping;
    }
}

/// Events and requests waiting for the actor.
#[derive(Default)]
pub(crate) struct Inbox {
    pub opens: Vec<PendingOpen>,
    /// Connections accepted without asking the plugin, which accepts every
    /// open request (`PluginHandle::keeps_default`): the instance
    /// takes them at its next turn, before any event. They need no turn of
    /// their own: each connection's `connected` (or `disconnected`) follows.
    pub admitted: Vec<Connection>,
    /// Connections whose `connected` event was left out (the plugin
    /// ignores them), noted as open at the next turn: a version swapped in
    /// later hears of them.
    pub announced: Vec<ConnectionId>,
    /// Events in the packed layout, ready to hand over as they are.
    pub events: Vec<u8>,
    /// What `events` holds.
    pub tally: Tally,
    /// Connections paused for the plugin's sake (its inbox was too full,
    /// or they went over their rate), resumed after the next batch.
    pub throttled: Vec<Connection>,
    /// Signalled once everything queued before them has been handled.
    pub flushes: Vec<oneshot::Sender<()>>,
    pub swap: Option<SwapOrder>,
    /// The tenant's verdict on a prepared swap: true switches.
    pub verdict: Option<bool>,
    /// The watchdog found the instance idle past `hibernate_after`.
    pub hibernate: bool,
    /// The actor is queued on the pool or running: pushes need not
    /// schedule it.
    pub scheduled: bool,
}

impl Inbox {
    pub fn has_work(&self) -> bool {
        !self.opens.is_empty()
            || !self.events.is_empty()
            || !self.throttled.is_empty()
            || !self.flushes.is_empty()
            || self.swap.is_some()
            || self.verdict.is_some()
            || self.hibernate
    }

    /// Queues packed `events` after those waiting, leaving `events` empty
    /// (with this inbox's spare buffer, when it took the caller's).
    pub fn queue_events(&mut self, events: &mut Vec<u8>, tally: Tally) {
        self.tally.add(tally);
        if self.events.is_empty() {
            std::mem::swap(&mut self.events, events);
        } else {
            self.events.extend_from_slice(events);
        }
        events.clear();
    }

    /// Frees the spare buffer: a hibernating tenant keeps no memory for
    /// batches.
    pub fn release_buffer(&mut self) {
        if self.events.is_empty() {
            self.events = Vec::new();
        }
    }

    /// Takes a handled batch's buffer back for the next batch.
    pub fn recycle(&mut self, mut batch: Vec<u8>) {
        if self.events.capacity() == 0 && batch.capacity() <= KEEP_CAPACITY {
            batch.clear();
            self.events = batch;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_taken_without_a_copy_when_none_wait_and_appended_otherwise() {
        let mut inbox = Inbox::default();
        let data = Tally {
            events: 2,
            bookkeeping: false,
        };
        let mut staged = b"first".to_vec();
        let staged_at = staged.as_ptr();
        inbox.queue_events(&mut staged, data);
        assert_eq!(inbox.events.as_ptr(), staged_at);
        assert!(staged.is_empty());
        staged.extend_from_slice(b" second");
        inbox.queue_events(&mut staged, Tally::of(&packed::Event::ReadyToSend(7)));
        assert_eq!(inbox.events, b"first second");
        assert!(staged.is_empty());
        let both = Tally {
            events: 3,
            bookkeeping: true,
        };
        assert_eq!(inbox.tally, both);
    }

    #[test]
    fn a_handled_batch_comes_back_unless_it_is_large_or_the_tenant_hibernates() {
        let mut inbox = Inbox::default();
        let batch = std::mem::take(&mut inbox.events);
        inbox.recycle(Vec::with_capacity(64));
        assert_eq!(inbox.events.capacity(), 64);
        assert!(inbox.events.is_empty());
        drop(batch);
        inbox.release_buffer();
        assert_eq!(inbox.events.capacity(), 0);
        inbox.recycle(Vec::with_capacity(KEEP_CAPACITY + 1));
        assert_eq!(inbox.events.capacity(), 0);
    }
}
