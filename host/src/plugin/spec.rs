//! What the operator declares per tenant (a named plugin deployment): its
//! component, routes, instance limits, admission and rate policy, and the
//! configuration values it may read.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::server::static_files::StaticSite;

/// Resource limits of one plugin instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLimits {
    /// Linear memory an instance may grow to; beyond it `memory.grow`
    /// fails and a guest that insists traps.
    pub memory_bytes: usize,
    /// CPU time one call may take (an event batch or an open request)
    /// before it is interrupted.
    pub call_deadline: Duration,
    /// Event data waiting for the instance beyond which the connections
    /// sending it are paused (TCP backpressure) until it catches up.
    pub max_queued_bytes: usize,
    /// An instance without events this long is dropped (hibernates) while
    /// its connections stay open; the next event makes a new one. None
    /// keeps instances until the server stops.
    pub hibernate_after: Option<Duration>,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            // Room for a 16 MiB message (the default MaxMessageSize) being
            // reassembled while its pieces are still arriving.
            memory_bytes: 128 << 20,
            call_deadline: Duration::from_millis(200),
            max_queued_bytes: 1 << 20,
            hibernate_after: None,
        }
    }
}

/// What a tenant admits, and how fast its clients may send. The defaults
/// admit everything the server does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantPolicy {
    /// Open connections at once; beyond it open requests get 503 before
    /// the plugin sees them.
    pub max_connections: Option<usize>,
    /// Largest incoming message, when smaller than the server's
    /// MaxMessageSize; larger messages get close 1009.
    pub max_message_size: Option<u64>,
    /// Origin header values accepted (compared without regard to case;
    /// `*` accepts any); others get 403. Requests without an Origin (sent
    /// by browsers, not by other clients, which can forge it anyway) are
    /// accepted. Empty: any origin.
    pub allowed_origins: Vec<String>,
    /// Messages per second each connection may send.
    pub connection_rate: Option<Rate>,
    /// Messages per second all the tenant's connections together may send.
    pub tenant_rate: Option<Rate>,
    /// What happens to a message over either rate.
    pub over_rate: OverRate,
}

/// A sustained rate with a burst allowance (a token bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: NonZeroU32,
    /// Messages that may arrive at once after a quiet period.
    pub burst: NonZeroU32,
}

impl Rate {
    /// `per_second` with a burst of one second's worth.
    pub fn per_second(per_second: NonZeroU32) -> Self {
        Self {
            per_second,
            burst: per_second,
        }
    }
}

/// The tenant's choice for a message over its rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OverRate {
    /// The message never reaches the plugin, which receives an `error`
    /// event (code 1008) once per run of dropped messages.
    #[default]
    Drop,
    /// The connection is closed with 1008 (policy violation).
    Close,
}

impl std::str::FromStr for OverRate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "drop" => Ok(Self::Drop),
            "close" => Ok(Self::Close),
            _ => Err(format!("over_rate {s:?}: expected \"drop\" or \"close\"")),
        }
    }
}

/// Which requests a plugin serves: a path prefix (matched on `/`
/// boundaries) and optionally one Host header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path_prefix: String,
    pub host: Option<String>,
}

impl Route {
    /// `"/chat"`, or `"example.com/chat"` to also match the Host header.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (host, path) = match text.find('/') {
            Some(0) => (None, text),
            Some(i) => (Some(&text[..i]), &text[i..]),
            None if text.is_empty() => (None, "/"),
            None => (Some(text), "/"),
        };
        if path.contains(['?', '#', ' ']) {
            return Err(format!(
                "route {text:?}: a route is a path prefix such as /chat, optionally after a host name"
            ));
        }
        let path_prefix = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        Ok(Self {
            path_prefix: path_prefix.to_owned(),
            host: host.map(|h| h.to_ascii_lowercase()),
        })
    }

    /// How specific the match is (longer prefixes and host routes win), or
    /// None when the route does not apply.
    pub fn matches(&self, path: &str, host: &str) -> Option<(bool, usize)> {
        if let Some(want) = &self.host {
            let host = host.rsplit_once(':').map_or(host, |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            });
            if !host.eq_ignore_ascii_case(want) {
                return None;
            }
        }
        let prefix = self.path_prefix.as_str();
        let hit = prefix == "/"
            || path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'));
        hit.then_some((self.host.is_some(), prefix.len()))
    }
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}{}",
            self.host.as_deref().unwrap_or(""),
            self.path_prefix
        )
    }
}

/// One tenant as the operator declared it: a named plugin deployment.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// Unique among the tenants: hot swaps and logs name it.
    pub name: String,
    /// The component's bytes; tenants running the same component may
    /// share one buffer (a built-in plugin is never copied).
    pub wasm: Bytes,
    /// The file `wasm` was read from, if any: reloads and the file watch
    /// read it again.
    pub source: Option<PathBuf>,
    /// Swap to the source file's new contents whenever it changes.
    pub watch: bool,
    pub routes: Vec<Route>,
    /// Limits of each instance.
    pub limits: PluginLimits,
    pub policy: TenantPolicy,
    /// Instances of the plugin (actors on the shared executors, each made
    /// when its first connection arrives); a connection stays with one of
    /// them, so its events keep their order. Each holds
    /// its own state: a plugin that keeps state across connections should
    /// run one, or share it through topics.
    pub instances: usize,
    /// Quick turns run on the thread of the connection whose events find
    /// the instance idle, with no hop to an executor and back. For
    /// components trusted not to loop or sleep: such a call holds that
    /// thread's other connections until its deadline ends it (after which
    /// the tenant's turns stay on the executors for a while). With more
    /// than one instance, each server thread's connections share one.
    pub inline_turns: bool,
    /// Values the plugin may read with `config-get`.
    pub config: BTreeMap<String, String>,
    /// Files for plain GET requests on the tenant's routes.
    pub static_site: Option<Arc<StaticSite>>,
}

impl PluginSpec {
    /// A single-instance tenant with default limits and policy.
    pub fn new(name: impl Into<String>, wasm: impl Into<Bytes>, routes: Vec<Route>) -> Self {
        Self {
            name: name.into(),
            wasm: wasm.into(),
            source: None,
            watch: false,
            routes,
            limits: PluginLimits::default(),
            policy: TenantPolicy::default(),
            instances: 1,
            inline_turns: false,
            config: BTreeMap::new(),
            static_site: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_whole_path_segments() {
        let chat = Route::parse("/chat").unwrap();
        assert_eq!(chat.matches("/chat", "x"), Some((false, 5)));
        assert_eq!(chat.matches("/chat/room", "x"), Some((false, 5)));
        assert_eq!(chat.matches("/chatty", "x"), None);
        assert!(
            Route::parse("/")
                .unwrap()
                .matches("/anything", "x")
                .is_some()
        );
        assert_eq!(Route::parse("/chat/").unwrap().path_prefix, "/chat");
    }

    #[test]
    fn host_routes_compare_the_host_without_its_port() {
        let r = Route::parse("Example.com/api").unwrap();
        assert_eq!(r.host.as_deref(), Some("example.com"));
        assert!(r.matches("/api/x", "example.com:8080").is_some());
        assert!(r.matches("/api/x", "other.com").is_none());
        assert_eq!(Route::parse("example.com").unwrap().path_prefix, "/");
        assert!(Route::parse("/a?b").is_err());
    }
}
