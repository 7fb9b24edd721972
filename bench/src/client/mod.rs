//! The client side of RFC 6455, reduced to what a load generator needs:
//! opening connections and moving pre-built frames, without per-message work.

mod clock;
mod connect;
mod frame;

pub use clock::{Stamp, instant_of, now_stamp};
pub use connect::{ConnectError, Connection, Target, TargetError};
pub use frame::{DecodeError, Event, FrameDecoder, MaskedBatch, OPCODE_BINARY, close_frame};
