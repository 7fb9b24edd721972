//! A tenant's topics: named groups of its connections that a publish
//! reaches without calling the plugin once per recipient. With a cluster
//! backplane a publish also goes to the topic's subscribers on the other
//! nodes, and theirs come here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;

use super::convert;
use crate::MessageKind;
use crate::cluster::{Backplane, Inbound, TenantLink};
use crate::server::{Connection, ConnectionId, Error};

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
/// connection leaves all its topics at once.
#[derive(Debug, Default)]
struct Subscriptions {
    subscribers: HashMap<String, BTreeMap<ConnectionId, Connection>>,
    by_connection: HashMap<ConnectionId, BTreeSet<String>>,
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
}

impl TopicBus {
    pub fn new(tenant: String) -> Self {
        Self {
            tenant,
            local: Mutex::default(),
            cluster: OnceLock::new(),
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

    /// Tells the other nodes how many subscribe here; called with the
    /// subscriptions locked, so counts arrive in the order they changed.
    fn counted(&self, topic: &str, count: usize) {
        if let Some(link) = self.cluster.get() {
            link.set_local_count(topic, count);
        }
    }

    pub fn subscribe(&self, conn: &Connection, topic: &str) {
        let mut local = self.local();
        let set = local.subscribers.entry(topic.to_owned()).or_default();
        if set.insert(conn.id(), conn.clone()).is_some() {
            return;
        }
        let count = set.len();
        local
            .by_connection
            .entry(conn.id())
            .or_default()
            .insert(topic.to_owned());
        self.counted(topic, count);
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
        let left = local.remove(id, topic);
        self.counted(topic, left);
    }

    /// Drops every subscription of a connection that has ended.
    pub fn forget(&self, id: ConnectionId) {
        let mut local = self.local();
        for topic in local.by_connection.remove(&id).unwrap_or_default() {
            let left = local.remove(id, &topic);
            self.counted(&topic, left);
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
                    let code = convert::error_code(convert::host_error(&error));
                    super::router::report_error(conn, code, &error.to_string());
                }
            }
        }
        queued
    }

    /// Subscribers of `topic`: here, plus on the other nodes as last read.
    pub fn subscriber_count(&self, topic: &str) -> u64 {
        let local = self.local().count(topic) as u64;
        local
            + self
                .cluster
                .get()
                .map_or(0, |link| link.remote_count(topic))
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
}
