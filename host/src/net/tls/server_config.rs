//! Turning [`TlsSettings`] into a rustls server configuration, and the
//! calls the connection layer makes around each handshake.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::default_provider;
use rustls::server::ServerConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::certificate::{self, LoadedCertificate};
use super::client_auth::{ClientAuthVerifier, ClientCertificate};
use super::error::TlsError;
use super::info::CertificateInfo;
use super::key_log::KeyLogFile;
use super::protocols::versions;
use super::settings::TlsSettings;
use super::sni::SniResolver;
use super::store;

/// A ready TLS server side: the rustls configuration plus what the
/// connection layer needs after a handshake.
#[derive(Debug, Clone)]
pub struct TlsServerConfig {
    pub rustls: Arc<ServerConfig>,
    client_auth: Option<Arc<ClientAuthVerifier>>,
    handshake_timeout: Option<Duration>,
    default_cert: Option<CertificateInfo>,
    sni_certs: BTreeMap<String, CertificateInfo>,
}

/// Loads every certificate and builds the rustls configuration. Errors
/// carry the seed's codes: a bad store, password or key fails here, at
/// start-up, never in a handshake.
pub fn build_server_config(settings: &TlsSettings) -> Result<TlsServerConfig, TlsError> {
    let provider = Arc::new(CryptoProvider {
        cipher_suites: settings.cipher_suites.select(settings.cipher_strength),
        ..default_provider()
    });
    let ca_certs = store::ca_list("SSLCACerts", &settings.ca_certs)?;

    let default = settings
        .cert
        .is_set()
        .then(|| certificate::load(&settings.cert, &ca_certs))
        .transpose()?;
    if default.is_none() && settings.sni_certs.is_empty() {
        return Err(TlsError::NoServerCertificate);
    }
    let mut resolver = SniResolver::new(default.as_ref().map(|c| Arc::clone(&c.certified_key)));
    let mut sni_certs = BTreeMap::new();
    for (host, source) in &settings.sni_certs {
        let LoadedCertificate {
            certified_key,
            info,
        } = certificate::load(source, &ca_certs)?;
        resolver.add(host, certified_key);
        sni_certs.insert(host.clone(), info);
    }

    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions(settings.enabled_protocols))
        .map_err(|e| {
            TlsError::Rejected(format!("{e} (SSLEnabledProtocols/SSLEnabledCipherSuites)"))
        })?;
    let client_auth = settings
        .authenticate_clients
        .then(|| {
            let cas = store::ca_list("SSLClientCACerts", &settings.client_ca_certs)?;
            ClientAuthVerifier::new(settings.client_auth_policy, cas, Arc::clone(&provider))
                .map(Arc::new)
        })
        .transpose()?;
    let mut config = match &client_auth {
        Some(verifier) => builder.with_client_cert_verifier(Arc::clone(verifier) as _),
        None => builder.with_no_client_auth(),
    }
    .with_cert_resolver(Arc::new(resolver));
    if let Some(path) = &settings.key_log_file {
        config.key_log = Arc::new(KeyLogFile::open(path)?);
    }

    Ok(TlsServerConfig {
        rustls: Arc::new(config),
        client_auth,
        handshake_timeout: (settings.handshake_timeout > 0)
            .then(|| Duration::from_secs(settings.handshake_timeout.into())),
        default_cert: default.map(|c| c.info),
        sni_certs,
    })
}

impl TlsServerConfig {
    /// The default certificate's fields (None when only SNI names have one).
    pub fn certificate(&self) -> Option<&CertificateInfo> {
        self.default_cert.as_ref()
    }

    /// The certificate fields per SNI host name.
    pub fn sni_certificates(&self) -> &BTreeMap<String, CertificateInfo> {
        &self.sni_certs
    }

    /// Runs the server handshake on `io`, bounded by DefaultConnectionTimeout.
    /// Each connection awaits its own handshake, so a stalled or failed one
    /// holds up no other.
    pub async fn accept<IO>(&self, io: IO) -> Result<TlsStream<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = TlsAcceptor::from(Arc::clone(&self.rustls)).accept(io);
        match self.handshake_timeout {
            None => handshake.await.map_err(TlsError::Handshake),
            Some(limit) => match tokio::time::timeout(limit, handshake).await {
                Ok(result) => result.map_err(TlsError::Handshake),
                Err(_) => Err(TlsError::HandshakeTimeout(limit.as_secs())),
            },
        }
    }

    /// Whether clients are asked for a certificate (SSLAuthenticateClients).
    pub fn authenticates_clients(&self) -> bool {
        self.client_auth.is_some()
    }

    /// The client's certificate with its verification status, when
    /// SSLAuthenticateClients is on and the client sent one.
    pub fn client_certificate(&self, conn: &ServerConnection) -> Option<ClientCertificate> {
        self.client_auth
            .as_ref()?
            .client_certificate(conn.peer_certificates())
    }
}
