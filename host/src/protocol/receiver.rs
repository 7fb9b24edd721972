//! The receiving half of a connection: bytes in, message events out.
//!
//! `Receiver` is an explicit state machine over the frame being read and the
//! message being assembled. It enforces the framing rules (masking, control
//! frames, fragmentation order), validates text as it arrives so invalid
//! UTF-8 fails at the first bad byte, and applies the message size limit when
//! a frame header announces the size, before any payload is read. Payloads
//! are unmasked in place and handed out as they arrive (a whole binary
//! message in one frame is handed out still masked, for whoever copies it to
//! unmask the copy): an idle or streaming connection holds at most a partial
//! header, a partial control frame and up to three bytes of a split
//! character.
//!
//! With permessage-deflate negotiated, a message whose first frame has RSV1
//! goes through the [`Inflater`] as its frames arrive: the size limit then
//! also applies to the inflated size, counted as the inflater produces it
//! (so a decompression bomb stops right past the limit), and UTF-8 is
//! checked on the inflated text. A pause asked for mid-frame leaves the
//! unread input to the caller, masked as it came, and any output the
//! inflater already holds for the next [`Receiver::feed`].

use std::ops::ControlFlow;

use super::ProtocolError;
use super::close::{CloseFrame, parse_close_payload};
use super::deflate::{InflateError, Inflated, Inflater};
use super::frame::{
    FrameHeader, MAX_CLIENT_HEADER, OpCode, parse_client_header, plain_data_header,
};
use super::mask::{MaskedPayload, apply_mask};
use super::utf8::{PartialChar, valid_prefix_len};

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

