//! A tenant's topics: named groups of its connections that a publish
//! reaches without calling the plugin once per recipient. With a cluster
//! backplane a publish also goes to the topic's subscribers on the other
//! nodes, and theirs come here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use rustc_hash::FxHashMap;

use wsserver_packed as packed;

use super::convert;
use crate::MessageKind;
use crate::cluster::{Backplane, Inbound, TenantLink};
use crate::server::{Connection, ConnectionId, Error};

/// Hands the plugin instance serving a connection an event that no client
/// input caused (the router's `push_event`, which knows which instance
/// serves it): an error for a topic message its queue refused, a presence
/// change for a topic it watches.
pub(crate) type PushEvent = fn(&Connection, &packed::Event<'_>);

/// A topic and how many subscribe to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicCount {
    pub topic: String,
    /// Subscribers on this node.
    pub local: u64,
    /// Subscribers on every node (the same as `local` without a cluster).
    pub subscribers: u64,
}

/// Topic name -> subscribers, and the reverse index so a closing
/// connection leaves all its topics at once; watched topics and their
/// watchers.
#[derive(Debug, Default)]
struct Subscriptions {
    subscribers: HashMap<String, BTreeMap<ConnectionId, Connection>>,
    /// Fx: the keys are the server's own ids (topic names keep SipHash:
    /// clients may choose them).
    by_connection: FxHashMap<ConnectionId, BTreeSet<String>>,
    /// Watched topic -> the connections watching it; the first is told.
    watchers: HashMap<String, BTreeMap<ConnectionId, Connection>>,
}

impl Subscriptions {
    fn count(&self, topic: &str) -> usize {
        self.subscribers.get(topic).map_or(0, BTreeMap::len)
    }

    /// Removes one subscription; the topic's count after it.
    fn remove(&mut self, id: ConnectionId, topic: &str) -> usize {
        let Some(set) = self.subscribers.get_mut(topic) else {
            return 0;
        };
        set.remove(&id);
        let left = set.len();
        if left == 0 {
            self.subscribers.remove(topic);
        }
        left
    }
}

/// A tenant's topics, shared by all its instances and versions.
#[derive(Debug)]
pub(crate) struct TopicBus {
    tenant: String,
    local: Mutex<Subscriptions>,
    cluster: OnceLock<TenantLink>,
    push_event: PushEvent,
}

impl TopicBus {
    pub fn new(tenant: String, push_event: PushEvent) -> Self {
        Self {
            tenant,
            local: Mutex::default(),
            cluster: OnceLock::new(),
            push_event,
        }
    }

    fn local(&self) -> MutexGuard<'_, Subscriptions> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects the topics to the other nodes (once: later calls do
    /// nothing), before the tenant serves its first client.
    pub fn join(self: &Arc<Self>, backplane: &Backplane) {
        self.cluster.get_or_init(|| {
            let inbound: Arc<dyn Inbound> = self.clone();
            backplane.join(&self.tenant, Arc::downgrade(&inbound))
        });
    }

    fn remote_count(&self, topic: &str) -> u64 {
        self.cluster
            .get()
            .map_or(0, |link| link.remote_count(topic))
    }

    /// A local subscriber came or went: the other nodes learn the count
    /// (called with the subscriptions locked, so counts arrive in the
    /// order they changed) and a watcher of the topic is told.
    fn counted(&self, local: &Subscriptions, topic: &str, id: ConnectionId, joined: bool) {
        let count = local.count(topic);
        if let Some(link) = self.cluster.get() {
            link.set_local_count(topic, count);
        }
        if let Some(watcher) = local.watchers.get(topic).and_then(|w| w.values().next()) {
            let event = packed::Event::Presence {
                topic,
                joined,
                connection: Some(id),
                count: 1,
                subscribers: count as u64 + self.remote_count(topic),
            };
            (self.push_event)(watcher, &event);
        }
    }

    pub fn subscribe(&self, conn: &Connection, topic: &str) {
        let mut local = self.local();
        let set = local.subscribers.entry(topic.to_owned()).or_default();
        if set.insert(conn.id(), conn.clone()).is_some() {
            return;
        }
        local
            .by_connection
            .entry(conn.id())
            .or_default()
            .insert(topic.to_owned());
        self.counted(&local, topic, conn.id(), true);
    }

    pub fn unsubscribe(&self, id: ConnectionId, topic: &str) {
        let mut local = self.local();
        let Some(topics) = local.by_connection.get_mut(&id) else {
            return;
        };
        if !topics.remove(topic) {
            return;
        }
        if topics.is_empty() {
            local.by_connection.remove(&id);
        }
        local.remove(id, topic);
        self.counted(&local, topic, id, false);
    }

    /// Starts or stops presence events for `topic`, delivered through
    /// `conn` (the watcher) while it is open.
    pub fn watch(&self, conn: &Connection, topic: &str, watch: bool) {
        let mut local = self.local();
        if watch {
            local
                .watchers
                .entry(topic.to_owned())
                .or_default()
                .insert(conn.id(), conn.clone());
        } else if let Some(watchers) = local.watchers.get_mut(topic) {
            watchers.remove(&conn.id());
            if watchers.is_empty() {
                local.watchers.remove(topic);
            }
        }
        if let Some(link) = self.cluster.get() {
            link.set_watching(!local.watchers.is_empty());
        }
    }

