//! What a plugin may do to its connections: the `host` imports and the
//! commands returned from `on-events` share this one implementation, so a
//! command and the direct function of the same name behave alike.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rustc_hash::{FxHashMap, FxHashSet};
use wsserver_packed::{self as packed, Command};
use wsserver_plugin_bindings::wsserver::plugin::types as wit;

use super::convert;
use super::log_budget::LogBudget;
use super::metrics::PluginMetrics;
use super::topics::{PushEvent, TopicBus};
use crate::MessageKind;
use crate::protocol::close::is_valid_wire_code;
use crate::server::{Connection, ConnectionId};

pub(crate) type HostResult<T = ()> = Result<T, wit::HostError>;

/// Facts about a tenant shared by all of its instances and versions.
#[derive(Debug)]
pub(crate) struct PluginShared {
    pub name: String,
    /// The plugin's inbox limit (PluginLimits::max_queued_bytes): what a
    /// connection may have in flight towards the plugin.
    pub max_queued_bytes: usize,
    pub topics: Arc<TopicBus>,
    /// Connections the plugin paused itself (flow control must not resume
    /// them), whichever instance serves them.
    paused_by_plugin: Mutex<FxHashSet<ConnectionId>>,
    /// Every instance's connections, when the tenant runs more than one:
    /// any instance may address any of the tenant's connections.
    members: Option<Mutex<FxHashMap<ConnectionId, Connection>>>,
    pub metrics: PluginMetrics,
    pub log_budget: LogBudget,
}

impl PluginShared {
    pub fn new(name: String, max_queued_bytes: usize, instances: usize, push: PushEvent) -> Self {
        Self {
            topics: Arc::new(TopicBus::new(name.clone(), push)),
            name,
            max_queued_bytes,
            paused_by_plugin: Mutex::default(),
            members: (instances > 1).then(Mutex::default),
            metrics: PluginMetrics::default(),
            log_budget: LogBudget::default(),
        }
    }

    fn paused(&self) -> MutexGuard<'_, FxHashSet<ConnectionId>> {
        self.paused_by_plugin
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the plugin itself paused `id`'s data.
    pub fn paused_by_plugin(&self, id: ConnectionId) -> bool {
        self.paused().contains(&id)
    }

    fn members(&self) -> Option<MutexGuard<'_, FxHashMap<ConnectionId, Connection>>> {
        self.members
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The plugin's view of its connections. Lives in the instance's store and
/// moves to the next instance when one fails or a new version is swapped
/// in.
#[derive(Debug)]
pub(crate) struct ActorState {
    pub shared: Arc<PluginShared>,
    /// This instance's open connections: the ones whose events it receives.
    pub connections: FxHashMap<ConnectionId, Connection>,
    /// Those of them whose `connected` event the plugin has received: a
    /// version swapped in without the old one's state hears of them again.
    announced: FxHashSet<ConnectionId>,
    /// Events (packed) the host owes the plugin: `error` events for failed
    /// commands, `connected` notices after a swap. Delivered first in the
    /// next batch.
    pub owed: Vec<u8>,
    /// Commands held for connections whose send queue was full; see
    /// [`apply`](Self::apply).
    held: FxHashMap<ConnectionId, Held>,
    /// What the plugin stored with `set-attachment`: kept here, outside
    /// the instance, so it outlives hibernation, traps and swaps.
    attachments: FxHashMap<ConnectionId, Vec<u8>>,
    /// The connection of `connections` the last send went to: an echo
    /// answers a read with a run of sends to one connection, looked up
    /// once. Dropped with the connection.
    last_sent: Option<Connection>,
}

/// The largest attachment a connection may carry.
pub(crate) const MAX_ATTACHMENT: usize = 2048;

/// A connection's commands waiting for room in its send queue, packed, in
/// order.
#[derive(Debug, Default)]
struct Held {
    commands: Vec<u8>,
    /// Payload bytes among them, bounded per connection.
    bytes: usize,
}

/// Why a command did not run; a send that found the queue full may be held.
enum Refused {
    Full,
    Failed(wit::HostError),
}

/// A send's result, whose full queue is a refusal the caller may hold it
/// for.
fn refusable(result: HostResult) -> Result<(), Refused> {
    match result {
        Err(wit::HostError::WouldBlock) => Err(Refused::Full),
        other => other.map_err(Refused::Failed),
    }
}

/// Queues one message on `conn`; `format` is the packed layout's send
/// format.
fn send_on(conn: &Connection, format: u8, data: &[u8]) -> HostResult {
    let kind = message_kind(format, data).ok_or(wit::HostError::InvalidArgument)?;
    conn.send_data(kind, data)
        .map_err(|e| convert::host_error(&e))
}

/// The kind of message a send of `data` in the packed `format` makes;
/// `None` for text that is not UTF-8.
fn message_kind(format: u8, data: &[u8]) -> Option<MessageKind> {
    if format != packed::SEND_TEXT {
        Some(MessageKind::Binary)
    } else if simdutf8::basic::from_utf8(data).is_ok() {
        Some(MessageKind::Text)
    } else {
        None
    }
}

impl ActorState {
    pub fn new(shared: Arc<PluginShared>) -> Self {
        Self {
            shared,
            connections: FxHashMap::default(),
            announced: FxHashSet::default(),
            owed: Vec::new(),
            held: FxHashMap::default(),
            attachments: FxHashMap::default(),
            last_sent: None,
        }
    }

