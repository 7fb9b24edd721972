//! The command list a plugin fills while it handles a batch of events, or
//! the packed output batch it is written into directly.

use std::ops::Range;

use crate::assembler::Message;
use crate::types::{
    CloseRequest, Command, ConnectionId, LineMode, MessageFormat, OutgoingMessage, PingOut,
    Publication, Subscription,
};

/// Collects the effects of the event handlers of one batch.
///
/// Each method appends a [`Command`]; the host applies them in order after
/// the batch, and reports any that fail as [`Plugin::error`] events at the
/// start of the next batch. Nothing crosses into the host until then, which
/// is what makes a batch cheap. For an immediate result, use the functions
/// in [`host`] instead (they act before anything queued here).
///
/// [`Plugin::error`]: crate::Plugin::error
/// [`host`]: crate::host
#[derive(Debug)]
pub struct Context {
    sink: Sink,
}

/// Where commands go.
#[derive(Debug)]
enum Sink {
    /// Kept as typed commands (the typed `on-events`, and plugin tests).
    Commands(Vec<Command>),
    /// Written at once into a packed output batch (`packed-handler`): no
    /// list of commands is built and encoded afterwards.
    Packed {
        out: Vec<u8>,
        /// Where the batch of events being handled lies in memory: a send
        /// of bytes from it refers to them instead of copying them.
        batch: Range<usize>,
    },
}

impl Default for Context {
    fn default() -> Self {
        Self {
            sink: Sink::Commands(Vec::new()),
        }
    }
}

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            sink: Sink::Commands(Vec::with_capacity(capacity)),
        }
    }

    /// A context writing the commands answering `batch` into the packed
    /// batch `out`.
    pub(crate) fn packed(out: Vec<u8>, batch: &[u8]) -> Self {
        Self {
            sink: Sink::Packed {
                out,
                batch: batch.as_ptr_range().start as usize..batch.as_ptr_range().end as usize,
            },
        }
    }

    fn push(&mut self, command: Command) {
        match &mut self.sink {
            Sink::Commands(commands) => commands.push(command),
            Sink::Packed { out, .. } => {
                wsserver_packed::Writer::new(out).command(&crate::packed::packed_command(&command))
            }
        }
    }

    /// Sends one whole message (seed: SendText / SendBytes).
    pub fn send(&mut self, connection: ConnectionId, format: MessageFormat, data: Vec<u8>) {
        self.push(Command::Send(OutgoingMessage {
            connection,
            format,
            data,
        }));
    }

    /// Sends one whole message from borrowed bytes. When they lie in the
    /// batch of events being handled (a [`DataInRef`]'s `data`, or part of
    /// it), the host sends them from its own copy of the batch: they are
    /// not copied out of the plugin.
    ///
    /// [`DataInRef`]: crate::DataInRef
    #[inline]
    pub fn send_slice(&mut self, connection: ConnectionId, format: MessageFormat, data: &[u8]) {
        // An echo's every reply: a reference into the batch.
        if let Sink::Packed { out, batch } = &mut self.sink
            && let Some(offset) = offset_in(batch, data)
        {
            let format = crate::packed::format_code(format);
            // Within the batch, so below 4 GiB.
            wsserver_packed::Writer::new(out).send_input(
                connection,
                format,
                offset,
                data.len() as u32,
            );
            return;
        }
        self.send_copy(connection, format, data);
    }

    /// [`send_slice`](Self::send_slice) of bytes from elsewhere: copied.
    #[cold]
    #[inline(never)]
    fn send_copy(&mut self, connection: ConnectionId, format: MessageFormat, data: &[u8]) {
        match &mut self.sink {
            Sink::Packed { out, .. } => {
                wsserver_packed::Writer::new(out).command(&wsserver_packed::Command::Send {
                    connection,
                    format: crate::packed::format_code(format),
                    data,
                })
            }
            Sink::Commands(_) => self.send(connection, format, data.to_vec()),
        }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, connection: ConnectionId, text: impl Into<String>) {
        self.send(connection, MessageFormat::Text, text.into().into_bytes());
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, connection: ConnectionId, data: impl Into<Vec<u8>>) {
        self.send(connection, MessageFormat::Binary, data.into());
    }

    /// Sends a message back to the connection it came from, with its format.
    pub fn send_message(&mut self, message: Message) {
        self.send(message.connection, message.format, message.data);
    }

    /// Sends a ping (at most 125 bytes of payload); the pong arrives as a
    /// ping event with `response` set.
    pub fn ping(&mut self, connection: ConnectionId, payload: impl Into<Vec<u8>>) {
        self.push(Command::Ping(PingOut {
            connection,
            payload: payload.into(),
        }));
    }

    /// Starts closing the connection with a close code (1000 is normal) and
    /// a reason of at most 123 bytes.
    pub fn disconnect(&mut self, connection: ConnectionId, code: u16, reason: impl Into<String>) {
        self.push(Command::Disconnect(CloseRequest {
            connection,
            code,
            reason: reason.into(),
        }));
    }

    /// Turns line mode on or off (seed: ChangeLineMode).
    pub fn set_line_mode(&mut self, connection: ConnectionId, enabled: bool) {
        self.push(Command::SetLineMode(LineMode {
            connection,
            enabled,
        }));
    }

    /// Stops data-in events for the connection until [`Self::resume_data`].
    pub fn pause_data(&mut self, connection: ConnectionId) {
        self.push(Command::PauseData(connection));
    }

    pub fn resume_data(&mut self, connection: ConnectionId) {
        self.push(Command::ResumeData(connection));
    }

    /// Subscribes the connection to a topic: it receives what is published
    /// there until it unsubscribes or closes.
    pub fn subscribe(&mut self, connection: ConnectionId, topic: impl Into<String>) {
        self.push(Command::Subscribe(Subscription {
            connection,
            topic: topic.into(),
        }));
    }

    pub fn unsubscribe(&mut self, connection: ConnectionId, topic: impl Into<String>) {
        self.push(Command::Unsubscribe(Subscription {
            connection,
            topic: topic.into(),
        }));
    }

    /// Sends a message to every subscriber of `topic` except `exclude`
    /// (typically the sender). The host fans it out without calling the
    /// plugin again.
    pub fn publish(
        &mut self,
        topic: impl Into<String>,
        format: MessageFormat,
        data: Vec<u8>,
        exclude: Option<ConnectionId>,
    ) {
        self.push(Command::Publish(Publication {
            topic: topic.into(),
            format,
            data,
            exclude,
        }));
    }

    /// The commands queued so far, in order. Empty while the plugin
    /// handles a packed batch from the host: its commands are encoded into
    /// the output as they are queued.
    pub fn commands(&self) -> &[Command] {
        match &self.sink {
            Sink::Commands(commands) => commands,
            Sink::Packed { .. } => &[],
        }
    }

    /// The commands queued, in order (none for a packed batch, see
    /// [`commands`](Self::commands)).
    pub fn into_commands(self) -> Vec<Command> {
        match self.sink {
            Sink::Commands(commands) => commands,
            Sink::Packed { .. } => Vec::new(),
        }
    }

    /// The packed output batch (empty unless made by [`packed`](Self::packed)).
    pub(crate) fn into_packed(self) -> Vec<u8> {
        match self.sink {
            Sink::Packed { out, .. } => out,
            Sink::Commands(_) => Vec::new(),
        }
    }
}

