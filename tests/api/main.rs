//! Integration tests of the embedding API: each test runs a `WsServer`
//! in-process on 127.0.0.1 with a handler that records its events, and
//! drives it with real clients over loopback. They cover what only the
//! library exposes: every `Handler` event, every `WsServer`/`Connection`
//! method, and the settings observable through them.

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod admission;
mod closing;
mod config;
mod data_in;
mod file_transfer;
mod info;
mod line_mode;
mod listening;
mod logging;
mod open_request;
mod ping;
mod sending;
mod tls;
