//! A connection's outbound queue: frames waiting to be written, kept as few
//! large chunks so one vectored write sends everything queued in a turn.
//!
//! With permessage-deflate, senders queue data messages uncompressed and
//! the connection's task compresses them ([`WriteList::deflate`]) after
//! taking them from the queue, outside the queue's lock: senders (a plugin
//! serving many connections from one thread) never pay for compression,
//! the work spreads over the runtime's threads, and the compressor belongs
//! to the task alone, so message order and context takeover need no lock.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::mem::MaybeUninit;

use bytes::Bytes;

use crate::protocol::deflate::{DeflateError, Deflater};
use crate::protocol::frame::{MAX_SERVER_HEADER, OpCode, push_server_header};
use crate::protocol::mask::MaskedPayload;

/// Frames smaller than this are copied into a shared chunk; bigger payloads
/// get a chunk of their own.
const COALESCE_LIMIT: usize = 16 * 1024;
/// Writes gather at most this many chunks.
const MAX_IOVECS: usize = 64;

/// Bytes ready to be written, or a message to compress first.
#[derive(Debug)]
pub(crate) enum Chunk {
    Owned(Vec<u8>),
    /// A payload shared by several connections (broadcast), never copied.
    Shared(Bytes),
    /// A data message, or one part of a message sent in parts, that the
    /// connection's task compresses before writing.
    Deflate(Uncompressed),
}

impl Chunk {
    /// The bytes to write; `None` for a message not compressed yet.
    fn bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Owned(v) => Some(v),
            Self::Shared(b) => Some(b),
            Self::Deflate(_) => None,
        }
    }

    /// The bytes this chunk counts for in the queue's total.
    fn queued_len(&self) -> usize {
        match self {
            Self::Owned(v) => v.len(),
            Self::Shared(b) => b.len(),
            Self::Deflate(message) => message.payload.len(),
        }
    }
}

/// A message (part) waiting for permessage-deflate.
#[derive(Debug)]
pub(crate) struct Uncompressed {
    /// Text or Binary on a message's first part, whose first frame gets
    /// RSV1; Continuation on later parts.
    opcode: OpCode,
    payload: Vec<u8>,
    ends_message: bool,
}

/// How [`WriteList::deflate`] changed the bytes waiting to be written.
#[derive(Debug, Default)]
pub(crate) struct Deflated {
    /// Bytes the queue counted for what was compressed or dropped.
    pub before: usize,
    /// Bytes of the frames that replaced them.
    pub after: usize,
    /// Compression failed: that message and all after it were dropped.
    pub error: Option<DeflateError>,
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
    #[inline]
    pub fn push_data(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        ends_message: bool,
        max_frame: usize,
    ) {
        self.push_frames(opcode, false, payload, ends_message, max_frame);
    }

    /// Queues one data message (or part) for the connection's task to
    /// compress; until then it counts as its uncompressed length.
    pub fn push_deflate(&mut self, opcode: OpCode, payload: &[u8], ends_message: bool) {
        self.seal_tail();
        self.queued += payload.len();
        self.chunks.push_back(Chunk::Deflate(Uncompressed {
            opcode,
            payload: payload.to_vec(),
            ends_message,
        }));
        self.count_message(ends_message, opcode);
    }

    /// Splits a payload into frames; `compressed` sets RSV1 on the first
    /// frame of a message (RFC 7692 §6.1), never on a continuation.
    #[inline]
    fn push_frames(
        &mut self,
        opcode: OpCode,
        compressed: bool,
        payload: &[u8],
        ends_message: bool,
        max_frame: usize,
    ) {
        let rsv1 = compressed && opcode != OpCode::Continuation;
        if payload.len() <= max_frame {
            // One frame (an empty message too), the common case.
            self.push_frame_bits(ends_message, rsv1, opcode, payload);
        } else {
            self.push_split(opcode, rsv1, payload, ends_message, max_frame);
        }
    }

