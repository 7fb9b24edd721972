//! wsserver: a WebSocket server whose application logic runs in sandboxed
//! WebAssembly component plugins, usable as a library with native handlers.

pub mod protocol;
