//! Builds the plugins the `wsserver` binary embeds (echo, chat, auth) for
//! wasm32-wasip2, so `cargo run -p wsserver` serves the echo plugin with no
//! other step. The components land in a target directory of their own (a
//! nested cargo cannot share the outer build's lock) whose path the binary
//! gets as WSSERVER_PLUGIN_DIR. Only with the `builtin-plugins` feature (on
//! by default): an embedder of the library alone builds no wasm. The test
//! plugins are built by the tests (tests/common/plugins.rs).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The packages of `plugins/` whose components the binary serves as
/// `builtin:echo`, `builtin:chat` and `builtin:auth`.
const EMBEDDED: [&str; 3] = ["echo-plugin", "chat-plugin", "auth-plugin"];

fn main() {
    if env::var_os("CARGO_FEATURE_BUILTIN_PLUGINS").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.join("..");
    for watched in ["plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("plugins-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(root.join("plugins/Cargo.toml"))
        .args(EMBEDDED.iter().flat_map(|name| ["--package", name]))
        .arg("--target-dir")
        .arg(&target_dir)
        // What the outer build passes to its own rustc must not leak into
        // the wasm build (clippy's wrapper, host RUSTFLAGS).
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("run cargo to build the plugins");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint =
            if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed") {
                "\nThe wasm32-wasip2 target is missing: run `rustup target add wasm32-wasip2`.\n"
            } else {
                ""
            };
        panic!("building the plugins for wasm32-wasip2 failed:{hint}\n{stderr}");
    }
    println!(
        "cargo:rustc-env=WSSERVER_PLUGIN_DIR={}",
        target_dir.join("wasm32-wasip2/release").display()
    );
}