    /// A payload larger than `max_frame`, in frames of that size.
    #[inline(never)]
    fn push_split(
        &mut self,
        opcode: OpCode,
        mut rsv1: bool,
        payload: &[u8],
        ends_message: bool,
        max_frame: usize,
    ) {
        let mut pieces = payload.chunks(max_frame.max(1)).peekable();
        let mut opcode = opcode;
        while let Some(piece) = pieces.next() {
            let fin = ends_message && pieces.peek().is_none();
            self.push_frame_bits(fin, rsv1, opcode, piece);
            opcode = OpCode::Continuation;
            rsv1 = false;
        }
    }

    /// Queues one frame, copying its payload.
    pub fn push_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        self.push_frame_bits(fin, false, opcode, payload);
    }

    /// Queues a whole message in one frame from a payload still masked,
    /// unmasked as it is copied.
    pub fn push_masked_message(&mut self, opcode: OpCode, payload: &MaskedPayload<'_>) {
        self.push_frame_with(true, false, opcode, payload.len(), |tail| {
            payload.extend_unmasked(tail)
        });
    }

    // Inlined: once per frame of every send.
    #[inline]
    fn push_frame_bits(&mut self, fin: bool, rsv1: bool, opcode: OpCode, payload: &[u8]) {
        self.push_frame_with(fin, rsv1, opcode, payload.len(), |tail| {
            extend_from_payload(tail, payload)
        });
    }

    /// Queues one frame of `len` payload bytes, which `payload` appends to
    /// the gathering chunk after the header.
    // Inlined: the callers' flags and opcode are constants, and a small
    // frame costs less than the call did (callgrind).
    #[inline(always)]
    fn push_frame_with(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        len: usize,
        payload: impl FnOnce(&mut Vec<u8>),
    ) {
        let tail = self.tail_with_room(MAX_SERVER_HEADER + len);
        let header_len = push_server_header(tail, fin, rsv1, opcode, len);
        payload(tail);
        self.queued += header_len + len;
        self.count_message(fin, opcode);
    }

    /// Queues one unfragmented frame whose payload is shared, not copied.
    pub fn push_shared_frame(&mut self, opcode: OpCode, payload: Bytes) {
        if payload.len() < COALESCE_LIMIT {
            return self.push_frame(true, opcode, &payload);
        }
        let tail = self.tail_with_room(MAX_SERVER_HEADER);
        let header_len = push_server_header(tail, true, false, opcode, payload.len());
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

    /// The gathering chunk, with room for `need` more bytes.
    #[inline]
    fn tail_with_room(&mut self, need: usize) -> &mut Vec<u8> {
        if self.tail.capacity() - self.tail.len() < need {
            self.make_room(need);
        }
        &mut self.tail
    }

    /// Grows the gathering chunk to fit `need` more bytes, or starts it
    /// afresh when they would take it past the coalescing limit.
    #[inline(never)]
    fn make_room(&mut self, need: usize) {
        if self.tail.len() + need > COALESCE_LIMIT.max(self.tail.capacity()) {
            self.seal_tail();
        }
        if self.tail.capacity() == 0 {
            self.tail = spare::take(need.max(COALESCE_LIMIT.min(need.max(256) * 4)));
        }
        self.tail.reserve(need);
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.chunks
                .push_back(Chunk::Owned(std::mem::take(&mut self.tail)));
        }
    }

    /// Closes the gathering chunk; returns the number of chunks, a place
    /// later chunks can be inserted at.
    pub fn seal(&mut self) -> usize {
        self.seal_tail();
        self.chunks.len()
    }

    /// Moves everything `other` holds into this queue, at chunk `at` (from
    /// [`seal`](Self::seal)) or at the end.
    pub fn insert_from(&mut self, at: Option<usize>, other: &mut OutboundQueue) {
        self.queued += std::mem::take(&mut other.queued);
        self.messages += std::mem::take(&mut other.messages);
        if !other.has_chunks() {
            return;
        }
        if at.is_none() && !self.has_chunks() {
            // Our empty list keeps its room unless there are chunks to
            // take: a turn's queue has none (it gathers into its tail), and
            // giving ours away would free it and grow a new one each round.
            if !other.chunks.is_empty() {
                std::mem::swap(&mut self.chunks, &mut other.chunks);
            }
            std::mem::swap(&mut self.tail, &mut other.tail);
            return;
        }
        other.seal_tail();
        let at = match at {
            Some(at) => at.min(self.chunks.len()),
            None => self.seal(),
        };
        let mut after = self.chunks.split_off(at);
        self.chunks.append(&mut other.chunks);
        self.chunks.append(&mut after);
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

    /// Accounts for messages the writer compressed: `before` bytes counted
    /// became `after` bytes of frames.
    pub fn recount(&mut self, deflated: &Deflated) {
        self.queued = self.queued.saturating_sub(deflated.before) + deflated.after;
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

    /// Compresses the messages waiting for it, in order, into frames of at
    /// most `max_frame` payload bytes (the split applies to the compressed
    /// bytes), RSV1 on each message's first frame.
    pub fn deflate(&mut self, deflater: &mut Deflater, max_frame: usize) -> Deflated {
        let mut deflated = Deflated::default();
        if !self.chunks.iter().any(|c| matches!(c, Chunk::Deflate(_))) {
            return deflated;
        }
        // Rebuilt in order; chunks already framed move over untouched (the
        // front one may be partly written).
        let mut framed = OutboundQueue::default();
        let mut compressed = Vec::new();
        let mut chunks = std::mem::take(&mut self.chunks).into_iter();
        for chunk in chunks.by_ref() {
            let Chunk::Deflate(message) = chunk else {
                framed.seal_tail();
                framed.chunks.push_back(chunk);
                continue;
            };
            deflated.before += message.payload.len();
            compressed.clear();
            if let Err(error) =
                deflater.compress_fragment(&message.payload, message.ends_message, &mut compressed)
            {
                deflated.error = Some(error);
                break;
            }
            framed.push_frames(
                message.opcode,
                true,
                &compressed,
                message.ends_message,
                max_frame,
            );
        }
        // After a failure nothing more can follow: the compressor's stream
        // is broken.
        deflated.before += chunks.map(|chunk| chunk.queued_len()).sum::<usize>();
        deflated.after = framed.queued;
        framed.seal_tail();
        self.chunks = framed.chunks;
        deflated
    }

    /// What to write next when it is one chunk (most writes): written
    /// without building a vector.
    pub fn only_chunk(&self) -> Option<&[u8]> {
        match self.chunks.len() {
            1 => Some(&self.chunks.front()?.bytes()?[self.offset..]),
            _ => None,
        }
    }

    /// Fills `slices` with what to write next; returns how many.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_IOVECS]) -> usize {
        let mut n = 0;
        let ready = self.chunks.iter().map_while(Chunk::bytes);
        for (i, bytes) in ready.take(MAX_IOVECS).enumerate() {
            slices[i] = IoSlice::new(if i == 0 { &bytes[self.offset..] } else { bytes });
            n += 1;
        }
        n
    }

    /// Drops what `n` written bytes covered.
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.chunks.front().and_then(Chunk::bytes) else {
                return;
            };
            let left = front.len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            if let Some(Chunk::Owned(written)) = self.chunks.pop_front() {
                spare::give(written);
            }
        }
    }

    /// Returns the list to the empty state, freeing its storage when large.
    pub fn release_if_idle(&mut self) {
        if self.chunks.is_empty() && self.chunks.capacity() > 8 {
            self.chunks = VecDeque::new();
        }
    }
}

