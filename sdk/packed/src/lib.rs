//! The packed batch layout of `wsserver:plugin/packed-handler`: the events
//! of one `on-events` call and the commands it returns, as bytes.
//!
//! Lowering a `list<event>` through the canonical ABI costs an allocation
//! and several checks per event; one `list<u8>` costs one copy. So the host
//! and the SDKs exchange batches in this layout, and plugin authors still
//! see one typed call per event. The host writes events and reads commands;
//! an SDK reads events and writes commands. Both sides use this crate (Rust)
//! or follow the layout below (other languages).
//!
//! The layout is documented with the interface, in `wit/plugin.wit`
//! (`packed-handler`); the kind numbers below follow it.

use std::fmt;

pub type ConnectionId = u64;

/// Format of an incoming data chunk (the seed's DataFormat).
pub const CONTINUATION: u8 = 0;
pub const TEXT: u8 = 1;
pub const BINARY: u8 = 2;

/// Format of an outgoing message.
pub const SEND_TEXT: u8 = 0;
pub const SEND_BINARY: u8 = 1;

/// The record kinds read and written on paths of their own: a
/// [`Event::DataIn`] and a [`Command::SendInput`].
const KIND_DATA_IN: u8 = 2;
const KIND_SEND_INPUT: u8 = 10;

/// One event, borrowing its bytes from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    Connected(ConnectionId),
    DataIn {
        connection: ConnectionId,
        format: u8,
        eom: bool,
        eol: bool,
        data: &'a [u8],
    },
    Ping {
        connection: ConnectionId,
        response: bool,
        payload: &'a [u8],
    },
    Disconnected {
        connection: ConnectionId,
        code: u16,
        description: &'a str,
    },
    ReadyToSend(ConnectionId),
    Error {
        connection: ConnectionId,
        code: u32,
        description: &'a str,
    },
    /// Subscribers joined or left a watched topic.
    Presence {
        topic: &'a str,
        joined: bool,
        /// The connection that joined or left, when it is one of the
        /// plugin's on this node.
        connection: Option<ConnectionId>,
        count: u32,
        subscribers: u64,
    },
}

impl Event<'_> {
    /// The connection the event concerns, if it concerns one.
    pub fn connection(&self) -> Option<ConnectionId> {
        match *self {
            Self::Connected(id) | Self::ReadyToSend(id) => Some(id),
            Self::DataIn { connection, .. }
            | Self::Ping { connection, .. }
            | Self::Disconnected { connection, .. }
            | Self::Error { connection, .. } => Some(connection),
            Self::Presence { connection, .. } => connection,
        }
    }
}

/// One command, borrowing its bytes from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    Send {
        connection: ConnectionId,
        format: u8,
        data: &'a [u8],
    },
    Ping {
        connection: ConnectionId,
        payload: &'a [u8],
    },
    Disconnect {
        connection: ConnectionId,
        code: u16,
        reason: &'a str,
    },
    SetLineMode {
        connection: ConnectionId,
        enabled: bool,
    },
    PauseData(ConnectionId),
    ResumeData(ConnectionId),
    Subscribe {
        connection: ConnectionId,
        topic: &'a str,
    },
    Unsubscribe {
        connection: ConnectionId,
        topic: &'a str,
    },
    Publish {
        topic: &'a str,
        format: u8,
        data: &'a [u8],
        exclude: Option<ConnectionId>,
    },
    /// A send of bytes the batch of events carried (`len` bytes from
    /// `offset` in it, e.g. a data-in payload an echo returns): the host
    /// sends them from its own copy of the batch, so they are not copied
    /// back out of the guest.
    SendInput {
        connection: ConnectionId,
        format: u8,
        offset: u32,
        len: u32,
    },
    /// Methods for which the plugin keeps the SDK's default (bits
    /// [`DEFAULT_OPEN_REQUEST`], [`DEFAULT_CONNECTED`], [`DEFAULT_PING`]):
    /// the host may answer open requests 101 itself and leave out the
    /// events the plugin ignores, while this instance lives.
    Defaults(u8),
}

