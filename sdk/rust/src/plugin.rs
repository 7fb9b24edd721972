//! The traits a plugin implements, and the dispatch of a batch of events to
//! them.

use crate::context::Context;
use crate::types::{
    Command, ConnectionId, DataIn, DataInRef, DisconnectInfo, ErrorInfo, Event, OpenRequest,
    OpenResponse, PingIn, PresenceChange,
};

/// A wsserver plugin: one method per event, each a no-op by default.
///
/// The SDK creates the plugin with [`Default`] on the first call, then keeps
/// it for the life of the instance. Event methods queue their effects on the
/// [`Context`]; see [`crate`] for the batching model behind it.
pub trait Plugin: Default + 'static {
    /// A client asks to open a WebSocket (seed: WebSocketOpenRequest).
    /// Accepts by default. A plugin that keeps this default is asked once:
    /// the SDK then tells the host that it accepts every request, and the
    /// host answers them itself without a call (a faster handshake).
    fn open_request(&mut self, request: OpenRequest) -> OpenResponse {
        let _ = request;
        crate::export::note_default::<Self>(wsserver_packed::DEFAULT_OPEN_REQUEST);
        OpenResponse::accept()
    }

    /// The WebSocket is open (seed: Connected).
    ///
    /// Also called after a hot swap: a new version that does not carry
    /// state through [`Lifecycle`] (or whose predecessor did not) starts
    /// empty and receives `connected` for each connection it takes over,
    /// with no [`open_request`](Self::open_request) before it (the
    /// handshake happened long ago). Build per-connection state here, not
    /// in `open_request`, and it is rebuilt after a swap too; ask
    /// [`host::connection_info`](crate::host::connection_info) for what the
    /// request carried (path, headers, subprotocol).
    ///
    /// A plugin that keeps this default hears of one connection at most:
    /// the SDK then tells the host, which leaves these events out.
    fn connected(&mut self, ctx: &mut Context, connection: ConnectionId) {
        let _ = (ctx, connection);
        crate::export::note_default::<Self>(wsserver_packed::DEFAULT_CONNECTED);
    }

    /// Data arrived: a whole message, a fragment of one, or a line in line
    /// mode (seed: DataIn). [`MessageAssembler`](crate::MessageAssembler)
    /// joins fragments.
    fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
        let _ = (ctx, data);
    }

    /// The same event with its bytes borrowed from the batch: the SDK
    /// calls this for every data-in, and by default it copies the chunk
    /// into a [`DataIn`] for [`data_in`](Self::data_in). Override it
    /// instead of `data_in` to read payloads without that copy; what you
    /// send back of them with [`Context::send_slice`] is not copied out of
    /// the plugin either (the host sends it from its own copy).
    fn data_in_ref(&mut self, ctx: &mut Context, data: DataInRef<'_>) {
        self.data_in(ctx, data.to_data_in());
    }

    /// A ping or pong arrived; the host has already answered a ping.
    /// Left out by the host, as `connected` is, when kept as the default.
    fn ping(&mut self, ctx: &mut Context, ping: PingIn) {
        let _ = (ctx, ping);
        crate::export::note_default::<Self>(wsserver_packed::DEFAULT_PING);
    }

    /// The connection has ended; it is the last event for it.
    fn disconnected(&mut self, ctx: &mut Context, info: DisconnectInfo) {
        let _ = (ctx, info);
    }

    /// The outbound queue of a connection drained after a would-block.
    fn ready_to_send(&mut self, ctx: &mut Context, connection: ConnectionId) {
        let _ = (ctx, connection);
    }

    /// A queued command failed, or the host hit an error on a connection
    /// ([`ErrorInfo::kind`] tells which).
    fn error(&mut self, ctx: &mut Context, error: ErrorInfo) {
        let _ = (ctx, error);
    }

    /// Subscribers joined or left a topic the plugin watches
    /// ([`host::watch_topic`](crate::host::watch_topic)).
    fn presence(&mut self, ctx: &mut Context, change: PresenceChange) {
        let _ = (ctx, change);
    }
}

/// State that survives a hot swap. Export it with
/// [`export_stateful_plugin!`](crate::export_stateful_plugin).
pub trait Lifecycle {
    /// Serialises the state. Put a version in the bytes: the code that
    /// restores them may be newer.
    fn snapshot(&self) -> Vec<u8>;