/// Written chunks kept per thread for the next gathering chunks: a busy
/// connection's rounds (queue, write, queue again) then reuse a buffer,
/// already grown to their size, instead of a malloc, a realloc and a free
/// each. Several are kept because one plugin call can answer many
/// connections before any of them writes (unpipelined clients, fan-out):
/// with one spare, every reply but the first was a malloc and a free.
mod spare {
    use std::cell::RefCell;

    /// The largest buffer kept: a whole gathering chunk, so a pipelined
    /// load of 4 KiB messages reuses its chunks too.
    const KEEP: usize = super::COALESCE_LIMIT;
    /// A spare goes to a buffer asked for at least this fraction of its
    /// size: a small reply does not take a large buffer into the queue of
    /// a client that reads slowly.
    const KEEP_OVERSIZE: usize = 4;
    /// The most kept per thread, in bytes of capacity: a fixed cost per
    /// thread, whatever the number of connections.
    const KEEP_TOTAL: usize = 64 * 1024;

    struct Spares {
        buffers: Vec<Vec<u8>>,
        capacity: usize,
    }

    thread_local! {
        static SPARES: RefCell<Spares> = const {
            RefCell::new(Spares { buffers: Vec::new(), capacity: 0 })
        };
    }

    /// An empty buffer of at least `capacity` bytes.
    pub fn take(capacity: usize) -> Vec<u8> {
        let kept = SPARES.with_borrow_mut(|spares| {
            let spare = spares.buffers.last()?.capacity();
            if spare < capacity || spare > capacity.saturating_mul(KEEP_OVERSIZE) {
                return None;
            }
            let buffer = spares.buffers.pop()?;
            spares.capacity -= buffer.capacity();
            Some(buffer)
        });
        kept.unwrap_or_else(|| Vec::with_capacity(capacity))
    }

