//! Turning `--plugin [ROUTE=]FILE.wasm` flags and `[[plugin]]` tables into
//! plugin specifications.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use wsserver::plugin::{self, PluginLimits, PluginSpec, Route};

use crate::config::PluginEntry;

/// The plugins built into the binary, for `builtin:NAME`.
const BUILTIN: &[(&str, &[u8])] = &[
    ("echo", plugin::ECHO),
    ("chat", plugin::CHAT),
    ("auth", plugin::AUTH),
];

/// Parses one `--plugin` value: `[ROUTE=]FILE`.
pub fn from_flag(flag: &str) -> anyhow::Result<PluginEntry> {
    let (route, file) = match flag.split_once('=') {
        Some((route, file)) => (Some(route.to_owned()), file),
        None => (None, flag),
    };
    if file.is_empty() {
        bail!("--plugin {flag:?}: expected [ROUTE=]FILE.wasm");
    }
    Ok(PluginEntry {
        file: file.to_owned(),
        name: None,
        route,
        routes: Vec::new(),
        memory_limit: None,
        deadline_ms: None,
        max_queued_bytes: None,
        config: Default::default(),
    })
}

/// The built-in echo plugin on every path.
pub fn default_echo() -> PluginEntry {
    from_flag("/=builtin:echo").expect("a valid flag")
}

/// Reads the component and applies defaults.
pub fn to_spec(entry: PluginEntry) -> anyhow::Result<PluginSpec> {
    let (name, wasm) = match entry.file.strip_prefix("builtin:") {
        Some(builtin) => {
            let bytes = BUILTIN
                .iter()
                .find(|(n, _)| *n == builtin)
                .map(|(_, b)| b.to_vec())
                .with_context(|| {
                    let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                    format!(
                        "plugin {:?}: no such built-in plugin (built in: {})",
                        entry.file,
                        names.join(", ")
                    )
                })?;
            (format!("{builtin} (built-in)"), bytes)
        }
        None => {
            let bytes = std::fs::read(&entry.file)
                .with_context(|| format!("cannot read plugin {}", entry.file))?;
            let stem = Path::new(&entry.file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| entry.file.clone());
            (stem, bytes)
        }
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
    let defaults = PluginLimits::default();
    Ok(PluginSpec {
        name: entry.name.unwrap_or(name),
        wasm,
        routes,
        limits: PluginLimits {
            memory_bytes: entry.memory_limit.unwrap_or(defaults.memory_bytes),
            call_deadline: entry
                .deadline_ms
                .map_or(defaults.call_deadline, Duration::from_millis),
            max_queued_bytes: entry.max_queued_bytes.unwrap_or(defaults.max_queued_bytes),
        },
        config: entry.config,
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
}
