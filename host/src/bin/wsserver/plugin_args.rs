//! Turning `--plugin [ROUTE=]FILE.wasm` flags and `[[tenant]]`/`[[plugin]]`
//! tables into tenant specifications.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use wsserver::StaticSite;
use wsserver::plugin::{PluginLimits, PluginSpec, Rate, Route, TenantPolicy, check_component};

use wsserver::config::TenantEntry;

use crate::demo;

/// The plugins built into the binary, for `builtin:NAME`: echo serves when
/// no plugin is given, chat (rooms by request path) and auth (bearer token,
/// subprotocol choice) are examples. host/build.rs compiles them.
const BUILTIN: &[(&str, &[u8])] = &[
    (
        "echo",
        include_bytes!(concat!(env!("WSSERVER_PLUGIN_DIR"), "/echo.wasm")),
    ),
    (
        "chat",
        include_bytes!(concat!(env!("WSSERVER_PLUGIN_DIR"), "/chat.wasm")),
    ),
    (
        "auth",
        include_bytes!(concat!(env!("WSSERVER_PLUGIN_DIR"), "/auth.wasm")),
    ),
];

/// Parses one `--plugin` value: `[ROUTE=]FILE`.
pub fn from_flag(flag: &str) -> anyhow::Result<TenantEntry> {
    let (route, file) = match flag.split_once('=') {
        Some((route, file)) => (Some(route.to_owned()), file),
        None => (None, flag),
    };
    if file.is_empty() {
        bail!("--plugin {flag:?}: expected [ROUTE=]FILE.wasm");
    }
    Ok(TenantEntry {
        file: file.to_owned(),
        route,
        ..TenantEntry::default()
    })
}

/// What serves when nothing is configured: the built-in chat on /chat
/// (rooms by path), the built-in echo on every other path, and the demo
/// page for a browser opening /.
pub fn default_tenants() -> Vec<TenantEntry> {
    // The echo keeps nothing across connections: one instance per core,
    // so each server thread runs its connections' turns on its own.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let echo = TenantEntry {
        static_dir: Some(demo::BUILTIN.to_owned()),
        instances: Some(cores),
        ..from_flag("/=builtin:echo").expect("a valid flag")
    };
    let chat = from_flag(&format!("{}=builtin:chat", demo::CHAT_ROUTE)).expect("a valid flag");
    vec![echo, chat]
}

/// The tenants of `entries` (the defaults when there are none), with their
/// components read. A tenant without a name takes its file's, with `-2`,
/// `-3`... when an earlier tenant has it, so the same configuration always
/// names its tenants alike. `static_dir` (--static) goes to the tenant on
/// route `/`.
pub fn to_specs(
    mut entries: Vec<TenantEntry>,
    static_dir: Option<&Path>,
) -> anyhow::Result<Vec<PluginSpec>> {
    if entries.is_empty() {
        entries = default_tenants();
    }
    if let Some(dir) = static_dir {
        let root = Route::parse("/").expect("a valid route");
        let entry = entries
            .iter_mut()
            .find(|e| routes(e).is_ok_and(|routes| routes.contains(&root)))
            .with_context(|| {
                format!(
                    "--static {}: no tenant serves route / (add --plugin /=FILE.wasm)",
                    dir.display()
                )
            })?;
        entry.static_dir = Some(dir.to_string_lossy().into_owned());
    }
    let mut specs: Vec<PluginSpec> = Vec::with_capacity(entries.len());
    for entry in entries {
        let named = entry.name.is_some();
        let mut spec = to_spec(entry)?;
        if !named {
            let base = spec.name.clone();
            let mut n = 1;
            while specs.iter().any(|s| s.name == spec.name) {
                n += 1;
                spec.name = format!("{base}-{n}");
            }
        }
        specs.push(spec);
    }
    Ok(specs)
}

/// A rate of `per_second` messages, from the key `key`.
fn rate(key: &str, per_second: Option<u32>) -> anyhow::Result<Option<Rate>> {
    per_second
        .map(|n| {
            NonZeroU32::new(n)
                .map(Rate::per_second)
                .with_context(|| format!("{key} must be at least 1 message per second"))
        })
        .transpose()
}

