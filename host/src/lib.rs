//! wsserver: a WebSocket server library.

pub mod net;
