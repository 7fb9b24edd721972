//! The TLS step of a connection (UseSSL): the handshake, run inside the
//! connection's own task so a stalled client holds up no other, then the
//! SSLStatus and SSLClientAuthentication events, and what the connection
//! keeps of its session ([`TlsInfo`]).

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::server::TlsStream;

use super::connection::Connection;
use super::events::{ClientAuthentication, LogLevel, LogType, TlsInfo};
use super::upgrade::REFUSAL_LINGER;
use crate::net::tls::{ClientCertificate, NegotiatedSession, TlsServerConfig};

/// Runs the server handshake until `deadline` (HandshakeTimeout; the
/// config adds DefaultConnectionTimeout), fires the TLS events and records
/// the session on `conn`. None when the connection must end.
pub(super) async fn handshake(
    config: &TlsServerConfig,
    stream: TcpStream,
    conn: &Connection,
    deadline: Instant,
) -> Option<TlsStream<TcpStream>> {
    let mut tls = match timeout_at(deadline, config.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            failed(conn, &e.to_string());
            return None;
        }
        Err(_) => {
            failed(conn, "TLS handshake timed out (HandshakeTimeout)");
            return None;
        }
    };
    let handler = &conn.0.server.handler;
    let (_, server_conn) = tls.get_ref();
    // Always Some once the handshake is complete.
    let session = NegotiatedSession::of(server_conn)?;
    handler.ssl_status(conn, &session.status_message());
    let client_certificate = config.client_certificate(server_conn);
    if config.authenticates_clients() && !authenticate(conn, client_certificate.as_ref()) {
        // close_notify, so the client sees a deliberate close.
        let _ = timeout(REFUSAL_LINGER, tls.shutdown()).await;
        return None;
    }
    let info = TlsInfo {
        session,
        client_certificate,
    };
    // Set once, before the open request.
    let _ = conn.0.tls.set(Arc::new(info));
    Some(tls)
}

/// Fires SSLClientAuthentication; true if the client may go on.
fn authenticate(conn: &Connection, certificate: Option<&ClientCertificate>) -> bool {
    let server = &conn.0.server;
    let mut event = ClientAuthentication {
        certificate,
        status: certificate.map_or("no client certificate", |c| c.status.as_str()),
        accept: certificate.is_some_and(|c| c.status.is_trusted()),
    };
    server.handler.ssl_client_authentication(conn, &mut event);
    let verdict = if event.accept { "accepted" } else { "refused" };
    let subject = event.cert_subject();
    let message = format!(
        "client certificate \"{subject}\": {}; {verdict}",
        event.status
    );
    server.handler.ssl_status(conn, &message);
    if !event.accept {
        server.log(
            Some(conn),
            LogLevel::Info,
            LogType::Info,
            format_args!("{message}"),
        );
    }
    event.accept
}

/// A handshake that failed or timed out: SSLStatus and the Log event.
fn failed(conn: &Connection, message: &str) {
    let server = &conn.0.server;
    server.handler.ssl_status(conn, message);
    server.log(
        Some(conn),
        LogLevel::Info,
        LogType::Error,
        format_args!("{message} ({})", conn.remote_addr()),
    );
}
