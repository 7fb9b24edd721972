//! End-to-end tests of the `wsserver` binary: each starts the real server
//! on 127.0.0.1 and talks to it with real clients.

#[path = "../common/mod.rs"]
mod common;

mod admin;
mod author_tools;
mod c_plugins;
mod cache;
mod cli;
mod close;
mod cluster;
mod cores;
mod dashboard;
mod deflate;
mod handshake;
mod hostile;
mod parking;
mod plugins;
mod protocol;
mod runtime;
mod socket_options;
mod static_files;
mod tenants;
mod tls;
mod traffic;