/// Bits of [`Command::Defaults`]: the plugin accepts every open request
/// (101, no subprotocol, no headers)...
pub const DEFAULT_OPEN_REQUEST: u8 = 1;
/// ... ignores `connected` events ...
pub const DEFAULT_CONNECTED: u8 = 2;
/// ... ignores `ping` events (the host answers pings itself).
pub const DEFAULT_PING: u8 = 4;

impl Command<'_> {
    /// The connection the command is for; a publish is for a topic.
    pub fn connection(&self) -> Option<ConnectionId> {
        Some(match *self {
            Self::Send { connection, .. }
            | Self::SendInput { connection, .. }
            | Self::Ping { connection, .. }
            | Self::Disconnect { connection, .. }
            | Self::SetLineMode { connection, .. }
            | Self::Subscribe { connection, .. }
            | Self::Unsubscribe { connection, .. } => connection,
            Self::PauseData(id) | Self::ResumeData(id) => id,
            Self::Publish { .. } | Self::Defaults(_) => return None,
        })
    }
}

impl<'a> Command<'a> {
    /// The command with a [`SendInput`](Self::SendInput) turned into the
    /// [`Send`](Self::Send) of the bytes it names in `batch` (the events
    /// it answers); `None` when they are not all in the batch.
    pub fn with_input<'s>(self, batch: &'s [u8]) -> Option<Command<'s>>
    where
        'a: 's,
    {
        Some(match self {
            Self::SendInput {
                connection,
                format,
                offset,
                len,
            } => Command::Send {
                connection,
                format,
                data: input_bytes(batch, offset, len)?,
            },
            other => other,
        })
    }
}

/// A [`Command::SendInput`], as [`Commands::next_send_input`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSend {
    pub connection: ConnectionId,
    pub format: u8,
    pub offset: u32,
    pub len: u32,
}

impl InputSend {
    /// A send-input record after its kind byte.
    #[inline]
    fn read(record: &[u8; 17]) -> Result<Self, &'static str> {
        let [id @ .., format, o0, o1, o2, o3, l0, l1, l2, l3] = *record;
        if format > SEND_BINARY {
            return Err("unknown format");
        }
        Ok(Self {
            connection: u64::from_le_bytes(id),
            format,
            offset: u32::from_le_bytes([o0, o1, o2, o3]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
        })
    }

    /// The bytes it names in `batch`; `None` when they are not all in it.
    #[inline]
    pub fn bytes(self, batch: &[u8]) -> Option<&[u8]> {
        input_bytes(batch, self.offset, self.len)
    }
}

#[inline]
fn input_bytes(batch: &[u8], offset: u32, len: u32) -> Option<&[u8]> {
    let start = offset as usize;
    batch.get(start..start.checked_add(len as usize)?)
}

/// A batch that does not follow the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Where the bad record starts.
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed batch at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for Malformed {}

/// Appends records to a batch.
pub struct Writer<'b> {
    out: &'b mut Vec<u8>,
}

impl<'b> Writer<'b> {
    pub fn new(out: &'b mut Vec<u8>) -> Self {
        Self { out }
    }

    fn kind(&mut self, kind: u8) -> &mut Self {
        self.out.push(kind);
        self
    }

    fn id(&mut self, id: ConnectionId) -> &mut Self {
        self.u64(id)
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.out.push(v);
        self
    }

