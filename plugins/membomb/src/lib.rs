//! Hostile test plugin: on data-in, allocates and touches memory until the
//! allocator fails (which traps). Tests check that the host's memory cap
//! stops it.

use wsserver_sdk::{Context, DataIn, Plugin};

const BLOCK: usize = 1 << 20;

#[derive(Default)]
struct Membomb {
    // Kept in the plugin so the allocations stay reachable.
    hoard: Vec<Vec<u8>>,
}

impl Plugin for Membomb {
    fn data_in(&mut self, _ctx: &mut Context, _data: DataIn) {
        loop {
            self.hoard.push(vec![0xA5; BLOCK]);
        }
    }
}

wsserver_sdk::export_plugin!(Membomb);