/// Reads the component and applies defaults.
fn to_spec(entry: TenantEntry) -> anyhow::Result<PluginSpec> {
    let (name, source) = match entry.file.strip_prefix("builtin:") {
        Some(builtin) => (format!("{builtin} (built-in)"), None),
        None => {
            let stem = Path::new(&entry.file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| entry.file.clone());
            (stem, Some(PathBuf::from(&entry.file)))
        }
    };
    let name = entry.name.clone().unwrap_or(name);
    let wasm = match &source {
        Some(path) => {
            let wasm = std::fs::read(path)
                .with_context(|| format!("cannot read plugin {}", entry.file))?;
            check_component(&wasm)
                .with_context(|| format!("plugin {} cannot be loaded", path.display()))?;
            Bytes::from(wasm)
        }
        None => builtin(&entry.file)?,
    };
    let routes = routes(&entry)?;
    let context = || format!("tenant {name}");
    let static_site = entry
        .static_dir
        .as_deref()
        .map(|dir| open_site(dir).with_context(|| format!("tenant {name}: static = {dir:?}")))
        .transpose()?;
    if entry.instances == Some(0) {
        bail!("{}: instances must be at least 1", context());
    }
    if entry.watch && source.is_none() {
        bail!(
            "{}: watch needs a component file, not {}",
            context(),
            entry.file
        );
    }
    let policy = TenantPolicy {
        max_connections: entry.max_connections,
        max_message_size: entry.max_message_size,
        allowed_origins: entry.allowed_origins,
        connection_rate: rate("connection_rate", entry.connection_rate).with_context(context)?,
        tenant_rate: rate("tenant_rate", entry.tenant_rate).with_context(context)?,
        over_rate: match &entry.over_rate {
            Some(text) => text
                .parse()
                .map_err(anyhow::Error::msg)
                .with_context(context)?,
            None => Default::default(),
        },
    };
    // Built-in components are part of the server: trusted to run on its
    // threads.
    let inline_turns = entry.inline_turns.unwrap_or(source.is_none());
    let defaults = PluginLimits::default();
    Ok(PluginSpec {
        name,
        wasm,
        source,
        watch: entry.watch,
        routes,
        limits: PluginLimits {
            memory_bytes: entry.memory_limit.unwrap_or(defaults.memory_bytes),
            call_deadline: entry
                .deadline_ms
                .map_or(defaults.call_deadline, Duration::from_millis),
            max_queued_bytes: entry.max_queued_bytes.unwrap_or(defaults.max_queued_bytes),
            hibernate_after: entry.hibernate_after_ms.map(Duration::from_millis),
        },
        policy,
        instances: entry.instances.unwrap_or(1),
        inline_turns,
        config: entry.config,
        static_site,
    })
}

/// The entry's routes (`/` when it names none).
fn routes(entry: &TenantEntry) -> anyhow::Result<Vec<Route>> {
    let mut texts = entry.routes.clone();
    texts.extend(entry.route.clone());
    if texts.is_empty() {
        texts.push("/".to_owned());
    }
    texts
        .iter()
        .map(|r| Route::parse(r).map_err(anyhow::Error::msg))
        .collect()
}

/// The site of a `static` key: a directory, or the built-in demo.
fn open_site(dir: &str) -> anyhow::Result<Arc<StaticSite>> {
    if dir == demo::BUILTIN {
        return Ok(demo::site());
    }
    Ok(Arc::new(StaticSite::directory(Path::new(dir))?))
}