    fn u16(&mut self, v: u16) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn u32(&mut self, v: u32) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.out.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.u32(len32(b));
        self.out.extend_from_slice(b);
        self
    }

    /// A record whose fixed part is one array, then its bytes: one
    /// reservation and two copies for the records of every message (data-in,
    /// send, send-input), where field-by-field pushes check capacity each.
    #[inline]
    fn record<const N: usize>(&mut self, head: [u8; N], tail: &[u8]) {
        self.out.reserve(N + tail.len());
        self.out.extend_from_slice(&head);
        self.out.extend_from_slice(tail);
    }

    /// A DataIn record whose `len` bytes of data the caller appends right
    /// after, itself: a host that unmasks a client's payload as it copies
    /// it. `event` writes the same record from a slice.
    #[inline]
    pub fn data_in_head(
        &mut self,
        connection: ConnectionId,
        format: u8,
        eom: bool,
        eol: bool,
        len: usize,
    ) {
        let head = data_in_head(connection, format, eom, eol, len);
        self.out.reserve(head.len() + len);
        self.out.extend_from_slice(&head);
    }

    pub fn event(&mut self, event: &Event<'_>) {
        match *event {
            Event::Connected(id) => {
                self.kind(1).id(id);
            }
            Event::DataIn {
                connection,
                format,
                eom,
                eol,
                data,
            } => {
                self.record(data_in_head(connection, format, eom, eol, data.len()), data);
            }
            Event::Ping {
                connection,
                response,
                payload,
            } => {
                self.kind(3)
                    .id(connection)
                    .u8(response.into())
                    .bytes(payload);
            }
            Event::Disconnected {
                connection,
                code,
                description,
            } => {
                self.kind(4)
                    .id(connection)
                    .u16(code)
                    .bytes(description.as_bytes());
            }
            Event::ReadyToSend(id) => {
                self.kind(5).id(id);
            }
            Event::Error {
                connection,
                code,
                description,
            } => {
                self.kind(6)
                    .id(connection)
                    .u32(code)
                    .bytes(description.as_bytes());
            }
            Event::Presence {
                topic,
                joined,
                connection,
                count,
                subscribers,
            } => {
                self.kind(7)
                    .bytes(topic.as_bytes())
                    .u8(joined.into())
                    .u8(connection.is_some().into())
                    .id(connection.unwrap_or(0))
                    .u32(count)
                    .u64(subscribers);
            }
        }
    }

    /// A [`Command::SendInput`] record, written without building one (a
    /// plugin echoing its input writes one per message).
    #[inline]
    pub fn send_input(&mut self, connection: ConnectionId, format: u8, offset: u32, len: u32) {
        let [c0, c1, c2, c3, c4, c5, c6, c7] = connection.to_le_bytes();
        let [o0, o1, o2, o3] = offset.to_le_bytes();
        let [l0, l1, l2, l3] = len.to_le_bytes();
        let kind = KIND_SEND_INPUT;
        let head = [
            kind, c0, c1, c2, c3, c4, c5, c6, c7, format, o0, o1, o2, o3, l0, l1, l2, l3,
        ];
        self.out.extend_from_slice(&head);
    }

    pub fn command(&mut self, command: &Command<'_>) {
        match *command {
            Command::Send {
                connection,
                format,
                data,
            } => {
                let [c0, c1, c2, c3, c4, c5, c6, c7] = connection.to_le_bytes();
                let [l0, l1, l2, l3] = len32(data).to_le_bytes();
                let head = [1, c0, c1, c2, c3, c4, c5, c6, c7, format, l0, l1, l2, l3];
                self.record(head, data);
            }
            Command::Ping {
                connection,
                payload,
            } => {
                self.kind(2).id(connection).bytes(payload);
            }
            Command::Disconnect {
                connection,
                code,
                reason,
            } => {
                self.kind(3)
                    .id(connection)
                    .u16(code)
                    .bytes(reason.as_bytes());
            }
            Command::SetLineMode {
                connection,
                enabled,
            } => {
                self.kind(4).id(connection).u8(enabled.into());
            }
            Command::PauseData(id) => {
                self.kind(5).id(id);
            }
            Command::ResumeData(id) => {
                self.kind(6).id(id);
            }
            Command::Subscribe { connection, topic } => {
                self.kind(7).id(connection).bytes(topic.as_bytes());
            }
            Command::Unsubscribe { connection, topic } => {
                self.kind(8).id(connection).bytes(topic.as_bytes());
            }
            Command::Publish {
                topic,
                format,
                data,
                exclude,
            } => {
                self.kind(9)
                    .bytes(topic.as_bytes())
                    .u8(format)
                    .u8(exclude.is_some().into())
                    .id(exclude.unwrap_or(0))
                    .bytes(data);
            }
            Command::SendInput {
                connection,
                format,
                offset,
                len,
            } => self.send_input(connection, format, offset, len),
            Command::Defaults(methods) => {
                self.kind(11).u8(methods);
            }
        }
    }
}

