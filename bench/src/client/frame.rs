//! Frame encoding for the client direction (masked, built once) and a
//! streaming decoder for the server direction that keeps only what the
//! generator measures: message boundaries, lengths and the send stamp.

use super::clock::Stamp;

pub const OPCODE_CONTINUATION: u8 = 0x0;
pub const OPCODE_TEXT: u8 = 0x1;
pub const OPCODE_BINARY: u8 = 0x2;
pub const OPCODE_CLOSE: u8 = 0x8;
pub const OPCODE_PING: u8 = 0x9;
pub const OPCODE_PONG: u8 = 0xA;

/// Bytes at the start of every payload that carry the send time.
pub const STAMP_LEN: usize = 8;
/// Largest header: 2 bytes, 8 bytes of extended length, 4 bytes of mask key.
const MAX_HEADER_LEN: usize = 14;
const MAX_CONTROL_PAYLOAD: usize = 125;
/// What the payload holds besides the stamp; the value does not matter.
const FILLER: u8 = b'x';

fn push_header(out: &mut Vec<u8>, opcode: u8, payload_len: usize, mask: [u8; 4]) {
    const FIN: u8 = 0x80;
    const MASKED: u8 = 0x80;
    out.push(FIN | opcode);
    match payload_len {
        0..=125 => out.push(MASKED | payload_len as u8),
        126..=0xFFFF => {
            out.push(MASKED | 126);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(MASKED | 127);
            out.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
}

fn masked_stamp(stamp: Stamp, mask: [u8; 4]) -> [u8; STAMP_LEN] {
    let mut bytes = stamp.to_le_bytes();
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
    bytes
}

/// Up to `capacity` identical client frames, masked when built, so that
/// sending a batch costs only writing the send stamp into each frame.
pub struct MaskedBatch {
    bytes: Vec<u8>,
    frame_len: usize,
    payload_offset: usize,
    payload_len: usize,
    mask: [u8; 4],
}

impl MaskedBatch {
    pub fn new(opcode: u8, payload_len: usize, capacity: usize, mask: [u8; 4]) -> Self {
        let mut frame = Vec::with_capacity(MAX_HEADER_LEN + payload_len);
        push_header(&mut frame, opcode, payload_len, mask);
        let payload_offset = frame.len();
        frame.extend((0..payload_len).map(|i| FILLER ^ mask[i % 4]));
        Self {
            frame_len: frame.len(),
            bytes: frame.repeat(capacity),
            payload_offset,
            payload_len,
            mask,
        }
    }

    pub fn capacity(&self) -> usize {
        self.bytes.len() / self.frame_len
    }

    /// The first `count` frames (at most the capacity), each stamped with
    /// `stamp` when the payload is long enough to carry one.
    pub fn stamped(&mut self, count: usize, stamp: Stamp) -> &[u8] {
        let count = count.min(self.capacity());
        if self.payload_len >= STAMP_LEN {
            let stamp = masked_stamp(stamp, self.mask);
            for frame in self.bytes.chunks_exact_mut(self.frame_len).take(count) {
                frame[self.payload_offset..][..STAMP_LEN].copy_from_slice(&stamp);
            }
        }
        &self.bytes[..count * self.frame_len]
    }
}

/// A masked close frame with status 1000 (normal closure).
pub fn close_frame(mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(8);
    push_header(&mut frame, OPCODE_CLOSE, 2, mask);
    frame.extend(1000u16.to_be_bytes().iter().zip(mask).map(|(b, m)| b ^ m));
    frame
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("reserved header bits set, but no extension was negotiated")]
    ReservedBits,
    #[error("unknown opcode {0:#x}")]
    UnknownOpcode(u8),
    #[error("control frame fragmented or longer than 125 bytes")]
    BadControlFrame,
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    #[error("new data frame while a fragmented message is unfinished")]
    UnfinishedMessage,
}

/// What the server sent, as far as the generator cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole data message: all its fragments have arrived.
    Message {
        opcode: u8,
        len: u64,
        stamp: Option<Stamp>,
    },
    Ping(&'a [u8]),
    Pong,
    Close,
}

struct FrameInProgress {
    opcode: u8,
    fin: bool,
    len: u64,
    received: u64,
    /// Servers never mask, but the raw TCP floor echoes the client's masked
    /// frames byte for byte; accepting them lets it be measured at all.
    mask: Option<[u8; 4]>,
}

struct MessageInProgress {
    opcode: u8,
    len: u64,
    stamp: [u8; STAMP_LEN],
    stamp_received: usize,
}

/// Streaming decoder for server-to-client frames: feed it whatever each
/// read returned; it copies nothing but headers, control payloads and stamps.
pub struct FrameDecoder {
    header: [u8; MAX_HEADER_LEN],
    header_received: usize,
    frame: Option<FrameInProgress>,
    message: Option<MessageInProgress>,
    control: [u8; MAX_CONTROL_PAYLOAD],
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self {
            header: [0; MAX_HEADER_LEN],
            header_received: 0,
            frame: None,
            message: None,
            control: [0; MAX_CONTROL_PAYLOAD],
        }
    }
}

