//! The `packed-handler` export: a batch decoded from bytes into the typed
//! events the plugin's methods take, and its commands encoded back.

use wsserver_packed as packed;

use crate::context::Context;
use crate::plugin::{Plugin, dispatch};
use crate::types::{
    Command, DataFormat, DataInRef, DisconnectInfo, ErrorInfo, Event, MessageFormat, PingIn,
    PresenceChange,
};

/// Handles one packed batch: each event is decoded and handed to its
/// method in turn (data-in with its bytes borrowed from the batch), and
/// the commands go straight into `out` (empty; a buffer kept from an
/// earlier call). A batch the host wrote wrongly is a host bug: the call
/// traps rather than guess.
pub(crate) fn handle_packed<P: Plugin>(plugin: &mut P, batch: &[u8], mut out: Vec<u8>) -> Vec<u8> {
    // A plugin copying what it echoes writes about as much as it reads.
    out.reserve(batch.len());
    let mut ctx = Context::packed(out, batch);
    let mut events = packed::events(batch);
    loop {
        // Most of a busy batch: read without the general decoding.
        let event = match events.next_data_in() {
            Some(data_in) => data_in,
            None => match events.next() {
                Some(Ok(event)) => event,
                Some(Err(e)) => panic!("wsserver host sent a {e}"),
                None => return ctx.into_packed(),
            },
        };
        match event {
            packed::Event::DataIn {
                connection,
                format,
                eom,
                eol,
                data,
            } => plugin.data_in_ref(&mut ctx, chunk(connection, format, data, eom, eol)),
            event => dispatch(plugin, &mut ctx, typed_event(event)),
        }
    }
}

/// A data-in event's fields as the chunk its method takes.
fn chunk(connection: u64, format: u8, data: &[u8], eom: bool, eol: bool) -> DataInRef<'_> {
    DataInRef {
        connection,
        format: match format {
            packed::TEXT => DataFormat::Text,
            packed::BINARY => DataFormat::Binary,
            _ => DataFormat::Continuation,
        },
        data,
        eom,
        eol,
    }
}

fn typed_event(event: packed::Event<'_>) -> Event {
    match event {
        packed::Event::Connected(id) => Event::Connected(id),
        packed::Event::DataIn {
            connection,
            format,
            eom,
            eol,
            data,
        } => Event::DataIn(chunk(connection, format, data, eom, eol).to_data_in()),
        packed::Event::Ping {
            connection,
            response,
            payload,
        } => Event::Ping(PingIn {
            connection,
            payload: payload.to_vec(),
            response,
        }),
        packed::Event::Disconnected {
            connection,
            code,
            description,
        } => Event::Disconnected(DisconnectInfo {
            connection,
            code,
            description: description.to_owned(),
        }),
        packed::Event::ReadyToSend(id) => Event::ReadyToSend(id),
        packed::Event::Error {
            connection,
            code,
            description,
        } => Event::Error(ErrorInfo {
            connection,
            code,
            description: description.to_owned(),
        }),
        packed::Event::Presence {
            topic,
            joined,
            connection,
            count,
            subscribers,
        } => Event::Presence(PresenceChange {
            topic: topic.to_owned(),
            joined,
            connection,
            count,
            subscribers,
        }),
    }
}

pub(crate) fn format_code(format: MessageFormat) -> u8 {
    match format {
        MessageFormat::Text => packed::SEND_TEXT,
        MessageFormat::Binary => packed::SEND_BINARY,
    }
}

