//! The binary's TOML configuration file and its `--set Key=Value` items,
//! parsed without touching anything else (the fuzz targets feed them
//! arbitrary text).
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
//! inline_turns = false                    # turns on the connection's thread; default: builtin: files only
//! static = "site"                         # files for plain GETs, or builtin:demo
//! [tenant.config]       # values the plugin reads with config-get
//! "auth.token" = "secret"
//!
//! [runtime]             # the executors every tenant's instances run on
//! executors = 2         # threads; default one per core
//! max_instances = 11468 # live instances, all tenants; default from vm.max_map_count
//! inline_turns = false  # every tenant's (true) or none (false); default: as each tenant says
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
use toml::{Spanned, Table, Value};

use crate::server::settings::all_keys;
use crate::server::{ConfigError, Settings};

/// What the file asks for, in file order.
#[derive(Debug, Default, PartialEq)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub settings: Vec<FileSetting>,
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
    /// Every tenant's quick turns run on the connection's thread (true),
    /// or none do (false); unset, each tenant's `inline_turns` decides.
    pub inline_turns: Option<bool>,
}

/// The `[cluster]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    /// The Redis server the nodes share, `redis://HOST:PORT`.
    pub redis: Option<String>,
}

/// One key of `[settings]`, with its value as text and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSetting {
    pub name: String,
    pub value: String,
    pub line: usize,
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
    /// Quick turns on the connection's thread (the component is trusted
    /// not to loop or sleep); default: for `builtin:` components only.
    pub inline_turns: Option<bool>,
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

/// The tables serde reads. They are deserialized from the whole document,
/// so that an error carries its line and column.
#[derive(Deserialize)]
struct Tables {
    #[serde(default)]
    plugin: Vec<TenantEntry>,
    #[serde(default)]
    tenant: Vec<TenantEntry>,
    admin: Option<AdminEntry>,
    #[serde(default)]
    runtime: RuntimeEntry,
    cluster: Option<ClusterEntry>,
    /// Keys with their place in the file, for errors found later.
    #[serde(default)]
    settings: BTreeMap<Spanned<String>, Value>,
}

pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
    let table: Table = text.parse()?;
    for (key, value) in &table {
        match (key.as_str(), value) {
            ("listen", Value::String(_)) => {}
            ("listen", other) => bail!("listen must be a \"HOST:PORT\" string, not {other}"),
            ("settings" | "plugin" | "tenant" | "admin" | "runtime" | "cluster", _) => {}
            (other, _) => {
                bail!(
                    "{}unknown key \"{other}\" (expected listen, [settings], [[tenant]], [[plugin]], [runtime], [admin] or [cluster])",
                    at_line(table_key_line(text, other))
                )
            }
        }
    }
    let tables: Tables = toml::from_str(text)?;
    let mut out = FileConfig {
        listen: table
            .get("listen")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..FileConfig::default()
    };
    for (name, value) in tables.settings {
        let line = line_of(text, name.span().start);
        let name = name.into_inner();
        let value = match value {
            Value::String(s) => s,
            Value::Integer(i) => i.to_string(),
            Value::Boolean(b) => if b { "True" } else { "False" }.to_owned(),
            other => bail!(
                "line {line}: settings.{name} must be a string, integer or boolean, not {other}"
            ),
        };
        out.settings.push(FileSetting { name, value, line });
    }
    // The older [[plugin]] tables come before any [[tenant]].
    out.tenants = tables.plugin;
    if let Some(unnamed) = tables.tenant.iter().find(|t| t.name.is_none()) {
        bail!("[[tenant]] for {}: a tenant needs a name", unnamed.file);
    }
    out.tenants.extend(tables.tenant);
    out.admin = tables.admin;
    out.runtime = tables.runtime;
    out.cluster = tables.cluster;
    if out.runtime.executors == Some(0) || out.runtime.max_instances == Some(0) {
        bail!("[runtime]: executors and max_instances must be at least 1");
    }
    Ok(out)
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line where a top-level key or table starts, if it can be found.
fn table_key_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start().trim_start_matches('[').trim_start();
            line.strip_prefix(key)
                .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
                .is_some_and(|rest| rest.trim_start().starts_with(['=', ']', '.']))
        })
        .map(|index| index + 1)
}

fn at_line(line: Option<usize>) -> String {
    line.map(|line| format!("line {line}: "))
        .unwrap_or_default()
}

/// Applies one `--set Key=Value` item; errors quote the item.
pub fn apply_set(settings: &mut Settings, item: &str) -> anyhow::Result<()> {
    let (key, value) = item
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("--set {item:?}: expected Key=Value"))?;
    settings
        .set(key.trim(), value)
        .map_err(|e| anyhow::anyhow!("--set {item}: {}", setting_error(e)))
}

/// A setting error, with the closest known key when the key is unknown
/// (a misspelling) and where to find them all.
pub fn setting_error(error: ConfigError) -> String {
    let ConfigError::UnknownKey(key) = &error else {
        return error.to_string();
    };
    let closest = all_keys()
        .map(|(name, _)| {
            (
                strsim::jaro_winkler(&key.to_lowercase(), &name.to_lowercase()),
                name,
            )
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(score, _)| *score > 0.85);
    match closest {
        Some((_, name)) => {
            format!("{error}: did you mean {name}? (`wsserver --list-settings` lists them all)")
        }
        None => format!("{error} (`wsserver --list-settings` lists them all)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listen_and_settings() {
        let c = parse("listen = \"0.0.0.0:9\"\n[settings]\nMaxConnections = 5\nBufferMessage = true\nAllowedClients = \"*\"\n").unwrap();
        assert_eq!(c.listen.as_deref(), Some("0.0.0.0:9"));
        let settings: Vec<_> = c
            .settings
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_str(), s.line))
            .collect();
        assert_eq!(
            settings,
            [
                ("AllowedClients", "*", 5),
                ("BufferMessage", "True", 4),
                ("MaxConnections", "5", 3),
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
             inline_turns = false\n\
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
        assert_eq!(acme.inline_turns, Some(false));
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
        assert!(e.contains("line 2") && e.contains("lsten"), "{e}");
    }

    #[test]
    fn reads_the_cluster_table() {
        let c = parse("[cluster]\nredis = \"redis://127.0.0.1:6379\"\n").unwrap();
        assert_eq!(
            c.cluster.unwrap().redis.as_deref(),
            Some("redis://127.0.0.1:6379")
        );
        let e = format!("{:#}", parse("[cluster]\nredsi = \"x\"\n").unwrap_err());
        assert!(e.contains("line 2") && e.contains("redsi"), "{e}");
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
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn errors_in_tables_carry_their_line() {
        let text = "listen = \"127.0.0.1:0\"\n\n[[tenant]]\nname = \"a\"\nfile = \"a.wasm\"\nrouts = [\"/\"]\n";
        let e = format!("{:#}", parse(text).unwrap_err());
        assert!(e.contains("line 6") && e.contains("routs"), "{e}");
        let e = format!("{:#}", parse("\n\nlisen = 1").unwrap_err());
        assert!(e.contains("line 3") && e.contains("lisen"), "{e}");
    }
}
