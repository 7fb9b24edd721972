//! Hostile test plugin: on data-in it sends to that connection until the host
//! reports would-block, then does it again on every ready-to-send, without
//! end. Tests check that the outbound queue stays bounded and that
//! backpressure (error 10035, ready-to-send) works.
//!
//! It sends with the direct `host::send`, not the batched context, because
//! it needs each send's result at once.

use std::collections::BTreeSet;

use wsserver_sdk::{
    ConnectionId, Context, DataIn, DisconnectInfo, HostError, LogLevel, MessageFormat, Plugin, host,
};

/// Size of each message: big enough to fill a queue in few calls.
const MESSAGE: [u8; 16 * 1024] = [b'f'; 16 * 1024];

#[derive(Default)]
struct Flood {
    flooded: BTreeSet<ConnectionId>,
}

impl Flood {
    fn flood(&mut self, connection: ConnectionId) {
        loop {
            match host::send(connection, MessageFormat::Binary, &MESSAGE) {
                Ok(()) => {}
                Err(HostError::WouldBlock) => return,
                Err(error) => {
                    host::log(
                        LogLevel::Info,
                        &format!("flood: stops on connection {connection}: {error}"),
                    );
                    self.flooded.remove(&connection);
                    return;
                }
            }
        }
    }
}

impl Plugin for Flood {
    fn data_in(&mut self, _ctx: &mut Context, data: DataIn) {
        self.flooded.insert(data.connection);
        self.flood(data.connection);
    }

    fn ready_to_send(&mut self, _ctx: &mut Context, connection: ConnectionId) {
        if self.flooded.contains(&connection) {
            self.flood(connection);
        }
    }

    fn disconnected(&mut self, _ctx: &mut Context, info: DisconnectInfo) {
        self.flooded.remove(&info.connection);
    }
}

wsserver_sdk::export_plugin!(Flood);
