//! The contract's data types, with helpers for the common questions a
//! plugin asks of them.

pub use crate::bindings::plugin::wsserver::plugin::types::{
    ClientCertificate, CloseRequest, Command, ConnectionId, DataFormat, DataIn, DisconnectInfo,
    ErrorInfo, Event, Header, HostError, LineMode, LogLevel, MessageFormat, OpenRequest,
    OpenResponse, OutgoingMessage, PingIn, PingOut, PresenceChange, Publication, Subscription,
    TlsInfo, WsConnection,
};

/// The status code that accepts a WebSocket open request.
pub const SWITCHING_PROTOCOLS: u16 = 101;

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The value of the first header called `name` (compared
/// case-insensitively), as HTTP header names are.
fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case(name))
        .map(|header| header.value.as_str())
}

/// Splits a request target into its path and its query (without the `?`).
fn split_target(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// A data-in chunk whose bytes are borrowed from the batch of events being
/// handled: what [`Plugin::data_in_ref`](crate::Plugin::data_in_ref)
/// receives. Sending `data` (or part of it) back with
/// [`Context::send_slice`](crate::Context::send_slice) copies nothing: the
/// host sends it from its own copy of the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataInRef<'a> {
    pub connection: ConnectionId,
    pub format: DataFormat,
    pub data: &'a [u8],
    pub eom: bool,
    pub eol: bool,
}

impl DataInRef<'_> {
    /// The chunk with its bytes copied, as [`Plugin::data_in`](crate::Plugin::data_in) takes it.
    pub fn to_data_in(&self) -> DataIn {
        DataIn {
            connection: self.connection,
            format: self.format,
            data: self.data.to_vec(),
            eom: self.eom,
            eol: self.eol,
        }
    }
}

impl<'a> From<&'a DataIn> for DataInRef<'a> {
    fn from(chunk: &'a DataIn) -> Self {
        Self {
            connection: chunk.connection,
            format: chunk.format,
            data: &chunk.data,
            eom: chunk.eom,
            eol: chunk.eol,
        }
    }
}

impl OpenRequest {
    /// The first request header called `name`, ignoring ASCII case.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The path of the request URI, without the query.
    pub fn path(&self) -> &str {
        split_target(&self.request_uri).0
    }

    /// The query of the request URI (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        split_target(&self.request_uri).1
    }
}

impl WsConnection {
    /// The first request header called `name`, ignoring ASCII case.
    pub fn request_header(&self, name: &str) -> Option<&str> {
        find_header(&self.request_headers, name)
    }

    /// The path of the request URI, without the query.
    pub fn path(&self) -> &str {
        split_target(&self.request_uri).0
    }
}

impl OpenResponse {
    /// Accepts the WebSocket without a subprotocol.
    pub fn accept() -> Self {
        Self::reject(SWITCHING_PROTOCOLS)
    }

    /// Rejects the WebSocket with an HTTP status such as 401 or 403. (Given
    /// 101 it accepts.)
    pub fn reject(status: u16) -> Self {
        Self {
            status,
            subprotocol: None,
            headers: Vec::new(),
        }
    }

    /// Selects a subprotocol; it must be one the client offered.
    pub fn with_subprotocol(mut self, subprotocol: impl Into<String>) -> Self {
        self.subprotocol = Some(subprotocol.into());
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    pub fn is_accepted(&self) -> bool {
        self.status == SWITCHING_PROTOCOLS
    }
}

impl HostError {
    /// The seed's numeric error code for this error.
    pub fn seed_code(self) -> u32 {
        match self {
            HostError::WouldBlock => ErrorKind::WOULD_BLOCK,
            HostError::InvalidConnection => ErrorKind::INVALID_CONNECTION,
            HostError::InvalidArgument => ErrorKind::INVALID_ARGUMENT,
        }
    }
}

/// What an `error` event reports, decoded from its seed error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// 10035: the outbound queue was full and a command was dropped;
    /// `ready_to_send` follows.
    WouldBlock,
    /// 126: the command named a connection that is not this plugin's, or
    /// has closed.
    InvalidConnection,
    /// 10022: the command was malformed.
    InvalidArgument,
    /// 4202: writing to the client failed; the connection is closing.
    SendFailed,
    /// A code this SDK version does not know.
    Other(u32),
}

impl ErrorKind {
    pub const WOULD_BLOCK: u32 = 10035;
    pub const INVALID_CONNECTION: u32 = 126;
    pub const INVALID_ARGUMENT: u32 = 10022;
    pub const SEND_FAILED: u32 = 4202;

    pub fn from_code(code: u32) -> Self {
        match code {
            Self::WOULD_BLOCK => Self::WouldBlock,
            Self::INVALID_CONNECTION => Self::InvalidConnection,
            Self::INVALID_ARGUMENT => Self::InvalidArgument,
            Self::SEND_FAILED => Self::SendFailed,
            other => Self::Other(other),
        }
    }
}

impl ErrorInfo {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::from_code(self.code)
    }
}

/// An open request for `uri` with `headers`, from 127.0.0.1: for unit
/// tests.
#[cfg(test)]
pub(crate) fn request(uri: &str, headers: &[(&str, &str)]) -> OpenRequest {
    OpenRequest {
        connection: 7,
        request_uri: uri.to_owned(),
        host: "example.test".to_owned(),
        origin: None,
        subprotocols: Vec::new(),
        extensions: String::new(),
        headers: headers
            .iter()
            .map(|(name, value)| Header::new(*name, *value))
            .collect(),
        remote_address: "127.0.0.1".to_owned(),
        remote_port: 40000,
        local_address: "127.0.0.1".to_owned(),
        tls: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_ignores_case_and_returns_the_first() {
        let request = request(
            "/",
            &[("authorization", "Bearer a"), ("Authorization", "Bearer b")],
        );
        assert_eq!(request.header("AUTHORIZATION"), Some("Bearer a"));
        assert_eq!(request.header("origin"), None);
    }

    #[test]
    fn path_and_query_split_at_the_first_question_mark() {
        let with_query = request("/rooms/a?token=x?y", &[]);
        assert_eq!(with_query.path(), "/rooms/a");
        assert_eq!(with_query.query(), Some("token=x?y"));
        let without = request("/rooms/a", &[]);
        assert_eq!(without.path(), "/rooms/a");
        assert_eq!(without.query(), None);
    }

    #[test]
    fn responses_accept_only_with_101() {
        let accepted = OpenResponse::accept().with_subprotocol("chat.v1");
        assert!(accepted.is_accepted());
        assert_eq!(accepted.subprotocol.as_deref(), Some("chat.v1"));
        let rejected = OpenResponse::reject(401).with_header("WWW-Authenticate", "Bearer");
        assert!(!rejected.is_accepted());
        assert_eq!(
            rejected.headers,
            vec![Header::new("WWW-Authenticate", "Bearer")]
        );
    }

    #[test]
    fn host_errors_and_error_events_share_seed_codes() {
        let pairs = [
            (HostError::WouldBlock, 10035, ErrorKind::WouldBlock),
            (
                HostError::InvalidConnection,
                126,
                ErrorKind::InvalidConnection,
            ),
            (
                HostError::InvalidArgument,
                10022,
                ErrorKind::InvalidArgument,
            ),
        ];
        for (error, code, kind) in pairs {
            assert_eq!(error.seed_code(), code);
            assert_eq!(ErrorKind::from_code(code), kind);
        }
        assert_eq!(ErrorKind::from_code(4202), ErrorKind::SendFailed);
        assert_eq!(ErrorKind::from_code(10054), ErrorKind::Other(10054));
    }
}
