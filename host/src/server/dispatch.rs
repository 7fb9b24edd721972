//! Delivery of what a connection receives: the receiver's data chunks as
//! DataIn events, per BufferMessage (whole messages) and line mode (one
//! event per line), pings answered and reported, the close frame kept for
//! the session.

use std::ops::ControlFlow;

use super::connection::Connection;
use super::events::{DataFormat, DataIn};
use super::handler::Handler;
use super::line_mode::LineSplitter;
use super::settings::Settings;
use crate::protocol::frame::OpCode;
use crate::protocol::receiver::{DataChunk, Incoming, MessageKind};

/// A BufferMessage buffer larger than this is freed after its message.
const KEEP_MESSAGE_BUFFER: usize = 64 * 1024;

/// Per-connection event dispatch: assembles what the receiver yields into
/// DataIn/Ping events per BufferMessage and line mode, for the server's
/// handler. It holds no reference of its own to the connection or the
/// handler: a session makes one whenever it wakes from rest.
pub(super) struct Dispatch {
    buffer_message: bool,
    message: Vec<u8>,
    kind: MessageKind,
    lines: LineSplitter,
    /// Line mode and MaxLineLength, as the connection's handle last set
    /// them (copied by the session each round).
    pub line_mode: bool,
    pub max_line_length: usize,
    /// A close frame arrived: its code and reason.
    close: Option<(Option<u16>, String)>,
    /// Data messages completed since the server's counters last took them.
    messages_received: u64,
}

impl Dispatch {
    pub fn new(settings: &Settings) -> Self {
        Self {
            buffer_message: settings.buffer_message,
            message: Vec::new(),
            kind: MessageKind::Binary,
            lines: LineSplitter::default(),
            line_mode: false,
            max_line_length: settings.max_line_length,
            close: None,
            messages_received: 0,
        }
    }

    /// Handles one event of the receiver; breaks when the handler paused
    /// data or a close frame arrived.
    // Inlined into the receiver's loop for its commonest event, a whole
    // binary message handed on as it is; the rest out of line.
    #[inline(always)]
    pub fn on_event(&mut self, conn: &Connection, event: Incoming<'_>) -> ControlFlow<()> {
        match event {
            // Nothing to assemble: no other message is under way, so even
            // a BufferMessage buffer is empty.
            Incoming::WholeBinary(payload) if !self.line_mode => {
                self.messages_received += 1;
                conn.0.server.handler.binary_message(conn, payload);
                accepting(conn)
            }
            event => self.on_other_event(conn, event),
        }
    }

    #[inline(never)]
    fn on_other_event(&mut self, conn: &Connection, event: Incoming<'_>) -> ControlFlow<()> {
        let handler = conn.0.server.handler.as_ref();
        match event {
            Incoming::Data(chunk) => {
                self.on_data(conn, chunk);
                accepting(conn)
            }
            // In line mode, split into lines like any data.
            Incoming::WholeBinary(payload) => {
                let data = payload.unmask();
                self.on_data(conn, DataChunk::whole(MessageKind::Binary, data));
                accepting(conn)
            }
            Incoming::Ping(payload) => {
                queue_pong(conn, payload);
                handler.ping(conn, payload, false);
                ControlFlow::Continue(())
            }
            Incoming::Pong(payload) => {
                handler.ping(conn, payload, true);
                ControlFlow::Continue(())
            }
            Incoming::Close(frame) => {
                self.close = Some((frame.code, frame.reason.to_owned()));
                ControlFlow::Break(())
            }
        }
    }

    fn on_data(&mut self, conn: &Connection, chunk: DataChunk<'_>) {
        let handler = conn.0.server.handler.as_ref();
        if chunk.first {
            self.kind = chunk.kind;
        }
        if chunk.last {
            self.messages_received += 1;
        }
        let first_format = match self.kind {
            MessageKind::Text => DataFormat::Text,
            MessageKind::Binary => DataFormat::Binary,
        };
        let Self { message, lines, .. } = self;
        let (data, first, eom): (&[u8], bool, bool) = if !self.buffer_message {
            (chunk.data, chunk.first, chunk.last)
        } else if !chunk.last {
            message.extend_from_slice(chunk.data);
            return;
        } else if message.is_empty() {
            (chunk.data, true, true)
        } else {
            message.extend_from_slice(chunk.data);
            (message.as_slice(), true, true)
        };
        if self.line_mode {
            lines.push(data, eom, self.max_line_length, &mut |line, eol, eom| {
                deliver_line(handler, conn, line, eol, eom)
            });
        } else {
            let format = if first {
                first_format
            } else {
                DataFormat::Continuation
            };
            handler.data_in(
                conn,
                &DataIn {
                    format,
                    data,
                    eom,
                    eol: false,
                },
            );
        }
        if self.buffer_message && eom {
            message.clear();
            if message.capacity() > KEEP_MESSAGE_BUFFER {
                *message = Vec::new();
            }
        }
    }

    /// Whether line mode holds back lines a pause stopped.
    pub fn has_held_lines(&self) -> bool {
        self.lines.has_held()
    }

    /// Holds no part of a message or line and nothing for the session: a
    /// new one would carry on the same.
    pub fn is_at_rest(&self) -> bool {
        self.message.is_empty()
            && self.lines.is_empty()
            && self.close.is_none()
            && self.messages_received == 0
    }

    /// The client's close frame, once one arrived.
    pub fn take_close(&mut self) -> Option<(Option<u16>, String)> {
        self.close.take()
    }

    /// Data messages completed since the last call.
    pub fn take_messages_received(&mut self) -> u64 {
        std::mem::take(&mut self.messages_received)
    }

    /// Delivers the lines a pause held back in line mode.
    pub fn resume_lines(&mut self, conn: &Connection) {
        let handler = conn.0.server.handler.as_ref();
        self.lines
            .resume(self.max_line_length, &mut |line, eol, eom| {
                deliver_line(handler, conn, line, eol, eom)
            });
    }
}

/// Whether the session goes on dispatching after a data event: not once
/// the handler paused the client's data.
fn accepting(conn: &Connection) -> ControlFlow<()> {
    if conn.accepting_data() {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(())
    }
}

/// Answers a ping, unless closing or the client is not reading what we
/// send (RFC 6455 §5.5.3 lets us answer only the latest ping).
fn queue_pong(conn: &Connection, payload: &[u8]) {
    let mut st = conn.lock();
    if !st.closing && st.out.queued() <= conn.0.limits.max_send_queue {
        st.out.push_frame(true, OpCode::Pong, payload);
    }
}

/// Fires DataIn for one line; breaks when the handler paused data.
fn deliver_line(
    handler: &dyn Handler,
    conn: &Connection,
    line: &[u8],
    eol: bool,
    eom: bool,
) -> ControlFlow<()> {
    let event = DataIn {
        format: DataFormat::Continuation,
        data: line,
        eom,
        eol,
    };
    handler.data_in(conn, &event);
    accepting(conn)
}
