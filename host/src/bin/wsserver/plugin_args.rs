//! Turning `--plugin [ROUTE=]FILE.wasm` flags and `[[tenant]]`/`[[plugin]]`
//! tables into tenant specifications.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use wsserver::plugin::{PluginLimits, PluginSpec, Rate, Route, TenantPolicy, check_component};

use wsserver::config::TenantEntry;

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

/// The built-in echo plugin on every path.
pub fn default_echo() -> TenantEntry {
    from_flag("/=builtin:echo").expect("a valid flag")
}

/// The tenants of `entries` (the built-in echo when there are none), with
/// their components read. A tenant without a name takes its file's, with
/// `-2`, `-3`... when an earlier tenant has it, so the same configuration
/// always names its tenants alike.
pub fn to_specs(mut entries: Vec<TenantEntry>) -> anyhow::Result<Vec<PluginSpec>> {
    if entries.is_empty() {
        entries.push(default_echo());
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
    let mut texts = entry.routes.clone();
    texts.extend(entry.route.clone());
    if texts.is_empty() {
        texts.push("/".to_owned());
    }
    let routes = texts
        .iter()
        .map(|r| Route::parse(r).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let context = || format!("tenant {name}");
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
        config: entry.config,
    })
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
        let spec = to_spec(default_echo()).unwrap();
        assert_eq!(spec.name, "echo (built-in)");
        assert_eq!(spec.routes, [Route::parse("/").unwrap()]);
        let e = to_spec(from_flag("builtin:nope").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("builtin:nope") && e.contains("echo, chat, auth"),
            "{e}"
        );
    }

    #[test]
    fn unnamed_tenants_of_one_file_get_distinct_names_and_none_means_echo() {
        let chat = TenantEntry {
            name: Some("room".into()),
            file: "builtin:chat".into(),
            ..TenantEntry::default()
        };
        let specs = to_specs(vec![
            from_flag("/a=builtin:echo").unwrap(),
            from_flag("/b=builtin:echo").unwrap(),
            chat,
        ])
        .unwrap();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["echo (built-in)", "echo (built-in)-2", "room"]);
        let specs = to_specs(Vec::new()).unwrap();
        assert_eq!(specs[0].name, "echo (built-in)");
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
