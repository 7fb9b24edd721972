//! The `Handler` trait: one method per seed event, and the event types.
//!
//! The server calls a handler from the task of the connection concerned, so
//! the events of one connection arrive in order. Methods other than
//! `open_request` are synchronous and must not block: they run on the
//! server's threads. Anything slow belongs in a task of the handler's own.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use super::connection::Connection;
use super::static_files::StaticMount;
use super::tls::TlsInfo;
use crate::net::tls::ClientCertificate;
use crate::protocol::handshake::{format_header_lines, request_path};

/// Identifies a connection; never reused while the server runs.
pub type ConnectionId = u64;

/// A boxed future, as returned by [`Handler::open_request`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The ConnectionRequest event: a client connected at the TCP level.
#[derive(Debug, Clone)]
pub struct ConnectionRequest {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// Starts as the verdict of AllowedClients/BlockedClients; the handler
    /// may change it.
    pub accept: bool,
}

/// The WebSocketOpenRequest event: a client asked to open a WebSocket.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub connection_id: ConnectionId,
    pub request_uri: String,
    pub host: String,
    /// Empty when the client sent no Origin.
    pub origin: String,
    /// The subprotocols the client offered, in its order of preference.
    pub subprotocols: Vec<String>,
    /// The client's Sec-WebSocket-Extensions value.
    pub extensions: String,
    pub request_headers: Vec<(String, String)>,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The TLS session and accepted client certificate (UseSSL only).
    pub tls: Option<Arc<TlsInfo>>,
}

impl OpenRequest {
    /// The path of the request URI, without the query.
    pub fn path(&self) -> &str {
        request_path(&self.request_uri)
    }

    /// The first value of a header, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The headers as the seed's RequestHeaders text (`Name: value` lines).
    pub fn request_headers_text(&self) -> String {
        format_header_lines(&self.request_headers)
    }
}

/// The handler's answer to an open request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenResponse {
    /// 101 accepts; any other HTTP status refuses with that status.
    pub status_code: u16,
    /// One of the client's subprotocols, or none.
    pub subprotocol: Option<String>,
    /// Extra response headers, e.g. `WWW-Authenticate` with a 401.
    pub response_headers: Vec<(String, String)>,
    /// A MaxMessageSize for this connection alone (bytes, at least 1); the
    /// server's setting still applies when it is smaller. Lets a handler
    /// give some clients a tighter limit than the server's.
    pub max_message_size: Option<u64>,
}

impl OpenResponse {
    pub fn accept() -> Self {
        Self::status(101)
    }

    pub fn reject(status_code: u16) -> Self {
        Self::status(status_code)
    }

    fn status(status_code: u16) -> Self {
        Self {
            status_code,
            subprotocol: None,
            response_headers: Vec::new(),
            max_message_size: None,
        }
    }

    pub fn with_subprotocol(mut self, protocol: impl Into<String>) -> Self {
        self.subprotocol = Some(protocol.into());
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.response_headers.push((name.into(), value.into()));
        self
    }

    /// Limits this connection's messages to `bytes` (see
    /// [`max_message_size`](Self::max_message_size)).
    pub fn with_max_message_size(mut self, bytes: u64) -> Self {
        self.max_message_size = Some(bytes.max(1));
        self
    }
}

/// The seed's DataFormat of a DataIn event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// A later piece of a message (or any piece in line mode).
    Continuation = 0,
    Text = 1,
    Binary = 2,
}

/// The DataIn event's data.
#[derive(Debug, Clone, Copy)]
pub struct DataIn<'a> {
    pub format: DataFormat,
    /// The bytes; pieces of text messages are always whole characters.
    pub data: &'a [u8],
    /// End of message: the last piece of its message.
    pub eom: bool,
    /// In line mode, whether the piece ended at a line break.
    pub eol: bool,
}

impl DataIn<'_> {
    /// The data as text, when it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(self.data).ok()
    }
}

/// The SSLClientAuthentication event: a client's certificate after the TLS
/// handshake, when SSLAuthenticateClients is on.
#[derive(Debug, Clone, Copy)]
pub struct ClientAuthentication<'a> {
    /// The certificate with its chain and fields; None when the client
    /// sent none (possible only if the handler
    /// [may accept unverified clients](Handler::may_accept_unverified_clients)).
    pub certificate: Option<&'a ClientCertificate>,
    /// "OK", or why verification against SSLClientCACerts failed.
    pub status: &'a str,
    /// Starts true only for a verified certificate; the connection is
    /// closed unless it ends true.
    pub accept: bool,
}

impl ClientAuthentication<'_> {
    /// CertEncoded: the DER certificate (empty when none was sent).
    pub fn cert_encoded(&self) -> &[u8] {
        self.certificate
            .and_then(|c| c.chain.first())
            .map_or(&[], |der| der.as_ref())
    }

    /// CertSubject, e.g. "O=Example, CN=alice".
    pub fn cert_subject(&self) -> &str {
        self.certificate.map_or("", |c| c.info.subject.as_str())
    }

    /// CertIssuer.
    pub fn cert_issuer(&self) -> &str {
        self.certificate.map_or("", |c| c.info.issuer.as_str())
    }
}

