//! Sockets: binding the listener with the seed's socket options, the
//! allow/block lists checked when a client connects, and TLS.

pub mod client_filter;
pub mod listener;
pub mod tls;
