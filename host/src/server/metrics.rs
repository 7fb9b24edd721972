//! The server's counters: connections accepted, open and refused (by
//! reason), messages and bytes in and out, would-block refusals.
//!
//! Traffic is counted where it is cheap: once per socket read or write, and
//! per turn for the messages a connection hands to its writer, never per
//! message. Each thread adds into a shard of its own, so the threads
//! serving sockets never write to a shared cache line; a scrape sums the
//! shards. Connections accepted and closed are sharded too (every
//! handshake counts them); refusals and parking are rare enough for plain
//! shared atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use thread_local::ThreadLocal;

/// Why a client was turned away before its WebSocket opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// AllowedClients/BlockedClients, or the ConnectionRequest event.
    ClientFilter,
    /// MaxConnections were admitted already (HTTP 503).
    MaxConnections,
    /// The upgrade request was malformed or too large (HTTP 4xx).
    HandshakeError,
    /// The client did not complete its request within HandshakeTimeout.
    HandshakeTimeout,
    /// The handler answered the open request with a status other than 101.
    Handler,
}

impl RefusalReason {
    pub const ALL: [Self; 5] = [
        Self::ClientFilter,
        Self::MaxConnections,
        Self::HandshakeError,
        Self::HandshakeTimeout,
        Self::Handler,
    ];

    /// The reason as a metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientFilter => "client_filter",
            Self::MaxConnections => "max_connections",
            Self::HandshakeError => "handshake_error",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::Handler => "handler",
        }
    }
}

/// A point-in-time copy of the server's counters (totals since start).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerMetrics {
    /// WebSocket connections open now (handshake done, not yet ended).
    pub connections_open: u64,
    /// Open connections idle long enough to wait in their thread's
    /// parking lot, with no task of their own (ParkDelay).
    pub connections_parked: u64,
    /// Connections whose opening handshake succeeded.
    pub connections_accepted: u64,
    pub connections_refused: RefusalCounts,
    /// Whole data messages received (text or binary, however fragmented).
    pub messages_received: u64,
    /// Whole data messages handed to the connections' writers.
    pub messages_sent: u64,
    /// Bytes read from client sockets (frames included).
    pub bytes_received: u64,
    /// Bytes written to client sockets (frames included).
    pub bytes_sent: u64,
    /// Sends refused because the connection's queue was full (10035).
    pub would_block: u64,
    /// Cores taking new connections (AdaptiveCores); 0 while not
    /// listening.
    pub cores_accepting: u64,
}

/// Clients refused, per reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusalCounts([u64; RefusalReason::ALL.len()]);

impl RefusalCounts {
    pub fn get(&self, reason: RefusalReason) -> u64 {
        self.0[reason as usize]
    }

    /// Every reason with its count, in [`RefusalReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (RefusalReason, u64)> + '_ {
        RefusalReason::ALL.into_iter().map(|r| (r, self.get(r)))
    }
}

/// The live counters, owned by the server.
#[derive(Debug, Default)]
pub(crate) struct MetricsRecorder {
    parked: AtomicU64,
    resumed: AtomicU64,
    refused: [AtomicU64; RefusalReason::ALL.len()],
    cores_accepting: AtomicU64,
    shards: ThreadLocal<Shard>,
}

/// One thread's traffic and connection counters. Aligned to two cache
/// lines (the adjacent-line prefetcher's pair) so shards never share one.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    accepted: AtomicU64,
    closed: AtomicU64,
    messages_received: AtomicU64,
    messages_sent: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    would_block: AtomicU64,
}

