//! The `host` interface plugins import: each function acts at once through
//! the plugin's [`ActorState`], exactly as the command of the same name.

use wsserver_plugin_bindings::wsserver::plugin::{host, types as wit};

use super::actor_state::HostResult;
use super::convert;
use super::prepared::InstanceState;
use crate::server::ConnectionId;

impl wit::Host for InstanceState {}

impl host::Host for InstanceState {
    fn send(
        &mut self,
        connection: ConnectionId,
        format: wit::MessageFormat,
        data: Vec<u8>,
    ) -> HostResult {
        self.actor
            .send(connection, convert::send_format(format), &data)
    }

    fn ping(&mut self, connection: ConnectionId, payload: Vec<u8>) -> HostResult {
        self.actor.ping(connection, &payload)
    }

    fn disconnect(&mut self, connection: ConnectionId, code: u16, reason: String) -> HostResult {
        self.actor.disconnect(connection, code, &reason)
    }

    fn set_line_mode(&mut self, connection: ConnectionId, enabled: bool) -> HostResult {
        self.actor.set_line_mode(connection, enabled)
    }

    fn pause_data(&mut self, connection: ConnectionId) -> HostResult {
        self.actor.pause_data(connection)
    }

    fn resume_data(&mut self, connection: ConnectionId) -> HostResult {
        self.actor.resume_data(connection)
    }

    fn connection_info(&mut self, connection: ConnectionId) -> HostResult<wit::WsConnection> {
        self.actor.connection_info(connection)
    }

    fn connections(&mut self) -> Vec<ConnectionId> {
        self.actor.connection_ids()
    }

    fn subscribe(&mut self, connection: ConnectionId, topic: String) -> HostResult {
        self.actor.subscribe(connection, &topic)
    }

    fn unsubscribe(&mut self, connection: ConnectionId, topic: String) -> HostResult {
        self.actor.unsubscribe(connection, &topic)
    }

    fn publish(
        &mut self,
        topic: String,
        format: wit::MessageFormat,
        data: Vec<u8>,
        exclude: Option<ConnectionId>,
    ) -> HostResult {
        self.actor
            .publish(&topic, convert::send_format(format), &data, exclude)
    }

    fn subscriber_count(&mut self, topic: String) -> u64 {
        self.actor.shared.topics.subscriber_count(&topic)
    }

    fn watch_topic(&mut self, connection: ConnectionId, topic: String, watch: bool) -> HostResult {
        self.actor.watch_topic(connection, &topic, watch)
    }

    fn config_get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn set_attachment(&mut self, connection: ConnectionId, data: Vec<u8>) -> HostResult {
        self.actor.set_attachment(connection, data)
    }

    fn attachment(&mut self, connection: ConnectionId) -> HostResult<Option<Vec<u8>>> {
        self.actor.attachment(connection)
    }

    fn log(&mut self, level: wit::LogLevel, message: String) {
        let shared = &self.actor.shared;
        let plugin = shared.name.as_str();
        let Some(message) = shared.log_budget.admit(plugin, &message, &shared.metrics) else {
            return;
        };
        match level {
            wit::LogLevel::Error => tracing::error!(plugin, "{message}"),
            wit::LogLevel::Info => tracing::info!(plugin, "{message}"),
            wit::LogLevel::Verbose => tracing::debug!(plugin, "{message}"),
            wit::LogLevel::Debug => tracing::trace!(plugin, "{message}"),
        }
    }
}