    /// One of the tenant's connections: this instance's, or another
    /// instance's.
    fn conn(&self, id: ConnectionId) -> HostResult<Cow<'_, Connection>> {
        if let Some(conn) = self.connections.get(&id) {
            return Ok(Cow::Borrowed(conn));
        }
        self.shared
            .members()
            .and_then(|members| members.get(&id).cloned())
            .map(Cow::Owned)
            .ok_or(wit::HostError::InvalidConnection)
    }

    /// A connection this instance now serves (its open request was
    /// accepted).
    pub fn admit(&mut self, conn: Connection) {
        if let Some(mut members) = self.shared.members() {
            members.insert(conn.id(), conn.clone());
        }
        self.connections.insert(conn.id(), conn);
    }

    /// The plugin has received `id`'s `connected` event.
    pub fn announced(&mut self, id: ConnectionId) {
        if self.connections.contains_key(&id) {
            self.announced.insert(id);
        }
    }

    /// Owes the plugin a `connected` event for each connection it had
    /// been told of, before anything else: a version that starts without
    /// the previous one's state learns which connections are open.
    pub fn announce_again(&mut self) {
        let mut ids: Vec<ConnectionId> = self.announced.iter().copied().collect();
        // In the order they opened (ids grow), which a plugin may rely on.
        ids.sort_unstable();
        let mut notices = Vec::new();
        let mut writer = packed::Writer::new(&mut notices);
        for id in ids {
            writer.event(&packed::Event::Connected(id));
        }
        notices.extend_from_slice(&self.owed);
        self.owed = notices;
    }