/// Adds to a counter only the calling thread writes: a plain load and
/// store, no locked read-modify-write.
fn add_own(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl MetricsRecorder {
    fn shard(&self) -> &Shard {
        self.shards.get_or_default()
    }

    pub fn connection_accepted(&self) {
        add_own(&self.shard().accepted, 1);
    }

    /// An accepted connection has ended.
    pub fn connection_closed(&self) {
        add_own(&self.shard().closed, 1);
    }

    /// A connection left its task for a parking lot.
    pub fn connection_parked(&self) {
        self.parked.fetch_add(1, Ordering::Relaxed);
    }

    /// A parked connection left its parking lot.
    pub fn connection_resumed(&self) {
        self.resumed.fetch_add(1, Ordering::Relaxed);
    }

    /// New connections now go to this many cores.
    pub fn cores_accepting(&self, cores: usize) {
        self.cores_accepting.store(cores as u64, Ordering::Relaxed);
    }

    pub fn connection_refused(&self, reason: RefusalReason) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// One socket read: `bytes` read and `messages` completed by them.
    pub fn received(&self, bytes: usize, messages: u64) {
        let shard = self.shard();
        add_own(&shard.bytes_received, bytes as u64);
        add_own(&shard.messages_received, messages);
    }

    /// Messages a connection handed to its writer in one turn.
    pub fn messages_sent(&self, messages: u64) {
        add_own(&self.shard().messages_sent, messages);
    }

    /// One socket write of `bytes`.
    pub fn bytes_sent(&self, bytes: usize) {
        add_own(&self.shard().bytes_sent, bytes as u64);
    }

    pub fn would_block(&self) {
        add_own(&self.shard().would_block, 1);
    }

    pub fn snapshot(&self) -> ServerMetrics {
        let mut m = ServerMetrics::default();
        // Closed is summed first: a connection that ends meanwhile cannot
        // make the open count negative.
        let closed: u64 = self
            .shards
            .iter()
            .map(|s| s.closed.load(Ordering::Relaxed))
            .sum();
        for shard in self.shards.iter() {
            m.connections_accepted += shard.accepted.load(Ordering::Relaxed);
            m.messages_received += shard.messages_received.load(Ordering::Relaxed);
            m.messages_sent += shard.messages_sent.load(Ordering::Relaxed);
            m.bytes_received += shard.bytes_received.load(Ordering::Relaxed);
            m.bytes_sent += shard.bytes_sent.load(Ordering::Relaxed);
            m.would_block += shard.would_block.load(Ordering::Relaxed);
        }
        m.connections_open = m.connections_accepted.saturating_sub(closed);
        // Resumed first, as with closed.
        let resumed = self.resumed.load(Ordering::Relaxed);
        m.connections_parked = self.parked.load(Ordering::Relaxed).saturating_sub(resumed);
        m.connections_refused =
            RefusalCounts(self.refused.each_ref().map(|n| n.load(Ordering::Relaxed)));
        m.cores_accepting = self.cores_accepting.load(Ordering::Relaxed);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_of_every_thread_add_up() {
        let recorder = MetricsRecorder::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        recorder.received(10, 1);
                        recorder.bytes_sent(3);
                    }
                    recorder.messages_sent(7);
                    recorder.would_block();
                });
            }
        });
        let m = recorder.snapshot();
        assert_eq!((m.bytes_received, m.messages_received), (40_000, 4000));
        assert_eq!((m.bytes_sent, m.messages_sent), (12_000, 28));
        assert_eq!(m.would_block, 4);
    }

    #[test]
    fn open_connections_are_accepted_minus_closed() {
        let recorder = MetricsRecorder::default();
        for _ in 0..3 {
            recorder.connection_accepted();
        }
        recorder.connection_closed();
        recorder.connection_refused(RefusalReason::MaxConnections);
        recorder.connection_refused(RefusalReason::MaxConnections);
        recorder.connection_refused(RefusalReason::Handler);
        let m = recorder.snapshot();
        assert_eq!((m.connections_accepted, m.connections_open), (3, 2));
        let refused = &m.connections_refused;
        assert_eq!(refused.get(RefusalReason::MaxConnections), 2);
        assert_eq!(refused.get(RefusalReason::Handler), 1);
        assert_eq!(refused.get(RefusalReason::ClientFilter), 0);
    }
}
