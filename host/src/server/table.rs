//! The connection table: ConnectionId -> Connection, sharded so lookups
//! from many threads rarely contend, with the MaxConnections count.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rustc_hash::FxHashMap;
use tokio::sync::Notify;

use super::connection::Connection;
use super::events::ConnectionId;

const SHARDS: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct ConnectionTable {
    shards: [Mutex<FxHashMap<ConnectionId, Connection>>; SHARDS],
    /// Connections admitted, counted from acceptance (so pending handshakes
    /// count against MaxConnections) until their task ends.
    admitted: AtomicUsize,
    /// Signalled whenever the table becomes empty.
    emptied: Notify,
}

impl ConnectionTable {
    fn shard(&self, id: ConnectionId) -> MutexGuard<'_, FxHashMap<ConnectionId, Connection>> {
        self.shards[id as usize % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
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