/// Where `data` starts in the batch lying at `batch`, if it lies wholly in
/// it.
fn offset_in(batch: &Range<usize>, data: &[u8]) -> Option<u32> {
    let range = data.as_ptr_range();
    let (start, end) = (range.start as usize, range.end as usize);
    (!data.is_empty() && batch.start <= start && end <= batch.end)
        .then(|| (start - batch.start) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_keep_the_order_they_were_issued_in() {
        let mut ctx = Context::new();
        ctx.subscribe(1, "/lobby");
        ctx.send_text(1, "hi");
        ctx.publish("/lobby", MessageFormat::Binary, vec![1, 2], Some(1));
        ctx.disconnect(1, 1000, "bye");
        assert_eq!(
            ctx.into_commands(),
            vec![
                Command::Subscribe(Subscription {
                    connection: 1,
                    topic: "/lobby".into()
                }),
                Command::Send(OutgoingMessage {
                    connection: 1,
                    format: MessageFormat::Text,
                    data: b"hi".to_vec()
                }),
                Command::Publish(Publication {
                    topic: "/lobby".into(),
                    format: MessageFormat::Binary,
                    data: vec![1, 2],
                    exclude: Some(1)
                }),
                Command::Disconnect(CloseRequest {
                    connection: 1,
                    code: 1000,
                    reason: "bye".into()
                }),
            ]
        );
    }

    #[test]
    fn a_message_goes_back_with_its_format() {
        let mut ctx = Context::new();
        ctx.send_message(Message {
            connection: 4,
            format: MessageFormat::Text,
            data: b"abc".to_vec(),
        });
        ctx.send_binary(5, [0u8, 255]);
        assert_eq!(
            ctx.commands(),
            [
                Command::Send(OutgoingMessage {
                    connection: 4,
                    format: MessageFormat::Text,
                    data: b"abc".to_vec()
                }),
                Command::Send(OutgoingMessage {
                    connection: 5,
                    format: MessageFormat::Binary,
                    data: vec![0, 255]
                }),
            ]
        );
    }
}
