//! Server settings: the seed's properties and config settings, plus the
//! limits every production server needs, addressed by the seed's key names
//! (`Config("Key=Value")`, `--set Key=Value`, TOML). The TLS keys are
//! [`TlsSettings`]'s; [`Settings::set`]/[`get`](Settings::get) pass them on.

use std::fmt;

use crate::net::client_filter::ClientFilter;
pub use crate::net::listener::IpMode;
use crate::net::listener::{AcceptedOptions, ListenOptions};
use crate::net::tls::session::NEGOTIATED_KEYS;
use crate::net::tls::{TlsConfigError, TlsSettings};
use crate::protocol::close::{MAX_REASON_LEN, is_valid_wire_code};
use crate::protocol::deflate::{DeflateSettings, SettingError};

/// Every setting of a server. Connections read them when they open, so a
/// change applies to connections opened afterwards.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Interface to listen on; empty means every interface.
    pub local_host: String,
    /// 0 lets the system pick a port.
    pub local_port: u16,
    pub connection_backlog: u32,
    /// Seconds; the initial Timeout of each connection.
    pub default_timeout: u32,
    pub buffer_message: bool,
    pub disconnect_status_code: u16,
    /// `None` uses the standard description of the code.
    pub disconnect_status_description: Option<String>,
    pub max_frame_size: usize,
    /// The MaxLineLength new connections start with.
    pub max_line_length: usize,
    pub wait_for_close_response: bool,
    pub allowed_clients: ClientFilter,
    pub blocked_clients: ClientFilter,
    pub bind_exclusively: bool,
    /// Bytes; 0 keeps the system default.
    pub in_buffer_size: u32,
    pub out_buffer_size: u32,
    /// Milliseconds; 0 keeps the system default (keep-alive off).
    pub keep_alive_time: u32,
    pub keep_alive_interval: u32,
    pub max_connections: u32,
    pub tcp_no_delay: bool,
    pub use_ipv6: IpMode,
    /// 0 none, 1 info, 2 verbose, 3 debug.
    pub log_level: u8,
    /// Largest message accepted, in bytes; 0 means unlimited.
    pub max_message_size: u64,
    /// Bytes a connection may have queued for sending before sends fail
    /// with would-block.
    pub max_send_queue: usize,
    /// Seconds without any data from the client before it is closed; 0 off.
    pub idle_timeout: u32,
    /// Seconds a client has to complete the opening handshake.
    pub handshake_timeout: u32,
    /// Seconds the kernel holds a new connection until its first bytes
    /// arrive (TCP_DEFER_ACCEPT); 0 off.
    pub defer_accept: u32,
    /// Seconds to wait for the client's close frame after sending ours.
    pub close_timeout: u32,
    /// Milliseconds a plain connection stays at rest before it leaves its
    /// task for its thread's parking lot (0: never); read at
    /// StartListening.
    pub park_delay: u32,
    /// New connections go to as few of the io_threads as the load needs
    /// (see `server/activation.rs`); false places them on all in turn.
    /// Read at StartListening.
    pub adaptive_cores: bool,
    pub max_request_header_size: usize,
    /// permessage-deflate: EnablePermessageDeflate and the Deflate* keys.
    pub deflate: DeflateSettings,
    /// UseSSL, SSLCert and the SSL* settings; read at StartListening.
    pub tls: TlsSettings,
    /// Threads serving connections, read at the first StartListening: 1
    /// serves them on the runtime that starts listening; N adds N - 1
    /// threads, each a current-thread runtime serving the connections
    /// placed on it (thread-per-core). Not a config key.
    pub io_threads: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            local_host: String::new(),
            local_port: 0,
            // The seed's 5 drops connections under any burst on Linux.
            connection_backlog: 1024,
            default_timeout: 0,
            buffer_message: false,
            disconnect_status_code: 1000,
            disconnect_status_description: None,
            max_frame_size: 131_072,
            max_line_length: 2048,
            wait_for_close_response: true,
            allowed_clients: ClientFilter::any(),
            blocked_clients: ClientFilter::default(),
            bind_exclusively: true,
            in_buffer_size: 0,
            out_buffer_size: 0,
            keep_alive_time: 0,
            keep_alive_interval: 0,
            max_connections: 1000,
            // Writes are already batched per turn; Nagle would only add
            // delayed-ACK stalls to request/response traffic.
            tcp_no_delay: true,
            use_ipv6: IpMode::V4Only,
            log_level: 1,
            max_message_size: 16 * 1024 * 1024,
            max_send_queue: 1024 * 1024,
            idle_timeout: 0,
            handshake_timeout: 10,
            defer_accept: 1,
            close_timeout: 5,
            park_delay: 1000,
            adaptive_cores: true,
            max_request_header_size: 8192,
            deflate: DeflateSettings::default(),
            tls: TlsSettings::default(),
            io_threads: 1,
        }
    }
}

