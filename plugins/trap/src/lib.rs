//! Hostile test plugin: traps on data-in (a panic, which the release profile
//! turns into a wasm trap). Tests check that the host replaces the instance
//! and closes or retries the connections as configured.

use wsserver_sdk::{Context, DataIn, Plugin};

#[derive(Default)]
struct Trap;

impl Plugin for Trap {
    fn data_in(&mut self, _ctx: &mut Context, data: DataIn) {
        panic!(
            "trap plugin: deliberate trap on data-in from connection {}",
            data.connection
        );
    }
}

wsserver_sdk::export_plugin!(Trap);
