//! The `Handler` trait: one method per seed event (the event types are in
//! [`events`](super::events)).
//!
//! The server calls a handler from the task of the connection concerned, so
//! the events of one connection arrive in order. Methods other than
//! `open_request` are synchronous and must not block: they run on the
//! server's threads. Anything slow belongs in a task of the handler's own.

use std::sync::Arc;

use super::connection::Connection;
use super::events::{
    BoxFuture, ClientAuthentication, ConnectionRequest, DataFormat, DataIn, LogLevel, LogType,
    OpenRequest, OpenResponse,
};
use super::static_files::StaticMount;
use crate::protocol::mask::MaskedPayload;

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

    /// A whole binary message arrived in one piece (outside line mode), its
    /// payload still masked as the client sent it. A handler that copies
    /// the payload unmasks its copy instead ([`MaskedPayload`]). The
    /// default unmasks it in place and calls [`data_in`](Self::data_in).
    fn binary_message(&self, conn: &Connection, payload: MaskedPayload<'_>) {
        let data = DataIn {
            format: DataFormat::Binary,
            data: payload.unmask(),
            eom: true,
            eol: false,
        };
        self.data_in(conn, &data);
    }

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

    /// The server is about to send its close frame, in reply to the
    /// client's or for a protocol violation by the client. A handler that
    /// handles events asynchronously returns a future that completes once
    /// the events already delivered for this connection are handled, so
    /// the replies they send leave before the close frame. The server
    /// waits at most CloseTimeout; meanwhile it reads nothing more from the
    /// client.
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
