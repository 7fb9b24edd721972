//! The way into a WebSocket: admission (the ConnectionRequest event,
//! AllowedClients/BlockedClients, MaxConnections), the server side of the
//! opening handshake (the upgrade request, the handler's OpenRequest answer,
//! permessage-deflate negotiation, the 101 response) and refusals with an
//! HTTP status.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::ServerShared;
use super::connection::Connection;
use super::events::{ConnectionRequest, LogLevel, LogType};
use super::metrics::RefusalReason;
use super::settings::Settings;
use super::static_files::{self, PlainGet};
use crate::protocol::deflate::{Agreement, Negotiated, negotiate};
use crate::protocol::handshake::{
    HandshakeError, check_header, parse_request, write_accept_response, write_error_response,
};

/// How long a refused client gets to read our HTTP error response (or TLS
/// close_notify).
pub(super) const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The ConnectionRequest event, the address lists and MaxConnections:
/// whether the client at `remote` may go on. An admitted client holds an
/// admission in the connection table, which the caller releases; a refused
/// one has been told (HTTP 503 on plain TCP when the server is full).
pub(super) async fn admit(
    server: &ServerShared,
    stream: &mut TcpStream,
    remote: SocketAddr,
    local: SocketAddr,
    settings: &Settings,
    with_tls: bool,
) -> bool {
    let ip = remote.ip().to_canonical();
    let mut request = ConnectionRequest {
        remote,
        local,
        accept: settings.allowed_clients.matches(ip) && !settings.blocked_clients.matches(ip),
    };
    server.handler.connection_request(&mut request);
    if !request.accept {
        server.refused(
            None,
            RefusalReason::ClientFilter,
            LogType::Info,
            format_args!("refused connection from {remote}"),
        );
        return false;
    }
    if server.table.try_admit(settings.max_connections as usize) {
        return true;
    }
    server.refused(
        None,
        RefusalReason::MaxConnections,
        LogType::Error,
        format_args!(
            "refused connection from {remote}: MaxConnections ({}) reached",
            settings.max_connections
        ),
    );
    // A TLS client could not read a plain HTTP answer, and a handshake
    // costs what an overloaded server lacks: it is just closed. Boxed, like
    // the handshakes: the connection task's own state stays the size of an
    // idle connection.
    if !with_tls {
        Box::pin(refuse(stream, 503, &[], &[], "MaxConnections reached")).await;
    }
    server.table.release();
    false
}

/// Bytes of the first read of an upgrade request: room for a browser's
/// (about 500 B), and under glibc's 1 KiB "large" allocations, each of
/// which first merges every small chunk freed since (malloc_consolidate),
/// once per handshake.
const FIRST_READ: usize = 1000;

/// What the opening handshake hands the session.
pub(super) struct Opened {
    /// Bytes the client sent after its request.
    pub leftover: Vec<u8>,
    /// The permessage-deflate parameters, when the extension was agreed.
    pub deflate: Option<Negotiated>,
    /// MaxMessageSize for this connection: the setting, or the handler's
    /// smaller limit.
    pub max_message_size: u64,
}

