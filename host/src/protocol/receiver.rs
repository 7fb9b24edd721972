//! The receiving half of a connection: bytes in, message events out.
//!
//! `Receiver` is an explicit state machine over the frame being read and the
//! message being assembled. It enforces the framing rules (masking, control
//! frames, fragmentation order), validates text as it arrives so invalid
//! UTF-8 fails at the first bad byte, and applies the message size limit when
//! a frame header announces the size, before any payload is read. Payloads
//! are unmasked in place and handed out as they arrive: an idle or streaming
//! connection holds at most a partial header, a partial control frame and up
//! to three bytes of a split character.

use std::ops::ControlFlow;

use super::ProtocolError;
use super::close::{CloseFrame, parse_close_payload};
use super::frame::{FrameHeader, MAX_CLIENT_HEADER, OpCode, parse_client_header};
use super::mask::apply_mask;
use super::utf8::{PartialChar, valid_prefix_len};

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
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

/// What the receiver found in the bytes it was fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    Data(DataChunk<'a>),
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
    /// Inside a data frame's payload.
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
    size: u64,
    delivered_first: bool,
    partial: PartialChar,
}

/// Parses and validates the client's frames; see the module docs.
#[derive(Debug)]
pub struct Receiver {
    frame: FrameState,
    message: Option<MessageState>,
    max_message_size: u64,
}

impl Receiver {
    /// `max_message_size` bounds the total payload of one message; 0 means
    /// no limit.
    pub fn new(max_message_size: u64) -> Self {
        Self {
            frame: FrameState::header(),
            message: None,
            max_message_size: if max_message_size == 0 {
                u64::MAX
            } else {
                max_message_size
            },
        }
    }

    /// Whether a close frame has been received.
    pub fn is_closed(&self) -> bool {
        matches!(self.frame, FrameState::Closed)
    }

    /// Feeds received bytes, unmasking them in place, and calls `on` for each
    /// event. If `on` returns `Break`, stops after that event and returns how
    /// many bytes were consumed; the caller feeds the rest later. Otherwise
    /// consumes everything, keeping partial frames internally.
    pub fn feed<F>(&mut self, buf: &mut [u8], on: &mut F) -> Result<usize, ProtocolError>
    where
        F: FnMut(Incoming<'_>) -> ControlFlow<()>,
    {
        let mut pos = 0;
        while pos < buf.len() {
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
                FrameState::Data {
                    remaining,
                    mask,
                    offset,
                    fin,
                } => {
                    let n = (*remaining).min((buf.len() - pos) as u64) as usize;
                    let chunk = &mut buf[pos..pos + n];
                    apply_mask(chunk, *mask, *offset as usize);
                    *remaining -= n as u64;
                    *offset += n as u64;
                    pos += n;
                    let message_done = *remaining == 0 && *fin;
                    if *remaining == 0 {
                        self.frame = FrameState::header();
                    }
                    self.deliver(chunk, message_done, on)?
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

    /// Applies the fragmentation and size rules to a new frame.
    fn start_frame<F>(
        &mut self,
        h: FrameHeader,
        on: &mut F,
    ) -> Result<ControlFlow<()>, ProtocolError>
    where
        F: FnMut(Incoming<'_>) -> ControlFlow<()>,
    {
        if h.rsv1 {
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
                delivered_first: false,
                partial: PartialChar::default(),
            }),
        };
        message.size = message.size.saturating_add(h.payload_len);
        if message.size > self.max_message_size {
            return Err(ProtocolError::MessageTooBig {
                limit: self.max_message_size,
            });
        }
        if h.payload_len == 0 {
            return if h.fin {
                self.deliver(&[], true, on)
            } else {
                Ok(ControlFlow::Continue(()))
            };
        }
        self.frame = FrameState::Data {
            remaining: h.payload_len,
            mask: h.mask,
            offset: 0,
            fin: h.fin,
        };
        Ok(ControlFlow::Continue(()))
    }

    /// Hands out an unmasked piece of the current message, holding back the
    /// bytes of a character split across pieces.
    fn deliver<F>(
        &mut self,
        chunk: &[u8],
        last: bool,
        on: &mut F,
    ) -> Result<ControlFlow<()>, ProtocolError>
    where
        F: FnMut(Incoming<'_>) -> ControlFlow<()>,
    {
        let Some(message) = self.message.as_mut() else {
            return Ok(ControlFlow::Continue(()));
        };
        let mut completed = [0u8; 4];
        let mut completed_len = 0;
        let mut body = chunk;
        if message.kind == MessageKind::Text {
            if !message.partial.is_empty() {
                let (used, done) = message
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
                message.partial.hold(tail);
            }
            body = &body[..valid];
            if last && !message.partial.is_empty() {
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
                kind: message.kind,
                first: !message.delivered_first,
                last: last && left == 0,
                data: piece,
            };
            message.delivered_first = true;
            // A Break stops after this chunk, not between its pieces.
            if on(Incoming::Data(event)).is_break() {
                flow = ControlFlow::Break(());
            }
        }
        if last {
            self.message = None;
        }
        Ok(flow)
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
            Incoming::Ping(p) => Ev::Ping(p.to_vec()),
            Incoming::Pong(p) => Ev::Pong(p.to_vec()),
            Incoming::Close(f) => Ev::Close(f.code, f.reason.to_owned()),
        }
    }

    /// Feeds `wire` in pieces of `step` bytes.
    fn run(wire: &[u8], step: usize, limit: u64) -> (Vec<Ev>, Result<(), ProtocolError>) {
        let mut rx = Receiver::new(limit);
        let mut events = Vec::new();
        for piece in wire.chunks(step) {
            let mut piece = piece.to_vec();
            let r = rx.feed(&mut piece, &mut |ev| {
                events.push(record(ev));
                ControlFlow::Continue(())
            });
            if let Err(e) = r {
                return (events, Err(e));
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
        let mut rx = Receiver::new(0);
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
}
