//! Hostile test plugin: asks for a gigantic allocation at instantiation
//! (1 GiB of initial linear memory, see build.rs). Were it ever created,
//! it would answer every message with "bigmemory".

use wsserver_sdk::{Context, DataIn, Plugin};

#[derive(Default)]
struct BigMemory;

impl Plugin for BigMemory {
    fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
        ctx.send_text(data.connection, "bigmemory");
    }
}

wsserver_sdk::export_plugin!(BigMemory);
