//! Test plugin that a tenant with a memory cap under 16 MiB cannot
//! instantiate: a 16 MiB zeroed static makes its linear memory start
//! above that. The tests use it for a hot swap that fails at
//! instantiation, after compiling and linking fine.

use std::sync::atomic::{AtomicU8, Ordering};

use wsserver_sdk::{Context, DataIn, Plugin};

const BALLAST_BYTES: usize = 16 << 20;

/// Zeroed and mutable, so it takes memory pages but no bytes of the file.
static BALLAST: [AtomicU8; BALLAST_BYTES] = [const { AtomicU8::new(0) }; BALLAST_BYTES];

#[derive(Default)]
struct Oversized;

impl Plugin for Oversized {
    fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
        // Touching the ballast keeps it in the component.
        BALLAST[data.data.len() % BALLAST_BYTES].fetch_add(1, Ordering::Relaxed);
        ctx.send_text(data.connection, "oversized");
    }
}

wsserver_sdk::export_plugin!(Oversized);
