//! Errors of the embedding API, each carrying the seed's error code.

use std::io;

use super::settings::ConfigError;
use crate::net::tls::TlsError;

/// The seed's "Operation would block" code for a full send queue.
pub const WOULD_BLOCK: u32 = 10035;

/// An error returned by [`WsServer`](super::WsServer) or a
/// [`Connection`](super::Connection); [`Error::code`] gives the seed's code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the server is already listening")]
    AlreadyListening,
    #[error("cannot change LocalPort while listening")]
    LocalPortLocked,
    #[error("cannot change LocalHost while listening")]
    LocalHostLocked,
    #[error("cannot change MaxConnections while listening")]
    MaxConnectionsLocked,
    #[error("invalid ConnectionId {0}")]
    InvalidConnectionId(u64),
    /// The connection's send queue is full; `ReadyToSend` fires once it drains.
    #[error("operation would block: the send queue of connection {0} is full")]
    WouldBlock(u64),
    /// The connection is closing or closed; nothing more can be sent.
    #[error("error sending data to connection {0}: the connection is closing")]
    Closing(u64),
    /// A send that does not fit the connection's state (e.g. more bytes than
    /// the rest of a MessageLength message, or a ping payload over 125 bytes).
    #[error("invalid send on connection {id}: {reason}")]
    InvalidSend { id: u64, reason: String },
    /// A SendFile stopped by Interrupt.
    #[error("file transfer on connection {0} was interrupted")]
    Interrupted(u64),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// UseSSL: the certificate or the TLS settings cannot be used (codes
    /// 270-284), reported by StartListening.
    #[error("TLS error {code}: {0}", code = .0.code())]
    Tls(#[from] TlsError),
    /// An operating system error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The seed's numeric error code.
    pub fn code(&self) -> u32 {
        match self {
            Self::AlreadyListening => 104,
            Self::LocalPortLocked => 106,
            Self::LocalHostLocked => 107,
            Self::MaxConnectionsLocked => 108,
            Self::InvalidConnectionId(_) => 126,
            Self::WouldBlock(_) => WOULD_BLOCK,
            Self::Closing(_) => 4202,
            Self::Interrupted(_) => 10004,
            Self::InvalidSend { .. } | Self::Config(_) => 10022,
            Self::Tls(e) => e.code(),
            Self::Io { source, .. } => io_error_code(source),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Maps an OS error to the seed's Winsock-style code.
pub fn io_error_code(e: &io::Error) -> u32 {
    use io::ErrorKind::*;
    match e.kind() {
        PermissionDenied => 10013,
        InvalidInput => 10022,
        WouldBlock => WOULD_BLOCK,
        AddrInUse => 10048,
        AddrNotAvailable => 10049,
        NetworkDown => 10050,
        NetworkUnreachable => 10051,
        ConnectionAborted => 10053,
        ConnectionReset => 10054,
        NotConnected => 10057,
        BrokenPipe => 10058,
        TimedOut => 10060,
        ConnectionRefused => 10061,
        HostUnreachable => 10065,
        _ => match e.raw_os_error() {
            Some(24) => 10024, // EMFILE: too many open files
            _ => 10022,
        },
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
