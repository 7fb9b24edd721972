//! The receiving side of a generator connection: one non-blocking read,
//! decoded, with every whole message accounted in the thread's tally.

use std::io;

use tokio::net::TcpStream;

use super::LoadError;
use super::tally::Tally;
use super::workers::Window;
use crate::client::{Event, FrameDecoder, now_stamp};

/// Per-thread read buffer: an idle connection holds none of its own.
pub const SCRATCH_LEN: usize = 64 * 1024;

pub struct Inbox {
    decoder: FrameDecoder,
    expected_len: u64,
}

impl Inbox {
    /// Expects every message to carry `expected_len` payload bytes.
    pub fn new(expected_len: usize) -> Self {
        Self {
            decoder: FrameDecoder::default(),
            expected_len: expected_len as u64,
        }
    }

    /// Takes bytes that arrived before the stream was handed over.
    pub fn preload(
        &mut self,
        bytes: &[u8],
        window: &Window,
        tally: &mut Tally,
    ) -> Result<usize, LoadError> {
        self.account(bytes, window, tally)
    }

    /// Reads once without waiting. Returns the number of whole messages that
    /// arrived, or `None` when the socket had nothing after all.
    pub fn try_read(
        &mut self,
        stream: &TcpStream,
        scratch: &mut [u8],
        window: &Window,
        tally: &mut Tally,
    ) -> Result<Option<usize>, LoadError> {
        match stream.try_read(scratch) {
            Ok(0) => Err(LoadError::ServerClosed),
            Ok(read) => self.account(&scratch[..read], window, tally).map(Some),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn account(
        &mut self,
        bytes: &[u8],
        window: &Window,
        tally: &mut Tally,
    ) -> Result<usize, LoadError> {
        // One clock read per read call: every message in it arrived together.
        let now = now_stamp();
        let counting = window.contains(now);
        let (mut messages, mut wrong_len, mut closed) = (0, None, false);
        self.decoder.feed(bytes, |event| match event {
            Event::Message { len, stamp, .. } => {
                messages += 1;
                if len != self.expected_len {
                    wrong_len = Some(len);
                }
                if counting {
                    tally.record(len, stamp.map(|sent| now.saturating_sub(sent)));
                }
            }
            Event::Close => closed = true,
            Event::Ping(_) | Event::Pong => {}
        })?;
        if let Some(got) = wrong_len {
            return Err(LoadError::WrongLength {
                expected: self.expected_len,
                got,
            });
        }
        if closed {
            return Err(LoadError::ServerClosed);
        }
        Ok(messages)
    }
}
