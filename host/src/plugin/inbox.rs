//! What waits for a plugin's actor: event batches, open requests, paused
//! connections, flushes, swap orders and the hibernation request.
//!
//! Events arrive in the packed layout, already staged per read by the
//! connection's thread. They wait as batches, each handed to the guest in
//! one call: an inbox with nothing waiting takes the staged buffer as it is
//! (no copy), a small staged read is appended to the last batch (one call
//! for many reads), and a large one becomes a batch of its own rather than
//! being copied (a call costs less than copying [`OWN_BATCH`] bytes).
//! Handled batches' buffers come back for the next ones, so a busy
//! tenant's batches cost no allocation.

use std::sync::{Arc, mpsc};

use tokio::sync::oneshot;
use wsserver_plugin_bindings::wsserver::plugin::types as wit;

use super::version::{Live, Version};
use crate::server::{Connection, OpenResponse};

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

/// Handled batch buffers kept for the next batches, and the largest kept
/// (a read's staged events are handed over past 64 KiB, so its buffer has
/// grown to 128 KiB): enough for the batches a busy tenant has in flight,
/// so they circulate instead of being freed and faulted in again; beyond
/// them a burst's buffers are freed, and a hibernating tenant keeps none.
const KEEP_SPARES: usize = 8;
const KEEP_CAPACITY: usize = 128 * 1024;
/// Staged events of at least this many bytes become a batch of their own
/// instead of being copied behind the last one: one more guest call
/// (~2 µs) costs less than copying them.
const OWN_BATCH: usize = 16 * 1024;

/// Events and requests waiting for the actor.
#[derive(Default)]
pub(crate) struct Inbox {
    pub opens: Vec<PendingOpen>,
    /// Events in the packed layout, in batches ready to hand over as they
    /// are, one guest call each.
    batches: Vec<Vec<u8>>,
    /// Bytes in `batches`.
    queued: usize,
    /// Handled batches' buffers, empty, for the next ones.
    spare: Vec<Vec<u8>>,
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
            || !self.batches.is_empty()
            || !self.throttled.is_empty()
            || !self.flushes.is_empty()
            || self.swap.is_some()
            || self.verdict.is_some()
            || self.hibernate
    }

    /// Bytes of events waiting.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Queues packed `events` after those waiting, leaving `events` empty
    /// (with a spare buffer of this inbox, when it took the caller's).
    pub fn queue_events(&mut self, events: &mut Vec<u8>) {
        if events.is_empty() {
            return;
        }
        self.queued += events.len();
        match self.batches.last_mut() {
            Some(last) if events.len() < OWN_BATCH => {
                last.extend_from_slice(events);
                events.clear();
            }
            _ => {
                let spare = self.spare.pop().unwrap_or_default();
                self.batches.push(std::mem::replace(events, spare));
            }
        }
    }

    /// Takes the batches waiting, in order.
    pub fn take_batches(&mut self) -> Vec<Vec<u8>> {
        self.queued = 0;
        std::mem::take(&mut self.batches)
    }

    /// Frees the spare buffers: a hibernating tenant keeps no memory for
    /// batches.
    pub fn release_buffer(&mut self) {
        self.spare = Vec::new();
        if self.batches.is_empty() {
            self.batches = Vec::new();
        }
    }

    /// Takes handled batches' buffers back for the next batches.
    pub fn recycle(&mut self, mut handled: Vec<Vec<u8>>) {
        for mut batch in handled.drain(..) {
            if self.spare.len() < KEEP_SPARES && batch.capacity() <= KEEP_CAPACITY {
                batch.clear();
                self.spare.push(batch);
            }
        }
        if self.batches.capacity() == 0 {
            self.batches = handled;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_events_are_taken_without_a_copy_unless_small_and_behind_others() {
        let mut inbox = Inbox::default();
        let mut staged = b"first".to_vec();
        let first_at = staged.as_ptr();
        inbox.queue_events(&mut staged);
        assert!(staged.is_empty());
        staged.extend_from_slice(b" second");
        inbox.queue_events(&mut staged);
        assert!(staged.is_empty());
        let mut large = vec![7u8; OWN_BATCH];
        let large_at = large.as_ptr();
        inbox.queue_events(&mut large);
        assert!(large.is_empty());
        assert_eq!(inbox.queued_bytes(), 12 + OWN_BATCH);
        let batches = inbox.take_batches();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0], b"first second");
        assert_eq!(batches[0].as_ptr(), first_at);
        assert_eq!(batches[1].as_ptr(), large_at);
        assert_eq!(inbox.queued_bytes(), 0);
        assert!(!inbox.has_work());
    }

    #[test]
    fn handled_batches_come_back_unless_large_or_the_tenant_hibernates() {
        let mut inbox = Inbox::default();
        inbox.recycle(vec![
            Vec::with_capacity(64),
            Vec::with_capacity(KEEP_CAPACITY + 1),
            Vec::with_capacity(32),
        ]);
        assert_eq!(inbox.spare.len(), 2);
        // The next staged read swaps its buffer for a spare one.
        let mut staged = b"x".to_vec();
        inbox.queue_events(&mut staged);
        assert!(staged.is_empty() && staged.capacity() >= 32);
        inbox.release_buffer();
        assert!(inbox.spare.is_empty() && inbox.spare.capacity() == 0);
        assert!(inbox.has_work());
    }
}
