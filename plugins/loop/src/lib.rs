//! Hostile test plugin: never returns from a batch that holds data. Tests
//! check that the host's CPU deadline stops it without harming other
//! plugins.

use wsserver_sdk::{Context, DataIn, Plugin};

#[derive(Default)]
struct Loop;

impl Plugin for Loop {
    fn data_in(&mut self, _ctx: &mut Context, _data: DataIn) {
        loop {
            std::hint::spin_loop();
        }
    }
}

wsserver_sdk::export_plugin!(Loop);
