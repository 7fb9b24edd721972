//! Sockets and transport security.

pub mod tls;
