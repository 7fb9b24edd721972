//! Topics across nodes: the Redis backplane.
//!
//! Every node delivers a publish to its own subscribers at once and also
//! publishes it once to Redis (sharded pub/sub, `SPUBLISH`); every other
//! node that has subscribers for that tenant's topic receives it
//! (`SSUBSCRIBE`) and delivers it to its own. A node subscribes to a
//! channel only while it has a local subscriber, and channel names carry
//! the tenant, so tenants never see each other's topics.
//!
//! Delivery across nodes is at most once and in order per publisher and
//! topic: messages leave through one connection in the order they were
//! published and Redis keeps that order per channel. While Redis is
//! unreachable, local delivery goes on and what cannot be sent is counted
//! and dropped, never queued without bound and never waited for by a
//! connection or a plugin: the link reconnects with backoff and subscribes
//! again to what its clients still want.
//!
//! Presence: each node writes its subscriber count per topic into a hash
//! per tenant, each entry with its own expiry (so a node that dies drops
//! out of the sums), and reads the other nodes' counts every
//! [`PRESENCE_PERIOD`].
//!
//! This module knows nothing of plugins: a tenant's topic bus joins with
//! [`Backplane::join`] and receives other nodes' messages through
//! [`Inbound`].

mod link;
mod wire;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::MessageKind;

/// How often a node writes its changed counts and reads the others'.
pub const PRESENCE_PERIOD: Duration = Duration::from_millis(500);
/// How long a node's count stands without being written again.
const PRESENCE_TTL: Duration = Duration::from_secs(15);
/// How often a node writes all its counts again, well within the TTL.
const PRESENCE_REFRESH: Duration = Duration::from_secs(5);
/// Tenants whose counts were asked for are read for this long, even with
/// no local subscriber.
const ASKED_FOR: Duration = Duration::from_secs(60);
/// Publishes waiting for the link; beyond it they are dropped and counted.
const QUEUE: usize = 65_536;

/// Where the backplane hands messages from other nodes: a tenant's topics.
pub trait Inbound: Send + Sync {
    /// A message another node published to `topic` of this tenant.
    fn deliver(&self, topic: &str, kind: MessageKind, payload: Bytes);
}

/// Why a backplane could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cluster: redis URL {url:?} is not usable: {reason}")]
pub struct ClusterError {
    url: String,
    reason: String,
}

/// The node's link to the other nodes through Redis. Cheap to clone.
#[derive(Clone)]
pub struct Backplane {
    shared: Arc<Shared>,
}

/// What the backplane reports (GET /cluster, /metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node's id, 16 hex digits (random per process).
    pub node: String,
    /// The Redis URL without its password.
    pub redis: String,
    /// Whether the link to Redis is up now.
    pub connected: bool,
    /// Channels this node subscribes to now (topics with local subscribers).
    pub subscribed_channels: usize,
    /// Messages sent to Redis for the other nodes.
    pub published: u64,
    /// Messages that could not be sent (Redis down, an error, a full
    /// queue): the other nodes missed them.
    pub publish_failures: u64,
    /// Messages received from other nodes.
    pub received: u64,
    /// Times the link went down.
    pub outages: u64,
    /// When the current outage began (None while connected).
    pub down_since: Option<SystemTime>,
    /// The last error the link met.
    pub last_error: Option<String>,
}

/// A publish on its way to Redis.
struct Outgoing {
    channel: String,
    message: Bytes,
}

/// A topic with subscribers on this node.
struct Interest {
    tenant: Arc<str>,
    topic: String,
    count: usize,
}

#[derive(Default)]
struct State {
    tenants: HashMap<Arc<str>, Weak<dyn Inbound>>,
    /// Channel -> the topic with local subscribers it carries.
    interests: HashMap<String, Interest>,
    /// Topics whose local count changed since it was last written.
    dirty: HashSet<(Arc<str>, String)>,
    /// Other nodes' subscriber counts, per tenant and topic.
    remote: HashMap<Arc<str>, HashMap<String, u64>>,
    /// When each tenant's counts were last asked for.
    asked: HashMap<Arc<str>, Instant>,
    connected: bool,
    subscribed: usize,
    down_since: Option<SystemTime>,
    last_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    publish_failures: AtomicU64,
    received: AtomicU64,
    outages: AtomicU64,
}

struct Shared {
    node: u64,
    redis: String,
    state: Mutex<State>,
    outgoing: mpsc::Sender<Outgoing>,
    /// Wakes the link when the set of wanted channels changes.
    wake: Arc<Notify>,
    counters: Counters,
}

impl Backplane {
    /// Checks `url` (`redis://HOST:PORT[/DB]`, with an optional
    /// `user:password@`) and starts the link on the current tokio runtime.
    /// Connecting happens in the background: a node starts, and serves
    /// locally, while Redis is still unreachable.
    pub fn start(url: &str) -> Result<Self, ClusterError> {
        let error = |reason: String| ClusterError {
            url: redact(url),
            reason,
        };
        let client = link::client(url).map_err(|e| error(e.to_string()))?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| error("no tokio runtime to run the link on".into()))?;
        let (outgoing, queue) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            node: random_node_id(),
            redis: redact(url),
            state: Mutex::default(),
            outgoing,
            wake: Arc::default(),
            counters: Counters::default(),
        });
        runtime.spawn(link::run(Arc::downgrade(&shared), client, queue));
        Ok(Self { shared })
    }

    /// Registers a tenant's topics: other nodes' messages for it reach
    /// `inbound`; the returned link publishes and counts for it.
    pub fn join(&self, tenant: &str, inbound: Weak<dyn Inbound>) -> TenantLink {
        let tenant: Arc<str> = tenant.into();
        self.shared.lock().tenants.insert(tenant.clone(), inbound);
        TenantLink {
            shared: self.shared.clone(),
            tenant,
        }
    }

    pub fn status(&self) -> ClusterStatus {
        let state = self.shared.lock();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counters = &self.shared.counters;
        ClusterStatus {
            node: wire::node_hex(self.shared.node),
            redis: self.shared.redis.clone(),
            connected: state.connected,
            subscribed_channels: state.subscribed,
            published: get(&counters.published),
            publish_failures: get(&counters.publish_failures),
            received: get(&counters.received),
            outages: get(&counters.outages),
            down_since: state.down_since,
            last_error: state.last_error.clone(),
        }
    }
}