impl From<MessageKind> for OpCode {
    fn from(kind: MessageKind) -> Self {
        match kind {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}

/// A piece of a data message. Text pieces are always whole characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChunk<'a> {
    pub kind: MessageKind,
    /// The first piece of its message.
    pub first: bool,
    /// The last piece of its message.
    pub last: bool,
    pub data: &'a [u8],
}

impl<'a> DataChunk<'a> {
    /// A whole message in one piece.
    pub fn whole(kind: MessageKind, data: &'a [u8]) -> Self {
        Self {
            kind,
            first: true,
            last: true,
            data,
        }
    }
}

/// What the receiver found in the bytes it was fed.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    Data(DataChunk<'a>),
    /// A whole binary message in one uncompressed frame, its payload still
    /// masked: whoever copies it unmasks the copy. (Text is unmasked and
    /// checked before it is handed out.)
    WholeBinary(MaskedPayload<'a>),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// The peer started or answered the closing handshake; the receiver
    /// ignores everything after it.
    Close(CloseFrame<'a>),
}

#[derive(Debug)]
enum FrameState {
    /// Reading a header; `held` keeps its first bytes when it is split.
    Header {
        held: [u8; MAX_CLIENT_HEADER],
        len: u8,
    },
    /// Inside a data frame's payload. `remaining` 0 is an empty frame about
    /// to be handed out, or a compressed frame whose input is all read while
    /// the paused inflater still holds output.
    Data {
        remaining: u64,
        mask: [u8; 4],
        offset: u64,
        fin: bool,
    },
    /// Inside a control frame's payload; `collected` is used only when the
    /// payload is split across reads.
    Control {
        opcode: OpCode,
        len: usize,
        mask: [u8; 4],
        collected: Vec<u8>,
    },
    /// A close frame arrived: nothing more is read.
    Closed,
}

impl FrameState {
    const fn header() -> Self {
        Self::Header {
            held: [0; MAX_CLIENT_HEADER],
            len: 0,
        }
    }
}

#[derive(Debug)]
struct MessageState {
    kind: MessageKind,
    /// Payload bytes the frame headers announced (compressed ones for a
    /// compressed message).
    size: u64,
    /// The first frame had RSV1: the payload goes through the inflater.
    compressed: bool,
    /// Bytes inflated so far (compressed messages).
    inflated: u64,
    delivered_first: bool,
    partial: PartialChar,
}

/// Parses and validates the client's frames; see the module docs.
#[derive(Debug)]
pub struct Receiver {
    frame: FrameState,
    message: Option<MessageState>,
    max_message_size: u64,
    /// permessage-deflate's decompressor, when the extension was negotiated.
    inflater: Option<Inflater>,
}

impl Receiver {
    /// `max_message_size` bounds the total payload of one message; 0 means
    /// no limit. `inflater` is given when permessage-deflate was negotiated:
    /// only then may a message's first frame have RSV1.
    pub fn new(max_message_size: u64, inflater: Option<Inflater>) -> Self {
        Self {
            frame: FrameState::header(),
            message: None,
            max_message_size: if max_message_size == 0 {
                u64::MAX
            } else {
                max_message_size
            },
            inflater,
        }
    }

    /// Between frames and messages, with no decompression context: a new
    /// receiver would carry on the same.
    pub fn is_at_rest(&self) -> bool {
        matches!(self.frame, FrameState::Header { len: 0, .. })
            && self.message.is_none()
            && self.inflater.as_ref().is_none_or(Inflater::is_at_rest)
    }

    /// Whether `input` holds no more than one frame: the receiver is
    /// between frames, and the first frame, once its header is whole,
    /// takes all of `input`.
    pub fn at_most_one_frame(&self, input: &[u8]) -> bool {
        if !matches!(self.frame, FrameState::Header { len: 0, .. }) {
            return false;
        }
        match parse_client_header(input) {
            Ok(Some((header, used))) => ((input.len() - used) as u64) <= header.payload_len,
            Ok(None) => true,
            Err(_) => false,
        }
    }

    /// Whether a close frame has been received.
    pub fn is_closed(&self) -> bool {
        matches!(self.frame, FrameState::Closed)
    }

    /// Whether data already received waits to be handed out (the inflater
    /// paused with output in hand): feed again, even with no bytes, to go on.
    pub fn has_pending_output(&self) -> bool {
        matches!(self.frame, FrameState::Data { remaining: 0, .. })
    }

    /// Feeds received bytes, unmasking them in place (or handing them out
    /// masked: [`Incoming::WholeBinary`]), and calls `on` for each event.
    /// If `on` returns `Break`, stops after that event and returns how many
    /// bytes were consumed; the caller feeds the rest later (bytes not
    /// consumed are left as they came). Otherwise consumes everything,
    /// keeping partial frames internally.
    pub fn feed<F>(&mut self, buf: &mut [u8], on: &mut F) -> Result<usize, ProtocolError>
    where
        F: FnMut(Incoming<'_>) -> ControlFlow<()>,
    {
        let mut pos = 0;
        while pos < buf.len() || self.has_pending_output() {
            if let Some((used, flow)) = self.whole_message(&mut buf[pos..], on)? {
                pos += used;
                if flow.is_break() {
                    return Ok(pos);
                }
                continue;
            }
            let flow = match &mut self.frame {
                FrameState::Closed => return Ok(buf.len()),
                FrameState::Header { held, len } => {
                    let had = usize::from(*len);
                    let parsed = if had == 0 {
                        parse_client_header(&buf[pos..])?
                    } else {
                        let take = (MAX_CLIENT_HEADER - had).min(buf.len() - pos);
                        held[had..had + take].copy_from_slice(&buf[pos..pos + take]);
                        parse_client_header(&held[..had + take])?.map(|(h, n)| (h, n - had))
                    };
                    match parsed {
                        Some((header, used)) => {
                            pos += used;
                            self.frame = FrameState::header();
                            self.start_frame(header, on)?
                        }
                        None => {
                            // A partial header is shorter than 14 bytes.
                            let rest = &buf[pos..];
                            if had == 0 {
                                held[..rest.len()].copy_from_slice(rest);
                            }
                            *len = (had + rest.len().min(MAX_CLIENT_HEADER - had)) as u8;
                            pos = buf.len();
                            ControlFlow::Continue(())
                        }
                    }
                }
                &mut FrameState::Data {
                    remaining,
                    mask,
                    offset,
                    fin,
                } => {
                    let n = remaining.min((buf.len() - pos) as u64) as usize;
                    let chunk = &mut buf[pos..pos + n];
                    apply_mask(chunk, mask, offset as usize);
                    let end = fin && n as u64 == remaining;
                    let handed = self.payload(chunk, end, on)?;
                    if handed.used < n {
                        // Paused mid-input: leave the rest as it came, so
                        // feeding it again unmasks it once.
                        apply_mask(
                            &mut chunk[handed.used..],
                            mask,
                            offset as usize + handed.used,
                        );
                    }
                    pos += handed.used;
                    let remaining = remaining - handed.used as u64;
                    self.frame = if remaining == 0 && !handed.output_pending {
                        FrameState::header()
                    } else {
                        FrameState::Data {
                            remaining,
                            mask,
                            offset: offset + handed.used as u64,
                            fin,
                        }
                    };
                    handed.flow
                }
                FrameState::Control {
                    opcode,
                    len,
                    mask,
                    collected,
                } => {
                    let (opcode, len, mask) = (*opcode, *len, *mask);
                    let available = buf.len() - pos;
                    if collected.is_empty() && available >= len {
                        // The whole payload is here: no copy.
                        let payload = &mut buf[pos..pos + len];
                        pos += len;
                        apply_mask(payload, mask, 0);
                        self.frame = FrameState::header();
                        self.control(opcode, payload, on)?
                    } else {
                        let take = (len - collected.len()).min(available);
                        collected.extend_from_slice(&buf[pos..pos + take]);
                        pos += take;
                        if collected.len() == len {
                            let mut payload = std::mem::take(collected);
                            apply_mask(&mut payload, mask, 0);
                            self.frame = FrameState::header();
                            self.control(opcode, &payload, on)?
                        } else {
                            ControlFlow::Continue(())
                        }
                    }
                }
            };
            if flow.is_break() || self.is_closed() {
                return Ok(pos);
            }
        }
        Ok(pos)
    }

    /// The common case, short-cut: between messages, `buf` starts with a
    /// whole unfragmented, uncompressed data frame. Hands it out as one
    /// chunk (binary still masked) and returns the bytes it took; None for
    /// anything else (the state machine takes it from the same place, so
    /// the rules and the errors are the same).
    fn whole_message<F>(
        &mut self,
        buf: &mut [u8],
        on: &mut F,
    ) -> Result<Option<(usize, ControlFlow<()>)>, ProtocolError>
    where
        F: FnMut(Incoming<'_>) -> ControlFlow<()>,
    {
        if !matches!(self.frame, FrameState::Header { len: 0, .. }) || self.message.is_some() {
            return Ok(None);
        }
        let Some((opcode, mask, header_len, payload_len)) = plain_data_header(buf) else {
            return Ok(None);
        };
        if buf.len() - header_len < payload_len || payload_len as u64 > self.max_message_size {
            return Ok(None);
        }
        let kind = if opcode == OpCode::Text {
            MessageKind::Text
        } else {
            MessageKind::Binary
        };
        let end = header_len + payload_len;
        let data = &mut buf[header_len..end];
        let flow = if kind == MessageKind::Binary {
            on(Incoming::WholeBinary(MaskedPayload::new(data, mask)))
        } else {
            apply_mask(data, mask, 0);
            // A whole message: any invalid or unfinished character fails it.
            if valid_prefix_len(data) != Ok(data.len()) {
                return Err(ProtocolError::InvalidUtf8);
            }
            on(Incoming::Data(DataChunk::whole(kind, data)))
        };
        Ok(Some((end, flow)))
    }

    /// Applies the fragmentation and size rules to a new frame.
    fn start_frame<F>(
        &mut self,
        h: FrameHeader,
        on: &mut F,
    ) -> Result<ControlFlow<()>, ProtocolError>
    where
        F: FnMut(Incoming<'_>) -> ControlFlow<()>,
    {
        // RSV1 marks a compressed message, on its first frame only.
        if h.rsv1 && (self.inflater.is_none() || !matches!(h.opcode, OpCode::Text | OpCode::Binary))
        {
            return Err(ProtocolError::ReservedBits);
        }
        if h.opcode.is_control() {
            let len = h.payload_len as usize;
            if len == 0 {
                return self.control(h.opcode, &[], on);
            }
            self.frame = FrameState::Control {
                opcode: h.opcode,
                len,
                mask: h.mask,
                collected: Vec::new(),
            };
            return Ok(ControlFlow::Continue(()));
        }
        let message = match (h.opcode, &mut self.message) {
            (OpCode::Continuation, Some(m)) => m,
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (opcode, None) => self.message.insert(MessageState {
                kind: if opcode == OpCode::Text {
                    MessageKind::Text
                } else {
                    MessageKind::Binary
                },
                size: 0,
                compressed: h.rsv1,
                inflated: 0,
                delivered_first: false,
                partial: PartialChar::default(),
            }),
        };
        // The limit applies to what arrives as well as to what it inflates
        // to, so this check also bounds a compressed message early.
        message.size = message.size.saturating_add(h.payload_len);
        if message.size > self.max_message_size {
            return Err(ProtocolError::MessageTooBig {
                limit: self.max_message_size,
            });
        }
        // An empty frame too: the loop in `feed` hands it out at once.
        self.frame = FrameState::Data {
            remaining: h.payload_len,
            mask: h.mask,
            offset: 0,
            fin: h.fin,
        };
        Ok(ControlFlow::Continue(()))
    }

    /// Hands out an unmasked piece of the current message's payload, as it
    /// is or through the inflater; `end` when it holds the message's last
    /// bytes.
    fn payload<F>(&mut self, chunk: &[u8], end: bool, on: &mut F) -> Result<Handed, ProtocolError>
    where
        F: FnMut(Incoming<'_>) -> ControlFlow<()>,
    {
        let Some(message) = self.message.as_mut() else {
            return Ok(Handed::all(chunk, ControlFlow::Continue(())));
        };
        let handed = match self.inflater.as_mut().filter(|_| message.compressed) {
            None => Handed::all(chunk, message.deliver(chunk, end, on)?),
            Some(inflater) => {
                let limit = self.max_message_size;
                let mut flow = ControlFlow::Continue(());
                let mut sink = |piece: &[u8], last: bool| {
                    message.inflated += piece.len() as u64;
                    if message.inflated > limit {
                        return Err(ProtocolError::MessageTooBig { limit });
                    }
                    let piece_flow = message.deliver(piece, last, on)?;
                    if piece_flow.is_break() {
                        flow = ControlFlow::Break(());
                    }
                    Ok(piece_flow)
                };
                match inflater.inflate(chunk, end, &mut sink)? {
                    Inflated::Done => Handed::all(chunk, flow),
                    Inflated::Paused { consumed } => Handed {
                        used: consumed,
                        flow,
                        output_pending: true,
                    },
                }
            }
        };
        if end && !handed.output_pending {
            self.message = None;
        }
        Ok(handed)
    }

    fn control<F>(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        on: &mut F,
    ) -> Result<ControlFlow<()>, ProtocolError>
    where
        F: FnMut(Incoming<'_>) -> ControlFlow<()>,
    {
        Ok(match opcode {
            OpCode::Ping => on(Incoming::Ping(payload)),
            OpCode::Pong => on(Incoming::Pong(payload)),
            _ => {
                let frame = parse_close_payload(payload)?;
                self.frame = FrameState::Closed;
                on(Incoming::Close(frame))
            }
        })
    }
}

/// What [`Receiver::payload`] did with a piece of payload.
struct Handed {
    /// Bytes used; fewer than given only when the inflater paused.
    used: usize,
    flow: ControlFlow<()>,
    /// The inflater paused holding output for the next feed.
    output_pending: bool,
}

impl Handed {
    fn all(chunk: &[u8], flow: ControlFlow<()>) -> Self {
        Self {
            used: chunk.len(),
            flow,
            output_pending: false,
        }
    }
}

impl MessageState {
    /// Hands out a piece of the message, holding back the bytes of a
    /// character split across pieces.
    fn deliver<F>(
        &mut self,
        chunk: &[u8],
        last: bool,
        on: &mut F,
    ) -> Result<ControlFlow<()>, ProtocolError>
    where
        F: FnMut(Incoming<'_>) -> ControlFlow<()>,
    {
        let mut completed = [0u8; 4];
        let mut completed_len = 0;
        let mut body = chunk;
        if self.kind == MessageKind::Text {
            if !self.partial.is_empty() {
                let (used, done) = self
                    .partial
                    .complete(body)
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                if let Some(ch) = done {
                    completed[..ch.len()].copy_from_slice(ch);
                    completed_len = ch.len();
                }
                body = &body[used..];
            }
            let valid = valid_prefix_len(body).map_err(|_| ProtocolError::InvalidUtf8)?;
            let tail = &body[valid..];
            if !tail.is_empty() {
                self.partial.hold(tail);
            }
            body = &body[..valid];
            if last && !self.partial.is_empty() {
                return Err(ProtocolError::InvalidUtf8);
            }
        }
        let pieces = [&completed[..completed_len], body];
        let count = pieces.iter().filter(|p| !p.is_empty()).count();
        if count == 0 && !last {
            return Ok(ControlFlow::Continue(()));
        }
        let mut flow = ControlFlow::Continue(());
        let mut left = count;
        // An empty final piece still marks the end of the message.
        for piece in pieces
            .into_iter()
            .filter(|p| !p.is_empty() || count == 0)
            .take(count.max(1))
        {
            left = left.saturating_sub(1);
            let event = DataChunk {
                kind: self.kind,
                first: !self.delivered_first,
                last: last && left == 0,
                data: piece,
            };
            self.delivered_first = true;
            // A Break stops after this chunk, not between its pieces.
            if on(Incoming::Data(event)).is_break() {
                flow = ControlFlow::Break(());
            }
        }
        Ok(flow)
    }
}

impl From<InflateError<ProtocolError>> for ProtocolError {
    fn from(error: InflateError<ProtocolError>) -> Self {
        match error {
            InflateError::InvalidData(reason) => Self::InvalidCompressedData(reason),
            InflateError::Zlib(reason) => Self::DecompressorFailed(reason),
            InflateError::Stalled => Self::DecompressorFailed("inflate made no progress"),
            InflateError::Sink(error) => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

    /// A masked client frame.
    fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![b0];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        let mut body = payload.to_vec();
        apply_mask(&mut body, MASK, 0);
        out.extend_from_slice(&body);
        out
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Ev {
        Data(MessageKind, bool, bool, Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, String),
    }

    fn record(ev: Incoming<'_>) -> Ev {
        match ev {
            Incoming::Data(c) => Ev::Data(c.kind, c.first, c.last, c.data.to_vec()),
            Incoming::WholeBinary(payload) => {
                Ev::Data(MessageKind::Binary, true, true, payload.unmask().to_vec())
            }
            Incoming::Ping(p) => Ev::Ping(p.to_vec()),
            Incoming::Pong(p) => Ev::Pong(p.to_vec()),
            Incoming::Close(f) => Ev::Close(f.code, f.reason.to_owned()),
        }
    }

    /// Feeds `wire` in pieces of `step` bytes.
    fn run(wire: &[u8], step: usize, limit: u64) -> (Vec<Ev>, Result<(), ProtocolError>) {
        feed_all(&mut Receiver::new(limit, None), wire, step, false)
    }

    /// Feeds `wire` in pieces of `step` bytes. With `pause`, every data
    /// event asks to pause, and what was not consumed is fed again (and
    /// nothing, while output is pending), as the server does while its
    /// handler holds data back.
    fn feed_all(
        rx: &mut Receiver,
        wire: &[u8],
        step: usize,
        pause: bool,
    ) -> (Vec<Ev>, Result<(), ProtocolError>) {
        let mut events = Vec::new();
        let mut held = Vec::new();
        for piece in wire.chunks(step) {
            held.extend_from_slice(piece);
            for _ in 0..1_000_000 {
                let mut input = std::mem::take(&mut held);
                let mut data_events = 0;
                let result = rx.feed(&mut input, &mut |ev| {
                    let data = matches!(ev, Incoming::Data(_) | Incoming::WholeBinary(_));
                    data_events += usize::from(data);
                    events.push(record(ev));
                    if pause && data {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                // A chunk may come as two events: a completed character
                // and the text after it.
                assert!(
                    !pause || data_events <= 2,
                    "{data_events} events after Break"
                );
                match result {
                    Err(e) => return (events, Err(e)),
                    Ok(used) => held = input[used..].to_vec(),
                }
                if held.is_empty() && !rx.has_pending_output() {
                    break;
                }
            }
        }
        (events, Ok(()))
    }

    /// Joins data pieces into whole messages for comparison across splits.
    fn messages(events: &[Ev]) -> Vec<Ev> {
        let mut out = Vec::new();
        let mut current: Option<(MessageKind, Vec<u8>)> = None;
        for ev in events {
            match ev {
                Ev::Data(kind, first, last, data) => {
                    assert_eq!(*first, current.is_none(), "first flag in {events:?}");
                    let entry = current.get_or_insert((*kind, Vec::new()));
                    entry.1.extend_from_slice(data);
                    if *last {
                        let (k, d) = current.take().unwrap();
                        out.push(Ev::Data(k, true, true, d));
                    }
                }
                other => out.push(match other {
                    Ev::Ping(p) => Ev::Ping(p.clone()),
                    Ev::Pong(p) => Ev::Pong(p.clone()),
                    Ev::Close(c, r) => Ev::Close(*c, r.clone()),
                    Ev::Data(..) => unreachable!(),
                }),
            }
        }
        out
    }

    #[test]
    fn at_most_one_frame_tells_a_single_frame_from_several() {
        let rx = Receiver::new(0, None);
        let one = frame(0x81, b"hello");
        assert!(rx.at_most_one_frame(&one), "one whole frame");
        assert!(rx.at_most_one_frame(&one[..1]), "part of a header");
        assert!(rx.at_most_one_frame(&one[..8]), "part of a payload");
        assert!(
            rx.at_most_one_frame(&frame(0x82, &[7; 300])),
            "a 16-bit length"
        );
        let mut two = one.clone();
        two.extend(frame(0x89, b""));
        assert!(!rx.at_most_one_frame(&two), "a frame and a ping");
        assert!(
            !rx.at_most_one_frame(&two[..one.len() + 1]),
            "a frame and a byte"
        );
        assert!(
            !rx.at_most_one_frame(&[0xF1, 0x80]),
            "a header no frame may have"
        );
        // Inside a frame: where the next one starts is not known here.
        let mut rx = Receiver::new(0, None);
        rx.feed(&mut one[..8].to_vec(), &mut |_| ControlFlow::Continue(()))
            .unwrap();
        assert!(!rx.at_most_one_frame(&one[8..]));
    }

    #[test]
    fn every_split_point_gives_the_same_messages() {
        let mut wire = frame(0x01, "héllo ".as_bytes());
        wire.extend(frame(0x89, b"ping!"));
        wire.extend(frame(0x00, "wörld €".as_bytes()));
        wire.extend(frame(0x80, "𝄞".as_bytes()));
        wire.extend(frame(0x82, &[7u8; 300]));
        wire.extend(frame(0x8A, b""));
        wire.extend(frame(0x81, b""));
        wire.extend(frame(0x88, &[0x03, 0xE8, b'o', b'k']));
        let expected = vec![
            Ev::Ping(b"ping!".to_vec()),
            Ev::Data(
                MessageKind::Text,
                true,
                true,
                "héllo wörld €𝄞".as_bytes().to_vec(),
            ),
            Ev::Data(MessageKind::Binary, true, true, vec![7u8; 300]),
            Ev::Pong(vec![]),
            Ev::Data(MessageKind::Text, true, true, vec![]),
            Ev::Close(Some(1000), "ok".into()),
        ];
        for step in 1..=wire.len() {
            let (events, result) = run(&wire, step, 0);
            assert_eq!(result, Ok(()), "step {step}");
            for ev in &events {
                if let Ev::Data(MessageKind::Text, _, _, d) = ev {
                    assert!(std::str::from_utf8(d).is_ok(), "split char at step {step}");
                }
            }
            assert_eq!(messages(&events), expected, "step {step}");
        }
    }

    #[test]
    fn pieces_stream_as_they_arrive() {
        let wire = frame(0x82, &[1u8; 1000]);
        let (events, _) = run(&wire, 100, 0);
        assert!(events.len() >= 10);
        assert!(matches!(events[0], Ev::Data(_, true, false, _)));
        assert!(matches!(events.last(), Some(Ev::Data(_, false, true, _))));
    }

    #[test]
    fn invalid_utf8_fails_at_the_first_bad_frame() {
        let mut wire = frame(0x01, b"ok");
        wire.extend(frame(
            0x00,
            &[
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
            ],
        ));
        wire.extend(frame(0x80, b"never read"));
        for step in [1, 5, wire.len()] {
            let (events, result) = run(&wire, step, 0);
            assert_eq!(result, Err(ProtocolError::InvalidUtf8), "step {step}");
            assert!(events.iter().all(|e| matches!(e, Ev::Data(_, _, false, _))));
        }
    }

    #[test]
    fn text_ending_mid_character_is_invalid() {
        let (_, result) = run(&frame(0x81, &[b'a', 0xE2, 0x82]), 64, 0);
        assert_eq!(result, Err(ProtocolError::InvalidUtf8));
    }

    #[test]
    fn fragmentation_rules() {
        let err = |wire: Vec<u8>| run(&wire, 64, 0).1.unwrap_err();
        assert_eq!(
            err(frame(0x80, b"x")),
            ProtocolError::UnexpectedContinuation
        );
        let mut two_starts = frame(0x01, b"a");
        two_starts.extend(frame(0x81, b"b"));
        assert_eq!(err(two_starts), ProtocolError::ExpectedContinuation);
        assert_eq!(err(frame(0xC1, b"x")), ProtocolError::ReservedBits);
        assert_eq!(
            err(frame(0x88, &[0x03])),
            ProtocolError::InvalidClosePayload
        );
        assert_eq!(
            err(frame(0x88, &[0x03, 0xED])),
            ProtocolError::InvalidCloseCode(1005)
        );
    }

    #[test]
    fn size_limit_applies_to_the_whole_message_before_payload_arrives() {
        let mut wire = frame(0x02, &[0; 60]);
        wire.extend(frame(0x80, &[0; 60]));
        let (events, result) = run(&wire[..wire.len() - 60], 1000, 100);
        assert_eq!(result, Err(ProtocolError::MessageTooBig { limit: 100 }));
        assert_eq!(events.len(), 1);
        assert_eq!(run(&wire, 1000, 120).1, Ok(()));
    }

    #[test]
    fn nothing_after_close_is_read() {
        let mut wire = frame(0x88, &[]);
        wire.extend(frame(0x81, b"late"));
        wire.extend([0xFF, 0xFF]);
        let (events, result) = run(&wire, 1000, 0);
        assert_eq!(result, Ok(()));
        assert_eq!(events, [Ev::Close(None, String::new())]);
    }

    #[test]
    fn break_returns_the_unread_rest() {
        let mut wire = frame(0x81, b"one");
        let first_len = wire.len();
        wire.extend(frame(0x81, b"two"));
        let mut rx = Receiver::new(0, None);
        let mut seen = Vec::new();
        let mut buf = wire.clone();
        let used = rx
            .feed(&mut buf, &mut |ev| {
                seen.push(record(ev));
                ControlFlow::Break(())
            })
            .unwrap();
        assert_eq!(used, first_len);
        let mut rest = wire[used..].to_vec();
        rx.feed(&mut rest, &mut |ev| {
            seen.push(record(ev));
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                Ev::Data(MessageKind::Text, true, true, b"one".to_vec()),
                Ev::Data(MessageKind::Text, true, true, b"two".to_vec()),
            ]
        );
    }

    /// A client's side of permessage-deflate, from flate2 (miniz_oxide):
    /// raw DEFLATE, sync-flushed, 00 00 ff ff removed, context kept.
    struct Client(flate2::write::DeflateEncoder<Vec<u8>>);

    impl Client {
        fn new() -> Self {
            Self(flate2::write::DeflateEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            ))
        }

        fn compress(&mut self, message: &[u8]) -> Vec<u8> {
            use std::io::Write;
            self.0.write_all(message).unwrap();
            self.0.flush().unwrap();
            let mut out = std::mem::take(self.0.get_mut());
            assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
            out.truncate(out.len() - 4);
            out
        }
    }

    /// A receiver that negotiated permessage-deflate with context takeover.
    fn inflating(limit: u64) -> Receiver {
        use super::super::deflate::{Negotiated, WindowBits};
        let negotiated = Negotiated {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: WindowBits::MAX,
            client_max_window_bits: WindowBits::MAX,
        };
        Receiver::new(limit, Some(Inflater::new(&negotiated)))
    }

    #[test]
    fn compressed_messages_arrive_whole_at_every_split_and_pause() {
        let mut client = Client::new();
        // About 20 KB of random text with 2-, 3- and 4-byte characters:
        // more than one inflated piece, and within the 32 KiB window.
        let mut rng = fastrand::Rng::with_seed(1);
        let chars = ['a', 'b', 'c', 'd', ' ', 'é', 'ö', '€', '𝄞'];
        let text: String = (0..12_000)
            .map(|_| chars[rng.usize(..chars.len())])
            .collect();
        let binary: Vec<u8> = (0..100_000u32).map(|i| (i % 7 * 31) as u8).collect();
        // The client compresses in the order the messages go out.
        let once = client.compress(text.as_bytes());
        let mut wire = frame(0xC1, &once);
        wire.extend(frame(0x89, b"ping"));
        // Context takeover: this copy refers back into the one before it.
        let again = client.compress(text.as_bytes());
        assert!(
            again.len() * 2 < once.len(),
            "{} {}",
            again.len(),
            once.len()
        );
        wire.extend(frame(0xC1, &again));
        // Fragmented: RSV1 on the first frame only.
        let compressed_binary = client.compress(&binary);
        let (first, rest) = compressed_binary.split_at(compressed_binary.len() / 3);
        let (second, third) = rest.split_at(rest.len() / 2);
        wire.extend(frame(0x42, first));
        wire.extend(frame(0x00, second));
        wire.extend(frame(0x80, third));
        // Not compressed, between compressed ones.
        wire.extend(frame(0x81, b"plain"));
        wire.extend(frame(0xC2, &client.compress(b"")));
        // RSV1 with no payload at all: an empty message.
        wire.extend(frame(0xC1, b""));
        wire.extend(frame(0x88, &[0x03, 0xE8]));
        let expected = vec![
            Ev::Data(MessageKind::Text, true, true, text.as_bytes().to_vec()),
            Ev::Ping(b"ping".to_vec()),
            Ev::Data(MessageKind::Text, true, true, text.as_bytes().to_vec()),
            Ev::Data(MessageKind::Binary, true, true, binary.clone()),
            Ev::Data(MessageKind::Text, true, true, b"plain".to_vec()),
            Ev::Data(MessageKind::Binary, true, true, vec![]),
            Ev::Data(MessageKind::Text, true, true, vec![]),
            Ev::Close(Some(1000), String::new()),
        ];
        let steps = (1..=40).chain([100, 1000, 4096, wire.len()]);
        for step in steps {
            for pause in [false, true] {
                let (events, result) = feed_all(&mut inflating(0), &wire, step, pause);
                assert_eq!(result, Ok(()), "step {step}, pause {pause}");
                for ev in &events {
                    if let Ev::Data(MessageKind::Text, _, _, d) = ev {
                        assert!(std::str::from_utf8(d).is_ok(), "split char at step {step}");
                    }
                }
                assert_eq!(messages(&events), expected, "step {step}, pause {pause}");
            }
        }
        // Whole, a small compressed message is one event, flagged last.
        let mut client = Client::new();
        let (events, _) = feed_all(
            &mut inflating(0),
            &frame(0xC1, &client.compress(b"one piece")),
            1000,
            false,
        );
        assert_eq!(
            events,
            [Ev::Data(
                MessageKind::Text,
                true,
                true,
                b"one piece".to_vec()
            )]
        );
    }

    #[test]
    fn output_a_paused_inflater_holds_comes_with_the_next_feed() {
        // One byte more than an inflated piece: after the first piece all
        // the input is read, and the last byte is still in the inflater.
        let message = vec![0u8; 16 * 1024 + 1];
        let mut wire = frame(0xC2, &Client::new().compress(&message));
        let mut rx = inflating(0);
        let mut events = Vec::new();
        let used = rx
            .feed(&mut wire, &mut |ev| {
                events.push(record(ev));
                ControlFlow::Break(())
            })
            .unwrap();
        assert_eq!(used, wire.len());
        assert!(rx.has_pending_output());
        assert!(matches!(&events[..], [Ev::Data(_, true, false, d)] if d.len() == 16 * 1024));
        rx.feed(&mut [], &mut |ev| {
            events.push(record(ev));
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(!rx.has_pending_output());
        assert_eq!(
            messages(&events),
            [Ev::Data(MessageKind::Binary, true, true, message)]
        );
    }

    #[test]
    fn rsv1_is_refused_where_permessage_deflate_does_not_allow_it() {
        let mut client = Client::new();
        let compressed = client.compress(b"compressed");
        let cases = [
            (
                "continuation",
                [frame(0x41, &compressed[..2]), frame(0xC0, &compressed[2..])].concat(),
            ),
            (
                "continuation of a plain message",
                [frame(0x01, b"a"), frame(0xC0, b"b")].concat(),
            ),
            ("ping", frame(0xC9, b"x")),
            ("pong", frame(0xCA, b"")),
            ("close", frame(0xC8, &[0x03, 0xE8])),
        ];
        for (what, wire) in cases {
            let (_, result) = feed_all(&mut inflating(0), &wire, 64, false);
            assert_eq!(result, Err(ProtocolError::ReservedBits), "{what}");
            assert_eq!(ProtocolError::ReservedBits.close_code(), 1002);
        }
        // Without the extension, RSV1 is refused on a first frame too.
        let (_, result) = run(&frame(0xC1, &compressed), 64, 0);
        assert_eq!(result, Err(ProtocolError::ReservedBits));
    }

    #[test]
    fn the_limit_applies_to_the_inflated_size_and_stops_a_bomb_early() {
        let mut client = Client::new();
        let limit = 100_000;
        let bomb = client.compress(&vec![0; 50 << 20]);
        assert!(bomb.len() < 100_000, "{} bytes", bomb.len());
        let wire = frame(0xC2, &bomb);
        // The first 2 KB of the payload already inflate past the limit.
        let start = &wire[..wire.len() - bomb.len() + 2048];
        let (events, result) = feed_all(&mut inflating(limit), start, 512, false);
        assert_eq!(result, Err(ProtocolError::MessageTooBig { limit }));
        assert_eq!(result.unwrap_err().close_code(), 1009);
        let delivered: usize = events
            .iter()
            .map(|ev| match ev {
                Ev::Data(_, _, last, data) => {
                    assert!(!last);
                    data.len()
                }
                other => panic!("{other:?}"),
            })
            .sum();
        assert!(delivered as u64 <= limit, "{delivered}");
        // At the limit exactly is fine.
        let mut client = Client::new();
        let wire = frame(0xC2, &client.compress(&vec![0; limit as usize]));
        let (events, result) = feed_all(&mut inflating(limit), &wire, 1000, false);
        assert_eq!(result, Ok(()));
        assert_eq!(messages(&events).len(), 1);
    }

    #[test]
    fn invalid_compressed_data_closes_with_1007() {
        let (_, result) = feed_all(
            &mut inflating(0),
            &frame(0xC1, &[0xff, 0xff, 0xff]),
            64,
            false,
        );
        let error = result.unwrap_err();
        assert!(
            matches!(error, ProtocolError::InvalidCompressedData(_)),
            "{error:?}"
        );
        assert_eq!(error.close_code(), 1007);
    }

    #[test]
    fn inflated_text_fails_at_the_first_invalid_utf8() {
        let mut client = Client::new();
        let mut bad = b"fine so far ".repeat(100);
        bad.extend_from_slice(&[0xED, 0xA0, 0x80]);
        // The first fragment only: the server must not wait for the end.
        let wire = frame(0x41, &client.compress(&bad));
        let (events, result) = feed_all(&mut inflating(0), &wire, 1000, false);
        assert_eq!(result, Err(ProtocolError::InvalidUtf8));
        assert!(events.iter().all(|e| matches!(e, Ev::Data(_, _, false, _))));
    }
}
