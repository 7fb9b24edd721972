//! The components of `plugins/` for tests and benches. The library build
//! compiles only the plugins the binary embeds (host/build.rs); the test
//! plugins (probe, flood, trap...) are built here, once per test process,
//! into the test target's own directory, and the embedded ones are read
//! from where the build put them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// `plugins/NAME` built for wasm32-wasip2 (release), as a component file.
pub fn plugin_file(name: &str) -> PathBuf {
    let path = built_plugins().join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// The bytes of the plugin the binary serves as `builtin:NAME`.
pub fn embedded_plugin(name: &str) -> Vec<u8> {
    let path = Path::new(env!("WSSERVER_PLUGIN_DIR")).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Builds the whole plugins workspace on first use; the directory of the
/// components. A nested cargo waits for any other holding the directory.
fn built_plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-plugins");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--workspace",
                "--target",
                "wasm32-wasip2",
            ])
            .arg("--manifest-path")
            .arg(root.join("plugins/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .output()
            .expect("run cargo to build the test plugins");
        assert!(
            output.status.success(),
            "building plugins/ for wasm32-wasip2 failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("wasm32-wasip2/release")
    })
}
