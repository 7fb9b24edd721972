//! Write wsserver WebSocket plugins in Rust.
//!
//! A plugin is a type implementing [`Plugin`]: one method per event
//! (open request, connected, data-in, ping, disconnected, ready-to-send,
//! error), each a no-op unless you override it. [`export_plugin!`] turns it
//! into a WebAssembly component for the `plugin` world of
//! `wit/plugin.wit`; you never touch wit-bindgen.
//!
//! ```
//! use wsserver_sdk::{Context, DataIn, DisconnectInfo, MessageAssembler, Plugin};
//!
//! /// Echoes every whole message back with its format.
//! #[derive(Default)]
//! struct Echo {
//!     messages: MessageAssembler,
//! }
//!
//! impl Plugin for Echo {
//!     fn data_in(&mut self, ctx: &mut Context, data: DataIn) {
//!         if let Some(message) = self.messages.push(data) {
//!             ctx.send_message(message);
//!         }
//!     }
//!
//!     fn disconnected(&mut self, _ctx: &mut Context, info: DisconnectInfo) {
//!         self.messages.forget(info.connection);
//!     }
//! }
//!
//! wsserver_sdk::export_plugin!(Echo);
//! ```
//!
//! Build it as a `cdylib` with `cargo build --release --target
//! wasm32-wasip2`; the `.wasm` file is the component the server loads.
//!
//! # Batching
//!
//! The host delivers events in batches: one call into the component carries
//! every event waiting for it, and the SDK calls your methods one by one, in
//! order. What a method asks for through the [`Context`] (send, ping,
//! disconnect, subscribe, publish, ...) is queued and returned to the host at
//! the end of the batch, which applies it in order. So a batch costs two
//! boundary crossings however many events and sends it holds. The export
//! macros also export `packed-handler`, through which the host passes the
//! batch as one byte list each way (see `wit/plugin.wit`).
//!
//! A queued command that fails (the connection's outbound queue is full, the
//! connection has gone) comes back as a [`Plugin::error`] event at the start
//! of the next batch; after a would-block, [`Plugin::ready_to_send`] follows
//! once the queue has drained. When you need the result at once, call the
//! functions in [`host`] directly: they act immediately, before whatever the
//! batch has queued.
//!
//! # State
//!
//! The plugin value lives as long as its component instance. An instance
//! may be replaced (after a trap, or on hot swap) or dropped while its
//! connections stay open (hibernation, when the operator sets
//! `hibernate_after_ms`); implement [`Lifecycle`] and use
//! [`export_stateful_plugin!`] to carry state across a hot swap and a
//! hibernation. What one connection needs can also live in the host:
//! [`host::set_attachment`] stores up to 2 KiB with a connection and
//! [`host::attachment`] reads it back from whichever instance serves it
//! next.

mod assembler;
#[doc(hidden)]
pub mod bindings;
mod context;
mod export;
pub mod host;
mod packed;
mod plugin;
mod types;

pub use assembler::{Message, MessageAssembler, MessageRef, SnapshotError};
pub use context::Context;
pub use plugin::{Lifecycle, Plugin, handle_events};
pub use types::*;

/// Paths the export macros expand to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::{lifecycle, packed, plugin};
    pub use crate::export::Instance;
}
