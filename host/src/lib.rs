//! wsserver: a WebSocket server library.
