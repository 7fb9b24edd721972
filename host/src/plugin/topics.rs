//! In-process topics: named groups of a plugin's connections that a
//! publish reaches without calling the plugin once per recipient.

use std::collections::{BTreeSet, HashMap};

use super::super::server::ConnectionId;

/// Topic name -> subscribers, and the reverse index so a closing
/// connection leaves all its topics at once.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    subscribers: HashMap<String, BTreeSet<ConnectionId>>,
    by_connection: HashMap<ConnectionId, BTreeSet<String>>,
}

impl Topics {
    pub fn subscribe(&mut self, conn: ConnectionId, topic: &str) {
        self.subscribers
            .entry(topic.to_owned())
            .or_default()
            .insert(conn);
        self.by_connection
            .entry(conn)
            .or_default()
            .insert(topic.to_owned());
    }

    pub fn unsubscribe(&mut self, conn: ConnectionId, topic: &str) {
        if let Some(set) = self.subscribers.get_mut(topic) {
            set.remove(&conn);
            if set.is_empty() {
                self.subscribers.remove(topic);
            }
        }
        if let Some(topics) = self.by_connection.get_mut(&conn) {
            topics.remove(topic);
            if topics.is_empty() {
                self.by_connection.remove(&conn);
            }
        }
    }

    /// Drops every subscription of a connection that has ended.
    pub fn forget(&mut self, conn: ConnectionId) {
        for topic in self.by_connection.remove(&conn).unwrap_or_default() {
            if let Some(set) = self.subscribers.get_mut(&topic) {
                set.remove(&conn);
                if set.is_empty() {
                    self.subscribers.remove(&topic);
                }
            }
        }
    }

    /// The subscribers of a topic, in id order.
    pub fn subscribers(&self, topic: &str) -> impl Iterator<Item = ConnectionId> + '_ {
        self.subscribers.get(topic).into_iter().flatten().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_end_with_the_connection() {
        let mut t = Topics::default();
        t.subscribe(1, "a");
        t.subscribe(2, "a");
        t.subscribe(1, "b");
        assert_eq!(t.subscribers("a").collect::<Vec<_>>(), [1, 2]);
        t.forget(1);
        assert_eq!(t.subscribers("a").collect::<Vec<_>>(), [2]);
        assert_eq!(t.subscribers("b").count(), 0);
        t.unsubscribe(2, "a");
        assert!(t.subscribers.is_empty() && t.by_connection.is_empty());
    }
}
