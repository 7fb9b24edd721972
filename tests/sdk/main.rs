//! The example plugins of the JavaScript and Python SDKs through the real
//! binary and real clients: echo (fragmented messages echoed whole, a
//! 256 KiB binary message, UTF-8, close codes), chat (rooms by path through
//! host topics), configuration, hot swap with and without `lifecycle`,
//! every event and host function (probe), and the refusal of a component
//! that imports what the host does not provide.
//!
//! `make plugins` builds the components into `<target dir>/sdk-plugins`.
//! Compiling one takes seconds (Python ~15 s), so every server here shares
//! one compiled-component cache and servers start one at a time: each
//! component is compiled once per run, or not at all when the cache is warm.

#[path = "../common/mod.rs"]
mod common;

/// Generates `js::NAME` and `python::NAME` from `async fn NAME(lang)`.
/// The checks' futures are large in debug builds: they live on the heap,
/// not on the test thread's stack.
macro_rules! per_language {
    ($($check:ident),* $(,)?) => {
        mod js {
            $(#[tokio::test] async fn $check() { Box::pin(super::$check("js")).await })*
        }
        mod python {
            $(#[tokio::test] async fn $check() { Box::pin(super::$check("python")).await })*
        }
    };
}

mod echo_chat;
mod imports;
mod probe;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// The languages with an SDK and examples: the suffix of their plugins'
/// names (`echo-js`, `chat-python`).
const LANGUAGES: [&str; 2] = ["js", "python"];

/// CPU deadline per plugin call: generous, since these guests are
/// interpreters (Python, JavaScript) run by a debug build of the host.
const DEADLINE_MS: u32 = 5000;

/// The ready line may wait for components to compile.
const COMPILING: Duration = Duration::from_secs(240);

/// Where `make plugins` puts the components: `<target dir>/sdk-plugins`,
/// beside the `debug` directory holding the binary.
fn sdk_plugins() -> PathBuf {
    let binary = binary();
    binary
        .parent()
        .and_then(Path::parent)
        .expect("the binary is in <target dir>/debug")
        .join("sdk-plugins")
}

/// A component `make plugins` built.
fn component(name: &str) -> PathBuf {
    let path = sdk_plugins().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make plugins` (it installs the JavaScript and Python toolchains and builds plugins/*-js and plugins/*-python)",
        path.display()
    );
    path
}

/// Starts the server with a TOML configuration (written to `dir`) and the
/// admin API, and waits until its `tenants` tenants are ready (a tenant
/// whose component is still compiling answers 503 and is not listed yet);
/// returns the server with the admin URL. Starts are serialised so that a
/// component is compiled by the first server that needs it and loaded from
/// the shared cache by the others.
async fn serve(dir: &Path, toml: &str, tenants: usize) -> (ServerProcess, String) {
    static STARTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let config = dir.join("wsserver.toml");
    std::fs::write(&config, toml).unwrap();
    let cache = sdk_plugins().join("compiled");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--plugin-cache",
        cache.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    let _one_at_a_time = STARTING.lock().await;
    let mut server = ServerProcess::start_waiting(&args, COMPILING).await;
    let admin = server.admin_url().await;
    let deadline = tokio::time::Instant::now() + COMPILING;
    loop {
        let listed = http("GET", &admin, "/tenants", None, None).await.json();
        let ready = listed["tenants"].as_array().map_or(0, Vec::len);
        if ready == tenants {
            return (server, admin);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ready} of {tenants} tenants ready: {listed}\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A TOML string holding a path.
fn toml_path(path: &Path) -> String {
    format!("{:?}", path.display().to_string())
}
