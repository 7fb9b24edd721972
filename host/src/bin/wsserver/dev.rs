//! `wsserver dev [DIR]`: the local loop. Builds the project in DIR with its
//! `build.sh`, serves the component it writes there (a tenant on `/` with
//! `watch` on), and watches the sources: each change rebuilds, and the
//! tenant's file watch hot-swaps the new component in while clients stay
//! connected. A failed build is printed and the running version keeps
//! serving.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};

use crate::config::TenantEntry;

/// How often the sources are looked at.
const POLL: Duration = Duration::from_millis(300);

/// Directories that hold build output or dependencies, not sources.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", "__pycache__"];

/// Builds the project once (retrying after each source change until a
/// build succeeds), starts the thread that rebuilds on change, and returns
/// the tenant that serves the component.
pub fn start(dir: &Path) -> anyhow::Result<TenantEntry> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("wsserver dev: {}", dir.display()))?;
    let build = dir.join("build.sh");
    if !build.is_file() {
        bail!(
            "wsserver dev: {} has no build.sh (`wsserver new` writes one; it must leave the \
             component, a .wasm file, in that directory)",
            dir.display()
        );
    }
    let mut seen = sources(&dir);
    while !run_build(&dir) {
        eprintln!("wsserver dev: fix the error; the build runs again when a source changes");
        seen = wait_for_change(&dir, &seen);
    }
    let wasm = newest_component(&dir)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dev".to_owned());
    std::thread::Builder::new()
        .name("dev-rebuild".into())
        .spawn(move || {
            loop {
                seen = wait_for_change(&dir, &seen);
                // The tenant's watch swaps the new file in once written.
                if !run_build(&dir) {
                    eprintln!("wsserver dev: the build failed; the running version keeps serving");
                }
            }
        })
        .context("wsserver dev: cannot start the rebuild thread")?;
    Ok(TenantEntry {
        file: wasm.to_string_lossy().into_owned(),
        name: Some(name),
        watch: true,
        ..TenantEntry::default()
    })
}

/// Runs build.sh with its output on stderr; true if it succeeded.
fn run_build(dir: &Path) -> bool {
    eprintln!("wsserver dev: building {}", dir.display());
    let started = Instant::now();
    let status = Command::new(dir.join("build.sh"))
        .current_dir(dir)
        .stdout(std::io::stderr())
        .status();
    match status {
        Ok(status) if status.success() => {
            eprintln!(
                "wsserver dev: built in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            true
        }
        Ok(status) => {
            eprintln!("wsserver dev: build.sh failed ({status})");
            false
        }
        Err(e) => {
            eprintln!("wsserver dev: cannot run build.sh: {e}");
            false
        }
    }
}

/// The most recently written .wasm file directly in `dir`.
fn newest_component(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .max_by_key(|path| modified(path))
        .with_context(|| {
            format!(
                "wsserver dev: build.sh left no .wasm file in {}",
                dir.display()
            )
        })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Every source file under `dir` with its modification time and size:
/// hidden entries, build output and dependencies left out.
fn sources(dir: &Path) -> BTreeMap<PathBuf, (Option<SystemTime>, u64)> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if name.starts_with('.') {
                continue;
            }
            if meta.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_ref()) {
                    pending.push(path);
                }
            } else if !name.ends_with(".wasm") {
                found.insert(path, (meta.modified().ok(), meta.len()));
            }
        }
    }
    found
}

/// Waits until the sources differ from `seen` and then stay the same for
/// one more look (an editor may write in steps); returns the new state.
fn wait_for_change(
    dir: &Path,
    seen: &BTreeMap<PathBuf, (Option<SystemTime>, u64)>,
) -> BTreeMap<PathBuf, (Option<SystemTime>, u64)> {
    loop {
        std::thread::sleep(POLL);
        let now = sources(dir);
        if &now == seen {
            continue;
        }
        std::thread::sleep(POLL);
        if sources(dir) == now {
            return now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_leave_out_build_output_dependencies_and_hidden_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in ["src", "target/x", "node_modules/y", ".git"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for file in [
            "src/lib.rs",
            "build.sh",
            "app.wasm",
            "target/x/a.rs",
            "node_modules/y/b.js",
            ".git/HEAD",
        ] {
            std::fs::write(root.join(file), "x").unwrap();
        }
        let names: Vec<_> = sources(root)
            .keys()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["build.sh", "src/lib.rs"]);
    }
}