/// A built-in plugin's bytes, for `builtin:NAME`.
fn builtin(file: &str) -> anyhow::Result<Bytes> {
    let name = file.strip_prefix("builtin:").unwrap_or(file);
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| Bytes::from_static(b))
        .with_context(|| {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            format!(
                "plugin {file:?}: no such built-in plugin (built in: {})",
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_split_route_and_file() {
        let e = from_flag("/chat=chat.wasm").unwrap();
        assert_eq!(
            (e.route.as_deref(), e.file.as_str()),
            (Some("/chat"), "chat.wasm")
        );
        let e = from_flag("echo.wasm").unwrap();
        assert_eq!((e.route, e.file.as_str()), (None, "echo.wasm"));
        assert!(from_flag("/x=").is_err());
    }

    #[test]
    fn builtins_resolve_and_unknown_ones_are_named() {
        let spec = to_spec(from_flag("builtin:echo").unwrap()).unwrap();
        assert_eq!(spec.name, "echo (built-in)");
        assert_eq!(spec.routes, [Route::parse("/").unwrap()]);
        // Part of the server: trusted with its threads, unless told not.
        assert!(spec.inline_turns);
        let untrusted = TenantEntry {
            inline_turns: Some(false),
            ..from_flag("builtin:echo").unwrap()
        };
        assert!(!to_spec(untrusted).unwrap().inline_turns);
        let e = to_spec(from_flag("builtin:nope").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("builtin:nope") && e.contains("echo, chat, auth"),
            "{e}"
        );
    }

    #[test]
    fn unnamed_tenants_of_one_file_get_distinct_names_and_none_means_echo_and_chat() {
        let chat = TenantEntry {
            name: Some("room".into()),
            file: "builtin:chat".into(),
            ..TenantEntry::default()
        };
        let specs = to_specs(
            vec![
                from_flag("/a=builtin:echo").unwrap(),
                from_flag("/b=builtin:echo").unwrap(),
                chat,
            ],
            None,
        )
        .unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["echo (built-in)", "echo (built-in)-2", "room"]);
        let specs = to_specs(Vec::new(), None).unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["echo (built-in)", "chat (built-in)"]);
        assert_eq!(specs[1].routes, [Route::parse("/chat").unwrap()]);
        assert!(specs[0].static_site.is_some() && specs[1].static_site.is_none());
    }

    #[test]
    fn static_goes_to_the_tenant_on_slash_and_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let specs = to_specs(
            vec![
                from_flag("/x=builtin:echo").unwrap(),
                from_flag("builtin:chat").unwrap(),
            ],
            Some(dir.path()),
        )
        .unwrap();
        let site = specs[1].static_site.as_ref().expect("the tenant on /");
        assert_eq!(
            site.dir(),
            Some(dir.path().canonicalize().unwrap().as_path())
        );
        assert!(specs[0].static_site.is_none());
        let e = format!(
            "{:#}",
            to_specs(
                vec![from_flag("/x=builtin:echo").unwrap()],
                Some(dir.path())
            )
            .unwrap_err()
        );
        assert!(e.contains("--static") && e.contains("route /"), "{e}");
        let missing = TenantEntry {
            name: Some("acme".into()),
            static_dir: Some("/no/such/dir".into()),
            ..from_flag("builtin:echo").unwrap()
        };
        let e = format!("{:#}", to_specs(vec![missing], None).unwrap_err());
        assert!(e.contains("acme") && e.contains("/no/such/dir"), "{e}");
    }

    #[test]
    fn tenant_keys_become_its_policy_and_instances() {
        let entry = TenantEntry {
            name: Some("acme".into()),
            file: "builtin:echo".into(),
            instances: Some(3),
            max_connections: Some(10),
            max_message_size: Some(512),
            allowed_origins: vec!["https://a.test".into()],
            connection_rate: Some(5),
            tenant_rate: Some(50),
            over_rate: Some("close".into()),
            ..TenantEntry::default()
        };
        let spec = to_spec(entry.clone()).unwrap();
        assert_eq!(spec.instances, 3);
        let p = &spec.policy;
        assert_eq!(
            (p.max_connections, p.max_message_size),
            (Some(10), Some(512))
        );
        assert_eq!(p.allowed_origins, ["https://a.test"]);
        assert_eq!(p.connection_rate.map(|r| r.per_second.get()), Some(5));
        assert_eq!(p.tenant_rate.map(|r| r.burst.get()), Some(50));
        assert_eq!(p.over_rate, wsserver::plugin::OverRate::Close);

        let bad = |entry: TenantEntry| format!("{:#}", to_spec(entry).unwrap_err());
        let e = bad(TenantEntry {
            over_rate: Some("ignore".into()),
            ..entry.clone()
        });
        assert!(e.contains("acme") && e.contains("ignore"), "{e}");
        let e = bad(TenantEntry {
            connection_rate: Some(0),
            ..entry.clone()
        });
        assert!(e.contains("connection_rate"), "{e}");
        let e = bad(TenantEntry {
            instances: Some(0),
            ..entry.clone()
        });
        assert!(e.contains("instances"), "{e}");
        let e = bad(TenantEntry {
            watch: true,
            ..entry
        });
        assert!(e.contains("watch"), "{e}");
    }
}
