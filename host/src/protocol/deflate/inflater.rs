//! Decompressing incoming messages as their frames arrive (RFC 7692 §7.2.2).

use std::fmt;

use zlib_rs::{Inflate, InflateFlush, Status};

use super::negotiate::Negotiated;
use super::pool::{self, OutputBuffer};
use super::{InflateError, SYNC_FLUSH_TAIL};

/// One connection's decompressor.
///
/// Feed each compressed frame's (unmasked) payload to [`Inflater::inflate`],
/// then call [`Inflater::finish_message`] after the frame with FIN. Output
/// reaches the sink in chunks of at most 16 KiB as it is produced; the sink
/// counts the message size and returns an error past its limit, which stops
/// the work at once, so a decompression bomb costs memory and CPU bounded by
/// that limit rather than by its inflated size.
///
/// zlib state is created on the first compressed message. With client
/// context takeover it stays with the connection; without, it is borrowed
/// from a per-thread pool from a message's first frame to its last.
///
/// The negotiated client window needs no setting here: the decompressor
/// always keeps 32 KiB of history, which reads any smaller window.
///
/// A peer that ends its DEFLATE stream inside a message (a block with
/// BFINAL set, §7.2.3.4 allows it) gets the rest of that message ignored
/// and a fresh stream for the next one; messages that then refer back
/// past that point fail as invalid data.
pub struct Inflater {
    context_takeover: bool,
    state: Option<Box<Inflate>>,
    message: Progress,
}

/// Where the current message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    /// No compressed byte yet: an RSV1 message with an empty payload is an
    /// empty message, and the DEFLATE stream is left as it is.
    NotStarted,
    Inflating,
    /// The peer ended its DEFLATE stream (BFINAL) in this message.
    StreamEnded,
}

/// A sink for inflated bytes; its error aborts the message.
pub type Sink<'a, E> = dyn FnMut(&[u8]) -> Result<(), E> + 'a;

impl fmt::Debug for Inflater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflater")
            .field("context_takeover", &self.context_takeover)
            .field("holds_state", &self.state.is_some())
            .field("message", &self.message)
            .finish()
    }
}

impl Inflater {
    pub fn new(negotiated: &Negotiated) -> Self {
        Self {
            context_takeover: !negotiated.client_no_context_takeover,
            state: None,
            message: Progress::NotStarted,
        }
    }

    /// Inflates the next part of the current message's compressed payload,
    /// passing the output to `sink`. After an error the message is lost;
    /// the connection should close (see [`InflateError::close_code`]).
    pub fn inflate<E>(
        &mut self,
        input: &[u8],
        sink: &mut Sink<'_, E>,
    ) -> Result<(), InflateError<E>> {
        if input.is_empty() || self.message == Progress::StreamEnded {
            return Ok(());
        }
        self.message = Progress::Inflating;
        let state = self.state.get_or_insert_with(pool::take_inflate);
        match inflate_into(state, input, sink) {
            Ok(stream_ended) => {
                if stream_ended {
                    self.message = Progress::StreamEnded;
                }
                Ok(())
            }
            Err(error) => {
                // Never reuse a decompressor left mid-message.
                self.state = None;
                self.message = Progress::NotStarted;
                Err(error)
            }
        }
    }

    /// Ends the current message: inflates the 00 00 ff ff that the sender
    /// removed, then keeps or releases the state for the next message.
    pub fn finish_message<E>(&mut self, sink: &mut Sink<'_, E>) -> Result<(), InflateError<E>> {
        if self.message == Progress::NotStarted {
            return Ok(());
        }
        self.inflate(&SYNC_FLUSH_TAIL, sink)?;
        let stream_ended = self.message == Progress::StreamEnded;
        self.message = Progress::NotStarted;
        match self.state.take() {
            Some(state) if !self.context_takeover => pool::give_inflate(state),
            Some(mut state) => {
                if stream_ended {
                    state.reset(false);
                }
                self.state = Some(state);
            }
            None => {}
        }
        Ok(())
    }

    #[cfg(test)]
    pub(super) fn holds_state(&self) -> bool {
        self.state.is_some()
    }
}

/// Inflates all of `input` into `sink`; `Ok(true)` when the DEFLATE stream
/// ended (BFINAL), after which the rest of `input` is not looked at.
fn inflate_into<E>(
    state: &mut Inflate,
    mut input: &[u8],
    sink: &mut Sink<'_, E>,
) -> Result<bool, InflateError<E>> {
    let mut buffer = OutputBuffer::take();
    loop {
        let (read_before, written_before) = (state.total_in(), state.total_out());
        let status = state.decompress(input, &mut buffer, InflateFlush::NoFlush);
        let read = usize::try_from(state.total_in() - read_before).unwrap_or(input.len());
        let written = usize::try_from(state.total_out() - written_before).unwrap_or(0);
        let status =
            status.map_err(|error| InflateError::from_zlib(error, state.error_message()))?;
        input = input.get(read..).unwrap_or_default();
        let output = buffer.get(..written).unwrap_or_default();
        if !output.is_empty() {
            sink(output).map_err(InflateError::Sink)?;
        }
        match status {
            Status::StreamEnd => return Ok(true),
            // A full buffer may hide more output even when input is used up.
            _ if written == buffer.len() => {}
            // Input used up with room to spare: all output is out.
            _ if input.is_empty() => return Ok(false),
            // Input left and room to spare, yet nothing read: zlib cannot
            // go on. It does not happen, but never spin on it.
            _ if read == 0 => return Err(InflateError::Stalled),
            _ => {}
        }
    }
}