/// A config string or value that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown config setting \"{0}\"")]
    UnknownKey(String),
    #[error("invalid value \"{value}\" for {key}: expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
    },
    #[error("{key} is read-only")]
    ReadOnly { key: String },
    #[error("{key} is not applicable to wsserver: {reason}")]
    NotApplicable { key: String, reason: &'static str },
    #[error("{key} needs a connection id, as in {key}[ConnectionId]")]
    NeedsConnectionId { key: String },
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

/// How a setting is addressed and documented.
pub struct KeyInfo {
    pub name: &'static str,
    pub summary: &'static str,
}

macro_rules! keys {
    ($($name:literal => $summary:literal,)*) => {
        /// The settings `Settings::set`/`get` understand, for help and docs.
        pub const KEYS: &[KeyInfo] = &[$(KeyInfo { name: $name, summary: $summary },)*];
    };
}

keys! {
    "LocalHost" => "interface to listen on (empty: all)",
    "LocalPort" => "TCP port; 0 picks one",
    "ConnectionBacklog" => "pending-connection queue of the listening socket",
    "DefaultTimeout" => "initial Timeout (seconds) of each connection",
    "BufferMessage" => "deliver each message whole instead of as data arrives",
    "DisconnectStatusCode" => "close code sent by Disconnect",
    "DisconnectStatusDescription" => "close reason sent by Disconnect",
    "MaxFrameSize" => "outgoing messages larger than this are fragmented",
    "MaxLineLength" => "line mode: longest line before DataIn fires without EOL",
    "WaitForCloseResponse" => "wait for the client's close frame after sending ours",
    "AllowedClients" => "address patterns allowed to connect",
    "BlockedClients" => "address patterns refused",
    "BindExclusively" => "refuse to share the port (no SO_REUSEPORT)",
    "InBufferSize" => "socket receive buffer (SO_RCVBUF) in bytes",
    "OutBufferSize" => "socket send buffer (SO_SNDBUF) in bytes",
    "KeepAliveTime" => "idle ms before TCP keep-alive probes",
    "KeepAliveInterval" => "ms between unanswered TCP keep-alive probes",
    "MaxConnections" => "simultaneous connections (1..100000)",
    "TcpNoDelay" => "disable Nagle's algorithm",
    "UseIPv6" => "0 IPv4 only, 1 IPv6 only, 2 both",
    "LogLevel" => "Log event verbosity: 0 none, 1 info, 2 verbose, 3 debug",
    "MaxMessageSize" => "largest message accepted in bytes (0: unlimited); larger gets close 1009",
    "MaxSendQueue" => "bytes queued per connection before sends fail with 10035",
    "IdleTimeout" => "seconds without client data before closing with 1001 (0: off)",
    "HandshakeTimeout" => "seconds a client has to complete the opening handshake",
    "DeferAccept" => "seconds the kernel holds a new connection until its first bytes arrive (0: off)",
    "CloseTimeout" => "seconds to wait for the client's close frame",
    "ParkDelay" => "ms a plain connection stays idle before it waits without a task of its own (0: never)",
    "AdaptiveCores" => "new connections go to as few serving threads as the load needs (false: to all in turn)",
    "MaxRequestHeaderSize" => "largest upgrade request head in bytes (larger gets 431)",
    "EnablePermessageDeflate" => "accept permessage-deflate (RFC 7692) when a client offers it",
    "DeflateThreshold" => "outgoing messages shorter than this many bytes go uncompressed (1024)",
    "DeflateCompressionLevel" => "zlib level for outgoing messages, 0-9 (1: fastest)",
    "DeflateMemLevel" => "zlib memLevel 1-9: compressor memory against ratio (8)",
    "DeflateServerMaxWindowBits" => "largest window the server compresses with, 8-15 (15)",
    "DeflateClientMaxWindowBits" => "window asked of clients that let the server choose, 8-15 (15)",
    "DeflateServerNoContextTakeover" => "reset the server's compressor after every message",
    "DeflateClientNoContextTakeover" => "ask clients to reset their compressor after every message",
    "DeflateMemoryMode" => "Shared: no zlib state kept between messages; Dedicated: per connection, context takeover",
    "BuildInfo" => "read-only: name and version of this build",
    "LicenseInfo" => "read-only: the license wsserver is distributed under",
}

/// Settings of the seed that do not apply, with the reason.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "CloseStreamAfterTransfer",
        "SendFile takes a file name and always closes the file after the transfer",
    ),
    ("CodePage", "all text is UTF-8, as RFC 6455 requires"),
    (
        "MaskSensitiveData",
        "wsserver never writes passwords or keys to its logs",
    ),
    (
        "UseInternalSecurityAPI",
        "TLS is always rustls; there is no system library to choose",
    ),
    ("SSLProvider", "TLS is always rustls"),
    ("OpenSSLCADir", "OpenSSL-only setting; TLS is rustls"),
    ("OpenSSLCAFile", "OpenSSL-only setting; TLS is rustls"),
    ("OpenSSLCipherList", "OpenSSL-only setting; TLS is rustls"),
    ("OpenSSLPrngSeedData", "OpenSSL-only setting; TLS is rustls"),
];