/// Header length implied by its first two bytes.
fn header_len(second_byte: u8) -> usize {
    let extended = match second_byte & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second_byte & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

fn is_control(opcode: u8) -> bool {
    opcode & 0x8 != 0
}

impl FrameDecoder {
    /// Decodes `input`, calling `on_event` for each message or control frame
    /// it completes. Partial frames are carried over to the next call.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut on_event: impl FnMut(Event<'_>),
    ) -> Result<(), DecodeError> {
        while !input.is_empty() {
            if self.frame.is_none() {
                input = self.take_header_bytes(input);
                let Some(len) = self.complete_header_len() else {
                    continue;
                };
                self.start_frame(len)?;
            }
            let Some(frame) = self.frame.as_mut() else {
                continue;
            };
            let take = (frame.len - frame.received).min(input.len() as u64) as usize;
            let (chunk, rest) = input.split_at(take);
            input = rest;
            self.take_payload(chunk);
            self.finish_frame_if_complete(&mut on_event);
        }
        // A zero-length frame completes with its header, possibly at the
        // very end of the input.
        self.finish_frame_if_complete(&mut on_event);
        Ok(())
    }

    /// Copies header bytes until the header is whole or the input runs out.
    fn take_header_bytes<'i>(&mut self, mut input: &'i [u8]) -> &'i [u8] {
        loop {
            let wanted = if self.header_received < 2 {
                2
            } else {
                header_len(self.header[1])
            };
            if self.header_received >= wanted || input.is_empty() {
                return input;
            }
            let take = (wanted - self.header_received).min(input.len());
            self.header[self.header_received..][..take].copy_from_slice(&input[..take]);
            self.header_received += take;
            input = &input[take..];
        }
    }

    fn complete_header_len(&self) -> Option<usize> {
        (self.header_received >= 2 && self.header_received == header_len(self.header[1]))
            .then_some(self.header_received)
    }

    fn start_frame(&mut self, header_len: usize) -> Result<(), DecodeError> {
        let header = &self.header[..header_len];
        self.header_received = 0;
        let fin = header[0] & 0x80 != 0;
        if header[0] & 0x70 != 0 {
            return Err(DecodeError::ReservedBits);
        }
        let opcode = header[0] & 0x0F;
        let masked = header[1] & 0x80 != 0;
        let (len, rest) = match header[1] & 0x7F {
            126 => (
                u64::from(u16::from_be_bytes([header[2], header[3]])),
                &header[4..],
            ),
            127 => {
                let mut be = [0; 8];
                be.copy_from_slice(&header[2..10]);
                (u64::from_be_bytes(be), &header[10..])
            }
            short => (u64::from(short), &header[2..]),
        };
        let mask = masked.then(|| [rest[0], rest[1], rest[2], rest[3]]);
        match opcode {
            OPCODE_CLOSE | OPCODE_PING | OPCODE_PONG => {
                if !fin || len > MAX_CONTROL_PAYLOAD as u64 {
                    return Err(DecodeError::BadControlFrame);
                }
            }
            OPCODE_TEXT | OPCODE_BINARY => {
                if self.message.is_some() {
                    return Err(DecodeError::UnfinishedMessage);
                }
                self.message = Some(MessageInProgress {
                    opcode,
                    len: 0,
                    stamp: [0; STAMP_LEN],
                    stamp_received: 0,
                });
            }
            OPCODE_CONTINUATION => {
                if self.message.is_none() {
                    return Err(DecodeError::UnexpectedContinuation);
                }
            }
            unknown => return Err(DecodeError::UnknownOpcode(unknown)),
        }
        if let Some(message) = self.message.as_mut().filter(|_| !is_control(opcode)) {
            message.len += len;
        }
        self.frame = Some(FrameInProgress {
            opcode,
            fin,
            len,
            received: 0,
            mask,
        });
        Ok(())
    }

    fn take_payload(&mut self, chunk: &[u8]) {
        let Some(frame) = self.frame.as_mut() else {
            return;
        };
        let offset = frame.received as usize;
        frame.received += chunk.len() as u64;
        let unmask = |i: usize, byte: u8| match frame.mask {
            Some(mask) => byte ^ mask[(offset + i) % 4],
            None => byte,
        };
        if is_control(frame.opcode) {
            for (i, &byte) in chunk.iter().enumerate() {
                self.control[offset + i] = unmask(i, byte);
            }
        } else if let Some(message) = self.message.as_mut() {
            let wanted = STAMP_LEN - message.stamp_received;
            for (i, &byte) in chunk.iter().take(wanted).enumerate() {
                message.stamp[message.stamp_received] = unmask(i, byte);
                message.stamp_received += 1;
            }
        }
    }

    fn finish_frame_if_complete(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        let Some(frame) = self.frame.take_if(|frame| frame.received == frame.len) else {
            return;
        };
        match frame.opcode {
            OPCODE_PING => on_event(Event::Ping(&self.control[..frame.len as usize])),
            OPCODE_PONG => on_event(Event::Pong),
            OPCODE_CLOSE => on_event(Event::Close),
            _ if frame.fin => {
                if let Some(message) = self.message.take() {
                    let stamp = (message.stamp_received == STAMP_LEN)
                        .then(|| Stamp::from_le_bytes(message.stamp));
                    on_event(Event::Message {
                        opcode: message.opcode,
                        len: message.len,
                        stamp,
                    });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server frame as a server would send it: unmasked.
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            0..=125 => out.push(payload.len() as u8),
            126..=0xFFFF => {
                out.push(126);
                out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            }
            _ => {
                out.push(127);
                out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    fn stamped_payload(stamp: Stamp, len: usize) -> Vec<u8> {
        let mut payload = vec![FILLER; len];
        payload[..STAMP_LEN].copy_from_slice(&stamp.to_le_bytes());
        payload
    }

    /// Owned copy of an event, so tests can collect them.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Message(u8, u64, Option<Stamp>),
        Ping(Vec<u8>),
        Pong,
        Close,
    }

    fn decode_in_chunks(bytes: &[u8], chunk: usize) -> Result<Vec<Seen>, DecodeError> {
        let mut decoder = FrameDecoder::default();
        let mut seen = Vec::new();
        for piece in bytes.chunks(chunk) {
            decoder.feed(piece, |event| {
                seen.push(match event {
                    Event::Message { opcode, len, stamp } => Seen::Message(opcode, len, stamp),
                    Event::Ping(payload) => Seen::Ping(payload.to_vec()),
                    Event::Pong => Seen::Pong,
                    Event::Close => Seen::Close,
                })
            })?;
        }
        Ok(seen)
    }

    fn unmask(frame: &[u8], header_len: usize) -> Vec<u8> {
        let mask = &frame[header_len - 4..header_len];
        frame[header_len..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect()
    }

    #[test]
    fn batch_frames_are_masked_and_carry_the_stamp() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut batch = MaskedBatch::new(OPCODE_BINARY, 32, 4, mask);
        let bytes = batch.stamped(3, 0xDEAD_BEEF_0102_0304).to_vec();
        // 2-byte header + 4-byte key + 32-byte payload, three times.
        assert_eq!(bytes.len(), 3 * 38);
        for frame in bytes.chunks(38) {
            assert_eq!(frame[0], 0x80 | OPCODE_BINARY);
            assert_eq!(frame[1], 0x80 | 32);
            assert_eq!(&frame[2..6], &mask);
            let payload = unmask(frame, 6);
            assert_eq!(payload, stamped_payload(0xDEAD_BEEF_0102_0304, 32));
        }
    }

    #[test]
    fn batch_uses_extended_lengths() {
        let mut medium = MaskedBatch::new(OPCODE_BINARY, 4096, 1, [1, 2, 3, 4]);
        let frame = medium.stamped(1, 7);
        assert_eq!(&frame[1..4], &[0x80 | 126, 0x10, 0x00]);
        assert_eq!(frame.len(), 4 + 4 + 4096);
        let mut large = MaskedBatch::new(OPCODE_BINARY, 70_000, 1, [1, 2, 3, 4]);
        let frame = large.stamped(1, 7);
        assert_eq!(frame[1], 0x80 | 127);
        assert_eq!(&frame[2..10], &70_000u64.to_be_bytes());
        assert_eq!(unmask(frame, 14), stamped_payload(7, 70_000));
    }

    #[test]
    fn batch_never_returns_more_than_its_capacity() {
        let mut batch = MaskedBatch::new(OPCODE_BINARY, 8, 2, [0; 4]);
        assert_eq!(batch.capacity(), 2);
        assert_eq!(batch.stamped(5, 1).len(), 2 * 14);
    }

    #[test]
    fn close_frame_carries_normal_closure() {
        let mask = [9, 8, 7, 6];
        let frame = close_frame(mask);
        assert_eq!(frame[0], 0x80 | OPCODE_CLOSE);
        assert_eq!(frame[1], 0x80 | 2);
        assert_eq!(unmask(&frame, 6), 1000u16.to_be_bytes());
    }

    #[test]
    fn decodes_a_stream_split_at_every_position() {
        let mut stream = Vec::new();
        stream.extend(server_frame(true, OPCODE_BINARY, &stamped_payload(11, 32)));
        stream.extend(server_frame(true, OPCODE_PING, b"hi"));
        stream.extend(server_frame(
            true,
            OPCODE_BINARY,
            &stamped_payload(22, 4096),
        ));
        stream.extend(server_frame(false, OPCODE_TEXT, b"abc"));
        stream.extend(server_frame(false, OPCODE_CONTINUATION, b"defgh"));
        stream.extend(server_frame(true, OPCODE_CONTINUATION, b"ij"));
        stream.extend(server_frame(true, OPCODE_BINARY, b""));
        stream.extend(server_frame(true, OPCODE_PONG, b""));
        stream.extend(server_frame(
            true,
            OPCODE_BINARY,
            &stamped_payload(33, 70_000),
        ));
        stream.extend(server_frame(true, OPCODE_CLOSE, &1000u16.to_be_bytes()));
        let expected = vec![
            Seen::Message(OPCODE_BINARY, 32, Some(11)),
            Seen::Ping(b"hi".to_vec()),
            Seen::Message(OPCODE_BINARY, 4096, Some(22)),
            Seen::Message(OPCODE_TEXT, 10, Some(u64::from_le_bytes(*b"abcdefgh"))),
            Seen::Message(OPCODE_BINARY, 0, None),
            Seen::Pong,
            Seen::Message(OPCODE_BINARY, 70_000, Some(33)),
            Seen::Close,
        ];
        for chunk in [1, 2, 3, 5, 13, 64, 4099, stream.len()] {
            assert_eq!(
                decode_in_chunks(&stream, chunk),
                Ok(expected.clone()),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn decodes_the_clients_own_masked_frames_echoed_raw() {
        let mut batch = MaskedBatch::new(OPCODE_BINARY, 32, 2, [0xA1, 0xB2, 0xC3, 0xD4]);
        let echoed = batch.stamped(2, 4242).to_vec();
        let seen = decode_in_chunks(&echoed, 7).unwrap();
        assert_eq!(seen, vec![Seen::Message(OPCODE_BINARY, 32, Some(4242)); 2]);
    }

    #[test]
    fn rejects_protocol_violations() {
        let cases = [
            (vec![0xC2, 0x00], DecodeError::ReservedBits),
            (vec![0x83, 0x00], DecodeError::UnknownOpcode(3)),
            (vec![0x09, 0x00], DecodeError::BadControlFrame),
            (
                server_frame(true, OPCODE_PING, &[0; 126]),
                DecodeError::BadControlFrame,
            ),
            (vec![0x80, 0x00], DecodeError::UnexpectedContinuation),
            (vec![0x02, 0x00, 0x82, 0x00], DecodeError::UnfinishedMessage),
        ];
        for (bytes, error) in cases {
            assert_eq!(decode_in_chunks(&bytes, 1), Err(error), "{bytes:?}");
        }
    }
}
