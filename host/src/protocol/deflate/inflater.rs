//! Decompressing incoming messages as their frames arrive (RFC 7692 §7.2.2).

use std::fmt;
use std::ops::ControlFlow;

use zlib_rs::{Inflate, InflateFlush, Status};

use super::negotiate::Negotiated;
use super::pool::{self, OutputBuffer};
use super::{InflateError, SYNC_FLUSH_TAIL};

/// One connection's decompressor.
///
/// Feed each compressed frame's (unmasked) payload to [`Inflater::inflate`]
/// as it arrives, saying with `end` when the bytes given are the last of
/// the message. Output reaches the sink in pieces of at most 16 KiB as it
/// is produced, the final piece of each message flagged as such. The sink
/// counts the message size and returns an error past its limit, which stops
/// the work at once, so a decompression bomb costs memory and CPU bounded
/// by that limit rather than by its inflated size. The sink may also ask
/// to pause: the call returns how much input it used, and a later call
/// with the rest (or with no input) carries on where it stopped.
///
/// zlib state is created on the first compressed message. With client
/// context takeover it stays with the connection; without, it is borrowed
/// from a per-thread pool from a message's first byte to its last.
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
    message: Message,
}

/// Where the current message is.
#[derive(Debug, Default)]
struct Message {
    progress: Progress,
    /// A byte inflated ahead to learn whether a full piece was the last;
    /// it starts the next piece.
    peeked: Option<u8>,
    /// How much of the 4-byte sync-flush tail has gone in.
    tail_fed: u8,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Progress {
    /// No compressed byte yet: an RSV1 message with an empty payload is an
    /// empty message, and the DEFLATE stream is left as it is.
    #[default]
    NotStarted,
    Inflating,
    /// The peer ended its DEFLATE stream (BFINAL) in this message.
    StreamEnded,
}

/// How a call to [`Inflater::inflate`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inflated {
    /// All the input is used and its output handed out; when the input
    /// ended the message, the sink has had its last piece.
    Done,
    /// The sink asked to pause before all was handed out. `consumed` bytes
    /// of the input are used; call again with the rest, even if empty.
    Paused { consumed: usize },
}

/// A sink for inflated bytes: each piece, and whether it is the last of
/// its message. `Break` pauses the inflater; an error aborts the message.
pub type Sink<'a, E> = dyn FnMut(&[u8], bool) -> Result<ControlFlow<()>, E> + 'a;

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
            message: Message::default(),
        }
    }

    /// Inflates the next part of the current message's compressed payload,
    /// passing the output to `sink`; `end` says `input` holds the message's
    /// last bytes (it may be empty). After an error the message is lost and
    /// the connection should close.
    pub fn inflate<E>(
        &mut self,
        input: &[u8],
        end: bool,
        sink: &mut Sink<'_, E>,
    ) -> Result<Inflated, InflateError<E>> {
        if self.message.progress == Progress::NotStarted {
            if input.is_empty() {
                if end {
                    // Nothing follows the last piece: a pause changes nothing.
                    let _ = sink(&[], true).map_err(InflateError::Sink)?;
                }
                return Ok(Inflated::Done);
            }
            self.message.progress = Progress::Inflating;
        }
        let state = self.state.get_or_insert_with(pool::take_inflate);
        match inflate_into(state, &mut self.message, input, end, sink) {
            Ok(Inflated::Done) if end => {
                self.finish_message();
                Ok(Inflated::Done)
            }
            Ok(inflated) => Ok(inflated),
            Err(error) => {
                // Never reuse a decompressor left mid-message.
                self.state = None;
                self.message = Message::default();
                Err(error)
            }
        }
    }

    /// Keeps or releases the state once a message is complete.
    fn finish_message(&mut self) {
        let stream_ended = self.message.progress == Progress::StreamEnded;
        self.message = Message::default();
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
    }

    /// Between messages with no decompression context: dropping it loses
    /// nothing.
    pub fn is_at_rest(&self) -> bool {
        self.state.is_none() && self.message.progress == Progress::NotStarted
    }

    #[cfg(test)]
    pub(super) fn holds_state(&self) -> bool {
        self.state.is_some()
    }
}

