//! Compressing outgoing messages (RFC 7692 §7.2.1).

use std::fmt;

use zlib_rs::{Deflate, DeflateFlush, Status};

use super::negotiate::Negotiated;
use super::pool::{self, DeflateParams};
use super::settings::DeflateSettings;
use super::{DeflateError, SYNC_FLUSH_TAIL};

/// Output grows by at most this much per zlib call, so a large message
/// that compresses well does not reserve its full length up front.
const MAX_OUTPUT_STEP: usize = 64 * 1024;

/// One connection's compressor.
///
/// zlib state is created on the first compressed message. With context
/// takeover it then stays with the connection; without, it is borrowed
/// from a per-thread pool for one message at a time, so an idle connection
/// holds none.
///
/// Window bits: zlib cannot produce raw deflate with an 8-bit window. When
/// 8 is negotiated this compresses with 9, which RFC 7692 permits because
/// zlib never emits a distance above its window minus 262 bytes of
/// lookahead: 250 bytes with 9 bits, within the 256 bytes the peer keeps
/// (the `window_bits_8_output_fits_a_256_byte_window` test checks this).
pub struct Deflater {
    params: DeflateParams,
    context_takeover: bool,
    state: Option<Box<Deflate>>,
}

impl fmt::Debug for Deflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deflater")
            .field("params", &self.params)
            .field("context_takeover", &self.context_takeover)
            .field("holds_state", &self.state.is_some())
            .finish()
    }
}

impl Deflater {
    pub fn new(negotiated: &Negotiated, settings: &DeflateSettings) -> Self {
        Self {
            params: DeflateParams {
                level: settings.compression_level.get(),
                window_bits: negotiated.server_max_window_bits.get().max(9),
                mem_level: settings.mem_level.get(),
            },
            context_takeover: !negotiated.server_no_context_takeover,
            state: None,
        }
    }

    /// Compresses a whole message payload, appending it to `out`: the bytes
    /// of a frame with RSV1 set (or of several, split anywhere).
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        self.compress_fragment(payload, true, out)
    }

    /// Compresses one part of a message sent in fragments, appending the
    /// payload for that part's frame to `out`. Each part is flushed so it
    /// can leave at once; `last` ends the message. Only the first frame of
    /// the message carries RSV1.
    pub fn compress_fragment(
        &mut self,
        part: &[u8],
        last: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), DeflateError> {
        let params = self.params;
        let state = self.state.get_or_insert_with(|| pool::take_deflate(params));
        let start = out.len();
        let result = flush_into(state, part, out);
        if result.is_err() {
            // Never reuse a compressor left mid-way.
            self.state = None;
            out.truncate(start);
            return result;
        }
        if last {
            // §7.2.1: drop the empty stored block's 00 00 ff ff.
            if out[start..].ends_with(&SYNC_FLUSH_TAIL) {
                out.truncate(out.len() - SYNC_FLUSH_TAIL.len());
            } else if out.len() == start {
                // Nothing new to flush (an empty message right after another
                // flush): send the header of an empty stored block, whose
                // 00 00 ff ff the receiver appends (§7.2.3.6), rather than an
                // empty payload that some receivers cannot read.
                out.push(0x00);
            } else {
                self.state = None;
                out.truncate(start);
                return Err(DeflateError::Unflushed);
            }
            if !self.context_takeover
                && let Some(state) = self.state.take()
            {
                pool::give_deflate(params, state);
            }
        }
        Ok(())
    }

    /// Holds no compression context: dropping it loses nothing.
    pub fn is_at_rest(&self) -> bool {
        self.state.is_none()
    }

    #[cfg(test)]
    pub(super) fn holds_state(&self) -> bool {
        self.state.is_some()
    }
}

/// Compresses `input` with a sync flush, appending to `out` until zlib has
/// nothing more to write.
fn flush_into(
    state: &mut Deflate,
    mut input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DeflateError> {
    loop {
        // Room for the input at worst-case expansion, in bounded steps.
        let room = zlib_rs::compress_bound(input.len()).clamp(64, MAX_OUTPUT_STEP);
        let filled = out.len();
        // Zeroing the room costs far less than compressing into it, and
        // keeps this free of `unsafe` set_len.
        out.resize(filled + room, 0);
        let (read_before, written_before) = (state.total_in(), state.total_out());
        let status = state.compress(input, &mut out[filled..], DeflateFlush::SyncFlush);
        let read = usize::try_from(state.total_in() - read_before).unwrap_or(input.len());
        let written = usize::try_from(state.total_out() - written_before).unwrap_or(room);
        out.truncate(filled + written.min(room));
        input = input.get(read..).unwrap_or_default();
        match status {
            // zlib is done flushing once it stops short of the room it had.
            Ok(Status::Ok) if input.is_empty() && written < room => return Ok(()),
            Ok(Status::Ok) => {}
            // No progress possible: a flush right after a flush, no input.
            Ok(Status::BufError) if input.is_empty() => return Ok(()),
            Ok(Status::BufError | Status::StreamEnd) => return Err(DeflateError::Stalled),
            Err(error) => return Err(DeflateError::Zlib(error.as_str())),
        }
    }
}
