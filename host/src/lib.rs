//! wsserver: a WebSocket server whose application logic runs in sandboxed
//! WebAssembly component plugins, usable as a library with native handlers.
//!
//! ```no_run
//! use wsserver::{Connection, DataIn, Handler, WsServer};
//!
//! struct Shout;
//!
//! impl Handler for Shout {
//!     fn data_in(&self, conn: &Connection, data: &DataIn<'_>) {
//!         if let Some(text) = data.text() {
//!             let _ = conn.send_text(&text.to_uppercase());
//!         }
//!     }
//! }
//!
//! # async fn run() -> wsserver::Result<()> {
//! let server = WsServer::new(Shout);
//! server.config("LocalHost=127.0.0.1")?;
//! server.config("LocalPort=8080")?;
//! server.start_listening().await?;
//! # Ok(()) }
//! ```

pub mod admin;
#[cfg(feature = "plugins")]
pub mod cluster;
pub mod config;
mod cpu;
mod net;
#[cfg(feature = "plugins")]
pub mod plugin;
pub mod protocol;
mod server;

pub use protocol::mask::MaskedPayload;
pub use protocol::receiver::MessageKind;
pub use server::echo::EchoHandler;
pub use server::settings::all_keys as setting_keys;
/// Files for plain GET requests on the WebSocket port.
pub use server::static_files::{EmbeddedFile, StaticMount, StaticSite};
pub use server::{
    BoxFuture, ClientAuthentication, ConfigError, Connection, ConnectionId, ConnectionInfo,
    ConnectionRequest, DataFormat, DataIn, Error, Handler, IpMode, LogLevel, LogType, OpenRequest,
    OpenResponse, RefusalCounts, RefusalReason, Result, SendFormat, ServerMetrics, Settings,
    TlsInfo, WOULD_BLOCK, WsServer,
};

/// TLS (UseSSL): certificate stores and the fields the SSLCert properties
/// show, client certificates and their verdicts, the negotiated session.
pub mod tls {
    pub use crate::net::tls::{
        CertSource, CertificateInfo, ClientCertStatus, ClientCertificate, NegotiatedSession,
        StoreType, TlsConfigError, TlsError, TlsSettings, inspect,
    };
    /// What certificate loading is made of, for tests and fuzzing: the
    /// certificate store reader, CA lists and SSLCertSubject queries.
    pub use crate::net::tls::{certificate::load, store::ca_list, subject::SubjectQuery};
}