/// One tenant's side of the backplane.
pub struct TenantLink {
    shared: Arc<Shared>,
    tenant: Arc<str>,
}

impl std::fmt::Debug for TenantLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLink")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TenantLink {
    /// Sends a message to the topic's subscribers on other nodes. Never
    /// waits: with Redis down or the queue full it is counted and dropped.
    pub fn publish(&self, topic: &str, kind: MessageKind, payload: &[u8]) {
        let outgoing = Outgoing {
            channel: wire::channel(&self.tenant, topic),
            message: wire::encode(self.shared.node, kind, payload),
        };
        if !self.shared.lock().connected || self.shared.outgoing.try_send(outgoing).is_err() {
            self.shared.failed(1);
        }
    }

    /// The topic now has `count` subscribers on this node: the node
    /// subscribes to its channel from the first and leaves it after the
    /// last, and other nodes see the count.
    pub fn set_local_count(&self, topic: &str, count: usize) {
        let channel = wire::channel(&self.tenant, topic);
        let mut state = self.shared.lock();
        let changed_subscription = if count == 0 {
            state.interests.remove(&channel).is_some()
        } else {
            let interest = state.interests.entry(channel).or_insert_with(|| Interest {
                tenant: self.tenant.clone(),
                topic: topic.to_owned(),
                count: 0,
            });
            let new = interest.count == 0;
            interest.count = count;
            new
        };
        state.dirty.insert((self.tenant.clone(), topic.to_owned()));
        drop(state);
        if changed_subscription {
            self.shared.wake.notify_one();
        }
    }

    /// Subscribers of `topic` on the other nodes, as last read (at most
    /// [`PRESENCE_PERIOD`] old while Redis is up).
    pub fn remote_count(&self, topic: &str) -> u64 {
        let mut state = self.shared.lock();
        state.asked.insert(self.tenant.clone(), Instant::now());
        state
            .remote
            .get(&self.tenant)
            .and_then(|topics| topics.get(topic))
            .copied()
            .unwrap_or(0)
    }

    /// Every topic with subscribers on other nodes, with their count there.
    pub fn remote_topics(&self) -> Vec<(String, u64)> {
        let mut state = self.shared.lock();
        state.asked.insert(self.tenant.clone(), Instant::now());
        state
            .remote
            .get(&self.tenant)
            .map(|topics| topics.iter().map(|(t, n)| (t.clone(), *n)).collect())
            .unwrap_or_default()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self, messages: u64) {
        self.counters
            .publish_failures
            .fetch_add(messages, Ordering::Relaxed);
    }

    /// The link is up: logs the end of an outage.
    fn up(&self) {
        let mut state = self.lock();
        state.connected = true;
        if let Some(since) = state.down_since.take() {
            let down = since.elapsed().unwrap_or_default();
            tracing::info!(
                "cluster: connected to Redis at {} again after {:.1} s; {} messages could not reach other nodes so far",
                self.redis,
                down.as_secs_f64(),
                self.counters.publish_failures.load(Ordering::Relaxed)
            );
        } else {
            tracing::info!("cluster: connected to Redis at {}", self.redis);
        }
        // Redis may have restarted empty: write every count again.
        let all: Vec<_> = state
            .interests
            .values()
            .map(|i| (i.tenant.clone(), i.topic.clone()))
            .collect();
        state.dirty.extend(all);
    }

    /// The link failed: logs once per outage, not once per attempt.
    fn down(&self, error: &str) {
        let mut state = self.lock();
        let first = state.down_since.is_none();
        state.connected = false;
        state.subscribed = 0;
        state.last_error = Some(error.to_owned());
        if first {
            state.down_since = Some(SystemTime::now());
            self.counters.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "cluster: Redis at {} is unreachable ({error}); local delivery goes on, messages for other nodes are dropped until it is back; retrying",
                self.redis
            );
        } else {
            tracing::debug!(
                "cluster: Redis at {} still unreachable: {error}",
                self.redis
            );
        }
    }

    /// Hands a message from another node to the tenant's topics.
    fn deliver(&self, channel: &[u8], message: Bytes) {
        let Some(decoded) = wire::decode(message) else {
            tracing::debug!("cluster: ignoring a malformed message");
            return;
        };
        if decoded.node == self.node {
            return;
        }
        let target = {
            let state = self.lock();
            std::str::from_utf8(channel)
                .ok()
                .and_then(|c| state.interests.get(c))
                .and_then(|i| {
                    let inbound = state.tenants.get(&i.tenant)?.upgrade()?;
                    Some((inbound, i.topic.clone()))
                })
        };
        if let Some((inbound, topic)) = target {
            self.counters.received.fetch_add(1, Ordering::Relaxed);
            inbound.deliver(&topic, decoded.kind, decoded.payload);
        }
    }
}

/// A random id per process: what lets a node skip its own messages.
fn random_node_id() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// The URL without the password, for logs and the admin API.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_reports() {
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://user:secret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
    }

    #[test]
    fn node_ids_differ_between_backplanes() {
        assert_ne!(random_node_id(), random_node_id());
    }
}