    /// Keeps `buffer` for [`take`] if it is small and there is room: a
    /// connection whose client reads slowly holds its gathering chunk, and
    /// a recycled one must not make that costlier than a few small
    /// messages' worth.
    pub fn give(mut buffer: Vec<u8>) {
        if buffer.capacity() > KEEP {
            return;
        }
        buffer.clear();
        SPARES.with_borrow_mut(|spares| {
            if spares.capacity + buffer.capacity() <= KEEP_TOTAL {
                spares.capacity += buffer.capacity();
                spares.buffers.push(buffer);
            }
        });
    }
}

/// Empty slices to be filled by [`WriteList::io_slices`].
pub(crate) fn empty_slices<'a>() -> [IoSlice<'a>; MAX_IOVECS] {
    [IoSlice::new(&[]); MAX_IOVECS]
}

/// Appends `payload` to `tail`. From 8 to 32 bytes it is copied in two
/// overlapping moves of a fixed size, inline: for a small payload the call
/// to memcpy, and the registers saved around it, cost more than the copy.
#[inline(always)]
fn extend_from_payload(tail: &mut Vec<u8>, payload: &[u8]) {
    let len = payload.len();
    if !(8..=32).contains(&len) {
        return tail.extend_from_slice(payload);
    }
    tail.reserve(len);
    let start = tail.len();
    let copy = &mut tail.spare_capacity_mut()[..len];
    let copied = if len >= 16 {
        copy_overlapping::<16>(copy, payload)
    } else {
        copy_overlapping::<8>(copy, payload)
    };
    if copied {
        // SAFETY: `copy_overlapping` wrote all `len` bytes past `start`.
        #[allow(unsafe_code)]
        unsafe {
            tail.set_len(start + len)
        };
    } else {
        tail.extend_from_slice(payload);
    }
}

