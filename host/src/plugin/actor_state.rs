//! What a plugin may do to its connections: the `host` imports and the
//! commands returned from `on-events` share this one implementation, so a
//! command and the direct function of the same name behave alike.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use wsserver_plugin_bindings::wsserver::plugin::types as wit;

use super::convert;
use super::metrics::PluginMetrics;
use super::topics::Topics;
use crate::MessageKind;
use crate::protocol::close::is_valid_wire_code;
use crate::server::{Connection, ConnectionId};

pub(crate) type HostResult<T = ()> = Result<T, wit::HostError>;

/// Facts about a plugin shared by all of its instances.
#[derive(Debug)]
pub(crate) struct PluginShared {
    pub name: String,
    /// See [`PluginSpec::version`](super::PluginSpec::version).
    pub version: String,
    /// The plugin's inbox limit (PluginLimits::max_queued_bytes): what a
    /// connection may have in flight towards the plugin.
    pub max_queued_bytes: usize,
    pub config: BTreeMap<String, String>,
    pub topics: Mutex<Topics>,
    pub metrics: PluginMetrics,
}

/// The plugin's view of its connections. Lives in the instance's store and
/// moves to the replacement instance when one fails.
#[derive(Debug)]
pub(crate) struct ActorState {
    pub shared: Arc<PluginShared>,
    /// This plugin's open connections: the only ones it may address.
    pub connections: FxHashMap<ConnectionId, Connection>,
    /// Connections the plugin paused itself (flow control must not resume
    /// them).
    pub paused_by_plugin: FxHashSet<ConnectionId>,
    /// `error` events for failed commands, delivered first in the next batch.
    pub errors: Vec<wit::Event>,
    /// Commands held for connections whose send queue was full; see
    /// [`apply`](Self::apply).
    held: FxHashMap<ConnectionId, Held>,
}

/// A connection's commands waiting for room in its send queue, in order.
#[derive(Debug, Default)]
struct Held {
    commands: VecDeque<wit::Command>,
    bytes: usize,
}

impl ActorState {
    pub fn new(shared: Arc<PluginShared>) -> Self {
        Self {
            shared,
            connections: FxHashMap::default(),
            paused_by_plugin: FxHashSet::default(),
            errors: Vec::new(),
            held: FxHashMap::default(),
        }
    }

