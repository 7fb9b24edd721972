//! Why the admin API cannot start, and how a failed request is answered.

use std::io;
use std::net::SocketAddr;

use hyper::StatusCode;

use super::request::InvalidBody;
#[cfg(feature = "plugins")]
use crate::plugin::SwapError;
use crate::server::{ConfigError, Error};

/// The admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin address {listen:?}: {source} (expected HOST:PORT, e.g. 127.0.0.1:9090)")]
    Resolve {
        listen: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "admin address {addr} is not a loopback address: without a token anyone who reaches it \
         controls the server; set a token (--admin-token, the WSSERVER_ADMIN_TOKEN environment \
         variable or [admin] token) or listen on 127.0.0.1 or [::1]"
    )]
    NotLoopback { addr: SocketAddr },
    #[error("the admin token is empty")]
    EmptyToken,
    #[error("cannot listen on {addr} for the admin API: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A request that failed: an HTTP status, a message for the operator and,
/// when the server refused, the WSServer error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub code: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<InvalidBody> for ApiError {
    fn from(e: InvalidBody) -> Self {
        Self::bad_request(e.0)
    }
}

#[cfg(feature = "plugins")]
impl From<SwapError> for ApiError {
    fn from(e: SwapError) -> Self {
        let status = match &e {
            SwapError::UnknownTenant(_) => StatusCode::NOT_FOUND,
            SwapError::NoPreviousVersion(_) | SwapError::NoSource(_) => StatusCode::CONFLICT,
            SwapError::Read { .. } => StatusCode::BAD_REQUEST,
            // The component was read but cannot serve: the running version
            // does.
            SwapError::Load(_) | SwapError::Instantiate { .. } | SwapError::State { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            SwapError::Stopped { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(status, e.to_string())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::InvalidConnectionId(_) => StatusCode::NOT_FOUND,
            Error::Config(ConfigError::UnknownKey(_)) => StatusCode::NOT_FOUND,
            Error::Config(
                ConfigError::InvalidValue { .. }
                | ConfigError::ReadOnly { .. }
                | ConfigError::NotApplicable { .. }
                | ConfigError::NeedsConnectionId { .. }
                | ConfigError::Tls(_),
            )
            | Error::InvalidSend { .. } => StatusCode::BAD_REQUEST,
            // The request is sound but the server's state forbids it now.
            Error::AlreadyListening
            | Error::LocalPortLocked
            | Error::LocalHostLocked
            | Error::MaxConnectionsLocked
            | Error::WouldBlock(_)
            | Error::Closing(_)
            | Error::Interrupted(_)
            // The configured certificates cannot be served.
            | Error::Tls(_) => StatusCode::CONFLICT,
            Error::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: e.to_string(),
            code: Some(e.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_keep_their_message_and_code() {
        let e = ApiError::from(Error::InvalidConnectionId(7));
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "invalid ConnectionId 7");
        assert_eq!(e.code, Some(126));
        let e = ApiError::from(Error::LocalPortLocked);
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, Some(106)));
        let e = ApiError::from(Error::Config(ConfigError::InvalidValue {
            key: "MaxConnections".into(),
            value: "x".into(),
            expected: "1 to 100000".into(),
        }));
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, Some(10022)));
    }
}
