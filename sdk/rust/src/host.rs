//! Direct host functions: each acts at once and returns its result.
//!
//! They run before every command the current batch has queued on the
//! [`Context`](crate::Context), so for a given connection use either these or
//! the context within one batch, not both, or its messages change order.
//! Reach for them when the answer matters now: to send until the queue is
//! full ([`HostError::WouldBlock`](crate::HostError::WouldBlock)), to read a
//! connection's fields, or to read configuration.

pub use crate::bindings::plugin::wsserver::plugin::host::{
    attachment, config_get, connection_info, connections, disconnect, log, pause_data, ping,
    publish, resume_data, send, set_attachment, set_line_mode, subscribe, subscriber_count,
    unsubscribe,
};