/// The input of one call: the caller's bytes, then, when they end the
/// message, the 00 00 ff ff the sender removed (unless the stream ended).
struct Input<'a> {
    bytes: &'a [u8],
    read: usize,
    end: bool,
}

impl<'a> Input<'a> {
    fn next(&self, message: &Message) -> &'a [u8] {
        if self.read < self.bytes.len() {
            &self.bytes[self.read..]
        } else if self.end && message.progress != Progress::StreamEnded {
            &SYNC_FLUSH_TAIL[usize::from(message.tail_fed).min(SYNC_FLUSH_TAIL.len())..]
        } else {
            &[]
        }
    }

    fn advance(&mut self, message: &mut Message, n: usize) {
        if self.read < self.bytes.len() {
            self.read += n;
        } else {
            // At most the 4 bytes of the tail.
            message.tail_fed = message.tail_fed.saturating_add(n as u8);
        }
    }

    /// A stream that ended (BFINAL) takes nothing more of this message.
    fn skip_rest(&mut self) {
        self.read = self.bytes.len();
    }
}

/// Inflates `input` into `sink` piece by piece; see [`Inflater::inflate`].
fn inflate_into<E>(
    state: &mut Inflate,
    message: &mut Message,
    input: &[u8],
    end: bool,
    sink: &mut Sink<'_, E>,
) -> Result<Inflated, InflateError<E>> {
    let mut input = Input {
        bytes: input,
        read: 0,
        end,
    };
    let mut buffer = OutputBuffer::take();
    loop {
        let mut filled = 0;
        if let Some(byte) = message.peeked.take() {
            buffer[0] = byte;
            filled = 1;
        }
        filled += fill(state, message, &mut input, &mut buffer[filled..])?;
        // A full piece may hide more output even with all input used up:
        // inflate one byte ahead to know whether this piece is the last.
        if filled == buffer.len() {
            let mut ahead = [0u8];
            if fill(state, message, &mut input, &mut ahead)? == 1 {
                message.peeked = Some(ahead[0]);
            }
        }
        let more = message.peeked.is_some();
        let last = end && !more;
        if filled > 0 || last {
            let flow = sink(&buffer[..filled], last).map_err(InflateError::Sink)?;
            if flow.is_break() && more {
                return Ok(Inflated::Paused {
                    consumed: input.read,
                });
            }
        }
        if !more {
            return Ok(Inflated::Done);
        }
    }
}

/// Inflates into `out` until it is full or the input (tail included) is
/// used up with nothing more to write; returns the bytes written.
fn fill<E>(
    state: &mut Inflate,
    message: &mut Message,
    input: &mut Input<'_>,
    out: &mut [u8],
) -> Result<usize, InflateError<E>> {
    let mut filled = 0;
    while filled < out.len() && message.progress != Progress::StreamEnded {
        let source = input.next(message);
        let (read_before, written_before) = (state.total_in(), state.total_out());
        let status = state.decompress(source, &mut out[filled..], InflateFlush::NoFlush);
        let read = usize::try_from(state.total_in() - read_before).unwrap_or(source.len());
        let written = usize::try_from(state.total_out() - written_before).unwrap_or(0);
        let status =
            status.map_err(|error| InflateError::from_zlib(error, state.error_message()))?;
        input.advance(message, read.min(source.len()));
        filled += written.min(out.len() - filled);
        if status == Status::StreamEnd {
            message.progress = Progress::StreamEnded;
            input.skip_rest();
        } else if read == 0 && written == 0 {
            if source.is_empty() {
                // All input used and nothing held back: done for now.
                break;
            }
            // Input left and room to spare, yet nothing read: zlib cannot
            // go on. It does not happen, but never spin on it.
            return Err(InflateError::Stalled);
        }
    }
    Ok(filled)
}