/// The fixed part of a DataIn record, before its `len` bytes of data.
#[inline]
fn data_in_head(
    connection: ConnectionId,
    format: u8,
    eom: bool,
    eol: bool,
    len: usize,
) -> [u8; 15] {
    let flags = u8::from(eom) | (u8::from(eol) << 1);
    let [c0, c1, c2, c3, c4, c5, c6, c7] = connection.to_le_bytes();
    let [l0, l1, l2, l3] = (len as u32).to_le_bytes();
    [
        KIND_DATA_IN,
        c0,
        c1,
        c2,
        c3,
        c4,
        c5,
        c6,
        c7,
        format,
        flags,
        l0,
        l1,
        l2,
        l3,
    ]
}

/// A payload's length field. Payloads are bounded by the host's limits,
/// far below 4 GiB.
#[inline]
fn len32(b: &[u8]) -> u32 {
    b.len() as u32
}

/// Reads records from a batch.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    start: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, reason: &'static str) -> Result<T, Malformed> {
        Err(Malformed {
            offset: self.start,
            reason,
        })
    }

    /// The next `N` bytes as an array, after one bounds check.
    #[inline]
    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], Malformed> {
        match self.buf.get(self.pos..).and_then(<[u8]>::first_chunk::<N>) {
            Some(head) => {
                self.pos += N;
                Ok(head)
            }
            None => self.fail("truncated record"),
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        match self.buf.get(self.pos..self.pos.saturating_add(n)) {
            Some(b) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(b)
            }
            _ => self.fail("truncated record"),
        }
    }

    #[inline]
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.array::<1>()?[0])
    }

    fn bool(&mut self) -> Result<bool, Malformed> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => self.fail("boolean other than 0 or 1"),
        }
    }

    #[inline]
    fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_le_bytes(*self.array()?))
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(*self.array()?))
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(*self.array()?))
    }

    #[inline]
    fn id(&mut self) -> Result<ConnectionId, Malformed> {
        self.u64()
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn text(&mut self) -> Result<&'a str, Malformed> {
        let b = self.bytes()?;
        std::str::from_utf8(b).or_else(|_| self.fail("text that is not UTF-8"))
    }

    #[inline]
    fn format(&mut self, max: u8) -> Result<u8, Malformed> {
        match self.u8()? {
            f if f <= max => Ok(f),
            _ => self.fail("unknown format"),
        }
    }

    fn event(&mut self) -> Result<Event<'a>, Malformed> {
        Ok(match self.u8()? {
            1 => Event::Connected(self.id()?),
            KIND_DATA_IN => {
                // The fixed part in one read: one bounds check per message.
                let head =
                    DataInHead::read(self.array::<14>()?).or_else(|reason| self.fail(reason))?;
                let data = self.take(head.len)?;
                head.with_data(data)
            }
            3 => Event::Ping {
                connection: self.id()?,
                response: self.bool()?,
                payload: self.bytes()?,
            },
            4 => Event::Disconnected {
                connection: self.id()?,
                code: self.u16()?,
                description: self.text()?,
            },
            5 => Event::ReadyToSend(self.id()?),
            6 => Event::Error {
                connection: self.id()?,
                code: self.u32()?,
                description: self.text()?,
            },
            7 => {
                let topic = self.text()?;
                let joined = self.bool()?;
                let has_connection = self.bool()?;
                let connection = self.id()?;
                // One encoding per event: no id stands behind a clear flag.
                if !has_connection && connection != 0 {
                    return self.fail("presence: a connection id without its flag");
                }
                Event::Presence {
                    topic,
                    joined,
                    connection: has_connection.then_some(connection),
                    count: self.u32()?,
                    subscribers: self.u64()?,
                }
            }
            _ => return self.fail("unknown event kind"),
        })
    }

    fn command(&mut self) -> Result<Command<'a>, Malformed> {
        Ok(match self.u8()? {
            1 => Command::Send {
                connection: self.id()?,
                format: self.format(SEND_BINARY)?,
                data: self.bytes()?,
            },
            2 => Command::Ping {
                connection: self.id()?,
                payload: self.bytes()?,
            },
            3 => Command::Disconnect {
                connection: self.id()?,
                code: self.u16()?,
                reason: self.text()?,
            },
            4 => Command::SetLineMode {
                connection: self.id()?,
                enabled: self.bool()?,
            },
            5 => Command::PauseData(self.id()?),
            6 => Command::ResumeData(self.id()?),
            7 => Command::Subscribe {
                connection: self.id()?,
                topic: self.text()?,
            },
            8 => Command::Unsubscribe {
                connection: self.id()?,
                topic: self.text()?,
            },
            9 => {
                let topic = self.text()?;
                let format = self.format(SEND_BINARY)?;
                let has_exclude = self.bool()?;
                let exclude = self.id()?;
                Command::Publish {
                    topic,
                    format,
                    exclude: has_exclude.then_some(exclude),
                    data: self.bytes()?,
                }
            }
            KIND_SEND_INPUT => InputSend::read(self.array::<17>()?)
                .or_else(|reason| self.fail(reason))?
                .into(),
            11 => Command::Defaults(self.u8()?),
            _ => return self.fail("unknown command kind"),
        })
    }
}

