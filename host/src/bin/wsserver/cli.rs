//! Command-line arguments of the `wsserver` binary.

use std::path::PathBuf;

use clap::Parser;

use crate::scaffold::Lang;

/// A WebSocket server whose application logic runs in WebAssembly plugins.
///
/// Settings use the WSServer key names, from a TOML file (`[settings]`
/// table) and/or `--set`; later sources win: file, then --listen, then
/// --set. Plugins come from --plugin and `[[tenant]]` (or `[[plugin]]`)
/// tables; with none, the built-in chat plugin serves /chat, the built-in
/// echo plugin every other path, and a browser opening / gets a demo chat
/// page. Once accepting, prints `listening on ws://HOST:PORT` to stdout
/// (`wss://` with UseSSL), then, with --admin, `admin on http://HOST:PORT`,
/// then, when a page is served on /, `open http://HOST:PORT/ in a
/// browser`. SIGHUP reads the file and the components again and hot-swaps
/// the tenants that changed.
#[derive(Debug, Clone, Parser)]
#[command(name = "wsserver", version)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(global = true, long, value_name = "FILE.toml")]
    pub config: Option<PathBuf>,

    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8080].
    #[arg(global = true, long, value_name = "HOST:PORT")]
    pub listen: Option<String>,

    /// A setting, as in Config("Key=Value"); repeatable.
    #[arg(global = true, long = "set", value_name = "Key=Value")]
    pub set: Vec<String>,

    /// A plugin serving a path prefix (default /), optionally on one host
    /// (`example.com/chat=chat.wasm`); repeatable. FILE may be
    /// builtin:echo, builtin:chat or builtin:auth. Without any, the built-in
    /// chat serves /chat and the built-in echo every other path.
    #[arg(long = "plugin", value_name = "[ROUTE=]FILE.wasm")]
    pub plugins: Vec<String>,

    /// Serve the files of DIR for plain GET requests (a browser opening
    /// http://HOST:PORT/) through the tenant on route /, in place of the
    /// built-in demo page.
    #[arg(long = "static", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,

    /// Serve the native (Rust) echo handler instead of plugins.
    #[arg(long, conflicts_with_all = ["plugins", "static_dir"])]
    pub native_echo: bool,

    /// Where compiled plugins are cached [default: ~/.cache/wsserver/components].
    #[arg(global = true, long, value_name = "DIR")]
    pub plugin_cache: Option<std::path::PathBuf>,

    /// Threads running connections [default: one per CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,

    /// Serve the admin HTTP API and Prometheus /metrics on HOST:PORT (port
    /// 0 picks one). Without a token it must be a loopback address.
    #[arg(long, value_name = "HOST:PORT")]
    pub admin: Option<String>,

    /// Bearer token every admin request must carry. Prefer the environment
    /// variable: a flag shows up in `ps`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "WSSERVER_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Share topics with the other nodes through this Redis server
    /// (`redis://HOST:PORT`, optionally `redis://:PASSWORD@HOST:PORT/DB`).
    /// Without it topics stay in this process.
    #[arg(
        long,
        value_name = "URL",
        env = "WSSERVER_REDIS",
        hide_env_values = true
    )]
    pub redis: Option<String>,

    /// List the settings --set and the TOML file accept, then exit.
    #[arg(long)]
    pub list_settings: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands for plugin authors; without one, the binary serves.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Write a new plugin project (source, build.sh, test.sh, README) into
    /// ./NAME: `wsserver new --lang rust my-plugin`.
    New {
        #[arg(long, value_enum)]
        lang: Lang,
        /// The project's name (lowercase letters, digits, - and _).
        name: String,
        /// Where to write it [default: ./NAME].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The SDKs: a wsserver checkout's sdk/ directory [default: the
        /// checkout this binary was built from].
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Build the plugin project in DIR with its build.sh, serve it on /, and
    /// rebuild and hot-swap it whenever a source changes (clients stay
    /// connected; a failed build leaves the running version serving).
    Dev {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
}

/// Splits `HOST:PORT` (IPv6 hosts in brackets).
pub fn split_listen(listen: &str) -> Result<(String, u16), String> {
    let bad = || format!("--listen {listen:?}: expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:0");
    let (host, port) = listen.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(split_listen("127.0.0.1:0"), Ok(("127.0.0.1".into(), 0)));
        assert_eq!(split_listen("[::1]:8080"), Ok(("::1".into(), 8080)));
        assert_eq!(split_listen("localhost:9"), Ok(("localhost".into(), 9)));
        assert!(split_listen("8080").is_err());
        assert!(split_listen(":8080").is_err());
        assert!(split_listen("host:99999").is_err());
    }
}
