//! The connection table: ConnectionId -> Connection, sharded so lookups
//! from many threads rarely contend, with the MaxConnections count and
//! the connection ids.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use thread_local::ThreadLocal;
use tokio::sync::Notify;

use super::connection::Connection;
use super::events::ConnectionId;

const SHARDS: usize = 16;
/// Ids are handed to each thread in blocks of this many, and a block's ids
/// share a shard: the threads accepting connections then neither bounce
/// one counter between them nor, most of the time, a shard's lock.
const ID_BLOCK: u64 = 64;

#[derive(Debug, Default)]
pub(crate) struct ConnectionTable {
    shards: [Mutex<FxHashMap<ConnectionId, Connection>>; SHARDS],
    /// Connections admitted, counted from acceptance (so pending handshakes
    /// count against MaxConnections) until their task ends.
    admitted: AtomicUsize,
    /// Signalled whenever the table becomes empty.
    emptied: Notify,
    /// The start of the next block of ids to hand out.
    next_block: AtomicU64,
    /// Each thread's current block: its next id and the block's end.
    blocks: ThreadLocal<Cell<(ConnectionId, ConnectionId)>>,
}

impl ConnectionTable {
    fn shard(&self, id: ConnectionId) -> MutexGuard<'_, FxHashMap<ConnectionId, Connection>> {
        self.shards[(id / ID_BLOCK) as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection's id: unique in this server, never 0.
    pub fn next_id(&self) -> ConnectionId {
        let block = self.blocks.get_or_default();
        let (mut next, mut end) = block.get();
        if next == end {
            next = self.next_block.fetch_add(ID_BLOCK, Ordering::Relaxed);
            end = next + ID_BLOCK;
            // 0 is no connection's id.
            next = next.max(1);
        }
        block.set((next + 1, end));
        next
    }

    /// Counts a new connection if fewer than `max` are admitted.
    pub fn try_admit(&self, max: usize) -> bool {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Ends an admission counted by [`try_admit`](Self::try_admit).
    pub fn release(&self) {
        if self.admitted.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.emptied.notify_waiters();
        }
    }

    pub fn insert(&self, conn: Connection) {
        self.shard(conn.id()).insert(conn.id(), conn);
    }

    /// Takes a connection out of the listing and lookups; it stays
    /// admitted (counted) until [`release`](Self::release).
    pub fn unlist(&self, id: ConnectionId) {
        self.shard(id).remove(&id);
    }

    pub fn get(&self, id: ConnectionId) -> Option<Connection> {
        self.shard(id).get(&id).cloned()
    }

    /// Every connection, in id order.
    pub fn all(&self) -> Vec<Connection> {
        let mut all: Vec<Connection> = self
            .shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        all.sort_by_key(Connection::id);
        all
    }

    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Waits until no connection is admitted.
    pub async fn wait_empty(&self) {
        loop {
            let notified = self.emptied.notified();
            if self.admitted() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_many_threads_are_unique_and_never_zero() {
        let table = ConnectionTable::default();
        let ids: Vec<ConnectionId> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1000).map(|_| table.next_id()).collect::<Vec<_>>()))
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), 4000);
        assert!(!ids.contains(&0));
    }
}
