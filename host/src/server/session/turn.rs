//! The session's side of [`owner_turn`]: a guard that registers the
//! connection as its thread's current one while a read is dispatched, and
//! hands what was queued to the connection when dropped.

use std::sync::atomic::Ordering;

use crate::server::connection::Connection;
use crate::server::owner_turn::{self, Turn};

pub(super) struct OwnerTurn<'a> {
    conn: &'a Connection,
}

impl<'a> OwnerTurn<'a> {
    /// Begins a turn when no message is being sent in parts and the
    /// connection is not closing; None otherwise (sends take the lock).
    pub fn begin(conn: &'a Connection) -> Option<Self> {
        let turn = {
            let mut st = conn.lock_state();
            let eligible = !st.closing && !st.occasional_in_use();
            if !eligible {
                return None;
            }
            st.owner_mark = None;
            conn.0.owner_fast.store(true, Ordering::Release);
            Turn::new(conn.address(), st.out.queued(), st.deflate_threshold)
        };
        if !owner_turn::register(turn) {
            conn.0.owner_fast.store(false, Ordering::Release);
            return None;
        }
        Some(Self { conn })
    }
}

impl Drop for OwnerTurn<'_> {
    fn drop(&mut self) {
        let queued = owner_turn::unregister();
        let mut st = self.conn.lock_state();
        self.conn.0.owner_fast.store(false, Ordering::Release);
        if let Some(queued) = queued {
            st.hand_over(queued);
        }
        st.owner_mark = None;
    }
}
