//! Chat rooms by request path: a client that opens `/rooms/lobby` joins room
//! `/rooms/lobby` (the query is ignored), and each whole message a member
//! sends goes unchanged, with its format, to every *other* member of the
//! room.
//!
//! Rooms are host topics named by the path: members subscribe on connect and
//! a message is one publish that excludes its sender, so the host does the
//! fan-out without calling the plugin per recipient.

use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;
use wsserver_sdk::{
    ConnectionId, Context, DataIn, DisconnectInfo, LogLevel, MessageAssembler, Plugin, host,
};

#[derive(Default)]
struct Chat {
    /// Each member's room. Filled on connect, or on a member's first
    /// message if this instance did not see it connect (it replaced another).
    rooms: FxHashMap<ConnectionId, String>,
    messages: MessageAssembler,
}

impl Chat {
    /// The room of a member, asking the host for its request path the first
    /// time; `None` if the connection has already gone.
    fn room(&mut self, connection: ConnectionId) -> Option<&str> {
        match self.rooms.entry(connection) {
            Entry::Occupied(room) => Some(room.into_mut().as_str()),
            Entry::Vacant(slot) => match host::connection_info(connection) {
                Ok(info) => Some(slot.insert(info.path().to_owned()).as_str()),
                Err(error) => {
                    host::log(
                        LogLevel::Verbose,
                        &format!("chat: no room for connection {connection}: {error}"),
                    );
                    None
                }
            },
        }
    }
}

impl Plugin for Chat {
    fn connected(&mut self, ctx: &mut Context, connection: ConnectionId) {
        if let Some(room) = self.room(connection) {
            ctx.subscribe(connection, room);
        }
    }

    fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
        let Some(message) = self.messages.push(data) else {
            return;
        };
        if let Some(room) = self.room(message.connection) {
            ctx.publish(room, message.format, message.data, Some(message.connection));
        }
    }

    fn disconnected(&mut self, _ctx: &mut Context, info: DisconnectInfo) {
        // The host ends the connection's subscriptions itself.
        self.rooms.remove(&info.connection);
        self.messages.forget(info.connection);
    }
}

wsserver_sdk::export_plugin!(Chat);

#[cfg(test)]
mod tests {
    use super::*;
    use wsserver_sdk::{
        Command, DataFormat, Event, MessageFormat, Publication, Subscription, handle_events,
    };

    /// A chat that already knows its members' rooms, so that the tests need
    /// no host.
    fn chat_with(members: &[(ConnectionId, &str)]) -> Chat {
        Chat {
            rooms: members
                .iter()
                .map(|(connection, room)| (*connection, room.to_string()))
                .collect(),
            messages: MessageAssembler::default(),
        }
    }

    fn text(connection: ConnectionId, data: &str, eom: bool, first: bool) -> Event {
        Event::DataIn(DataIn {
            connection,
            format: if first {
                DataFormat::Text
            } else {
                DataFormat::Continuation
            },
            data: data.as_bytes().to_vec(),
            eom,
            eol: false,
        })
    }

    #[test]
    fn a_member_joins_the_room_of_its_path_on_connect() {
        let mut chat = chat_with(&[(1, "/rooms/lobby")]);
        assert_eq!(
            handle_events(&mut chat, vec![Event::Connected(1)]),
            [Command::Subscribe(Subscription {
                connection: 1,
                topic: "/rooms/lobby".into()
            })]
        );
    }

    #[test]
    fn a_whole_message_goes_to_the_room_except_its_sender() {
        let mut chat = chat_with(&[(1, "/a"), (2, "/b")]);
        let commands = handle_events(
            &mut chat,
            vec![
                text(1, "hel", false, true),
                text(2, "to b", true, true),
                text(1, "lo", true, false),
            ],
        );
        assert_eq!(
            commands,
            [
                Command::Publish(Publication {
                    topic: "/b".into(),
                    format: MessageFormat::Text,
                    data: b"to b".to_vec(),
                    exclude: Some(2),
                }),
                Command::Publish(Publication {
                    topic: "/a".into(),
                    format: MessageFormat::Text,
                    data: b"hello".to_vec(),
                    exclude: Some(1),
                }),
            ]
        );
    }

    #[test]
    fn a_departed_member_is_forgotten() {
        let mut chat = chat_with(&[(1, "/a")]);
        handle_events(
            &mut chat,
            vec![
                text(1, "unfinished", false, true),
                Event::Disconnected(DisconnectInfo {
                    connection: 1,
                    code: 1000,
                    description: String::new(),
                }),
            ],
        );
        assert!(chat.rooms.is_empty());
        assert!(!chat.messages.is_assembling(1));
    }
}