macro_rules! record_iter {
    ($name:ident, $item:ident, $read:ident, $doc:literal) => {
        #[doc = $doc]
        pub struct $name<'a>(Option<Reader<'a>>);

        impl<'a> Iterator for $name<'a> {
            type Item = Result<$item<'a>, Malformed>;

            fn next(&mut self) -> Option<Self::Item> {
                let reader = self.0.as_mut()?;
                if reader.pos == reader.buf.len() {
                    return None;
                }
                reader.start = reader.pos;
                let item = reader.$read();
                if item.is_err() {
                    // Nothing after a malformed record can be trusted.
                    self.0 = None;
                }
                Some(item)
            }
        }
    };
}

record_iter!(Events, Event, event, "The events of a batch, in order.");

impl From<InputSend> for Command<'_> {
    fn from(send: InputSend) -> Self {
        Command::SendInput {
            connection: send.connection,
            format: send.format,
            offset: send.offset,
            len: send.len,
        }
    }
}

/// A data-in record's fixed part.
struct DataInHead {
    connection: ConnectionId,
    format: u8,
    flags: u8,
    len: usize,
}

impl DataInHead {
    #[inline]
    fn read(head: &[u8; 14]) -> Result<Self, &'static str> {
        let [id @ .., format, flags, l0, l1, l2, l3] = *head;
        if format > BINARY {
            return Err("unknown format");
        }
        if flags > 3 {
            return Err("unknown data-in flags");
        }
        Ok(Self {
            connection: u64::from_le_bytes(id),
            format,
            flags,
            len: u32::from_le_bytes([l0, l1, l2, l3]) as usize,
        })
    }

    #[inline]
    fn with_data(self, data: &[u8]) -> Event<'_> {
        Event::DataIn {
            connection: self.connection,
            format: self.format,
            eom: self.flags & 1 != 0,
            eol: self.flags & 2 != 0,
            data,
        }
    }
}

impl<'a> Events<'a> {
    /// The next event when it is a well-formed
    /// [`DataIn`](Event::DataIn), read without the general decoding (most
    /// of a busy batch); `None`, consuming nothing, for anything else,
    /// which [`next`](Iterator::next) then reads.
    #[inline]
    pub fn next_data_in(&mut self) -> Option<Event<'a>> {
        let reader = self.0.as_mut()?;
        let (&[kind], rest) = reader.buf.get(reader.pos..)?.split_first_chunk::<1>()?;
        if kind != KIND_DATA_IN {
            return None;
        }
        let (head, rest) = rest.split_first_chunk::<14>()?;
        let head = DataInHead::read(head).ok()?;
        let data = rest.get(..head.len)?;
        reader.pos += 1 + 14 + head.len;
        Some(head.with_data(data))
    }
}

record_iter!(
    Commands,
    Command,
    command,
    "The commands of a batch, in order."
);

