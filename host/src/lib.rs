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
pub mod cluster;
pub mod net;
pub mod plugin;
pub mod protocol;
pub mod server;

pub use protocol::receiver::MessageKind;
pub use server::{
    BoxFuture, ClientAuthentication, Connection, ConnectionId, ConnectionInfo, ConnectionRequest,
    DataFormat, DataIn, Error, Handler, LogLevel, LogType, OpenRequest, OpenResponse, Result,
    SendFormat, Settings, TlsInfo, WsServer,
};