/// Writes `payload`, of `N` to `2 * N` bytes, to `copy` of the same
/// length: its first `N` bytes and its last `N`, which overlap when it is
/// shorter than `2 * N`. False, writing nothing, for another length.
#[inline(always)]
fn copy_overlapping<const N: usize>(copy: &mut [MaybeUninit<u8>], payload: &[u8]) -> bool {
    let len = payload.len();
    let (Some(first), Some(last)) = (payload.first_chunk::<N>(), payload.last_chunk::<N>()) else {
        return false;
    };
    if copy.len() != len || len > 2 * N {
        return false;
    }
    copy[..N].write_copy_of_slice(first);
    copy[len - N..].write_copy_of_slice(last);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_appended_whole_whatever_its_length() {
        for len in 0..=40 {
            let payload: Vec<u8> = (0..len).map(|b| b as u8 ^ 0xa5).collect();
            let mut tail = b"head".to_vec();
            extend_from_payload(&mut tail, &payload);
            assert_eq!(tail[..4], *b"head", "length {len}");
            assert_eq!(tail[4..], payload[..], "length {len}");
        }
    }

    fn written(q: &mut OutboundQueue) -> Vec<u8> {
        let mut list = WriteList::default();
        q.move_to(&mut list);
        write_all(q, &mut list)
    }

    /// Writes the list out, accounting in `q`.
    fn write_all(q: &mut OutboundQueue, list: &mut WriteList) -> Vec<u8> {
        let mut out = Vec::new();
        while !list.is_empty() {
            let mut slices = empty_slices();
            let n = list.io_slices(&mut slices);
            // Write in awkward 7-byte steps to exercise advance().
            let flat: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
            assert!(!flat.is_empty(), "nothing writable in {list:?}");
            let step = flat.len().min(7);
            out.extend_from_slice(&flat[..step]);
            list.advance(step);
            q.written(step);
        }
        out
    }

    /// A written gathering chunk is reused by the next one, however large
    /// the chunk; a much smaller ask gets a buffer of its own.
    #[test]
    fn spare_chunks_go_to_asks_of_their_size() {
        let chunk = Vec::with_capacity(COALESCE_LIMIT);
        let at = chunk.as_ptr();
        spare::give(chunk);
        let small = spare::take(1024);
        assert_ne!(small.as_ptr(), at, "a 1 KiB ask took a 16 KiB spare");
        assert!(small.capacity() < COALESCE_LIMIT);
        let large = spare::take(COALESCE_LIMIT / 2);
        assert_eq!(large.as_ptr(), at, "the 16 KiB chunk was not kept");
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

    /// A write list of one chunk is written from where the last write
    /// stopped, without a vector; a shared payload makes a second chunk.
    #[test]
    fn one_chunk_is_written_whole_from_where_the_last_write_stopped() {
        let mut q = OutboundQueue::default();
        q.push_frame(true, OpCode::Text, b"hello");
        let mut list = WriteList::default();
        q.move_to(&mut list);
        let frame = [0x81, 5, b'h', b'e', b'l', b'l', b'o'];
        assert_eq!(list.only_chunk(), Some(&frame[..]));
        list.advance(3);
        assert_eq!(list.only_chunk(), Some(&b"ello"[..]));
        q.push_shared_frame(OpCode::Binary, Bytes::from(vec![7; COALESCE_LIMIT]));
        let mut two = WriteList::default();
        q.move_to(&mut two);
        assert_eq!(two.only_chunk(), None);
    }

    /// What the owner's turn queued goes where the queue stood when
    /// another sender came in, before that sender's frames.
    #[test]
    fn a_turn_inserts_before_later_senders() {
        let mut q = OutboundQueue::default();
        q.push_frame(true, OpCode::Text, b"a");
        let mark = q.seal();
        q.push_data(OpCode::Text, b"c", false, 100);
        q.push_data(OpCode::Continuation, b"d", true, 100);
        let mut turn = OutboundQueue::default();
        turn.push_frame(true, OpCode::Text, b"b");
        q.insert_from(Some(mark), &mut turn);
        let mut end = OutboundQueue::default();
        end.push_frame(true, OpCode::Text, b"e");
        q.insert_from(None, &mut end);
        assert_eq!(q.queued(), 15);
        assert_eq!(
            written(&mut q),
            [
                0x81, 1, b'a', 0x81, 1, b'b', 0x01, 1, b'c', 0x80, 1, b'd', 0x81, 1, b'e'
            ]
        );
        // Into an empty queue the turn's chunks move whole.
        let mut turn = OutboundQueue::default();
        turn.push_frame(true, OpCode::Binary, b"x");
        q.insert_from(None, &mut turn);
        assert_eq!((q.queued(), q.tail.len()), (3, 3));
        assert_eq!(turn.queued(), 0);
    }

    /// A turn's frames handed to a queue the writer has emptied leave the
    /// queue its chunk list (with the room the writer grew it to), so a
    /// busy connection's rounds do not free one list and grow another each.
    #[test]
    fn a_turn_leaves_an_empty_queue_its_chunk_list() {
        let mut q = OutboundQueue::default();
        q.chunks.reserve(8);
        let room = q.chunks.capacity();
        let mut turn = OutboundQueue::default();
        turn.push_frame(true, OpCode::Binary, b"x");
        q.insert_from(None, &mut turn);
        assert_eq!(q.chunks.capacity(), room);
        assert_eq!(written(&mut q), [0x82, 1, b'x']);
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
        q.push_deflate(OpCode::Text, b"to compress", true);
        let mut list = WriteList::default();
        // The fragmented, shared and to-be-compressed messages; not the
        // open part or the ping.
        assert_eq!(q.move_to(&mut list), 3);
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

    /// Server frames as (first byte, payload).
    fn frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while let [b0, b1, rest @ ..] = bytes {
            let (len, rest) = match b1 & 0x7F {
                126 => (u16::from_be_bytes([rest[0], rest[1]]) as usize, &rest[2..]),
                127 => (
                    u64::from_be_bytes(rest[..8].try_into().unwrap()) as usize,
                    &rest[8..],
                ),
                n => (n as usize, rest),
            };
            out.push((*b0, rest[..len].to_vec()));
            bytes = &rest[len..];
        }
        out
    }

    fn deflater(context_takeover: bool) -> Deflater {
        use crate::protocol::deflate::{DeflateSettings, Negotiated, WindowBits};
        let negotiated = Negotiated {
            server_no_context_takeover: !context_takeover,
            client_no_context_takeover: false,
            server_max_window_bits: WindowBits::MAX,
            client_max_window_bits: WindowBits::MAX,
        };
        Deflater::new(&negotiated, &DeflateSettings::default())
    }

    /// What an independent client (flate2, miniz_oxide) inflates a
    /// message's joined payloads to.
    fn client_inflate(client: &mut flate2::Decompress, payload: &[u8]) -> Vec<u8> {
        let input = [payload, &[0, 0, 0xff, 0xff]].concat();
        let mut out = Vec::with_capacity(1 << 20);
        client
            .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        out
    }

    #[test]
    fn queued_messages_are_compressed_in_order_with_rsv1_on_first_frames_only() {
        let text: Vec<u8> = b"compress me, compress me again; ".repeat(400);
        let (part_one, part_two) = text.split_at(5000);
        let mut q = OutboundQueue::default();
        q.push_frame(true, OpCode::Ping, b"before");
        q.push_deflate(OpCode::Text, &text, true);
        q.push_data(OpCode::Binary, b"plain", true, 100);
        // A MessageLength message in two parts.
        q.push_deflate(OpCode::Text, part_one, false);
        q.push_frame(true, OpCode::Pong, b"between");
        q.push_deflate(OpCode::Continuation, part_two, true);
        assert_eq!(q.queued(), 8 + text.len() * 2 + 7 + 9);

        let mut list = WriteList::default();
        q.move_to(&mut list);
        let deflated = list.deflate(&mut deflater(true), 64);
        assert!(deflated.error.is_none());
        assert_eq!(deflated.before, text.len() * 2);
        assert!(deflated.after < text.len() / 4, "{deflated:?}");
        q.recount(&deflated);
        let bytes = write_all(&mut q, &mut list);
        assert_eq!(q.queued(), 0, "the count follows the compressed bytes");

        let frames = frames(&bytes);
        let firsts: Vec<u8> = frames.iter().map(|(b0, _)| *b0).collect();
        // Compressed payloads split at 64 bytes: RSV1 (0x40) on a
        // message's first frame only, FIN (0x80) on its last.
        let first_message = firsts[1..].iter().position(|&b| b == 0x82).unwrap() + 1;
        assert_eq!(firsts[0], 0x89);
        assert_eq!(firsts[1], 0x41);
        assert!(firsts[2..first_message - 1].iter().all(|&b| b == 0x00));
        assert_eq!(firsts[first_message - 1], 0x80);
        assert_eq!(frames[first_message], (0x82, b"plain".to_vec()));
        assert_eq!(firsts[first_message + 1], 0x41);
        let pong = firsts.iter().position(|&b| b == 0x8A).unwrap();
        assert!(firsts[first_message + 2..pong].iter().all(|&b| b == 0x00));
        assert!(
            firsts[pong + 1..firsts.len() - 1]
                .iter()
                .all(|&b| b == 0x00)
        );
        assert_eq!(firsts.last(), Some(&0x80));
        assert!(frames.iter().all(|(_, payload)| payload.len() <= 64));

        // Joined per message, they inflate to what was sent, with context
        // taken over from one message to the next.
        let joined = |range: std::ops::Range<usize>| -> Vec<u8> {
            frames[range].iter().flat_map(|(_, p)| p.clone()).collect()
        };
        let mut client = flate2::Decompress::new(false);
        assert_eq!(client_inflate(&mut client, &joined(1..first_message)), text);
        let second = [
            joined(first_message + 1..pong),
            joined(pong + 1..frames.len()),
        ]
        .concat();
        assert_eq!(client_inflate(&mut client, &second), text);
    }

    #[test]
    fn compressing_keeps_a_partly_written_front_chunk() {
        let mut q = OutboundQueue::default();
        q.push_frame(true, OpCode::Text, b"first frame");
        let mut list = WriteList::default();
        q.move_to(&mut list);
        let mut deflater = deflater(false);
        let nothing = list.deflate(&mut deflater, 1000);
        assert_eq!((nothing.before, nothing.after), (0, 0));
        list.advance(5);
        q.written(5);
        q.push_deflate(OpCode::Binary, &[1; 3000], true);
        q.move_to(&mut list);
        let deflated = list.deflate(&mut deflater, 1000);
        q.recount(&deflated);
        let bytes = write_all(&mut q, &mut list);
        assert_eq!(q.queued(), 0);
        assert_eq!(&bytes[..8], b"st frame");
        let frames = frames(&bytes[8..]);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].0, 0xC2);
        let mut client = flate2::Decompress::new(false);
        assert_eq!(client_inflate(&mut client, &frames[0].1), vec![1; 3000]);
    }

    #[test]
    fn written_chunks_are_reused_up_to_the_per_thread_limit() {
        // A thread of its own: the spares are per thread.
        std::thread::spawn(|| {
            // A capacity no new buffer has: a buffer taken with it was kept.
            for _ in 0..100 {
                spare::give(Vec::with_capacity(1000));
            }
            let reused = (0..100)
                .map(|_| spare::take(900))
                .filter(|b| b.capacity() == 1000)
                .count();
            // 64 KiB of them: the rest were freed.
            assert_eq!(reused, 65);
            // Too large to keep.
            spare::give(Vec::with_capacity(2 * COALESCE_LIMIT));
            assert_ne!(spare::take(COALESCE_LIMIT).capacity(), 2 * COALESCE_LIMIT);
            // Kept, but too small for a larger need.
            spare::give(Vec::with_capacity(500));
            assert_eq!(spare::take(1024).capacity(), 1024);
            assert_eq!(spare::take(500).capacity(), 500);
        })
        .join()
        .unwrap();
    }
}
