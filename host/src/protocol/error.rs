//! Protocol violations by the peer, each mapped to the close code RFC 6455
//! requires when failing the connection.

use std::fmt;

use super::close::INTERNAL_ERROR;

/// Close code for a generic protocol error (RFC 6455 §7.4.1).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for data inconsistent with the message type, e.g. bad UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code for a message too big to process.
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// Why the receiver fails a connection: a violation of RFC 6455 or RFC
/// 7692 by the client, or (`DecompressorFailed` only) a local failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// RSV2 or RSV3 set, or RSV1 set where no negotiated extension allows
    /// it (permessage-deflate allows it on the first frame of a message).
    ReservedBits,
    /// An opcode reserved for future use (3-7, 11-15).
    ReservedOpcode(u8),
    /// A client frame without the mask bit (RFC 6455 §5.1).
    UnmaskedFrame,
    /// A 64-bit payload length with the most significant bit set.
    LengthOverflow,
    /// A control frame with FIN clear.
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// A continuation frame with no message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is in progress.
    ExpectedContinuation,
    /// A text message or close reason that is not valid UTF-8.
    InvalidUtf8,
    /// A message larger than the configured maximum.
    MessageTooBig { limit: u64 },
    /// A close frame with a one-byte payload.
    InvalidClosePayload,
    /// A close frame carrying a code that may not appear on the wire.
    InvalidCloseCode(u16),
    /// Compressed data that does not inflate (permessage-deflate), zlib's
    /// reason attached.
    InvalidCompressedData(&'static str),
    /// Not the peer's fault: the decompressor failed on the server's side
    /// (allocation failure or a zlib-rs bug), zlib's reason attached.
    DecompressorFailed(&'static str),
}

impl ProtocolError {
    /// The close code to send when failing the connection for this error.
    pub fn close_code(&self) -> u16 {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData(_) => CLOSE_INVALID_PAYLOAD,
            Self::MessageTooBig { .. } => CLOSE_MESSAGE_TOO_BIG,
            Self::DecompressorFailed(_) => INTERNAL_ERROR,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedBits => f.write_str("reserved bits set without a negotiated extension"),
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::UnmaskedFrame => f.write_str("client frame is not masked"),
            Self::LengthOverflow => f.write_str("64-bit payload length has its top bit set"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::ControlFrameTooLong => f.write_str("control frame payload longer than 125 bytes"),
            Self::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            Self::ExpectedContinuation => {
                f.write_str("new data frame while a fragmented message is in progress")
            }
            Self::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            Self::MessageTooBig { limit } => write!(f, "message larger than {limit} bytes"),
            Self::InvalidClosePayload => f.write_str("close frame payload of one byte"),
            Self::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            Self::InvalidCompressedData(reason) => write!(f, "invalid compressed data: {reason}"),
            Self::DecompressorFailed(reason) => write!(f, "decompressor failed: {reason}"),
        }
    }
}

impl std::error::Error for ProtocolError {}