    /// Drops every subscription and watch of a connection that has ended.
    pub fn forget(&self, id: ConnectionId) {
        let mut local = self.local();
        // Most tenants use no topics: every connection ends here.
        if local.by_connection.is_empty() && local.watchers.is_empty() {
            return;
        }
        let watched_before = !local.watchers.is_empty();
        local.watchers.retain(|_, watchers| {
            watchers.remove(&id);
            !watchers.is_empty()
        });
        if watched_before
            && local.watchers.is_empty()
            && let Some(link) = self.cluster.get()
        {
            link.set_watching(false);
        }
        for topic in local.by_connection.remove(&id).unwrap_or_default() {
            local.remove(id, &topic);
            self.counted(&local, &topic, id, false);
        }
    }

    /// Queues the message for every subscriber here but `exclude`, then
    /// sends it to the other nodes. Returns the subscribers whose queue
    /// refused it.
    pub fn publish(
        &self,
        topic: &str,
        kind: MessageKind,
        payload: Bytes,
        exclude: Option<ConnectionId>,
    ) -> Vec<(ConnectionId, Error)> {
        let failed = self.fan_out(topic, kind, &payload, exclude).1;
        if let Some(link) = self.cluster.get() {
            link.publish(topic, kind, &payload);
        }
        failed
    }

    /// Queues the message for the subscribers on this node: how many took
    /// it, and those whose queue refused it.
    fn fan_out(
        &self,
        topic: &str,
        kind: MessageKind,
        payload: &Bytes,
        exclude: Option<ConnectionId>,
    ) -> (usize, Vec<(ConnectionId, Error)>) {
        let local = self.local();
        let mut failed = Vec::new();
        let mut queued = 0;
        for (id, conn) in local.subscribers.get(topic).into_iter().flatten() {
            if Some(*id) == exclude {
                continue;
            }
            match conn.send_shared(kind, payload.clone()) {
                Ok(()) => queued += 1,
                Err(e) => failed.push((*id, e)),
            }
        }
        (queued, failed)
    }

    /// A publish from outside the plugin (the admin API): delivered here
    /// and on the other nodes; a subscriber whose queue refuses it is
    /// reported to the plugin as an `error` event. Returns how many
    /// subscribers here took it.
    pub fn publish_from_host(&self, topic: &str, kind: MessageKind, payload: Bytes) -> usize {
        let queued = self.deliver_here(topic, kind, &payload);
        if let Some(link) = self.cluster.get() {
            link.publish(topic, kind, &payload);
        }
        queued
    }

    fn deliver_here(&self, topic: &str, kind: MessageKind, payload: &Bytes) -> usize {
        let (queued, failed) = self.fan_out(topic, kind, payload, None);
        if !failed.is_empty() {
            let local = self.local();
            for (id, error) in failed {
                if let Some(conn) = local.subscribers.get(topic).and_then(|s| s.get(&id)) {
                    let event = packed::Event::Error {
                        connection: id,
                        code: convert::error_code(convert::host_error(&error)),
                        description: &error.to_string(),
                    };
                    (self.push_event)(conn, &event);
                }
            }
        }
        queued
    }

    /// Subscribers of `topic`: here, plus on the other nodes as last read.
    pub fn subscriber_count(&self, topic: &str) -> u64 {
        let local = self.local().count(topic) as u64;
        local + self.remote_count(topic)
    }

    /// Every topic with subscribers here or (with a cluster) elsewhere, by
    /// name.
    pub fn topics(&self) -> Vec<TopicCount> {
        let mut topics: BTreeMap<String, TopicCount> = self
            .local()
            .subscribers
            .iter()
            .map(|(topic, set)| {
                let count = TopicCount {
                    topic: topic.clone(),
                    local: set.len() as u64,
                    subscribers: set.len() as u64,
                };
                (topic.clone(), count)
            })
            .collect();
        for (topic, remote) in self
            .cluster
            .get()
            .map(TenantLink::remote_topics)
            .unwrap_or_default()
        {
            topics
                .entry(topic.clone())
                .or_insert(TopicCount {
                    topic,
                    local: 0,
                    subscribers: 0,
                })
                .subscribers += remote;
        }
        topics.into_values().collect()
    }
}

impl Inbound for TopicBus {
    fn deliver(&self, topic: &str, kind: MessageKind, payload: Bytes) {
        self.deliver_here(topic, kind, &payload);
    }

    fn remote_count_changed(&self, topic: &str, before: u64, after: u64) {
        let local = self.local();
        if let Some(watcher) = local.watchers.get(topic).and_then(|w| w.values().next()) {
            let event = packed::Event::Presence {
                topic,
                joined: after > before,
                connection: None,
                count: u32::try_from(after.abs_diff(before)).unwrap_or(u32::MAX),
                subscribers: local.count(topic) as u64 + after,
            };
            (self.push_event)(watcher, &event);
        }
    }
}
