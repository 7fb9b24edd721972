//! What the operator declares per plugin: its component, routes, limits and
//! the configuration values it may read.

use std::collections::BTreeMap;
use std::time::Duration;

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
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            // Room for a 16 MiB message (the default MaxMessageSize) being
            // reassembled while its pieces are still arriving.
            memory_bytes: 128 << 20,
            call_deadline: Duration::from_millis(200),
            max_queued_bytes: 1 << 20,
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

/// One plugin as the operator declared it.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    /// For logs and errors: the file name, or what the operator chose.
    pub name: String,
    pub wasm: Vec<u8>,
    pub routes: Vec<Route>,
    pub limits: PluginLimits,
    /// Values the plugin may read with `config-get`.
    pub config: BTreeMap<String, String>,
}

impl PluginSpec {
    /// Identifies the component's exact bytes: `sha256:` and the digest.
    pub fn version(&self) -> String {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&self.wasm)))
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

    #[test]
    fn the_version_is_the_digest_of_the_component() {
        let spec = |wasm: &[u8]| PluginSpec {
            name: "p".into(),
            wasm: wasm.to_vec(),
            routes: Vec::new(),
            limits: PluginLimits::default(),
            config: BTreeMap::new(),
        };
        // SHA-256 of the empty input, a published test vector.
        assert_eq!(
            spec(b"").version(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(spec(b"a").version(), spec(b"b").version());
    }
}
