//! The types of the seed's events and of the handler's answers: what a
//! [`Handler`](super::Handler) receives and returns. They depend on nothing
//! else of the server, so every part of it can use them.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::net::tls::{ClientCertificate, NegotiatedSession};
use crate::protocol::handshake::{UpgradeRequest, format_header_lines};

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
/// The request's fields are read from its head (kept once, shared with
/// the connection) when asked for.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub connection_id: ConnectionId,
    pub remote: SocketAddr,
    pub local: SocketAddr,
    /// The TLS session and accepted client certificate (UseSSL only).
    pub tls: Option<Arc<TlsInfo>>,
    request: UpgradeRequest,
}

impl OpenRequest {
    pub(crate) fn new(
        connection_id: ConnectionId,
        remote: SocketAddr,
        local: SocketAddr,
        tls: Option<Arc<TlsInfo>>,
        request: UpgradeRequest,
    ) -> Self {
        Self {
            connection_id,
            remote,
            local,
            tls,
            request,
        }
    }

    /// The upgrade request itself: its head as received and every field.
    pub fn upgrade_request(&self) -> &UpgradeRequest {
        &self.request
    }

    /// The request target as sent, e.g. `/chat?room=1`.
    pub fn request_uri(&self) -> &str {
        self.request.uri()
    }

    /// The path of the request URI, without the query.
    pub fn path(&self) -> &str {
        self.request.path()
    }

    /// The Host header.
    pub fn host(&self) -> &str {
        self.request.host()
    }

    /// The Origin header; empty when the client sent none.
    pub fn origin(&self) -> &str {
        self.request.origin()
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn subprotocols(&self) -> impl Iterator<Item = &str> + Clone {
        self.request.subprotocols()
    }

    /// The client's Sec-WebSocket-Extensions values, joined with ", ".
    pub fn extensions(&self) -> String {
        self.request.extensions()
    }

    /// Every request header in order, names as sent.
    pub fn request_headers(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.request.headers()
    }

    /// The first value of a header, matched without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name)
    }

    /// The headers as the seed's RequestHeaders text (`Name: value` lines).
    pub fn request_headers_text(&self) -> String {
        format_header_lines(self.request.headers())
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

/// A connection's TLS session: the seed's SSLNegotiated*[ConnectionId]
/// values and the client certificate it was accepted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub session: NegotiatedSession,
    /// Present when SSLAuthenticateClients is on and the client sent a
    /// certificate that was accepted.
    pub client_certificate: Option<ClientCertificate>,
}

/// The SSLClientAuthentication event: a client's certificate after the TLS
/// handshake, when SSLAuthenticateClients is on.
#[derive(Debug, Clone, Copy)]
pub struct ClientAuthentication<'a> {
    /// The certificate with its chain and fields; None when the client
    /// sent none (possible only if the handler
    /// [may accept unverified clients](super::Handler::may_accept_unverified_clients)).
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
