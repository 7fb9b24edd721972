//! {{name}}: a wsserver plugin. It echoes each whole message back to its
//! sender with its format; replace `data_in` with your own logic.
//!
//! The SDK's documentation: `cargo doc --open -p wsserver-sdk`.

use wsserver_sdk::{Context, DataIn, DisconnectInfo, MessageAssembler, Plugin};

#[derive(Default)]
struct App {
    /// Joins fragmented messages, per connection.
    messages: MessageAssembler,
}

impl Plugin for App {
    fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
        if let Some(message) = self.messages.push(data) {
            ctx.send_message(message);
        }
    }

    fn disconnected(&mut self, _ctx: &mut Context, info: DisconnectInfo) {
        self.messages.forget(info.connection);
    }
}

wsserver_sdk::export_plugin!(App);

#[cfg(test)]
mod tests {
    use super::*;
    use wsserver_sdk::{Command, DataFormat, Event, MessageFormat, OutgoingMessage, handle_events};

    #[test]
    fn echoes_a_fragmented_message_once_it_is_whole() {
        let chunk = |format, data: &[u8], eom| {
            Event::DataIn(DataIn {
                connection: 7,
                format,
                data: data.to_vec(),
                eom,
                eol: false,
            })
        };
        let commands = handle_events(
            &mut App::default(),
            vec![
                chunk(DataFormat::Text, b"hel", false),
                chunk(DataFormat::Continuation, b"lo", true),
            ],
        );
        assert_eq!(
            commands,
            [Command::Send(OutgoingMessage {
                connection: 7,
                format: MessageFormat::Text,
                data: b"hello".to_vec(),
            })]
        );
    }
}
