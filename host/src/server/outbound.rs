//! A connection's outbound queue: frames waiting to be written, kept as few
//! large chunks so one vectored write sends everything queued in a turn.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

use crate::protocol::frame::{OpCode, encode_server_header};

/// Frames smaller than this are copied into a shared chunk; bigger payloads
/// get a chunk of their own.
const COALESCE_LIMIT: usize = 16 * 1024;
/// Writes gather at most this many chunks.
const MAX_IOVECS: usize = 64;

/// Bytes ready to be written.
#[derive(Debug)]
pub(crate) enum Chunk {
    Owned(Vec<u8>),
    /// A payload shared by several connections (broadcast), never copied.
    Shared(Bytes),
}

impl Chunk {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::Owned(v) => v,
            Self::Shared(b) => b,
        }
    }
}

/// Frames queued by senders; the connection's task moves them into its
/// [`WriteList`] and writes them.
#[derive(Debug, Default)]
pub(crate) struct OutboundQueue {
    chunks: VecDeque<Chunk>,
    /// Where small frames are gathered before joining `chunks`.
    tail: Vec<u8>,
    /// Bytes queued here or in the writer's list and not yet written.
    queued: usize,
    /// Data messages whose last frame was queued since the writer last
    /// took the chunks (for the server's counters).
    messages: u64,
}

impl OutboundQueue {
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Whether chunks wait to be taken by the writer.
    pub fn has_chunks(&self) -> bool {
        !self.chunks.is_empty() || !self.tail.is_empty()
    }

    /// Queues one data message (or one part of a MessageLength message),
    /// split into frames of at most `max_frame` payload bytes.
    pub fn push_data(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        ends_message: bool,
        max_frame: usize,
    ) {
        let mut pieces = payload.chunks(max_frame.max(1)).peekable();
        if pieces.peek().is_none() {
            self.push_frame(ends_message, opcode, &[]);
            return;
        }
        let mut opcode = opcode;
        while let Some(piece) = pieces.next() {
            let fin = ends_message && pieces.peek().is_none();
            self.push_frame(fin, opcode, piece);
            opcode = OpCode::Continuation;
        }
    }

    /// Queues one frame, copying its payload.
    pub fn push_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        let (header, header_len) = encode_server_header(fin, false, opcode, payload.len());
        let total = header_len + payload.len();
        let tail = self.tail_with_room(total);
        tail.extend_from_slice(&header[..header_len]);
        tail.extend_from_slice(payload);
        self.queued += total;
        self.count_message(fin, opcode);
    }

    /// Queues one unfragmented frame whose payload is shared, not copied.
    pub fn push_shared_frame(&mut self, opcode: OpCode, payload: Bytes) {
        if payload.len() < COALESCE_LIMIT {
            return self.push_frame(true, opcode, &payload);
        }
        let (header, header_len) = encode_server_header(true, false, opcode, payload.len());
        self.tail_with_room(header_len)
            .extend_from_slice(&header[..header_len]);
        self.seal_tail();
        self.queued += header_len + payload.len();
        self.count_message(true, opcode);
        self.chunks.push_back(Chunk::Shared(payload));
    }

    /// Counts a data message whose last frame was just queued.
    fn count_message(&mut self, fin: bool, opcode: OpCode) {
        if fin && !opcode.is_control() {
            self.messages += 1;
        }
    }

    /// The gathering chunk, started afresh when `need` more bytes would
    /// overflow it.
    fn tail_with_room(&mut self, need: usize) -> &mut Vec<u8> {
        if self.tail.len() + need > COALESCE_LIMIT.max(self.tail.capacity()) {
            self.seal_tail();
        }
        if self.tail.capacity() == 0 {
            self.tail
                .reserve_exact(need.max(COALESCE_LIMIT.min(need.max(256) * 4)));
        }
        &mut self.tail
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks
                .push_back(Chunk::Owned(std::mem::take(&mut self.tail)));
        }
    }

    /// Hands every queued chunk to the writer; returns how many data
    /// messages were completed in them.
    pub fn move_to(&mut self, list: &mut WriteList) -> u64 {
        self.seal_tail();
        if list.chunks.is_empty() {
            std::mem::swap(&mut list.chunks, &mut self.chunks);
        } else {
            list.chunks.append(&mut self.chunks);
        }
        std::mem::take(&mut self.messages)
    }

    /// Accounts for `n` bytes written to the socket.
    pub fn written(&mut self, n: usize) {
        self.queued = self.queued.saturating_sub(n);
    }
}