    /// Loads a snapshot into a freshly created plugin. An error aborts the
    /// swap and keeps the old version running.
    fn restore(&mut self, state: Vec<u8>) -> Result<(), String>;
}

/// Hands each event of a batch to its method, in order, and returns the
/// commands they queued, in order. The export macros call it for every
/// batch; plugin unit tests call it to drive a plugin natively, without a
/// host.
pub fn handle_events<P: Plugin>(plugin: &mut P, events: Vec<Event>) -> Vec<Command> {
    // Most events cause at most one command (an echo, a publish).
    let mut ctx = Context::with_capacity(events.len());
    for event in events {
        dispatch(plugin, &mut ctx, event);
    }
    ctx.into_commands()
}

/// Hands one event to its method.
pub(crate) fn dispatch<P: Plugin>(plugin: &mut P, ctx: &mut Context, event: Event) {
    match event {
        Event::Connected(connection) => plugin.connected(ctx, connection),
        Event::DataIn(data) => plugin.data_in_ref(ctx, DataInRef::from(&data)),
        Event::Ping(ping) => plugin.ping(ctx, ping),
        Event::Disconnected(info) => plugin.disconnected(ctx, info),
        Event::ReadyToSend(connection) => plugin.ready_to_send(ctx, connection),
        Event::Error(error) => plugin.error(ctx, error),
        Event::Presence(change) => plugin.presence(ctx, change),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{DataFormat, MessageFormat, OutgoingMessage};

    /// Writes down every event it sees and echoes data.
    #[derive(Default)]
    struct Recorder {
        seen: Vec<String>,
    }

    impl Plugin for Recorder {
        fn connected(&mut self, _: &mut Context, connection: ConnectionId) {
            self.seen.push(format!("connected {connection}"));
        }
        fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
            self.seen.push(format!("data {}", data.connection));
            ctx.send_binary(data.connection, data.data);
        }
        fn disconnected(&mut self, _: &mut Context, info: DisconnectInfo) {
            self.seen
                .push(format!("disconnected {} {}", info.connection, info.code));
        }
        fn error(&mut self, _: &mut Context, error: ErrorInfo) {
            self.seen
                .push(format!("error {} {:?}", error.connection, error.kind()));
        }
    }

    fn data(connection: ConnectionId, byte: u8) -> Event {
        Event::DataIn(DataIn {
            connection,
            format: DataFormat::Binary,
            data: vec![byte],
            eom: true,
            eol: false,
        })
    }

    fn echoed(connection: ConnectionId, byte: u8) -> Command {
        Command::Send(OutgoingMessage {
            connection,
            format: MessageFormat::Binary,
            data: vec![byte],
        })
    }

    #[test]
    fn a_batch_reaches_the_methods_in_order_and_returns_their_commands_in_order() {
        let mut plugin = Recorder::default();
        let commands = handle_events(
            &mut plugin,
            vec![
                Event::Error(ErrorInfo {
                    connection: 2,
                    code: 10035,
                    description: "queue full".into(),
                }),
                Event::Connected(1),
                data(1, 10),
                data(2, 20),
                data(1, 11),
                Event::Disconnected(DisconnectInfo {
                    connection: 2,
                    code: 1001,
                    description: String::new(),
                }),
                Event::ReadyToSend(1),
            ],
        );
        assert_eq!(
            plugin.seen,
            [
                "error 2 WouldBlock",
                "connected 1",
                "data 1",
                "data 2",
                "data 1",
                "disconnected 2 1001",
            ]
        );
        assert_eq!(commands, [echoed(1, 10), echoed(2, 20), echoed(1, 11)]);
    }

    #[test]
    fn default_methods_accept_and_do_nothing() {
        #[derive(Default)]
        struct Silent;
        impl Plugin for Silent {}
        let mut plugin = Silent;
        let mut request = crate::types::request("/", &[]);
        request.subprotocols = vec!["x".into()];
        let response = plugin.open_request(request);
        assert_eq!(response, OpenResponse::accept());
        assert!(handle_events(&mut plugin, vec![Event::Connected(1), data(1, 0)]).is_empty());
    }
}
