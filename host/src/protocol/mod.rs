//! RFC 6455 wire protocol: pure code with no I/O, so it can be unit-tested and
//! fuzzed on its own. The server feeds it bytes and writes what it produces.

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod receiver;
pub mod utf8;

pub use error::ProtocolError;