pub(crate) fn packed_command(command: &Command) -> packed::Command<'_> {
    match command {
        Command::Send(m) => packed::Command::Send {
            connection: m.connection,
            format: format_code(m.format),
            data: &m.data,
        },
        Command::Ping(p) => packed::Command::Ping {
            connection: p.connection,
            payload: &p.payload,
        },
        Command::Disconnect(c) => packed::Command::Disconnect {
            connection: c.connection,
            code: c.code,
            reason: &c.reason,
        },
        Command::SetLineMode(l) => packed::Command::SetLineMode {
            connection: l.connection,
            enabled: l.enabled,
        },
        Command::PauseData(id) => packed::Command::PauseData(*id),
        Command::ResumeData(id) => packed::Command::ResumeData(*id),
        Command::Subscribe(s) => packed::Command::Subscribe {
            connection: s.connection,
            topic: &s.topic,
        },
        Command::Unsubscribe(s) => packed::Command::Unsubscribe {
            connection: s.connection,
            topic: &s.topic,
        },
        Command::Publish(p) => packed::Command::Publish {
            topic: &p.topic,
            format: format_code(p.format),
            data: &p.data,
            exclude: p.exclude,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DataIn;

    /// Echoes data and reports every other event as text.
    #[derive(Default)]
    struct Recorder;

    impl Plugin for Recorder {
        fn connected(&mut self, ctx: &mut Context, connection: u64) {
            ctx.subscribe(connection, "all");
        }
        fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
            ctx.send_binary(data.connection, data.data);
        }
        fn ready_to_send(&mut self, ctx: &mut Context, connection: u64) {
            ctx.publish(
                "all",
                MessageFormat::Text,
                b"ready".to_vec(),
                Some(connection),
            );
        }
    }

    /// A batch: connection 1 opens, then sends one whole message.
    fn connected_then_data(format: u8, data: &[u8]) -> Vec<u8> {
        let mut batch = Vec::new();
        let mut w = packed::Writer::new(&mut batch);
        w.event(&packed::Event::Connected(1));
        w.event(&packed::Event::DataIn {
            connection: 1,
            format,
            eom: true,
            eol: false,
            data,
        });
        batch
    }

    /// Echoes borrowed payloads, and a copy of each too.
    #[derive(Default)]
    struct BorrowingEcho;

    impl Plugin for BorrowingEcho {
        fn data_in_ref(&mut self, ctx: &mut Context, data: DataInRef<'_>) {
            ctx.send_slice(data.connection, MessageFormat::Binary, &data.data[1..]);
            // Bytes elsewhere in memory, e.g. a copy, are sent as they are.
            let copy = data.data.to_vec();
            ctx.send_slice(data.connection, MessageFormat::Text, &copy);
        }
    }

    #[test]
    fn a_send_of_borrowed_payload_bytes_refers_to_the_batch_and_others_are_copied() {
        let batch = connected_then_data(packed::TEXT, b"hello");
        let out = handle_packed(&mut BorrowingEcho, &batch, Vec::new());
        let commands: Vec<packed::Command<'_>> =
            packed::commands(&out).collect::<Result<_, _>>().unwrap();
        let offset = batch.len() - 4;
        assert_eq!(
            commands,
            [
                packed::Command::SendInput {
                    connection: 1,
                    format: packed::SEND_BINARY,
                    offset: offset as u32,
                    len: 4
                },
                packed::Command::Send {
                    connection: 1,
                    format: packed::SEND_TEXT,
                    data: b"hello"
                },
            ]
        );
        assert_eq!(
            commands[0].with_input(&batch),
            Some(packed::Command::Send {
                connection: 1,
                format: packed::SEND_BINARY,
                data: b"ello"
            })
        );
    }

    #[test]
    fn a_packed_batch_reaches_the_methods_and_its_commands_come_back_packed() {
        let mut batch = connected_then_data(packed::BINARY, b"abc");
        packed::Writer::new(&mut batch).event(&packed::Event::ReadyToSend(1));
        let out = handle_packed(&mut Recorder, &batch, Vec::new());
        let commands: Vec<packed::Command<'_>> =
            packed::commands(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            commands,
            [
                packed::Command::Subscribe {
                    connection: 1,
                    topic: "all"
                },
                packed::Command::Send {
                    connection: 1,
                    format: packed::SEND_BINARY,
                    data: b"abc"
                },
                packed::Command::Publish {
                    topic: "all",
                    format: packed::SEND_TEXT,
                    data: b"ready",
                    exclude: Some(1)
                },
            ]
        );
    }
}
