//! The file watch of tenants with `watch = true`: one thread for all of
//! them polls each component file and, once a change has settled, swaps
//! the tenant to the file's new contents. Polling a few metadata fields
//! twice a second costs nothing measurable and needs no platform
//! notification API; one thread keeps the thread count independent of the
//! number of tenants. Swaps run on that thread one after another: a slow
//! compile delays the next watched swap, never serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use super::tenant::Tenant;

/// How often the files are looked at. A change is loaded once two looks
/// in a row agree, so within about twice this after the writer has
/// finished.
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

/// One watched file.
struct Watched {
    tenant: Weak<Tenant>,
    path: PathBuf,
    /// The state last loaded.
    loaded: Option<Stamp>,
    /// A new state seen once: loaded if the next look agrees.
    settling: Option<Stamp>,
}

impl Watched {
    /// Looks at the file; the tenant when a change has settled.
    fn look(&mut self) -> Option<Arc<Tenant>> {
        let now = stamp(&self.path);
        if now.is_none() || now == self.loaded {
            self.settling = None;
            return None;
        }
        // A writer may still be at it: wait for a second look that agrees.
        if self.settling != now {
            self.settling = now;
            return None;
        }
        self.loaded = now;
        self.settling = None;
        self.tenant.upgrade()
    }
}

/// Watched files and the thread watching them, started with the first
/// file and ended once every watched tenant is gone.
#[derive(Default)]
pub(crate) struct FileWatch {
    files: Arc<Mutex<Vec<Watched>>>,
}

fn lock(files: &Mutex<Vec<Watched>>) -> MutexGuard<'_, Vec<Watched>> {
    files.lock().unwrap_or_else(|e| e.into_inner())
}

impl FileWatch {
    /// Watches `path` for the tenant until the tenant is gone.
    pub fn add(&self, tenant: Weak<Tenant>, path: PathBuf) -> std::io::Result<()> {
        let mut files = lock(&self.files);
        if files.is_empty() {
            let watched = self.files.clone();
            std::thread::Builder::new()
                .name("plugin-watch".into())
                .spawn(move || watch(&watched))?;
        }
        // Taken now, as the tenant starts, not at the next look: a change
        // made before then must still be seen.
        let loaded = stamp(&path);
        files.push(Watched {
            tenant,
            path,
            loaded,
            settling: None,
        });
        Ok(())
    }
}

/// The watch thread: looks at every file each interval and swaps the
/// tenants whose file changed; ends when no watched tenant is left.
fn watch(files: &Mutex<Vec<Watched>>) {
    loop {
        std::thread::sleep(WATCH_INTERVAL);
        let changed: Vec<(Arc<Tenant>, PathBuf)> = {
            let mut files = lock(files);
            files.retain(|w| w.tenant.strong_count() > 0);
            if files.is_empty() {
                // The next `add` starts a new thread.
                return;
            }
            files
                .iter_mut()
                .filter_map(|w| Some((w.look()?, w.path.clone())))
                .collect()
        };
        // Outside the lock: a swap compiles, which may take seconds.
        for (tenant, path) in changed {
            reload(&tenant, &path);
        }
    }
}

fn reload(tenant: &Tenant, path: &Path) {
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