    /// Queues one message; `format` is the packed layout's send format.
    pub fn send(&self, id: ConnectionId, format: u8, data: &[u8]) -> HostResult {
        send_on(&*self.conn(id)?, format, data)
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

    pub fn pause_data(&self, id: ConnectionId) -> HostResult {
        self.conn(id)?.pause_data();
        self.shared.paused().insert(id);
        Ok(())
    }

    pub fn resume_data(&self, id: ConnectionId) -> HostResult {
        self.conn(id)?.resume_data();
        self.shared.paused().remove(&id);
        Ok(())
    }

    pub fn subscribe(&self, id: ConnectionId, topic: &str) -> HostResult {
        let conn = self.conn(id)?;
        self.shared.topics.subscribe(&conn, topic);
        Ok(())
    }

    /// Starts or stops presence events for `topic`, delivered through the
    /// watcher `id`.
    pub fn watch_topic(&self, id: ConnectionId, topic: &str, watch: bool) -> HostResult {
        let conn = self.conn(id)?;
        self.shared.topics.watch(&conn, topic, watch);
        Ok(())
    }

    pub fn unsubscribe(&self, id: ConnectionId, topic: &str) -> HostResult {
        self.conn(id)?;
        self.shared.topics.unsubscribe(id, topic);
        Ok(())
    }

    /// Queues a message for every subscriber but `exclude`; subscribers
    /// whose queue is full get an `error` event instead.
    pub fn publish(
        &mut self,
        topic: &str,
        format: u8,
        data: &[u8],
        exclude: Option<ConnectionId>,
    ) -> HostResult {
        if let Some(id) = exclude {
            self.conn(id)?;
        }
        let kind = if format == packed::SEND_TEXT {
            if simdutf8::basic::from_utf8(data).is_err() {
                return Err(wit::HostError::InvalidArgument);
            }
            MessageKind::Text
        } else {
            MessageKind::Binary
        };
        let payload = Bytes::copy_from_slice(data);
        // Subscribers of every instance of the tenant, and (with a
        // cluster) the other nodes'.
        let failed = self.shared.topics.publish(topic, kind, payload, exclude);
        for (id, e) in failed {
            let code = convert::error_code(convert::host_error(&e));
            self.error(id, code, &e.to_string());
        }
        Ok(())
    }

    pub fn connection_info(&self, id: ConnectionId) -> HostResult<wit::WsConnection> {
        let conn = self.conn(id)?;
        Ok(convert::ws_connection(conn.info(), conn.request().as_ref()))
    }

    /// Stores `data` with one of this instance's connections; empty
    /// removes it.
    pub fn set_attachment(&mut self, id: ConnectionId, data: Vec<u8>) -> HostResult {
        if !self.connections.contains_key(&id) {
            return Err(wit::HostError::InvalidConnection);
        }
        if data.len() > MAX_ATTACHMENT {
            return Err(wit::HostError::InvalidArgument);
        }
        if data.is_empty() {
            self.attachments.remove(&id);
        } else {
            self.attachments.insert(id, data);
        }
        Ok(())
    }

    pub fn attachment(&self, id: ConnectionId) -> HostResult<Option<Vec<u8>>> {
        if !self.connections.contains_key(&id) {
            return Err(wit::HostError::InvalidConnection);
        }
        Ok(self.attachments.get(&id).cloned())
    }

    /// The tenant's open connections, every instance's.
    pub fn connection_ids(&self) -> Vec<ConnectionId> {
        match self.shared.members() {
            Some(members) => members.keys().copied().collect(),
            None => self.connections.keys().copied().collect(),
        }
    }

    /// Queues an `error` event for the next batch.
    fn error(&mut self, connection: ConnectionId, code: u32, description: &str) {
        packed::Writer::new(&mut self.owed).event(&packed::Event::Error {
            connection,
            code,
            description,
        });
    }

    /// Applies one command returned from `on-events`.
    ///
    /// A send that finds the connection's queue full is not dropped: the
    /// host holds it, and every later command for that connection, stops
    /// reading from the client (so the client is slowed by TCP, not by
    /// losing messages) and replays them in order when ready-to-send comes.
    /// Only what exceeds the plugin's inbox limit plus the connection's
    /// send queue is dropped, with an `error` event (10035). Other failures
    /// become `error` events. Sends to a connection of another instance of
    /// the tenant are not held (its ready-to-send goes to that instance): a
    /// full queue drops them with an `error` event (10035).
    pub fn apply(&mut self, command: Command<'_>) {
        let target = command.connection();
        if let Some(id) = target
            && self.is_held(id)
        {
            return self.hold(id, &command);
        }
        let result = self.execute(&command);
        self.settle(target, &command, result);
    }

    /// [`apply`](Self::apply) of a send (the commonest command), by the
    /// same rules without matching on a command.
    pub fn apply_send(&mut self, connection: ConnectionId, format: u8, data: &[u8]) {
        let send = || Command::Send {
            connection,
            format,
            data,
        };
        if self.is_held(connection) {
            return self.hold(connection, &send());
        }
        let result = match self.own_connection(connection) {
            Some(conn) => send_on(conn, format, data),
            // Another instance's, or none.
            None => self.send(connection, format, data),
        };
        let result = refusable(result);
        if result.is_err() {
            self.settle(Some(connection), &send(), result);
        }
    }

    /// [`apply_send`](Self::apply_send) of a run of sends to one
    /// connection (an echo's replies to a read): queued under one borrow
    /// of the connection's own turn when this thread runs it, by the same
    /// rules; the rest, from the first that does not fit, one by one.
    pub fn apply_send_run<'d>(
        &mut self,
        connection: ConnectionId,
        mut sends: impl Iterator<Item = (u8, &'d [u8])>,
    ) {
        let mut declined = None;
        if !self.is_held(connection)
            && let Some(conn) = self.own_connection(connection)
        {
            conn.with_own_sends(|queue| {
                for (format, data) in sends.by_ref() {
                    let queued =
                        message_kind(format, data).is_some_and(|kind| queue.try_send(kind, data));
                    if !queued {
                        declined = Some((format, data));
                        break;
                    }
                }
            });
        }
        for (format, data) in declined.into_iter().chain(sends) {
            self.apply_send(connection, format, data);
        }
    }

    /// `id`'s connection when this instance serves it, kept as the last
    /// one sent to, so a run of replies finds it without a lookup.
    fn own_connection(&mut self, id: ConnectionId) -> Option<&Connection> {
        if self.last_sent.as_ref().is_none_or(|c| c.id() != id) {
            self.last_sent = Some(self.connections.get(&id)?.clone());
        }
        self.last_sent.as_ref()
    }

    /// What follows a command's execution: a send that found the queue
    /// full is held (and the client paused), a failure becomes an `error`
    /// event.
    fn settle(
        &mut self,
        target: Option<ConnectionId>,
        command: &Command<'_>,
        result: Result<(), Refused>,
    ) {
        match result {
            Ok(()) => {}
            Err(Refused::Full) => {
                let id = target.unwrap_or_default();
                match self.connections.get(&id) {
                    Some(conn) => {
                        conn.pause_data();
                        self.hold(id, command);
                    }
                    None => self.error(
                        id,
                        convert::error_code(wit::HostError::WouldBlock),
                        "the connection's send queue is full; the message was dropped",
                    ),
                }
            }
            Err(Refused::Failed(e)) => {
                let description = match e {
                    wit::HostError::WouldBlock => {
                        "the connection's send queue is full; the message was dropped"
                    }
                    wit::HostError::InvalidConnection => "not an open connection of this plugin",
                    wit::HostError::InvalidArgument => "malformed command",
                };
                self.error(
                    target.unwrap_or_default(),
                    convert::error_code(e),
                    description,
                );
            }
        }
    }

    fn hold(&mut self, id: ConnectionId, command: &Command<'_>) {
        let size = command_size(command);
        // Until the pause takes effect the client's data already queued for
        // the plugin still arrives: at most two batches, each about the
        // plugin's inbox limit. An echo's replies to them fit, and so does
        // any single message when nothing is held yet; a plugin that
        // multiplies its input is cut off here.
        let limit = self.connections.get(&id).map_or(0, |c| {
            2 * self
                .shared
                .max_queued_bytes
                .saturating_add(c.send_queue_limit())
        });
        let held = self.held.entry(id).or_default();
        if held.bytes > 0 && held.bytes + size > limit {
            self.shared.metrics.record_command_dropped();
            let description = "the connection's send queue and the commands held for it are full; the command was dropped";
            self.error(
                id,
                convert::error_code(wit::HostError::WouldBlock),
                description,
            );
            return;
        }
        held.bytes += size;
        packed::Writer::new(&mut held.commands).command(command);
    }

    /// Replays the commands held for a connection once its queue has room;
    /// stops again at the first send that finds it full. The caller resumes
    /// the client's data ([`resume_released`](Self::resume_released)) only
    /// after the batch being delivered has been applied, so that batch's
    /// replies are held before more input arrives.
    pub fn release_held(&mut self, id: ConnectionId) {
        let Some(held) = self.held.remove(&id) else {
            return;
        };
        let mut commands = packed::commands(&held.commands);
        while let Some(Ok(command)) = commands.next() {
            match self.execute(&command) {
                Ok(()) => {}
                Err(Refused::Full) => {
                    // Hold it and everything after it again, in order.
                    self.hold(id, &command);
                    for rest in commands.by_ref().flatten() {
                        self.hold(id, &rest);
                    }
                    return;
                }
                Err(Refused::Failed(e)) => {
                    self.error(id, convert::error_code(e), "a held command failed");
                }
            }
        }
    }

    /// Resumes a client whose held commands have all left, unless the
    /// plugin paused it itself or new ones are held.
    pub fn resume_released(&self, id: ConnectionId) {
        if !self.is_held(id)
            && !self.shared.paused_by_plugin(id)
            && let Some(conn) = self.connections.get(&id)
        {
            conn.resume_data();
        }
    }

    /// Whether the host holds commands (and so paused data) for `id`.
    pub fn is_held(&self, id: ConnectionId) -> bool {
        !self.held.is_empty() && self.held.contains_key(&id)
    }

    fn execute(&mut self, command: &Command<'_>) -> Result<(), Refused> {
        let result = match *command {
            Command::Send {
                connection,
                format,
                data,
            } => return refusable(self.send(connection, format, data)),
            Command::Ping {
                connection,
                payload,
            } => self.ping(connection, payload),
            Command::Disconnect {
                connection,
                code,
                reason,
            } => self.disconnect(connection, code, reason),
            Command::SetLineMode {
                connection,
                enabled,
            } => self.set_line_mode(connection, enabled),
            Command::PauseData(id) => self.pause_data(id),
            Command::ResumeData(id) => self.resume_data(id),
            Command::Subscribe { connection, topic } => self.subscribe(connection, topic),
            Command::Unsubscribe { connection, topic } => self.unsubscribe(connection, topic),
            Command::Publish {
                topic,
                format,
                data,
                exclude,
            } => self.publish(topic, format, data, exclude),
            // Only meaningful beside the batch it answers, which turns it
            // into a send before it gets here (see `instance/mod.rs`).
            Command::SendInput { .. } => Err(wit::HostError::InvalidArgument),
            // A declaration to the instance, taken there (see `instance/mod.rs`).
            Command::Defaults(_) => Ok(()),
        };
        result.map_err(Refused::Failed)
    }

    /// A connection of this plugin has ended.
    pub fn forget(&mut self, id: ConnectionId) {
        self.connections.remove(&id);
        if self.last_sent.as_ref().is_some_and(|c| c.id() == id) {
            self.last_sent = None;
        }
        self.announced.remove(&id);
        self.held.remove(&id);
        self.attachments.remove(&id);
        if let Some(mut members) = self.shared.members() {
            members.remove(&id);
        }
        self.shared.paused().remove(&id);
        self.shared.topics.forget(id);
    }
}

/// The bytes a held command keeps.
fn command_size(command: &Command<'_>) -> usize {
    match command {
        Command::Send { data, .. } => data.len(),
        Command::Ping { payload, .. } => payload.len(),
        _ => 0,
    }
}
