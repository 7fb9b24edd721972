//! Client certificates (SSLAuthenticateClients, SSLClientCACerts) and the
//! verdict behind the seed's SSLClientAuthentication event.
//!
//! The seed lets the application overrule verification: the event carries
//! the status and an Accept flag the handler may flip. A verifier that
//! fails the handshake would leave nothing to overrule, so there are two
//! policies:
//!
//! - [`ClientAuthPolicy::Enforce`]: no application override. rustls checks
//!   the chain against SSLClientCACerts during the handshake and a client
//!   without a valid certificate gets a TLS alert; it never reaches the
//!   server. Status is always "OK".
//! - [`ClientAuthPolicy::Defer`]: an SSLClientAuthentication handler
//!   decides. The handshake only requires the client to prove it holds the
//!   key of the certificate it sent (the CertificateVerify signature is
//!   checked), and a client may send none. After the handshake,
//!   [`ClientAuthVerifier::status`] runs the same WebPKI verification and
//!   the connection layer fires the event with that status, closing the
//!   connection unless Accept ends up true.
//!
//! Re-verifying after the handshake, instead of remembering the verdict
//! inside the verifier, keeps the verifier stateless: rustls gives it no
//! connection identity to file a verdict under.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};

use super::error::TlsError;
use super::info::CertificateInfo;

/// Who has the last word on a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthPolicy {
    /// rustls rejects missing or untrusted certificates in the handshake.
    #[default]
    Enforce,
    /// Any certificate (or none) completes the handshake; the application
    /// decides from [`ClientCertStatus`].
    Defer,
}

/// The outcome of verifying a client certificate against SSLClientCACerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertStatus {
    Trusted,
    /// Why verification failed, in words for the event's Status.
    Untrusted(String),
}

impl ClientCertStatus {
    /// The event's Status: "OK" or the reason.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Trusted => "OK",
            Self::Untrusted(reason) => reason,
        }
    }

    /// The event's default Accept.
    pub fn is_trusted(&self) -> bool {
        *self == Self::Trusted
    }
}

/// What the client presented, for the SSLClientAuthentication event and
/// the open request (CertEncoded, CertSubject, CertIssuer, Status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The client's certificate first, then the intermediates it sent.
    pub chain: Vec<CertificateDer<'static>>,
    pub info: CertificateInfo,
    pub status: ClientCertStatus,
}

/// rustls's client certificate verifier for both policies.
#[derive(Debug)]
pub struct ClientAuthVerifier {
    policy: ClientAuthPolicy,
    /// None when no CA is configured (allowed only with `Defer`).
    webpki: Option<Arc<dyn ClientCertVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientAuthVerifier {
    pub fn new(
        policy: ClientAuthPolicy,
        client_cas: Vec<CertificateDer<'static>>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let bad = |reason: String| TlsError::BadCaCertificates {
            key: "SSLClientCACerts",
            reason,
        };
        let webpki = if client_cas.is_empty() {
            if policy == ClientAuthPolicy::Enforce {
                return Err(bad(
                    "SSLAuthenticateClients needs the CA certificates that issue client \
                     certificates"
                        .into(),
                ));
            }
            None
        } else {
            let mut roots = RootCertStore::empty();
            for ca in client_cas {
                roots
                    .add(ca)
                    .map_err(|e| bad(format!("unusable CA certificate: {e}")))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
            Some(verifier)
        };
        Ok(Self {
            policy,
            webpki,
            algorithms: provider.signature_verification_algorithms,
        })
    }

    /// Verifies a chain the client sent, at the current time.
    pub fn status(&self, chain: &[CertificateDer<'static>]) -> ClientCertStatus {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return ClientCertStatus::Untrusted("no client certificate".into());
        };
        let Some(webpki) = &self.webpki else {
            return ClientCertStatus::Untrusted(
                "no CA to verify against: SSLClientCACerts is empty".into(),
            );
        };
        match webpki.verify_client_cert(end_entity, intermediates, UnixTime::now()) {
            Ok(_) => ClientCertStatus::Trusted,
            Err(e) => ClientCertStatus::Untrusted(describe(&e)),
        }
    }

    /// The client's certificate after a handshake, with its status. In
    /// `Enforce` mode rustls has already verified it.
    pub fn client_certificate(
        &self,
        chain: Option<&[CertificateDer<'static>]>,
    ) -> Option<ClientCertificate> {
        let chain = chain.filter(|c| !c.is_empty())?;
        let info = CertificateInfo::from_der(chain[0].as_ref(), false).ok()?;
        let status = match self.policy {
            ClientAuthPolicy::Enforce => ClientCertStatus::Trusted,
            ClientAuthPolicy::Defer => self.status(chain),
        };
        Some(ClientCertificate {
            chain: chain.to_vec(),
            info,
            status,
        })
    }
}

fn describe(error: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert_error) = error else {
        return error.to_string();
    };
    match cert_error {
        CertificateError::UnknownIssuer => {
            "certificate issuer is not trusted (not signed by SSLClientCACerts)".into()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not valid yet".into()
        }
        CertificateError::Revoked => "certificate is revoked".into(),
        CertificateError::BadSignature => "certificate signature is invalid".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate is not valid for client authentication".into()
        }
        other => other.to_string(),
    }
}

impl ClientCertVerifier for ClientAuthVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.policy == ClientAuthPolicy::Enforce
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki
            .as_ref()
            .map_or(&[], |verifier| verifier.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match (&self.webpki, self.policy) {
            (Some(webpki), ClientAuthPolicy::Enforce) => {
                webpki.verify_client_cert(end_entity, intermediates, now)
            }
            // The chain is judged after the handshake; the signature checks
            // below still prove the client holds the certificate's key.
            _ => Ok(ClientCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
