//! Errors of the TLS layer: settings that cannot be applied
//! ([`TlsConfigError`]) and certificates or handshakes that fail
//! ([`TlsError`], carrying the seed's SSL error codes 270-284).

use std::io;
use std::path::PathBuf;

/// A TLS setting whose value cannot be applied. Every variant names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsConfigError {
    #[error("invalid value \"{value}\" for {key}: expected {expected}")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
    },
    /// A certificate store type of the seed that has no meaning here.
    #[error("{key}: store type \"{value}\" is not supported: {reason}")]
    UnsupportedStoreType {
        key: String,
        value: String,
        reason: &'static str,
    },
    /// Cipher suite names that rustls does not implement.
    #[error(
        "{key}: cipher suites not supported by rustls: {}; supported: {supported}",
        names.join(", ")
    )]
    UnknownCipherSuites {
        key: String,
        names: Vec<String>,
        supported: String,
    },
    #[error("{key} is read-only")]
    ReadOnly { key: String },
    #[error("{key} is not applicable to wsserver: {reason}")]
    NotApplicable { key: String, reason: &'static str },
}

impl TlsConfigError {
    /// The seed's code for an invalid argument.
    pub fn code(&self) -> u32 {
        10022
    }
}

/// A certificate that cannot be loaded, a TLS configuration rustls refuses,
/// or a handshake that fails. [`TlsError::code`] gives the seed's code.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// UseSSL without any certificate to serve.
    #[error("no server certificate: set SSLCertStoreType, SSLCertStore and SSLCertSubject")]
    NoServerCertificate,
    #[error("cannot read certificate store {path}: {source}")]
    UnreadableStore {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The store's bytes are not in the format its type says.
    #[error("cannot open certificate store {store}: {reason}")]
    MalformedStore { store: String, reason: String },
    #[error("cannot open certificate store {store}: wrong password (SSLCertStorePassword)")]
    WrongPassword { store: String },
    #[error("certificate store {store} holds no certificate")]
    EmptyStore { store: String },
    #[error(
        "no certificate in {store} matches subject \"{subject}\"; the store holds: {}",
        available.join("; ")
    )]
    SubjectNotFound {
        store: String,
        subject: String,
        available: Vec<String>,
    },
    #[error("certificate \"{subject}\" in {store} has no private key in the store")]
    NoPrivateKey { store: String, subject: String },
    #[error("no private key in {store} matches certificate \"{subject}\"")]
    KeyMismatch { store: String, subject: String },
    #[error("the private key of \"{subject}\" in {store} cannot sign with rustls: {reason}")]
    UnsupportedKey {
        store: String,
        subject: String,
        reason: String,
    },
    /// SSLCACerts or SSLClientCACerts cannot be used.
    #[error("{key}: {reason}")]
    BadCaCertificates { key: &'static str, reason: String },
    #[error("cannot open SSLKeyLogFile {path}: {source}")]
    KeyLogFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// rustls refuses the combination of settings (for example no cipher
    /// suite left for the enabled protocol versions).
    #[error("TLS configuration rejected: {0}")]
    Rejected(String),
    #[error("TLS handshake failed: {0}")]
    Handshake(#[source] io::Error),
    #[error("TLS handshake timed out after {0} s (DefaultConnectionTimeout)")]
    HandshakeTimeout(u64),
}

impl TlsError {
    /// The seed's numeric error code.
    pub fn code(&self) -> u32 {
        match self {
            Self::Rejected(_) | Self::KeyLogFile { .. } => 270,
            Self::UnreadableStore { .. }
            | Self::MalformedStore { .. }
            | Self::WrongPassword { .. } => 271,
            Self::EmptyStore { .. } | Self::SubjectNotFound { .. } => 272,
            Self::NoPrivateKey { .. } | Self::KeyMismatch { .. } | Self::UnsupportedKey { .. } => {
                273
            }
            Self::BadCaCertificates { .. } => 274,
            Self::Handshake(_) | Self::HandshakeTimeout(_) => 276,
            Self::NoServerCertificate => 282,
        }
    }
}