impl Commands<'_> {
    /// The next command when it is a well-formed
    /// [`SendInput`](Command::SendInput), read in one bounds check without
    /// the general decoding (an echo's every reply is one); `None`,
    /// consuming nothing, for anything else, which
    /// [`next`](Iterator::next) then reads.
    #[inline]
    pub fn next_send_input(&mut self) -> Option<InputSend> {
        self.next_send_input_if(|_| true)
    }

    /// [`next_send_input`](Self::next_send_input) when the send is to
    /// `connection`: the rest of a run of replies to one connection.
    #[inline]
    pub fn next_send_input_to(&mut self, connection: ConnectionId) -> Option<InputSend> {
        self.next_send_input_if(|send| send.connection == connection)
    }

    #[inline]
    fn next_send_input_if(&mut self, wanted: impl FnOnce(&InputSend) -> bool) -> Option<InputSend> {
        let reader = self.0.as_mut()?;
        let (&[kind], rest) = reader.buf.get(reader.pos..)?.split_first_chunk::<1>()?;
        if kind != KIND_SEND_INPUT {
            return None;
        }
        let send = InputSend::read(rest.first_chunk::<17>()?)
            .ok()
            .filter(wanted)?;
        reader.pos += 1 + 17;
        Some(send)
    }
}

pub fn events(batch: &[u8]) -> Events<'_> {
    Events(Some(Reader {
        buf: batch,
        pos: 0,
        start: 0,
    }))
}

