//! The JSON the admin API reads and writes.

use std::net::SocketAddr;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cluster::ClusterStatus;
use crate::plugin::{ComponentVersion, SwapOutcome, TenantStatus, TopicCount};
use crate::server::{ConnectionId, ConnectionInfo};

/// A connection: the WSConnection fields of the WSServer specification.
#[derive(Debug, Serialize)]
pub(super) struct ConnectionView {
    pub connection_id: ConnectionId,
    pub accept_data: bool,
    pub bytes_sent: u64,
    pub connected: bool,
    /// The DataFormat code: 0 automatic, 1 text, 2 binary, 9 ping, 10 pong.
    pub data_format: u8,
    pub host: String,
    pub line_mode: bool,
    pub local_address: String,
    pub origin: String,
    pub ready_to_send: bool,
    pub remote_host: String,
    pub remote_port: u16,
    pub request_headers: String,
    pub request_uri: String,
    pub subprotocols: String,
    pub timeout: u32,
}

impl From<ConnectionInfo> for ConnectionView {
    fn from(c: ConnectionInfo) -> Self {
        Self {
            connection_id: c.connection_id,
            accept_data: c.accept_data,
            bytes_sent: c.bytes_sent,
            connected: c.connected,
            data_format: c.data_format as u8,
            host: c.host,
            line_mode: c.line_mode,
            local_address: c.local_address,
            origin: c.origin,
            ready_to_send: c.ready_to_send,
            remote_host: c.remote_host,
            remote_port: c.remote_port,
            request_headers: c.request_headers,
            request_uri: c.request_uri,
            subprotocols: c.subprotocols,
            timeout: c.timeout,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct ConnectionList {
    pub connections: Vec<ConnectionView>,
}

/// A plugin: its name, the digest of its component, and its routes.
#[derive(Debug, Serialize)]
pub(super) struct PluginView {
    pub name: String,
    pub version: String,
    pub routes: Vec<String>,
}

impl From<TenantStatus> for PluginView {
    fn from(t: TenantStatus) -> Self {
        Self {
            name: t.name,
            version: t.version.digest(),
            routes: t.routes,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct PluginList {
    pub plugins: Vec<PluginView>,
}

/// A component version: its digest and when this server loaded it.
#[derive(Debug, Serialize)]
pub(super) struct VersionView {
    /// `sha256:` and the digest of the component's bytes.
    pub version: String,
    /// RFC 3339, UTC.
    pub loaded_at: String,
}

impl From<ComponentVersion> for VersionView {
    fn from(v: ComponentVersion) -> Self {
        Self {
            version: v.digest(),
            loaded_at: OffsetDateTime::from(v.loaded_at)
                .format(&Rfc3339)
                .unwrap_or_default(),
        }
    }
}

/// A tenant: its plugin deployment, versions and counters.
#[derive(Debug, Serialize)]
pub(super) struct TenantView {
    pub name: String,
    pub routes: Vec<String>,
    pub instances: usize,
    pub connections: usize,
    pub current: VersionView,
    /// What a rollback returns to.
    pub previous: Option<VersionView>,
    pub swaps: u64,
    pub failed_swaps: u64,
    pub rollbacks: u64,
    pub accounting: AccountingView,
}

/// What the tenant costs: for billing, and to spot a heavy tenant.
#[derive(Debug, Serialize)]
pub(super) struct AccountingView {
    /// Time spent in the plugin's calls since the server started.
    pub guest_seconds: f64,
    pub instances_live: u64,
    pub instances_hibernated: u64,
    /// Linear memory of the live instances.
    pub memory_bytes: u64,
    pub instantiations: u64,
    pub instantiation_seconds: f64,
    /// Instances that could not be made, and runtime failures.
    pub instance_failures: u64,
    /// Turns run at a lower CPU priority because they were heavy.
    pub background_turns: u64,
    /// Turns run on a server thread (`inline_turns`).
    pub inline_turns: u64,
    /// Open requests answered by the host without a plugin call.
    pub opens_accepted_by_host: u64,
}

impl From<TenantStatus> for TenantView {
    fn from(t: TenantStatus) -> Self {
        Self {
            name: t.name,
            routes: t.routes,
            instances: t.instances,
            connections: t.connections,
            current: t.version.into(),
            previous: t.previous.map(VersionView::from),
            swaps: t.counters.swaps,
            failed_swaps: t.counters.failed_swaps,
            rollbacks: t.counters.rollbacks,
            accounting: AccountingView {
                guest_seconds: t.plugin.call_latency.sum.as_secs_f64(),
                instances_live: t.plugin.instances_live,
                instances_hibernated: t.plugin.instances_hibernated,
                memory_bytes: t.plugin.memory_bytes,
                instantiations: t.plugin.instantiations,
                instantiation_seconds: t.plugin.instantiation_time.as_secs_f64(),
                instance_failures: t.plugin.instance_failures,
                background_turns: t.plugin.background_turns,
                inline_turns: t.plugin.inline_turns,
                opens_accepted_by_host: t.plugin.opens_accepted_by_host,
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct TenantList {
    pub tenants: Vec<TenantView>,
}

/// The answer to a swap or rollback.
#[derive(Debug, Serialize)]
pub(super) struct SwapView {
    pub tenant: String,
    pub current: VersionView,
    /// False when the request named the running version: nothing changed.
    pub changed: bool,
    /// Whether the plugin's state moved through `lifecycle`.
    pub state_carried: bool,
}

impl SwapView {
    pub fn new(tenant: String, outcome: SwapOutcome) -> Self {
        Self {
            tenant,
            current: outcome.version.into(),
            changed: outcome.changed,
            state_carried: outcome.state_carried,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct Disconnecting {
    pub connection_id: ConnectionId,
    pub closing: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct ListeningView {
    pub listening: bool,
    /// The address being listened on.
    pub address: Option<SocketAddr>,
}

#[derive(Debug, Serialize)]
pub(super) struct ConfigView {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub(super) struct ShuttingDown {
    pub shutting_down: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct ErrorView<'a> {
    pub error: &'a str,
    /// The WSServer error code, when the server refused the operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(super) struct PublishView {
    pub tenant: String,
    pub topic: String,
    /// Subscribers on this node whose queue took the message (other nodes
    /// deliver to theirs on their own).
    pub delivered_here: usize,
}

/// `GET /tenants/{name}/topics`.
#[derive(Debug, Serialize)]
pub(super) struct TopicList {
    pub tenant: String,
    pub topics: Vec<TopicView>,
}

#[derive(Debug, Serialize)]
pub(super) struct TopicView {
    pub topic: String,
    /// On every node (with a cluster; on this one otherwise).
    pub subscribers: u64,
    /// On this node.
    pub local: u64,
}

impl From<TopicCount> for TopicView {
    fn from(t: TopicCount) -> Self {
        Self {
            topic: t.topic,
            subscribers: t.subscribers,
            local: t.local,
        }
    }
}

/// `GET /cluster`: `{"enabled": false}` without a backplane.
#[derive(Debug, Serialize)]
pub(super) struct ClusterView {
    pub enabled: bool,
    #[serde(flatten)]
    pub status: Option<ClusterStatusView>,
}

#[derive(Debug, Serialize)]
pub(super) struct ClusterStatusView {
    pub node: String,
    pub redis: String,
    pub connected: bool,
    pub subscribed_channels: usize,
    pub published: u64,
    pub publish_failures: u64,
    pub received: u64,
    pub outages: u64,
    /// RFC 3339, UTC; null while connected.
    pub down_since: Option<String>,
    pub last_error: Option<String>,
}

impl From<ClusterStatus> for ClusterStatusView {
    fn from(s: ClusterStatus) -> Self {
        Self {
            node: s.node,
            redis: s.redis,
            connected: s.connected,
            subscribed_channels: s.subscribed_channels,
            published: s.published,
            publish_failures: s.publish_failures,
            received: s.received,
            outages: s.outages,
            down_since: s
                .down_since
                .map(|t| OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()),
            last_error: s.last_error,
        }
    }
}
