use std::io;

use crate::client::{ConnectError, DecodeError};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("opening a connection: {0}")]
    Connect(#[from] ConnectError),
    #[error("opening a connection took longer than {0:?}")]
    ConnectTimeout(std::time::Duration),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("server sent an invalid frame: {0}")]
    Decode(#[from] DecodeError),
    #[error("server closed a connection during the run")]
    ServerClosed,
    #[error("server echoed a {got}-byte message where {expected} bytes were sent")]
    WrongLength { expected: u64, got: u64 },
    #[error("reading /proc: {0}")]
    Proc(#[from] procfs::ProcError),
}
