//! What the fuzz targets share: a client's frame encoder, and feeding a
//! receiver in arbitrary pieces while recording what it hands out.

use std::ops::ControlFlow;

use wsserver::MessageKind;
use wsserver::protocol::close::is_valid_wire_code;
use wsserver::protocol::mask::apply_mask;
use wsserver::protocol::receiver::{Incoming, Receiver};

/// Frame opcodes (RFC 6455 §5.2).
pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;

/// One frame as a client sends it: masked with `mask`.
pub fn client_frame(opcode: u8, fin: bool, rsv1: bool, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask, 0);
    out
}

/// What a receiver handed out, with data pieces joined into messages so
/// that feeds split differently compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Message { kind: MessageKind, data: Vec<u8> },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close { code: Option<u16>, reason: String },
}

/// The events of one feeding and, if the receiver failed, the close code
/// it asked for. `partial` is the message still being assembled.
#[derive(Debug, Default)]
pub struct Record {
    pub events: Vec<Event>,
    pub partial: Option<(MessageKind, Vec<u8>)>,
    pub failed: Option<u16>,
}

impl Record {
    fn take(&mut self, incoming: Incoming<'_>) {
        match incoming {
            Incoming::Data(chunk) => {
                if chunk.kind == MessageKind::Text {
                    assert!(
                        std::str::from_utf8(chunk.data).is_ok(),
                        "a text piece that is not whole characters"
                    );
                }
                assert_eq!(chunk.first, self.partial.is_none(), "first flag");
                let (kind, data) = self.partial.get_or_insert_with(|| (chunk.kind, Vec::new()));
                assert_eq!(*kind, chunk.kind, "a message changed kind");
                data.extend_from_slice(chunk.data);
                if chunk.last {
                    let (kind, data) = self.partial.take().expect("just set");
                    self.events.push(Event::Message { kind, data });
                }
            }
            Incoming::WholeBinary(payload) => {
                assert!(self.partial.is_none(), "a whole message inside another");
                // As the echo and the plugin batch take it: copied, then the
                // copy unmasked.
                let mut data = Vec::new();
                payload.extend_unmasked(&mut data);
                self.events.push(Event::Message {
                    kind: MessageKind::Binary,
                    data,
                });
            }
            Incoming::Ping(payload) => self.events.push(Event::Ping(payload.to_vec())),
            Incoming::Pong(payload) => self.events.push(Event::Pong(payload.to_vec())),
            Incoming::Close(frame) => {
                if let Some(code) = frame.code {
                    assert!(is_valid_wire_code(code), "close code {code} let through");
                }
                self.events.push(Event::Close {
                    code: frame.code,
                    reason: frame.reason.to_owned(),
                })
            }
        }
    }
}

/// `bytes` in pieces of the sizes `splits` gives in turn (0, or no sizes
/// at all: the rest); always at least one piece, empty for empty `bytes`.
pub fn pieces<'a>(bytes: &'a [u8], splits: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut sizes = splits.iter().cycle();
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let now = rest?;
        let size = match sizes.next().map(|&s| usize::from(s)) {
            Some(0) | None => now.len(),
            Some(s) => s.min(now.len()),
        };
        let (part, after) = now.split_at(size);
        rest = (!after.is_empty()).then_some(after);
        Some(part)
    })
}

/// Feeds `bytes` to `receiver` in pieces of the sizes `splits` gives (in
/// turn; 0 means the rest), pausing after every `pause_every`th event
/// (0: never) and feeding the unconsumed rest again, as the server's read
/// loop does.
pub fn feed(receiver: &mut Receiver, bytes: &[u8], splits: &[u8], pause_every: u8) -> Record {
    let mut record = Record::default();
    let mut seen = 0u32;
    for piece in pieces(bytes, splits).filter(|piece| !piece.is_empty()) {
        let mut piece = piece.to_vec();
        let mut pos = 0;
        // Each round hands out at least one event or consumes everything.
        loop {
            let mut on = |incoming: Incoming<'_>| {
                record.take(incoming);
                seen += 1;
                if pause_every != 0 && seen % u32::from(pause_every) == 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            };
            match receiver.feed(&mut piece[pos..], &mut on) {
                Ok(used) => pos += used,
                Err(e) => {
                    record.failed = Some(e.close_code());
                    return record;
                }
            }
            if receiver.is_closed() {
                return record;
            }
            if pos == piece.len() && !receiver.has_pending_output() {
                break;
            }
        }
    }
    record
}
