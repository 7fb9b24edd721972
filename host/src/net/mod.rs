//! Sockets: binding the listener with the seed's socket options, and the
//! allow/block lists checked when a client connects.

pub mod client_filter;
pub mod listener;
