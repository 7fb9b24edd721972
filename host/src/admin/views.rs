//! The JSON the admin API reads and writes.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::plugin::PluginStatus;
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

impl From<PluginStatus> for PluginView {
    fn from(p: PluginStatus) -> Self {
        Self {
            name: p.name,
            version: p.version,
            routes: p.routes,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct PluginList {
    pub plugins: Vec<PluginView>,
}

/// `DELETE /connections/{id}`: both optional; the defaults are the
/// DisconnectStatusCode and DisconnectStatusDescription settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DisconnectRequest {
    pub code: Option<u16>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Disconnecting {
    pub connection_id: ConnectionId,
    pub closing: bool,
}

/// `POST /listening`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListeningRequest {
    pub listening: bool,
}

#[derive(Debug, Serialize)]
pub(super) struct ListeningView {
    pub listening: bool,
    /// The address being listened on.
    pub address: Option<SocketAddr>,
}

/// `PUT /config/{Key}`: a string, or a number or boolean written as the
/// TOML file would have it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigRequest {
    pub value: ConfigValue,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ConfigValue {
    Text(String),
    Number(i64),
    Flag(bool),
}

impl ConfigValue {
    /// The value as `Config("Key=Value")` takes it.
    pub fn to_setting(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Number(n) => n.to_string(),
            Self::Flag(true) => "True".to_owned(),
            Self::Flag(false) => "False".to_owned(),
        }
    }
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