pub fn commands(batch: &[u8]) -> Commands<'_> {
    Commands(Some(Reader {
        buf: batch,
        pos: 0,
        start: 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_events() -> Vec<Event<'static>> {
        vec![
            Event::Connected(7),
            Event::DataIn {
                connection: 7,
                format: TEXT,
                eom: true,
                eol: false,
                data: "héllo".as_bytes(),
            },
            Event::DataIn {
                connection: 8,
                format: CONTINUATION,
                eom: false,
                eol: true,
                data: b"",
            },
            Event::Ping {
                connection: 9,
                response: true,
                payload: b"p",
            },
            Event::Disconnected {
                connection: u64::MAX,
                code: 1006,
                description: "gone",
            },
            Event::ReadyToSend(3),
            Event::Error {
                connection: 4,
                code: 10035,
                description: "full",
            },
            Event::Presence {
                topic: "room",
                joined: true,
                connection: Some(5),
                count: 1,
                subscribers: 12,
            },
            Event::Presence {
                topic: "",
                joined: false,
                connection: None,
                count: 3,
                subscribers: u64::MAX,
            },
        ]
    }

    fn all_commands() -> Vec<Command<'static>> {
        vec![
            Command::Send {
                connection: 1,
                format: SEND_TEXT,
                data: b"hi",
            },
            Command::Send {
                connection: 2,
                format: SEND_BINARY,
                data: &[0, 255],
            },
            Command::Ping {
                connection: 3,
                payload: b"x",
            },
            Command::Disconnect {
                connection: 4,
                code: 4000,
                reason: "bye",
            },
            Command::SetLineMode {
                connection: 5,
                enabled: true,
            },
            Command::PauseData(6),
            Command::ResumeData(7),
            Command::Subscribe {
                connection: 8,
                topic: "room",
            },
            Command::Unsubscribe {
                connection: 9,
                topic: "room",
            },
            Command::Publish {
                topic: "room",
                format: SEND_TEXT,
                data: b"all",
                exclude: Some(8),
            },
            Command::Publish {
                topic: "t",
                format: SEND_BINARY,
                data: b"",
                exclude: None,
            },
            Command::SendInput {
                connection: 10,
                format: SEND_TEXT,
                offset: 17,
                len: u32::MAX,
            },
            Command::Defaults(DEFAULT_OPEN_REQUEST | DEFAULT_PING),
        ]
    }

    #[test]
    fn events_round_trip() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        for e in all_events() {
            w.event(&e);
        }
        let read: Vec<Event<'_>> = events(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, all_events());
    }

    #[test]
    fn a_data_in_head_with_its_data_appended_is_the_same_record() {
        let event = Event::DataIn {
            connection: 7,
            format: BINARY,
            eom: true,
            eol: false,
            data: b"payload",
        };
        let mut whole = Vec::new();
        Writer::new(&mut whole).event(&event);
        let mut parts = Vec::new();
        Writer::new(&mut parts).data_in_head(7, BINARY, true, false, 7);
        parts.extend_from_slice(b"payload");
        assert_eq!(parts, whole);
        let read: Vec<Event<'_>> = events(&parts).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, [event]);
    }

    #[test]
    fn commands_round_trip() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        for c in all_commands() {
            w.command(&c);
        }
        let read: Vec<Command<'_>> = commands(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(read, all_commands());
    }

    /// Reads records as the fast paths do: `shortcut` first, `next` for
    /// what it leaves. What was read, and how many the shortcut took.
    fn read_with<T, I>(records: &mut I, shortcut: impl Fn(&mut I) -> Option<T>) -> (Vec<T>, usize)
    where
        I: Iterator<Item = Result<T, Malformed>>,
    {
        let mut read = Vec::new();
        let mut taken = 0;
        loop {
            if let Some(record) = shortcut(records) {
                taken += 1;
                read.push(record);
                continue;
            }
            match records.next() {
                Some(record) => read.push(record.unwrap()),
                None => return (read, taken),
            }
        }
    }

    /// The guest's shortcut reads exactly the data-in records, in order
    /// with what `next` reads, and leaves every other record (a malformed
    /// one included) to `next`.
    #[test]
    fn the_data_in_shortcut_reads_what_next_reads() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        for e in all_events() {
            w.event(&e);
        }
        let (read, shortcut) = read_with(&mut events(&buf), Events::next_data_in);
        assert_eq!(read, all_events());
        let data_ins = all_events()
            .iter()
            .filter(|e| matches!(e, Event::DataIn { .. }))
            .count();
        assert!(data_ins > 1);
        assert_eq!(shortcut, data_ins);

        let data_in = |format, data: &'static [u8]| Event::DataIn {
            connection: 1,
            format,
            eom: true,
            eol: false,
            data,
        };
        // An unknown format is not taken: `next` reports it.
        let mut bad = Vec::new();
        Writer::new(&mut bad).event(&data_in(9, b"x"));
        let mut evs = events(&bad);
        assert_eq!(evs.next_data_in(), None);
        assert_eq!(evs.next().unwrap().unwrap_err().reason, "unknown format");
        // Nor is one whose data is cut short.
        let mut cut = Vec::new();
        Writer::new(&mut cut).event(&data_in(BINARY, b"abc"));
        let mut evs = events(&cut[..cut.len() - 1]);
        assert_eq!(evs.next_data_in(), None);
        assert_eq!(evs.next().unwrap().unwrap_err().reason, "truncated record");
    }

    /// The host's shortcut reads exactly the send-input records, in
    /// order with what `next` reads, and leaves every other record (a
    /// malformed one included) to `next`.
    #[test]
    fn the_send_input_shortcut_reads_what_next_reads() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        for c in all_commands() {
            w.command(&c);
        }
        let (read, shortcut) = read_with(&mut commands(&buf), |cmds| {
            cmds.next_send_input().map(Command::from)
        });
        assert_eq!(read, all_commands());
        let inputs = all_commands()
            .iter()
            .filter(|c| matches!(c, Command::SendInput { .. }))
            .count();
        assert!(inputs > 0);
        assert_eq!(shortcut, inputs);

        // An unknown format is not taken: `next` reports it.
        let mut bad = Vec::new();
        Writer::new(&mut bad).command(&Command::SendInput {
            connection: 1,
            format: 7,
            offset: 0,
            len: 0,
        });
        let mut cmds = commands(&bad);
        assert_eq!(cmds.next_send_input(), None);
        assert_eq!(cmds.next().unwrap().unwrap_err().reason, "unknown format");
        // Nor is a truncated one.
        let mut cmds = commands(&buf[buf.len() - 20..buf.len() - 3]);
        assert_eq!(cmds.next_send_input(), None);
    }

    /// A run of replies to one connection ends at the first record that
    /// is not a send-input to it, which stays for the next read.
    #[test]
    fn a_run_of_sends_to_one_connection_stops_at_another_connection_or_command() {
        let input = |connection| Command::SendInput {
            connection,
            format: SEND_BINARY,
            offset: 0,
            len: 1,
        };
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        for c in [input(1), input(1), input(2), input(2)] {
            w.command(&c);
        }
        w.command(&Command::Ping {
            connection: 2,
            payload: b"",
        });
        let mut cmds = commands(&buf);
        let first = cmds.next_send_input().unwrap();
        assert_eq!(first.connection, 1);
        assert_eq!(cmds.next_send_input_to(1).map(|s| s.connection), Some(1));
        assert_eq!(cmds.next_send_input_to(1), None);
        assert_eq!(cmds.next_send_input_to(2).map(|s| s.connection), Some(2));
        assert_eq!(cmds.next_send_input_to(2).map(|s| s.connection), Some(2));
        assert_eq!(cmds.next_send_input_to(2), None);
        assert!(matches!(cmds.next(), Some(Ok(Command::Ping { .. }))));
    }

    #[test]
    fn a_send_of_input_becomes_a_send_of_the_bytes_it_names_or_nothing() {
        let batch = b"0123456789";
        let input = |offset, len| Command::SendInput {
            connection: 3,
            format: SEND_BINARY,
            offset,
            len,
        };
        assert_eq!(
            input(2, 3).with_input(batch),
            Some(Command::Send {
                connection: 3,
                format: SEND_BINARY,
                data: b"234"
            })
        );
        assert_eq!(
            input(10, 0).with_input(batch),
            Some(Command::Send {
                connection: 3,
                format: SEND_BINARY,
                data: b""
            })
        );
        assert_eq!(input(8, 3).with_input(batch), None);
        assert_eq!(input(u32::MAX, u32::MAX).with_input(batch), None);
        let other = Command::PauseData(1);
        assert_eq!(other.with_input(batch), Some(other));
    }

    #[test]
    fn every_truncation_is_reported_not_panicked() {
        let mut buf = Vec::new();
        let mut w = Writer::new(&mut buf);
        for c in all_commands() {
            w.command(&c);
        }
        for cut in 0..buf.len() {
            let results: Vec<_> = commands(&buf[..cut]).collect();
            let complete = results.iter().filter(|r| r.is_ok()).count();
            assert!(complete <= all_commands().len());
            if let Some(Err(e)) = results.last() {
                assert_eq!(e.reason, "truncated record", "cut {cut}");
            }
        }
    }

    /// Found by the packed_batches fuzz target: a presence event whose
    /// connection flag is clear must not carry an id, or two encodings
    /// would decode to one event (and a host reading the id could act on
    /// a connection the event does not name).
    #[test]
    fn a_presence_id_without_its_flag_is_refused() {
        let presence = |connection| Event::Presence {
            topic: "room",
            joined: true,
            connection,
            count: 1,
            subscribers: 1,
        };
        let (mut without, mut with) = (Vec::new(), Vec::new());
        Writer::new(&mut without).event(&presence(None));
        Writer::new(&mut with).event(&presence(Some(5)));
        // The first byte that differs is the flag; clear it, keep the id.
        let flag = (0..with.len()).find(|&i| with[i] != without[i]).unwrap();
        with[flag] = without[flag];
        assert_eq!(
            events(&with).next().unwrap().unwrap_err().reason,
            "presence: a connection id without its flag"
        );
    }

    #[test]
    fn bad_records_are_named() {
        assert_eq!(
            events(&[99]).next(),
            Some(Err(Malformed {
                offset: 0,
                reason: "unknown event kind"
            }))
        );
        let mut buf = Vec::new();
        Writer::new(&mut buf).command(&Command::Subscribe {
            connection: 1,
            topic: "ok",
        });
        let n = buf.len();
        buf[n - 1] = 0xFF;
        assert_eq!(
            commands(&buf).next().unwrap().unwrap_err().reason,
            "text that is not UTF-8"
        );
        // A huge length is truncation, not an allocation.
        let mut buf = vec![2u8];
        buf.extend_from_slice(&1u64.to_le_bytes());
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            commands(&buf).next().unwrap().unwrap_err().reason,
            "truncated record"
        );
    }
}
