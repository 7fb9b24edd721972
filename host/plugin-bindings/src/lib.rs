//! Host-side bindings of the plugin contract, `wit/plugin.wit`.
//!
//! The `bindgen!` expansion lives in its own crate so that changes to the
//! host do not re-expand and recompile it. Calls are synchronous: plugin
//! instances run on threads of their own (see the host's `plugin` module),
//! never on the server's async workers.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
});
