//! The JSON the admin API reads and writes.

use std::net::SocketAddr;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::plugin::{ComponentVersion, SwapOutcome, TenantStatus};
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
