//! Conversions between the server's types and the WIT contract's.

use wsserver_packed as packed;
use wsserver_plugin_bindings::wsserver::plugin::types as wit;

use crate::protocol::handshake::MAX_RESPONSE_HEADER_BYTES;
use crate::server::{ConnectionInfo, DataFormat, Error, OpenRequest, OpenResponse, TlsInfo};

fn headers<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<wit::Header> {
    pairs
        .map(|(name, value)| wit::Header {
            name: name.to_owned(),
            value: value.to_owned(),
        })
        .collect()
}

pub(crate) fn open_request(req: &OpenRequest) -> wit::OpenRequest {
    wit::OpenRequest {
        connection: req.connection_id,
        request_uri: req.request_uri().to_owned(),
        host: req.host().to_owned(),
        origin: (!req.origin().is_empty()).then(|| req.origin().to_owned()),
        subprotocols: req.subprotocols().map(str::to_owned).collect(),
        extensions: req.extensions(),
        headers: headers(req.request_headers()),
        remote_address: req.remote.ip().to_canonical().to_string(),
        remote_port: req.remote.port(),
        local_address: req.local.ip().to_canonical().to_string(),
        tls: req.tls.as_deref().map(tls_info),
    }
}

/// The TLS session as plugins see it: the seed's names (`TLS1.3`, IANA
/// suite names), as SSLNegotiated*[id] reads them.
fn tls_info(tls: &TlsInfo) -> wit::TlsInfo {
    wit::TlsInfo {
        protocol: tls.session.version.clone(),
        cipher_suite: tls.session.cipher_suite.clone(),
        server_name: tls.session.server_name.clone(),
        client_certificate: tls
            .client_certificate
            .as_ref()
            .map(|cert| wit::ClientCertificate {
                der: cert
                    .chain
                    .first()
                    .map(|der| der.to_vec())
                    .unwrap_or_default(),
                subject: cert.info.subject.clone(),
                issuer: cert.info.issuer.clone(),
            }),
    }
}

/// The plugin's answer, with the contract's rules applied: a status that is
/// neither 101 nor 200-599, or a subprotocol the client did not offer, is
/// the plugin's mistake and answered 500.
pub(crate) fn open_response(
    resp: wit::OpenResponse,
    offered: &[String],
) -> Result<OpenResponse, String> {
    if !(resp.status == 101 || (200..=599).contains(&resp.status)) {
        return Err(format!(
            "answered the open request with status {}",
            resp.status
        ));
    }
    if let Some(p) = &resp.subprotocol
        && !offered.contains(p)
    {
        return Err(format!(
            "chose subprotocol {p:?}, which the client did not offer"
        ));
    }
    let header_bytes: usize = resp
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum();
    if header_bytes > MAX_RESPONSE_HEADER_BYTES {
        return Err(format!(
            "answered the open request with {header_bytes} bytes of headers (at most {MAX_RESPONSE_HEADER_BYTES})"
        ));
    }
    Ok(OpenResponse {
        status_code: resp.status,
        subprotocol: resp.subprotocol,
        response_headers: resp
            .headers
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect(),
        max_message_size: None,
    })
}

/// The packed layout's data-in format.
pub(crate) fn data_format(format: DataFormat) -> u8 {
    match format {
        DataFormat::Continuation => packed::CONTINUATION,
        DataFormat::Text => packed::TEXT,
        DataFormat::Binary => packed::BINARY,
    }
}

/// The packed layout's send format.
pub(crate) fn send_format(format: wit::MessageFormat) -> u8 {
    match format {
        wit::MessageFormat::Text => packed::SEND_TEXT,
        wit::MessageFormat::Binary => packed::SEND_BINARY,
    }
}