/// Settings of one connection, addressed as `Name[ConnectionId]`, besides
/// the read-only SSLNegotiated* keys.
const CONNECTION_KEYS: &[&str] = &["MaxLineLength", "MessageLength"];

/// Returns the canonical spelling of a key, matched without regard to case.
pub fn canonical_key(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| k.name)
        .find(|name| name.eq_ignore_ascii_case(key))
}

/// Returns the canonical spelling of a per-connection key.
pub fn canonical_connection_key(key: &str) -> Option<&'static str> {
    CONNECTION_KEYS
        .iter()
        .chain(NEGOTIATED_KEYS)
        .copied()
        .find(|name| name.eq_ignore_ascii_case(key))
}

/// Every key `set` takes, with its summary: the server's, then the TLS ones.
pub fn all_keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    KEYS.iter()
        .map(|k| (k.name, k.summary))
        .chain(crate::net::tls::settings::KEYS.iter().copied())
}

impl Settings {
    /// Applies `key=value` (the key in any case).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let Some(name) = canonical_key(key) else {
            if canonical_connection_key(key).is_none() && self.tls.set(key, value)? {
                return Ok(());
            }
            return Err(unsupported(key));
        };
        if DeflateSettings::KEYS.contains(&name) {
            return Ok(self.deflate.set(name, value)?);
        }
        let v = Value {
            key: name,
            raw: value.trim(),
        };
        match name {
            "LocalHost" => self.local_host = v.raw.to_owned(),
            "LocalPort" => {
                self.local_port = v.int(0, u16::MAX.into(), "a port from 0 to 65535")? as u16
            }
            "ConnectionBacklog" => self.connection_backlog = v.int(1, 65_535, "1 to 65535")? as u32,
            "DefaultTimeout" => self.default_timeout = v.int(0, u32::MAX.into(), "seconds")? as u32,
            "BufferMessage" => self.buffer_message = v.bool()?,
            "DisconnectStatusCode" => {
                let code = v.int(0, u16::MAX.into(), "a close code")? as u16;
                if !is_valid_wire_code(code) {
                    return Err(v.invalid(
                        "a close code that may be sent: 1000-1003, 1007-1014 or 3000-4999",
                    ));
                }
                self.disconnect_status_code = code;
            }
            "DisconnectStatusDescription" => {
                if v.raw.len() > MAX_REASON_LEN {
                    return Err(v.invalid("at most 123 bytes"));
                }
                self.disconnect_status_description = (!v.raw.is_empty()).then(|| v.raw.to_owned());
            }
            "MaxFrameSize" => {
                self.max_frame_size = v.int(1, 1 << 31, "1 to 2147483648 bytes")? as usize
            }
            "MaxLineLength" => {
                self.max_line_length = v.int(1, 1 << 31, "1 to 2147483648 bytes")? as usize
            }
            "WaitForCloseResponse" => self.wait_for_close_response = v.bool()?,
            "AllowedClients" => self.allowed_clients = v.filter()?,
            "BlockedClients" => self.blocked_clients = v.filter()?,
            "BindExclusively" => self.bind_exclusively = v.bool()?,
            "AdaptiveCores" => self.adaptive_cores = v.bool()?,
            "InBufferSize" => {
                self.in_buffer_size = v.int(0, 1 << 30, "bytes, 0 for the system default")? as u32
            }
            "OutBufferSize" => {
                self.out_buffer_size = v.int(0, 1 << 30, "bytes, 0 for the system default")? as u32
            }
            "KeepAliveTime" => {
                self.keep_alive_time = v.int(0, u32::MAX.into(), "milliseconds")? as u32
            }
            "KeepAliveInterval" => {
                self.keep_alive_interval = v.int(0, u32::MAX.into(), "milliseconds")? as u32
            }
            "MaxConnections" => self.max_connections = v.int(1, 100_000, "1 to 100000")? as u32,
            "TcpNoDelay" => self.tcp_no_delay = v.bool()?,
            "UseIPv6" => {
                self.use_ipv6 = match v.int(0, 2, "0, 1 or 2")? {
                    0 => IpMode::V4Only,
                    1 => IpMode::V6Only,
                    _ => IpMode::DualStack,
                }
            }
            "LogLevel" => self.log_level = v.int(0, 3, "0 to 3")? as u8,
            "MaxMessageSize" => {
                self.max_message_size = v.int(0, u64::MAX >> 1, "bytes, 0 for no limit")?
            }
            "MaxSendQueue" => self.max_send_queue = v.int(1, 1 << 40, "bytes")? as usize,
            "IdleTimeout" => {
                self.idle_timeout = v.int(0, u32::MAX.into(), "seconds, 0 for none")? as u32
            }
            "HandshakeTimeout" => {
                self.handshake_timeout = v.int(1, 3600, "1 to 3600 seconds")? as u32
            }
            "DeferAccept" => self.defer_accept = v.int(0, 3600, "0 to 3600 seconds")? as u32,
            "CloseTimeout" => self.close_timeout = v.int(0, 3600, "0 to 3600 seconds")? as u32,
            "ParkDelay" => {
                self.park_delay = v.int(0, 3_600_000, "0 to 3600000 milliseconds")? as u32
            }
            "MaxRequestHeaderSize" => {
                self.max_request_header_size = v.int(256, 1 << 20, "256 to 1048576 bytes")? as usize
            }
            _ => {
                return Err(ConfigError::ReadOnly {
                    key: name.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Reads a setting as text, in the form `set` accepts.
    pub fn get(&self, key: &str) -> Result<String, ConfigError> {
        let Some(name) = canonical_key(key) else {
            return self.tls.get(key).ok_or_else(|| unsupported(key));
        };
        if DeflateSettings::KEYS.contains(&name) {
            return Ok(self.deflate.get(name)?);
        }
        Ok(match name {
            "LocalHost" => self.local_host.clone(),
            "LocalPort" => self.local_port.to_string(),
            "ConnectionBacklog" => self.connection_backlog.to_string(),
            "DefaultTimeout" => self.default_timeout.to_string(),
            "BufferMessage" => bool_text(self.buffer_message),
            "DisconnectStatusCode" => self.disconnect_status_code.to_string(),
            "DisconnectStatusDescription" => self.disconnect_description().to_owned(),
            "MaxFrameSize" => self.max_frame_size.to_string(),
            "MaxLineLength" => self.max_line_length.to_string(),
            "WaitForCloseResponse" => bool_text(self.wait_for_close_response),
            "AllowedClients" => self.allowed_clients.as_str().to_owned(),
            "BlockedClients" => self.blocked_clients.as_str().to_owned(),
            "BindExclusively" => bool_text(self.bind_exclusively),
            "AdaptiveCores" => bool_text(self.adaptive_cores),
            "InBufferSize" => self.in_buffer_size.to_string(),
            "OutBufferSize" => self.out_buffer_size.to_string(),
            "KeepAliveTime" => self.keep_alive_time.to_string(),
            "KeepAliveInterval" => self.keep_alive_interval.to_string(),
            "MaxConnections" => self.max_connections.to_string(),
            "TcpNoDelay" => bool_text(self.tcp_no_delay),
            "UseIPv6" => (self.use_ipv6 as u8).to_string(),
            "LogLevel" => self.log_level.to_string(),
            "MaxMessageSize" => self.max_message_size.to_string(),
            "MaxSendQueue" => self.max_send_queue.to_string(),
            "IdleTimeout" => self.idle_timeout.to_string(),
            "HandshakeTimeout" => self.handshake_timeout.to_string(),
            "DeferAccept" => self.defer_accept.to_string(),
            "CloseTimeout" => self.close_timeout.to_string(),
            "ParkDelay" => self.park_delay.to_string(),
            "MaxRequestHeaderSize" => self.max_request_header_size.to_string(),
            "BuildInfo" => format!("wsserver {}", env!("CARGO_PKG_VERSION")),
            "LicenseInfo" => format!(
                "{} (open source; no license key)",
                env!("CARGO_PKG_LICENSE")
            ),
            _ => return Err(unsupported(key)),
        })
    }

    /// The listening socket's options: ConnectionBacklog, BindExclusively,
    /// UseIPv6, InBufferSize, OutBufferSize, TcpNoDelay and DeferAccept.
    pub(crate) fn listen_options(&self) -> ListenOptions {
        ListenOptions {
            backlog: self.connection_backlog,
            bind_exclusively: self.bind_exclusively,
            ip_mode: self.use_ipv6,
            recv_buffer: self.in_buffer_size,
            send_buffer: self.out_buffer_size,
            no_delay: self.tcp_no_delay,
            defer_accept: self.defer_accept,
        }
    }

    /// An accepted socket's options: TcpNoDelay, KeepAliveTime and
    /// KeepAliveInterval.
    pub(crate) fn accepted_options(&self) -> AcceptedOptions {
        AcceptedOptions {
            no_delay: self.tcp_no_delay,
            keep_alive_time: self.keep_alive_time,
            keep_alive_interval: self.keep_alive_interval,
        }
    }

    /// The close reason Disconnect sends.
    pub fn disconnect_description(&self) -> &str {
        self.disconnect_status_description
            .as_deref()
            .unwrap_or_else(|| {
                crate::protocol::close::default_description(self.disconnect_status_code)
            })
    }
}

/// The error for a key this server does not take, saying why.
fn unsupported(key: &str) -> ConfigError {
    let find = |list: &[(&'static str, &'static str)]| {
        list.iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(name, reason)| ((*name).to_owned(), *reason))
    };
    if let Some(key) = canonical_connection_key(key) {
        ConfigError::NeedsConnectionId {
            key: key.to_owned(),
        }
    } else if let Some((key, reason)) = find(NOT_APPLICABLE) {
        ConfigError::NotApplicable { key, reason }
    } else {
        ConfigError::UnknownKey(key.to_owned())
    }
}

impl From<SettingError> for ConfigError {
    fn from(error: SettingError) -> Self {
        match error {
            SettingError::UnknownKey { key } => Self::UnknownKey(key),
            SettingError::InvalidValue {
                key,
                value,
                expected,
            } => Self::InvalidValue {
                key: key.to_owned(),
                value,
                expected: expected.to_owned(),
            },
        }
    }
}

fn bool_text(b: bool) -> String {
    if b { "True" } else { "False" }.to_owned()
}

/// A value being parsed for a key, so errors can name both.
struct Value<'a> {
    key: &'static str,
    raw: &'a str,
}

impl Value<'_> {
    fn invalid(&self, expected: impl fmt::Display) -> ConfigError {
        ConfigError::InvalidValue {
            key: self.key.to_owned(),
            value: self.raw.to_owned(),
            expected: expected.to_string(),
        }
    }

    /// The seed's booleans: True/False, 1/0, Yes/No in any case.
    fn bool(&self) -> Result<bool, ConfigError> {
        match self.raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(self.invalid("True, False, 1, 0, Yes or No")),
        }
    }

    fn int(&self, min: u64, max: u64, expected: &str) -> Result<u64, ConfigError> {
        match self.raw.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.invalid(expected)),
        }
    }

    fn filter(&self) -> Result<ClientFilter, ConfigError> {
        self.raw.parse().map_err(|e| self.invalid(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_in_any_case() {
        let mut s = Settings::default();
        s.set("maxconnections", "5000").unwrap();
        assert_eq!(s.get("MaxConnections").unwrap(), "5000");
        s.set("BUFFERMESSAGE", "yes").unwrap();
        assert_eq!(s.get("BufferMessage").unwrap(), "True");
        s.set("AllowedClients", "127.0.0.*, ::1").unwrap();
        assert_eq!(s.get("AllowedClients").unwrap(), "127.0.0.*, ::1");
    }

    #[test]
    fn every_listed_key_can_be_read() {
        let s = Settings::default();
        for (key, _) in all_keys() {
            assert!(s.get(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn tls_keys_are_server_settings() {
        let mut s = Settings::default();
        s.set("usessl", "true").unwrap();
        s.set("SSLCertStoreType", "cstPFXFile").unwrap();
        s.set("SSLEnabledProtocols", "12288").unwrap();
        s.set("SSLCertStoreType[Chat.Example]", "6").unwrap();
        s.set("SSLCertStore[Chat.Example]", "/etc/chat.pem")
            .unwrap();
        assert!(s.tls.use_ssl);
        assert_eq!(s.get("UseSSL").unwrap(), "True");
        assert_eq!(s.get("sslcertstoretype").unwrap(), "2");
        assert_eq!(s.get("SSLEnabledProtocols").unwrap(), "12288");
        assert_eq!(
            s.get("SSLCertStore[chat.example]").unwrap(),
            "/etc/chat.pem"
        );
        assert!(matches!(
            s.set("SSLEnabledProtocols", "48").unwrap_err(),
            ConfigError::Tls(TlsConfigError::InvalidValue { .. })
        ));
        assert!(matches!(
            s.set("SSLCheckCRL", "1").unwrap_err(),
            ConfigError::Tls(TlsConfigError::NotApplicable { .. })
        ));
        // Per-connection: only with an id, through WsServer::config.
        for key in ["SSLNegotiatedCipher", "sslnegotiatedversion"] {
            assert!(matches!(
                s.set(key, "x").unwrap_err(),
                ConfigError::NeedsConnectionId { .. }
            ));
            assert!(matches!(
                s.get(key).unwrap_err(),
                ConfigError::NeedsConnectionId { .. }
            ));
        }
        assert_eq!(
            s.set("SSLNoSuchThing", "1").unwrap_err(),
            ConfigError::UnknownKey("SSLNoSuchThing".into())
        );
    }

    #[test]
    fn errors_name_the_key_and_the_value() {
        let mut s = Settings::default();
        let e = s.set("MaxConnections", "100001").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid value \"100001\" for MaxConnections: expected 1 to 100000"
        );
        let e = s.set("TcpNoDelay", "maybe").unwrap_err().to_string();
        assert!(e.contains("\"maybe\"") && e.contains("TcpNoDelay"), "{e}");
        let e = s
            .set("DisconnectStatusCode", "1005")
            .unwrap_err()
            .to_string();
        assert!(e.contains("1005"), "{e}");
        assert_eq!(
            s.set("Nonsense", "1").unwrap_err(),
            ConfigError::UnknownKey("Nonsense".into())
        );
        assert!(matches!(
            s.set("codepage", "65001").unwrap_err(),
            ConfigError::NotApplicable { .. }
        ));
        assert!(matches!(
            s.set("BuildInfo", "x").unwrap_err(),
            ConfigError::ReadOnly { .. }
        ));
        assert_eq!(
            s.set("messagelength", "5").unwrap_err(),
            ConfigError::NeedsConnectionId {
                key: "MessageLength".into()
            }
        );
    }

    #[test]
    fn deflate_keys_are_listed_and_delegated() {
        for key in DeflateSettings::KEYS {
            assert_eq!(canonical_key(key), Some(key), "{key} missing from KEYS");
        }
        let mut s = Settings::default();
        assert_eq!(s.get("EnablePermessageDeflate").unwrap(), "True");
        s.set("enablepermessagedeflate", "False").unwrap();
        s.set("DeflateMemoryMode", "dedicated").unwrap();
        s.set("DeflateThreshold", " 256 ").unwrap();
        assert!(!s.deflate.enabled);
        assert_eq!(s.deflate.threshold, 256);
        assert_eq!(s.get("DEFLATEMEMORYMODE").unwrap(), "Dedicated");
        assert_eq!(
            s.set("DeflateServerMaxWindowBits", "16").unwrap_err(),
            ConfigError::InvalidValue {
                key: "DeflateServerMaxWindowBits".into(),
                value: "16".into(),
                expected: "an integer from 8 to 15".into(),
            }
        );
    }

    #[test]
    fn disconnect_description_defaults_to_the_standard_text() {
        let mut s = Settings::default();
        s.set("DisconnectStatusCode", "1001").unwrap();
        assert_eq!(s.get("DisconnectStatusDescription").unwrap(), "Going away");
        s.set("DisconnectStatusDescription", "bye").unwrap();
        assert_eq!(s.disconnect_description(), "bye");
    }
}
