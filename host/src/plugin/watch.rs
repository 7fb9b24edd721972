//! The file watch of tenants with `watch = true`: a thread polls the
//! component file and, once a change has settled, swaps the tenant to the
//! file's new contents. Polling a few metadata fields twice a second costs
//! nothing measurable and needs no platform notification API.

use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use super::tenant::Tenant;

/// How often the file is looked at. A change is loaded once two looks in a
/// row agree, so within about twice this after the writer has finished.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// What tells one state of the file from another: a rewrite changes the
/// time or length, a rename over it the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: meta.ino(),
    })
}

/// Watches `path` for the tenant until the tenant is gone.
pub(crate) fn spawn(tenant: Weak<Tenant>, path: PathBuf) -> std::io::Result<()> {
    let name = tenant
        .upgrade()
        .map(|t| t.name().to_owned())
        .unwrap_or_default();
    // Taken now, as the tenant starts, not when the thread first runs: a
    // change made before the thread is scheduled must still be seen.
    let mut loaded = stamp(&path);
    std::thread::Builder::new()
        .name(format!("watch {name}"))
        .spawn(move || {
            let mut settling = None;
            loop {
                std::thread::sleep(WATCH_INTERVAL);
                let Some(tenant) = tenant.upgrade() else {
                    return;
                };
                let now = stamp(&path);
                if now.is_none() || now == loaded {
                    settling = None;
                    continue;
                }
                // A writer may still be at it: wait for a second look that
                // agrees.
                if settling != now {
                    settling = now;
                    continue;
                }
                loaded = now;
                settling = None;
                match tenant.reload(None) {
                    Ok(outcome) if outcome.changed => tracing::info!(
                        tenant = tenant.name(),
                        "{} changed: now serving {}",
                        path.display(),
                        outcome.version
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(
                        tenant = tenant.name(),
                        "{} changed but the swap failed, the running version keeps serving: {e}",
                        path.display()
                    ),
                }
            }
        })
        .map(drop)
}