    fn conn(&self, id: ConnectionId) -> HostResult<&Connection> {
        self.connections
            .get(&id)
            .ok_or(wit::HostError::InvalidConnection)
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, Topics> {
        self.shared.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn send(&self, id: ConnectionId, format: wit::MessageFormat, data: &[u8]) -> HostResult {
        let conn = self.conn(id)?;
        let result = match format {
            wit::MessageFormat::Text => match simdutf8::basic::from_utf8(data) {
                Ok(text) => conn.send_text(text),
                Err(_) => return Err(wit::HostError::InvalidArgument),
            },
            wit::MessageFormat::Binary => conn.send_bytes(data),
        };
        result.map_err(|e| convert::host_error(&e))
    }

    pub fn ping(&self, id: ConnectionId, payload: &[u8]) -> HostResult {
        self.conn(id)?
            .ping(payload)
            .map_err(|e| convert::host_error(&e))
    }

    pub fn disconnect(&self, id: ConnectionId, code: u16, reason: &str) -> HostResult {
        let conn = self.conn(id)?;
        if !is_valid_wire_code(code) || reason.len() > 123 {
            return Err(wit::HostError::InvalidArgument);
        }
        conn.close(code, reason)
            .map_err(|e| convert::host_error(&e))
    }

    pub fn set_line_mode(&self, id: ConnectionId, enabled: bool) -> HostResult {
        self.conn(id)?.change_line_mode(enabled);
        Ok(())
    }

    pub fn pause_data(&mut self, id: ConnectionId) -> HostResult {
        self.conn(id)?.pause_data();
        self.paused_by_plugin.insert(id);
        Ok(())
    }

    pub fn resume_data(&mut self, id: ConnectionId) -> HostResult {
        self.conn(id)?.resume_data();
        self.paused_by_plugin.remove(&id);
        Ok(())
    }

    pub fn subscribe(&self, id: ConnectionId, topic: &str) -> HostResult {
        self.conn(id)?;
        self.topics().subscribe(id, topic);
        Ok(())
    }

    pub fn unsubscribe(&self, id: ConnectionId, topic: &str) -> HostResult {
        self.conn(id)?;
        self.topics().unsubscribe(id, topic);
        Ok(())
    }

    /// Queues a message for every subscriber but `exclude`; subscribers
    /// whose queue is full get an `error` event instead.
    pub fn publish(
        &mut self,
        topic: &str,
        format: wit::MessageFormat,
        data: Vec<u8>,
        exclude: Option<ConnectionId>,
    ) -> HostResult {
        if let Some(id) = exclude {
            self.conn(id)?;
        }
        let kind = match format {
            wit::MessageFormat::Text if simdutf8::basic::from_utf8(&data).is_err() => {
                return Err(wit::HostError::InvalidArgument);
            }
            wit::MessageFormat::Text => MessageKind::Text,
            wit::MessageFormat::Binary => MessageKind::Binary,
        };
        let payload = Bytes::from(data);
        let subscribers: Vec<ConnectionId> = self
            .topics()
            .subscribers(topic)
            .filter(|id| Some(*id) != exclude)
            .collect();
        for id in subscribers {
            let Some(conn) = self.connections.get(&id) else {
                continue;
            };
            if let Err(e) = conn.send_shared(kind, payload.clone()) {
                let code = convert::error_code(convert::host_error(&e));
                self.errors.push(error_event(id, code, &e.to_string()));
            }
        }
        Ok(())
    }

    pub fn connection_info(&self, id: ConnectionId) -> HostResult<wit::WsConnection> {
        let conn = self.conn(id)?;
        Ok(convert::ws_connection(
            conn.info(),
            conn.request().map(|r| r.as_ref()),
        ))
    }

    pub fn connection_ids(&self) -> Vec<ConnectionId> {
        self.connections.keys().copied().collect()
    }

    /// Applies one command returned from `on-events`.
    ///
    /// A send that finds the connection's queue full is not dropped: the
    /// host holds it, and every later command for that connection, stops
    /// reading from the client (so the client is slowed by TCP, not by
    /// losing messages) and replays them in order when ready-to-send comes.
    /// Only what exceeds the connection's send queue limit once more is
    /// dropped, with an `error` event (10035). Other failures become
    /// `error` events.
    pub fn apply(&mut self, command: wit::Command) {
        let target = command_connection(&command);
        if let Some(id) = target
            && let Some(held) = self.held.get_mut(&id)
        {
            let size = command_size(&command);
            // What the plugin may still receive from the client (its inbox
            // share) plus one send queue: an echo's output always fits.
            let limit = self.shared.max_queued_bytes
                + self
                    .connections
                    .get(&id)
                    .map_or(0, Connection::send_queue_limit);
            if held.bytes + size > limit {
                let e = error_event(
                    id,
                    convert::error_code(wit::HostError::WouldBlock),
                    "the connection's send queue and the commands held for it are full; the command was dropped",
                );
                self.errors.push(e);
            } else {
                held.bytes += size;
                held.commands.push_back(command);
            }
            return;
        }
        match self.execute(command) {
            Ok(()) => {}
            Err((wit::HostError::WouldBlock, Some(command))) => {
                let id = command_connection(&command).unwrap_or_default();
                if let Some(conn) = self.connections.get(&id) {
                    conn.pause_data();
                }
                let size = command_size(&command);
                self.held.insert(
                    id,
                    Held {
                        commands: VecDeque::from([command]),
                        bytes: size,
                    },
                );
            }
            Err((e, _)) => {
                let description = match e {
                    wit::HostError::WouldBlock => {
                        "the connection's send queue is full; the message was dropped"
                    }
                    wit::HostError::InvalidConnection => "not an open connection of this plugin",
                    wit::HostError::InvalidArgument => "malformed command",
                };
                self.errors.push(error_event(
                    target.unwrap_or_default(),
                    convert::error_code(e),
                    description,
                ));
            }
        }
    }

    /// Replays the commands held for a connection once its queue has room;
    /// stops again at the first send that finds it full.
    pub fn release_held(&mut self, id: ConnectionId) {
        let Some(mut held) = self.held.remove(&id) else {
            return;
        };
        while let Some(command) = held.commands.pop_front() {
            let size = command_size(&command);
            match self.execute(command) {
                Ok(()) => held.bytes -= size,
                Err((wit::HostError::WouldBlock, Some(command))) => {
                    held.commands.push_front(command);
                    self.held.insert(id, held);
                    return;
                }
                Err((e, _)) => {
                    held.bytes -= size;
                    self.errors.push(error_event(
                        id,
                        convert::error_code(e),
                        "a held command failed",
                    ));
                }
            }
        }
        if !self.paused_by_plugin.contains(&id)
            && let Some(conn) = self.connections.get(&id)
        {
            conn.resume_data();
        }
    }

    /// Whether the host holds commands (and so paused data) for `id`.
    pub fn is_held(&self, id: ConnectionId) -> bool {
        self.held.contains_key(&id)
    }

    /// Runs a command; a send that would block hands the command back.
    fn execute(
        &mut self,
        command: wit::Command,
    ) -> Result<(), (wit::HostError, Option<wit::Command>)> {
        let plain = |r: HostResult| r.map_err(|e| (e, None));
        match command {
            wit::Command::Send(m) => match self.send(m.connection, m.format, &m.data) {
                Err(wit::HostError::WouldBlock) => {
                    Err((wit::HostError::WouldBlock, Some(wit::Command::Send(m))))
                }
                other => plain(other),
            },
            wit::Command::Ping(p) => plain(self.ping(p.connection, &p.payload)),
            wit::Command::Disconnect(c) => plain(self.disconnect(c.connection, c.code, &c.reason)),
            wit::Command::SetLineMode(l) => plain(self.set_line_mode(l.connection, l.enabled)),
            wit::Command::PauseData(id) => plain(self.pause_data(id)),
            wit::Command::ResumeData(id) => plain(self.resume_data(id)),
            wit::Command::Subscribe(s) => plain(self.subscribe(s.connection, &s.topic)),
            wit::Command::Unsubscribe(s) => plain(self.unsubscribe(s.connection, &s.topic)),
            wit::Command::Publish(p) => plain(self.publish(&p.topic, p.format, p.data, p.exclude)),
        }
    }

    /// A connection of this plugin has ended.
    pub fn forget(&mut self, id: ConnectionId) {
        self.connections.remove(&id);
        self.held.remove(&id);
        self.paused_by_plugin.remove(&id);
        self.topics().forget(id);
    }
}

pub(crate) fn error_event(connection: ConnectionId, code: u32, description: &str) -> wit::Event {
    wit::Event::Error(wit::ErrorInfo {
        connection,
        code,
        description: description.to_owned(),
    })
}

/// The connection a command is for (a publish is for a topic).
fn command_connection(command: &wit::Command) -> Option<ConnectionId> {
    Some(match command {
        wit::Command::Send(m) => m.connection,
        wit::Command::Ping(p) => p.connection,
        wit::Command::Disconnect(c) => c.connection,
        wit::Command::SetLineMode(l) => l.connection,
        wit::Command::PauseData(id) | wit::Command::ResumeData(id) => *id,
        wit::Command::Subscribe(s) | wit::Command::Unsubscribe(s) => s.connection,
        wit::Command::Publish(_) => return None,
    })
}

/// The bytes a held command keeps.
fn command_size(command: &wit::Command) -> usize {
    match command {
        wit::Command::Send(m) => m.data.len(),
        wit::Command::Ping(p) => p.payload.len(),
        _ => 0,
    }
}
