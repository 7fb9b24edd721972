//! TLS for `wss://` with rustls (ring provider): the seed's UseSSL, SSLCert
//! and SSL* settings, certificate loading and selection, the Certificate
//! type's fields, client certificates, SNI and the key log.
//!
//! Flow: [`TlsSettings`] takes the keys; [`build_server_config`] loads every
//! certificate once (errors carry the seed's codes 270-284) and returns a
//! [`TlsServerConfig`]; per connection the server calls
//! [`TlsServerConfig::accept`], then [`NegotiatedSession::of`] and
//! [`TlsServerConfig::client_certificate`] on the finished connection.
//! The client-certificate verdict design is described in [`client_auth`].

pub mod certificate;
pub mod client_auth;
pub mod error;
pub mod info;
pub mod key_log;
pub mod protocols;
pub mod server_config;
pub mod session;
pub mod settings;
pub mod sni;
pub mod store;
pub mod subject;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;

#[cfg(test)]
use certificate::LoadedCertificate;
pub use certificate::{CertSource, inspect};
pub use client_auth::{ClientAuthPolicy, ClientCertStatus, ClientCertificate};
pub use error::{TlsConfigError, TlsError};
pub use info::CertificateInfo;
pub use server_config::{TlsServerConfig, build_server_config};
pub use session::NegotiatedSession;
pub use settings::TlsSettings;
pub use store::StoreType;
