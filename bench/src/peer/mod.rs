//! What the comparison peers share: the command-line contract with the
//! driver, the raw upgrade of the TCP floor peer, and rooms for fan-out.

mod listen;
mod raw_upgrade;
mod rooms;

pub use listen::{PeerArgs, listen};
pub use raw_upgrade::{UpgradeError, Upgraded, accept_upgrade};
pub use rooms::{Membership, Rooms, room_name};

/// Whether an I/O error only says the client went away without closing
/// politely, which load generators do at the end of every run: not worth a
/// log line per connection (and the write would skew the figures).
pub fn is_abrupt_close(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
    matches!(error.kind(), BrokenPipe | ConnectionReset | UnexpectedEof)
}