/// An event as `handler.on-events` takes it, for plugins without the
/// packed export.
pub(crate) fn typed_event(event: packed::Event<'_>) -> wit::Event {
    match event {
        packed::Event::Connected(id) => wit::Event::Connected(id),
        packed::Event::DataIn {
            connection,
            format,
            eom,
            eol,
            data,
        } => wit::Event::DataIn(wit::DataIn {
            connection,
            format: match format {
                packed::TEXT => wit::DataFormat::Text,
                packed::BINARY => wit::DataFormat::Binary,
                _ => wit::DataFormat::Continuation,
            },
            data: data.to_vec(),
            eom,
            eol,
        }),
        packed::Event::Ping {
            connection,
            response,
            payload,
        } => wit::Event::Ping(wit::PingIn {
            connection,
            payload: payload.to_vec(),
            response,
        }),
        packed::Event::Disconnected {
            connection,
            code,
            description,
        } => wit::Event::Disconnected(wit::DisconnectInfo {
            connection,
            code,
            description: description.to_owned(),
        }),
        packed::Event::ReadyToSend(id) => wit::Event::ReadyToSend(id),
        packed::Event::Error {
            connection,
            code,
            description,
        } => wit::Event::Error(wit::ErrorInfo {
            connection,
            code,
            description: description.to_owned(),
        }),
        packed::Event::Presence {
            topic,
            joined,
            connection,
            count,
            subscribers,
        } => wit::Event::Presence(wit::PresenceChange {
            topic: topic.to_owned(),
            joined,
            connection,
            count,
            subscribers,
        }),
    }
}

/// A command `handler.on-events` returned, in the form the host applies.
pub(crate) fn packed_command(command: &wit::Command) -> packed::Command<'_> {
    match command {
        wit::Command::Send(m) => packed::Command::Send {
            connection: m.connection,
            format: send_format(m.format),
            data: &m.data,
        },
        wit::Command::Ping(p) => packed::Command::Ping {
            connection: p.connection,
            payload: &p.payload,
        },
        wit::Command::Disconnect(c) => packed::Command::Disconnect {
            connection: c.connection,
            code: c.code,
            reason: &c.reason,
        },
        wit::Command::SetLineMode(l) => packed::Command::SetLineMode {
            connection: l.connection,
            enabled: l.enabled,
        },
        wit::Command::PauseData(id) => packed::Command::PauseData(*id),
        wit::Command::ResumeData(id) => packed::Command::ResumeData(*id),
        wit::Command::Subscribe(s) => packed::Command::Subscribe {
            connection: s.connection,
            topic: &s.topic,
        },
        wit::Command::Unsubscribe(s) => packed::Command::Unsubscribe {
            connection: s.connection,
            topic: &s.topic,
        },
        wit::Command::Publish(p) => packed::Command::Publish {
            topic: &p.topic,
            format: send_format(p.format),
            data: &p.data,
            exclude: p.exclude,
        },
    }
}

pub(crate) fn ws_connection(info: ConnectionInfo, req: Option<&OpenRequest>) -> wit::WsConnection {
    wit::WsConnection {
        id: info.connection_id,
        accept_data: info.accept_data,
        bytes_sent: info.bytes_sent,
        connected: info.connected,
        host: info.host,
        line_mode: info.line_mode,
        local_address: info.local_address,
        origin: (!info.origin.is_empty()).then_some(info.origin),
        ready_to_send: info.ready_to_send,
        remote_host: info.remote_host,
        remote_port: info.remote_port,
        request_headers: req
            .map(|r| headers(r.request_headers()))
            .unwrap_or_default(),
        request_uri: info.request_uri,
        subprotocols: req
            .map(|r| r.subprotocols().map(str::to_owned).collect())
            .unwrap_or_default(),
        subprotocol: None,
        timeout_seconds: info.timeout,
        tls: info.tls.as_deref().map(tls_info),
    }
}

/// The contract's error for a failed server call.
pub(crate) fn host_error(e: &Error) -> wit::HostError {
    match e {
        Error::WouldBlock(_) => wit::HostError::WouldBlock,
        Error::InvalidConnectionId(_) | Error::Closing(_) => wit::HostError::InvalidConnection,
        _ => wit::HostError::InvalidArgument,
    }
}

/// The seed code an `error` event carries for a failed command.
pub(crate) fn error_code(e: wit::HostError) -> u32 {
    match e {
        wit::HostError::WouldBlock => crate::server::WOULD_BLOCK,
        wit::HostError::InvalidConnection => 126,
        wit::HostError::InvalidArgument => 10022,
    }
}
