//! Conversions between the server's types and the WIT contract's.

use wsserver_plugin_bindings::wsserver::plugin::types as wit;

use crate::server::{ConnectionInfo, DataFormat, Error, OpenRequest, OpenResponse, TlsInfo};

pub(crate) fn headers(pairs: &[(String, String)]) -> Vec<wit::Header> {
    pairs
        .iter()
        .map(|(name, value)| wit::Header {
            name: name.clone(),
            value: value.clone(),
        })
        .collect()
}

pub(crate) fn open_request(req: &OpenRequest) -> wit::OpenRequest {
    wit::OpenRequest {
        connection: req.connection_id,
        request_uri: req.request_uri.clone(),
        host: req.host.clone(),
        origin: (!req.origin.is_empty()).then(|| req.origin.clone()),
        subprotocols: req.subprotocols.clone(),
        extensions: req.extensions.clone(),
        headers: headers(&req.request_headers),
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
    Ok(OpenResponse {
        status_code: resp.status,
        subprotocol: resp.subprotocol,
        response_headers: resp
            .headers
            .into_iter()
            .map(|h| (h.name, h.value))
            .collect(),
    })
}

pub(crate) fn data_format(format: DataFormat) -> wit::DataFormat {
    match format {
        DataFormat::Continuation => wit::DataFormat::Continuation,
        DataFormat::Text => wit::DataFormat::Text,
        DataFormat::Binary => wit::DataFormat::Binary,
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
        request_headers: req.map(|r| headers(&r.request_headers)).unwrap_or_default(),
        request_uri: info.request_uri,
        subprotocols: req.map(|r| r.subprotocols.clone()).unwrap_or_default(),
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