/// Verbosity of a Log event (the seed's LogLevel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Info = 1,
    Verbose = 2,
    Debug = 3,
}

/// The seed's LogType of a Log event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogType {
    Info,
    Error,
    Verbose,
    Debug,
}

impl LogType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "Info",
            Self::Error => "Error",
            Self::Verbose => "Verbose",
            Self::Debug => "Debug",
        }
    }
}

/// Application logic: one method per seed event, all optional.
pub trait Handler: Send + Sync + 'static {
    /// A client connected at the TCP level; set `accept` to refuse or admit.
    fn connection_request(&self, _request: &mut ConnectionRequest) {}

    /// A client asked to open a WebSocket. The default accepts without a
    /// subprotocol. The handshake waits for the future (bounded by
    /// HandshakeTimeout).
    fn open_request(
        &self,
        _conn: &Connection,
        _request: Arc<OpenRequest>,
    ) -> BoxFuture<OpenResponse> {
        Box::pin(std::future::ready(OpenResponse::accept()))
    }

    /// A plain HTTP GET that is not an upgrade, for `path` on `host`: the
    /// static site that answers it, or None for 426 Upgrade Required.
    fn static_site(&self, _path: &str, _host: &str) -> Option<StaticMount> {
        None
    }

    /// The WebSocket is open.
    fn connected(&self, _conn: &Connection) {}

    /// Data arrived: a piece of a message, a whole message (BufferMessage),
    /// or a line (line mode).
    fn data_in(&self, _conn: &Connection, _data: &DataIn<'_>) {}

    /// The events of one read of the client's data have all been delivered.
    /// A handler that passes events elsewhere (another thread) can hand
    /// them over here in one go instead of one by one.
    fn input_done(&self, _conn: &Connection) {}

    /// A ping (`response` false; the server has already queued the pong) or
    /// a pong (`response` true) arrived.
    fn ping(&self, _conn: &Connection, _payload: &[u8], _response: bool) {}

    /// Sending is possible: right after Connected, and after a send failed
    /// with would-block once the queue has drained.
    fn ready_to_send(&self, _conn: &Connection) {}

    /// The server is about to fail the connection for a protocol violation
    /// by the client. A handler that handles events asynchronously returns
    /// a future that completes once the events already delivered for this
    /// connection are handled, so the replies they send leave before the
    /// close frame. The server waits at most CloseTimeout; meanwhile it
    /// reads nothing more from the client.
    fn flush_events(&self, _conn: &Connection) -> Option<BoxFuture<()>> {
        None
    }

    /// The connection closed. `status_code` is the client's close code,
    /// ours when we closed without an answer, 1005 for a close frame
    /// without code, 1006 when the TCP connection ended without a close.
    fn disconnected(&self, _conn: &Connection, _status_code: u16, _description: &str) {}

    /// Progress of a connection's TLS handshake (the seed's SSLStatus), for
    /// information: its failure, or the negotiated session and the client
    /// certificate's verdict.
    fn ssl_status(&self, conn: &Connection, message: &str) {
        tracing::debug!(connection = conn.id(), "{message}");
    }

    /// A client's certificate was verified (the seed's
    /// SSLClientAuthentication). Setting `accept` to false closes the
    /// connection before its open request. Certificates that fail
    /// verification reach this event only if
    /// [`may_accept_unverified_clients`](Self::may_accept_unverified_clients)
    /// says so; otherwise rustls refuses them during the handshake.
    fn ssl_client_authentication(&self, _conn: &Connection, _auth: &mut ClientAuthentication<'_>) {}

    /// Whether `ssl_client_authentication` may set `accept` for a client
    /// whose certificate fails verification or who sent none. False keeps
    /// rustls's verdict in the handshake (clients get a TLS alert). True
    /// lets every client finish the handshake and leaves the verdict to
    /// the event, whose `accept` still starts false for them; then
    /// SSLClientCACerts may be empty. Read at StartListening.
    fn may_accept_unverified_clients(&self) -> bool {
        false
    }

    /// An error while delivering data, with the seed's error code.
    fn error(&self, _conn: Option<&Connection>, code: u32, description: &str) {
        tracing::warn!(code, "{description}");
    }

    /// A log line at or below the server's LogLevel.
    fn log(&self, conn: Option<&Connection>, level: LogLevel, message: &str, log_type: LogType) {
        let id = conn.map(Connection::id);
        match (log_type, level) {
            (LogType::Error, _) => tracing::warn!(connection = id, "{message}"),
            (_, LogLevel::Info) => tracing::info!(connection = id, "{message}"),
            (_, LogLevel::Verbose) => tracing::debug!(connection = id, "{message}"),
            (_, LogLevel::Debug) => tracing::trace!(connection = id, "{message}"),
        }
    }
}