/// The server side of the opening handshake: reads the upgrade request,
/// asks the handler, and answers; or `None` when the connection must end
/// (the refusal has been written).
pub(super) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &Connection,
    settings: &Settings,
) -> Option<Opened> {
    let server = &conn.0.server;
    let max = settings.max_request_header_size;
    let mut buf = Vec::with_capacity(max.min(FIRST_READ));
    let parsed = loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().min(max));
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        match parse_request(&buf, max) {
            Ok(Some(parsed)) => break parsed,
            Ok(None) => continue,
            // The rare paths are boxed: every connection allocates and
            // moves this future whole, and a refusal keeps a 4 KiB buffer.
            Err(HandshakeError::NotUpgrade) if Box::pin(serve_static(stream, conn, &buf)).await => {
                return None;
            }
            Err(e) => {
                server.refused(
                    Some(conn),
                    RefusalReason::HandshakeError,
                    LogType::Error,
                    format_args!("refused handshake: {e}"),
                );
                Box::pin(refuse(
                    stream,
                    e.status(),
                    e.response_headers(),
                    &[],
                    &format!("{e}\n"),
                ))
                .await;
                return None;
            }
        }
    };
    let leftover = buf[parsed.head_len..].to_vec();
    drop(buf);
    // Set once before the handler runs; the open request shares it.
    let _ = conn.0.request_head.set(parsed.request.shared_head());
    let open_request = Arc::new(conn.open_request(parsed.request));
    if settings.log_level >= LogLevel::Verbose as u8 {
        server.log(
            Some(conn),
            LogLevel::Verbose,
            LogType::Verbose,
            format_args!(
                "open request:\r\nGET {} HTTP/1.1\r\n{}",
                open_request.request_uri(),
                open_request.request_headers_text()
            ),
        );
    }
    let response = server
        .handler
        .open_request(conn, open_request.clone())
        .await;
    let headers: Vec<(String, String)> = response
        .response_headers
        .into_iter()
        .filter(|(name, value)| match check_header(name, value) {
            Ok(()) if is_handshake_header(name) => {
                server.log(
                    Some(conn),
                    LogLevel::Info,
                    LogType::Error,
                    format_args!(
                        "handler response: {name} belongs to the handshake; header dropped"
                    ),
                );
                false
            }
            Ok(()) => true,
            Err(e) => {
                server.log(
                    Some(conn),
                    LogLevel::Info,
                    LogType::Error,
                    format_args!("handler response: {e}; header dropped"),
                );
                false
            }
        })
        .collect();
    match response.status_code {
        101 => {
            let subprotocol = response.subprotocol.filter(|p| {
                let offered = open_request.subprotocols().any(|o| o == p);
                if !offered {
                    server.log(
                        Some(conn),
                        LogLevel::Info,
                        LogType::Error,
                        format_args!("handler chose subprotocol {p:?}, which the client did not offer; omitted"),
                    );
                }
                offered
            });
            // The offers are searched for only when there are some.
            let offers: Vec<&str> = if parsed.offers_extensions {
                let request = open_request.upgrade_request();
                request.values("sec-websocket-extensions").collect()
            } else {
                Vec::new()
            };
            let deflate = negotiate_deflate(conn, &offers, settings);
            let mut out = Vec::with_capacity(256);
            write_accept_response(
                &mut out,
                &parsed.key,
                subprotocol.as_deref(),
                deflate
                    .as_ref()
                    .map(|agreement| agreement.response.as_str()),
                &headers,
            );
            stream.write_all(&out).await.ok()?;
            {
                let mut st = conn.lock();
                st.connected = true;
                st.deflate_threshold = deflate.is_some().then_some(settings.deflate.threshold);
            }
            Some(Opened {
                leftover,
                deflate: deflate.map(|agreement| agreement.params),
                max_message_size: connection_message_limit(
                    settings.max_message_size,
                    response.max_message_size,
                ),
            })
        }
        status => {
            server.metrics.connection_refused(RefusalReason::Handler);
            let status = if (200..=599).contains(&status) {
                server.log(
                    Some(conn),
                    LogLevel::Info,
                    LogType::Info,
                    format_args!("handler refused the open request with {status}"),
                );
                status
            } else {
                server.log(
                    Some(conn),
                    LogLevel::Info,
                    LogType::Error,
                    format_args!(
                        "handler answered with invalid status {status}; refusing with 500"
                    ),
                );
                500
            };
            // Refused: no longer among the Connections while the client
            // reads the response.
            server.table.unlist(conn.id());
            Box::pin(refuse(stream, status, &[], &headers, "")).await;
            None
        }
    }
}

/// The smaller of MaxMessageSize (0: no limit) and the handler's limit
/// for one connection.
fn connection_message_limit(setting: u64, handler: Option<u64>) -> u64 {
    // 0 means "no limit" to the receiver: a handler's 0 means 1 byte.
    match (setting, handler.map(|limit| limit.max(1))) {
        (_, None) => setting,
        (0, Some(limit)) => limit,
        (setting, Some(limit)) => setting.min(limit),
    }
}

/// Picks permessage-deflate parameters from the client's offers (every
/// Sec-WebSocket-Extensions header, in order) when EnablePermessageDeflate
/// allows it.
fn negotiate_deflate(conn: &Connection, offers: &[&str], settings: &Settings) -> Option<Agreement> {
    if offers.is_empty() {
        return None;
    }
    let agreement = negotiate(offers, &settings.deflate);
    if conn.0.server.logs(LogLevel::Verbose) {
        conn.0.server.log(
            Some(conn),
            LogLevel::Verbose,
            LogType::Verbose,
            format_args!(
                "extensions offered: {}; agreed: {}",
                offers.join(", "),
                agreement.as_ref().map_or("none", |a| a.response.as_str())
            ),
        );
    }
    agreement
}

/// Headers the server writes itself; a handler may not set them.
fn is_handshake_header(name: &str) -> bool {
    [
        "upgrade",
        "connection",
        "content-length",
        "transfer-encoding",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
        || name
            .get(..14)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sec-websocket-"))
}

/// Writes an HTTP error response and closes, giving the client a moment
/// to read it (closing with unread input would reset the connection and
/// could destroy the response in flight).
/// Answers a plain GET from the static site the handler names for its
/// path, then ends the connection; false when no site serves it (the
/// caller answers 426).
async fn serve_static<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    conn: &Connection,
    head: &[u8],
) -> bool {
    let server = &conn.0.server;
    let Some(request) = PlainGet::parse(head) else {
        return false;
    };
    let Some(mount) = server.handler.static_site(request.path(), &request.host) else {
        return false;
    };
    let answered = Box::pin(static_files::answer(stream, &request, &mount)).await;
    server.log(
        Some(conn),
        LogLevel::Verbose,
        LogType::Verbose,
        format_args!(
            "GET {} (static): {}",
            request.uri,
            match &answered {
                Ok(status) => status.to_string(),
                Err(e) => e.to_string(),
            }
        ),
    );
    let _ = timeout(REFUSAL_LINGER, stream.shutdown()).await;
    true
}

async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    headers: &[(&str, &str)],
    extra: &[(String, String)],
    body: &str,
) {
    let mut out = Vec::with_capacity(256);
    write_error_response(&mut out, status, headers, extra, body);
    let linger = async {
        stream.write_all(&out).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    let _ = timeout(REFUSAL_LINGER, linger).await;
}