/// The chunks a connection's task is writing, owned by that task so writes
/// happen without holding the queue's lock.
#[derive(Debug, Default)]
pub(crate) struct WriteList {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk already written.
    offset: usize,
}

impl WriteList {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Fills `slices` with what to write next; returns how many.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_IOVECS]) -> usize {
        let mut n = 0;
        for (i, chunk) in self.chunks.iter().take(MAX_IOVECS).enumerate() {
            let bytes = chunk.as_slice();
            slices[i] = IoSlice::new(if i == 0 { &bytes[self.offset..] } else { bytes });
            n += 1;
        }
        n
    }

    /// Drops what `n` written bytes covered.
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                return;
            };
            let left = front.as_slice().len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            self.chunks.pop_front();
        }
    }

    /// Returns the list to the empty state, freeing its storage when large.
    pub fn release_if_idle(&mut self) {
        if self.chunks.is_empty() && self.chunks.capacity() > 8 {
            self.chunks = VecDeque::new();
        }
    }
}

/// Empty slices to be filled by [`WriteList::io_slices`].
pub(crate) fn empty_slices<'a>() -> [IoSlice<'a>; MAX_IOVECS] {
    [IoSlice::new(&[]); MAX_IOVECS]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(q: &mut OutboundQueue) -> Vec<u8> {
        let mut list = WriteList::default();
        q.move_to(&mut list);
        let mut out = Vec::new();
        while !list.is_empty() {
            let mut slices = empty_slices();
            let n = list.io_slices(&mut slices);
            // Write in awkward 7-byte steps to exercise advance().
            let flat: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
            let step = flat.len().min(7);
            out.extend_from_slice(&flat[..step]);
            list.advance(step);
            q.written(step);
        }
        out
    }

    #[test]
    fn small_frames_share_one_chunk() {
        let mut q = OutboundQueue::default();
        for _ in 0..10 {
            q.push_frame(true, OpCode::Text, b"hello");
        }
        assert!(q.chunks.is_empty());
        assert_eq!((q.tail.len(), q.queued()), (70, 70));
        let bytes = written(&mut q);
        assert_eq!(bytes.len(), 70);
        assert_eq!(&bytes[..7], &[0x81, 5, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(q.queued(), 0);
    }

    #[test]
    fn messages_fragment_at_max_frame() {
        let mut q = OutboundQueue::default();
        q.push_data(OpCode::Binary, &[9u8; 10], true, 4);
        let bytes = written(&mut q);
        assert_eq!(
            bytes,
            [
                0x02, 4, 9, 9, 9, 9, // first fragment
                0x00, 4, 9, 9, 9, 9, // continuation
                0x80, 2, 9, 9, // final continuation
            ]
        );
    }

    #[test]
    fn an_open_message_part_leaves_fin_clear() {
        let mut q = OutboundQueue::default();
        q.push_data(OpCode::Text, b"ab", false, 100);
        q.push_data(OpCode::Continuation, b"", true, 100);
        assert_eq!(written(&mut q), [0x01, 2, b'a', b'b', 0x80, 0]);
    }

    #[test]
    fn the_writer_learns_how_many_messages_it_took() {
        let mut q = OutboundQueue::default();
        q.push_data(OpCode::Binary, &[1u8; 10], true, 4);
        q.push_data(OpCode::Text, b"part", false, 100);
        q.push_frame(true, OpCode::Ping, b"");
        q.push_shared_frame(OpCode::Binary, Bytes::from(vec![0u8; COALESCE_LIMIT]));
        let mut list = WriteList::default();
        // The fragmented message and the shared one; not the open part or
        // the ping.
        assert_eq!(q.move_to(&mut list), 2);
        q.push_data(OpCode::Continuation, b"", true, 100);
        assert_eq!(q.move_to(&mut list), 1);
        assert_eq!(q.move_to(&mut list), 0);
    }

    #[test]
    fn large_shared_payloads_are_not_copied() {
        let mut q = OutboundQueue::default();
        let payload = Bytes::from(vec![1u8; 100_000]);
        q.push_shared_frame(OpCode::Binary, payload.clone());
        assert!(
            matches!(q.chunks.back(), Some(Chunk::Shared(b)) if b.as_ptr() == payload.as_ptr())
        );
        let bytes = written(&mut q);
        assert_eq!(bytes.len(), 100_010);
        assert_eq!(&bytes[..2], &[0x82, 127]);
    }
}
