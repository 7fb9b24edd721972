//! permessage-deflate (RFC 7692): negotiation, and compression and
//! decompression of message payloads. Pure: no I/O, no async.
//!
//! How the pieces fit a connection:
//! 1. At the handshake, [`negotiate`] reads the request's
//!    `Sec-WebSocket-Extensions` values and returns the [`Agreement`]: the
//!    [`Negotiated`] parameters and the response header value.
//! 2. Sending: the server compresses data messages of at least
//!    [`DeflateSettings::threshold`] bytes with [`Deflater::compress`] (or
//!    [`Deflater::compress_fragment`] part by part) and sets RSV1 on the
//!    message's first frame only. Control frames are never compressed.
//! 3. Receiving: for a message whose first frame has RSV1, pass each
//!    frame's payload to [`Inflater::inflate`], with `end` on the final
//!    bytes. The sink counts the output and refuses past the message limit
//!    (close 1009); invalid compressed data is
//!    [`InflateError::InvalidData`] (close 1007).
//!
//! # Memory per connection
//!
//! zlib state is created lazily: a connection that has not compressed or
//! inflated a message holds none, only the [`Deflater`] (16 bytes) and the
//! [`Inflater`] (16 bytes). After one message each way, measured by the
//! `deflate` bench (`cargo bench --bench deflate`, counting allocator):
//!
//! | mode | heap held between messages | 10k connections |
//! |---|---|---|
//! | [`MemoryMode::Shared`] (default) | 0 B | 0 MiB |
//! | [`MemoryMode::Dedicated`], window 15, memLevel 8 | 418 KiB | 4.0 GiB |
//! | [`MemoryMode::Dedicated`], window 12, memLevel 5 | 208 KiB | 2.0 GiB |
//! | [`MemoryMode::Dedicated`], window 9, memLevel 1 | 181 KiB | 1.7 GiB |
//!
//! In `Shared` mode each message borrows state from per-thread pools that
//! keep at most 4 idle compressors, 4 decompressors and 4 16 KiB output
//! buffers per thread. zlib-rs's compressor has a fixed 128 KiB hash table,
//! plus 4 bytes per window byte (2^bits) and 7 bytes per symbol buffer
//! entry (2^(memLevel+6)); its decompressor always takes about 43 KiB (a
//! 32 KiB window whatever the window bits). In `Dedicated` mode a direction
//! negotiated without context takeover holds nothing either.
//!
//! In the real server (RSS of the `wsserver` process per idle connection,
//! after one 2 KB message each way; `cargo bench --bench deflate_server`):
//! deflate off 7.8 KiB, `Shared` 7.8 KiB (no difference: 76 MiB per 10k
//! connections either way), `Dedicated` 320 KiB (3.1 GiB per 10k; less
//! than the heap figure because zlib-rs does not touch all it allocates).
//!
//! # Speed (same bench, one core of this 2-core machine, noisy)
//!
//! Level 1 (the default) compresses 2 KB JSON messages at ~190-300 MB/s to
//! ~44-70% of their size (with/without context takeover); level 2 at
//! ~110-125 MB/s to 35-51%; level 6 at ~65-85 MB/s to 33-51%. Inflating
//! runs at ~400-600 MB/s. Without context takeover each compressed message
//! pays ~3-4 µs to reset the compressor (clearing the hash table), which is
//! one reason for the 1 KiB default threshold. Level 1 uses fixed Huffman
//! codes and so grows incompressible data by ~5%; level 2 and up store it.
//!
//! # Config keys
//!
//! [`DeflateSettings::set`] takes the seed's `EnablePermessageDeflate` and
//! this server's `DeflateThreshold`, `DeflateCompressionLevel`,
//! `DeflateMemLevel`, `DeflateServerMaxWindowBits`,
//! `DeflateClientMaxWindowBits`, `DeflateServerNoContextTakeover`,
//! `DeflateClientNoContextTakeover` and `DeflateMemoryMode`.

mod deflater;
mod header;
mod inflater;
mod negotiate;
mod pool;
mod settings;
#[cfg(test)]
mod tests;

use std::fmt;

pub use deflater::Deflater;
pub use inflater::{Inflated, Inflater, Sink};
pub use negotiate::{Agreement, EXTENSION_NAME, Negotiated, negotiate};
pub use settings::{
    CompressionLevel, DeflateSettings, MemLevel, MemoryMode, SettingError, WindowBits,
};

/// The empty stored block a sync flush ends with: removed by the sender
/// from each message, appended again by the receiver (§7.2.1, §7.2.2).
const SYNC_FLUSH_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Why compressing a message failed. Each is a fault on the server's side
/// (allocation failure or a zlib-rs bug), never caused by the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeflateError {
    /// zlib-rs reported an error.
    Zlib(&'static str),
    /// zlib-rs stopped consuming input.
    Stalled,
    /// The flushed output did not end with the sync-flush marker.
    Unflushed,
}

impl fmt::Display for DeflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Zlib(reason) => write!(f, "deflate failed: {reason}"),
            Self::Stalled => f.write_str("deflate made no progress"),
            Self::Unflushed => f.write_str("deflate output did not end with a sync flush"),
        }
    }
}

impl std::error::Error for DeflateError {}

/// Why inflating a message stopped. `E` is the sink's own error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError<E> {
    /// The peer sent bytes that are not valid DEFLATE data (zlib's reason).
    InvalidData(&'static str),
    /// zlib-rs failed on its side: allocation failure or a bug.
    Zlib(&'static str),
    /// zlib-rs stopped consuming input.
    Stalled,
    /// The sink refused the output, e.g. the message went past its limit.
    Sink(E),
}

impl<E> InflateError<E> {
    fn from_zlib(error: zlib_rs::InflateError, detail: Option<&'static str>) -> Self {
        let reason = detail.unwrap_or(error.as_str());
        match error {
            // A raw stream never asks for a dictionary unless it is garbage.
            zlib_rs::InflateError::DataError | zlib_rs::InflateError::NeedDict { .. } => {
                Self::InvalidData(reason)
            }
            zlib_rs::InflateError::StreamError | zlib_rs::InflateError::MemError => {
                Self::Zlib(reason)
            }
        }
    }
}

impl<E: fmt::Display> fmt::Display for InflateError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidData(reason) => write!(f, "invalid compressed data: {reason}"),
            Self::Zlib(reason) => write!(f, "inflate failed: {reason}"),
            Self::Stalled => f.write_str("inflate made no progress"),
            Self::Sink(error) => error.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for InflateError<E> {}
