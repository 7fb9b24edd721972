//! The TOML configuration file.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//!
//! [settings]            # WSServer keys, as with --set
//! MaxConnections = 5000
//! BufferMessage = true
//! AllowedClients = "127.0.0.*"
//!
//! [[tenant]]            # repeatable; with none, the built-in echo serves /
//! name = "acme"         # unique; hot swaps and logs name it
//! file = "chat.wasm"    # relative to this file; or builtin:echo|chat|auth
//! routes = ["/chat", "example.com/api"]   # path prefixes, optional host
//! instances = 2                           # actors, connections pinned to one
//! watch = true                            # swap when the file changes
//! memory_limit = 67108864                 # bytes per instance
//! deadline_ms = 200                       # CPU time per call
//! max_connections = 1000                  # then 503
//! max_message_size = 65536                # then close 1009
//! allowed_origins = ["https://acme.example"]   # others get 403
//! connection_rate = 50                    # messages/s per connection
//! tenant_rate = 2000                      # messages/s, all connections
//! over_rate = "drop"                      # or "close" (1008)
//! hibernate_after_ms = 30000              # drop an idle instance (off by default)
//! static = "site"                         # files for plain GETs, or builtin:demo
//! [tenant.config]       # values the plugin reads with config-get
//! "auth.token" = "secret"
//!
//! [runtime]             # the executors every tenant's instances run on
//! executors = 2         # threads; default one per core
//! max_instances = 11468 # live instances, all tenants; default from vm.max_map_count
//! inline_turns = false  # quick turns on the connection's thread (no hop)
//!
//! [admin]               # the admin HTTP API and /metrics
//! listen = "127.0.0.1:9090"
//! token = "secret"      # required unless listen is a loopback address
//!
//! [cluster]             # topics across nodes
//! redis = "redis://127.0.0.1:6379"
//! ```
//!
//! `[[plugin]]` is the older spelling of `[[tenant]]`: the same keys, with
//! the name optional (the file's name by default).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use toml::{Table, Value};

/// What the file asks for, in file order.
#[derive(Debug, Default, PartialEq)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub settings: Vec<(String, String)>,
    /// `[[plugin]]` tables, then `[[tenant]]` tables.
    pub tenants: Vec<TenantEntry>,
    pub admin: Option<AdminEntry>,
    pub runtime: RuntimeEntry,
    pub cluster: Option<ClusterEntry>,
}

/// The `[runtime]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEntry {
    /// Executor threads running plugin instances.
    pub executors: Option<usize>,
    /// Live plugin instances, all tenants together.
    pub max_instances: Option<usize>,
    /// Quick turns run on the connection's thread (default false).
    pub inline_turns: Option<bool>,
}

/// The `[cluster]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    /// The Redis server the nodes share, `redis://HOST:PORT`.
    pub redis: Option<String>,
}

/// The `[admin]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminEntry {
    /// `HOST:PORT` of the admin API.
    pub listen: Option<String>,
    /// The bearer token the admin API requires.
    pub token: Option<String>,
}

/// One `[[tenant]]` (or `[[plugin]]`) table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantEntry {
    /// A .wasm component, or `builtin:NAME`.
    pub file: String,
    pub name: Option<String>,
    pub route: Option<String>,
    #[serde(default)]
    pub routes: Vec<String>,
    pub instances: Option<usize>,
    #[serde(default)]
    pub watch: bool,
    pub memory_limit: Option<usize>,
    pub deadline_ms: Option<u64>,
    pub max_queued_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_message_size: Option<u64>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Messages per second per connection.
    pub connection_rate: Option<u32>,
    /// Messages per second for all the tenant's connections together.
    pub tenant_rate: Option<u32>,
    /// "drop" or "close".
    pub over_rate: Option<String>,
    /// Milliseconds without events after which an instance hibernates.
    pub hibernate_after_ms: Option<u64>,
    /// A directory whose files answer plain GET requests on the tenant's
    /// routes, or `builtin:demo`.
    #[serde(rename = "static")]
    pub static_dir: Option<String>,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut config = parse(&text).with_context(|| format!("in {}", path.display()))?;
    // Plugin files are relative to the configuration file.
    let base = path.parent().unwrap_or(Path::new("."));
    let relative = |file: &mut String| {
        if !file.starts_with("builtin:") && Path::new(file.as_str()).is_relative() {
            *file = base.join(&*file).to_string_lossy().into_owned();
        }
    };
    for plugin in &mut config.tenants {
        relative(&mut plugin.file);
        if let Some(dir) = &mut plugin.static_dir {
            relative(dir);
        }
    }
    Ok(config)
}

pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
    let table: Table = text.parse()?;
    let mut out = FileConfig::default();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("listen", Value::String(s)) => out.listen = Some(s),
            ("listen", other) => bail!("listen must be a \"HOST:PORT\" string, not {other}"),
            ("settings", Value::Table(settings)) => {
                for (name, value) in settings {
                    let text = match value {
                        Value::String(s) => s,
                        Value::Integer(i) => i.to_string(),
                        Value::Boolean(b) => if b { "True" } else { "False" }.to_owned(),
                        other => bail!(
                            "settings.{name} must be a string, integer or boolean, not {other}"
                        ),
                    };
                    out.settings.push((name, text));
                }
            }
            ("settings", other) => bail!("settings must be a table, not {other}"),
            ("plugin", value) => {
                let plugins = Vec::<TenantEntry>::deserialize(value)
                    .map_err(|e| anyhow::anyhow!("[[plugin]]: {}", e.message()))?;
                // Before any [[tenant]]: the older tables come first.
                out.tenants.splice(0..0, plugins);
            }
            ("tenant", value) => {
                let tenants = Vec::<TenantEntry>::deserialize(value)
                    .map_err(|e| anyhow::anyhow!("[[tenant]]: {}", e.message()))?;
                if let Some(unnamed) = tenants.iter().find(|t| t.name.is_none()) {
                    bail!("[[tenant]] for {}: a tenant needs a name", unnamed.file);
                }
                out.tenants.extend(tenants);
            }
            ("admin", value) => {
                out.admin = Some(
                    AdminEntry::deserialize(value)
                        .map_err(|e| anyhow::anyhow!("[admin]: {}", e.message()))?,
                );
            }
            ("runtime", value) => {
                out.runtime = RuntimeEntry::deserialize(value)
                    .map_err(|e| anyhow::anyhow!("[runtime]: {}", e.message()))?;
                if out.runtime.executors == Some(0) || out.runtime.max_instances == Some(0) {
                    bail!("[runtime]: executors and max_instances must be at least 1");
                }
            }
            ("cluster", value) => {
                out.cluster = Some(
                    ClusterEntry::deserialize(value)
                        .map_err(|e| anyhow::anyhow!("[cluster]: {}", e.message()))?,
                );
            }
            (other, _) => {
                bail!(
                    "unknown key \"{other}\" (expected listen, [settings], [[tenant]], [[plugin]], [runtime], [admin] or [cluster])"
                )
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listen_and_settings() {
        let c = parse("listen = \"0.0.0.0:9\"\n[settings]\nMaxConnections = 5\nBufferMessage = true\nAllowedClients = \"*\"\n").unwrap();
        assert_eq!(c.listen.as_deref(), Some("0.0.0.0:9"));
        assert_eq!(
            c.settings,
            [
                ("AllowedClients".into(), "*".into()),
                ("BufferMessage".into(), "True".into()),
                ("MaxConnections".into(), "5".into()),
            ]
        );
    }

    #[test]
    fn reads_plugin_tables() {
        let c = parse("[[plugin]]\nfile = \"a.wasm\"\nroutes = [\"/a\"]\ndeadline_ms = 50\n[plugin.config]\nk = \"v\"\n[[plugin]]\nfile = \"builtin:chat\"\nroute = \"/chat\"\n").unwrap();
        assert_eq!(c.tenants.len(), 2);
        assert_eq!(c.tenants[0].routes, ["/a"]);
        assert_eq!(c.tenants[0].deadline_ms, Some(50));
        assert_eq!(c.tenants[0].config["k"], "v");
        assert_eq!(c.tenants[1].route.as_deref(), Some("/chat"));
        let e = format!(
            "{:#}",
            parse("[[plugin]]\nfile = \"a\"\nmemroy_limit = 1\n").unwrap_err()
        );
        assert!(e.contains("memroy_limit"), "{e}");
    }

    #[test]
    fn reads_tenant_tables_after_plugin_tables() {
        let c = parse(
            "[[tenant]]\nname = \"acme\"\nfile = \"a.wasm\"\ninstances = 2\nwatch = true\n\
             max_connections = 10\nmax_message_size = 100\nallowed_origins = [\"https://a.test\"]\n\
             connection_rate = 5\ntenant_rate = 50\nover_rate = \"close\"\nstatic = \"site\"\n\
             [tenant.config]\nversion = \"v1\"\n\
             [[plugin]]\nfile = \"old.wasm\"\n",
        )
        .unwrap();
        assert_eq!(c.tenants.len(), 2);
        assert_eq!(c.tenants[0].file, "old.wasm");
        let acme = &c.tenants[1];
        assert_eq!(acme.name.as_deref(), Some("acme"));
        assert_eq!((acme.instances, acme.watch), (Some(2), true));
        assert_eq!(
            (acme.max_connections, acme.max_message_size),
            (Some(10), Some(100))
        );
        assert_eq!(acme.allowed_origins, ["https://a.test"]);
        assert_eq!(
            (acme.connection_rate, acme.tenant_rate),
            (Some(5), Some(50))
        );
        assert_eq!(acme.over_rate.as_deref(), Some("close"));
        assert_eq!(acme.static_dir.as_deref(), Some("site"));
        assert_eq!(acme.config["version"], "v1");
        let e = format!(
            "{:#}",
            parse("[[tenant]]\nfile = \"a.wasm\"\n").unwrap_err()
        );
        assert!(e.contains("needs a name"), "{e}");
    }

    #[test]
    fn reads_the_admin_table() {
        let c = parse("[admin]\nlisten = \"127.0.0.1:9090\"\ntoken = \"t\"\n").unwrap();
        let admin = c.admin.unwrap();
        assert_eq!(admin.listen.as_deref(), Some("127.0.0.1:9090"));
        assert_eq!(admin.token.as_deref(), Some("t"));
        let e = format!("{:#}", parse("[admin]\nlsten = \"x\"\n").unwrap_err());
        assert!(e.contains("[admin]") && e.contains("lsten"), "{e}");
    }

    #[test]
    fn reads_the_cluster_table() {
        let c = parse("[cluster]\nredis = \"redis://127.0.0.1:6379\"\n").unwrap();
        assert_eq!(
            c.cluster.unwrap().redis.as_deref(),
            Some("redis://127.0.0.1:6379")
        );
        let e = format!("{:#}", parse("[cluster]\nredsi = \"x\"\n").unwrap_err());
        assert!(e.contains("[cluster]") && e.contains("redsi"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = format!("{:#}", parse("lisen = 1").unwrap_err());
        assert!(e.contains("lisen"), "{e}");
        let e = format!(
            "{:#}",
            parse("[settings]\nMaxConnections = [1]").unwrap_err()
        );
        assert!(e.contains("settings.MaxConnections"), "{e}");
    }
}
