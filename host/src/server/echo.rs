//! The native echo handler: sends each message back whole with its type,
//! reassembling fragments. When the client does not read its echoes fast
//! enough (would-block), it pauses that client's data and resumes once the
//! queue drains, so nothing is dropped and memory stays bounded.

use std::sync::Mutex;

use rustc_hash::FxHashMap;

use super::connection::Connection;
use super::error::Error;
use super::events::{ConnectionId, DataFormat, DataIn};
use super::handler::Handler;
use crate::protocol::mask::MaskedPayload;
use crate::protocol::receiver::MessageKind;

#[derive(Debug, Default)]
pub struct EchoHandler {
    /// Messages being reassembled or waiting for room, by connection.
    pending: Mutex<FxHashMap<ConnectionId, Pending>>,
}

#[derive(Debug)]
struct Pending {
    kind: MessageKind,
    data: Vec<u8>,
    /// The whole message is here and waits for room in the send queue.
    complete: bool,
}

impl EchoHandler {
    pub fn new() -> Self {
        Self::default()
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, FxHashMap<ConnectionId, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends, or parks the message and pauses the client until ReadyToSend.
    fn echo_or_wait(&self, conn: &Connection, kind: MessageKind, data: &[u8]) {
        if let Err(Error::WouldBlock(_)) = conn.send_data(kind, data) {
            conn.pause_data();
            let parked = Pending {
                kind,
                data: data.to_vec(),
                complete: true,
            };
            self.pending().insert(conn.id(), parked);
        }
    }
}

impl Handler for EchoHandler {
    fn binary_message(&self, conn: &Connection, payload: MaskedPayload<'_>) {
        if !conn.try_send_masked(&payload) {
            self.echo_or_wait(conn, MessageKind::Binary, payload.unmask());
        }
    }

    fn data_in(&self, conn: &Connection, data: &DataIn<'_>) {
        let kind = match data.format {
            DataFormat::Text => Some(MessageKind::Text),
            DataFormat::Binary => Some(MessageKind::Binary),
            DataFormat::Continuation => None,
        };
        // A whole message in one piece: nothing can be pending, because a
        // parked message pauses the client's data.
        if let (Some(kind), true) = (kind, data.eom) {
            return self.echo_or_wait(conn, kind, data.data);
        }
        let whole = {
            let mut pending = self.pending();
            let entry = pending.entry(conn.id()).or_insert_with(|| Pending {
                kind: kind.unwrap_or(MessageKind::Binary),
                data: Vec::new(),
                complete: false,
            });
            if let Some(kind) = kind {
                entry.kind = kind;
                entry.data.clear();
            }
            entry.data.extend_from_slice(data.data);
            if !data.eom {
                return;
            }
            pending.remove(&conn.id())
        };
        if let Some(message) = whole {
            self.echo_or_wait(conn, message.kind, &message.data);
        }
    }

    fn ready_to_send(&self, conn: &Connection) {
        let parked = {
            let mut pending = self.pending();
            match pending.get(&conn.id()) {
                Some(p) if p.complete => pending.remove(&conn.id()),
                _ => None,
            }
        };
        if let Some(message) = parked {
            conn.resume_data();
            self.echo_or_wait(conn, message.kind, &message.data);
        }
    }

    fn disconnected(&self, conn: &Connection, _status_code: u16, _description: &str) {
        self.pending().remove(&conn.id());
    }
}
