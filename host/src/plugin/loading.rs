//! Start-up: every declared tenant gets a slot at once (its name and
//! routes), and its tenant as soon as its component is compiled.
//!
//! Tenants are grouped by component: each distinct component is hashed
//! and compiled once (tenants sharing a built-in or the same file share one
//! buffer, which is not even hashed twice), and distinct components load
//! on parallel threads. Start-up waits up to [`START_WAIT`] for all of
//! them, so a broken component stops the server before it listens; what
//! takes longer (a large JavaScript or Python component compiling for
//! seconds) goes on loading while the server serves the tenants that are
//! ready, and its routes answer 503 until it is.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::engine::LoadError;
use super::prepared::sha256_hex;
use super::runtime::Runtime;
use super::spec::{PluginSpec, Route};
use super::tenant::Tenant;
use super::watch::FileWatch;
use crate::server::static_files::StaticSite;

/// How long start-up waits for every component before serving those that
/// are ready.
pub const START_WAIT: Duration = Duration::from_secs(2);

/// A declared tenant, ready or not.
pub(crate) struct Slot {
    pub name: String,
    pub routes: Vec<Route>,
    /// Served for plain GETs on the routes, even while the tenant loads.
    pub static_site: Option<Arc<StaticSite>>,
    state: OnceLock<Result<Arc<Tenant>, String>>,
}

/// Where a slot stands.
pub(crate) enum SlotState<'a> {
    Ready(&'a Arc<Tenant>),
    Loading,
    Failed(&'a str),
}

impl Slot {
    pub fn state(&self) -> SlotState<'_> {
        match self.state.get() {
            Some(Ok(tenant)) => SlotState::Ready(tenant),
            Some(Err(reason)) => SlotState::Failed(reason),
            None => SlotState::Loading,
        }
    }

    pub fn ready(&self) -> Option<&Arc<Tenant>> {
        match self.state() {
            SlotState::Ready(tenant) => Some(tenant),
            _ => None,
        }
    }
}

/// Progress shared with the loader threads.
#[derive(Default)]
struct Progress {
    /// Groups not finished yet.
    pending: usize,
    /// The first failure, while start-up still waits.
    failure: Option<String>,
}

struct Loader {
    runtime: Arc<Runtime>,
    watch: FileWatch,
    progress: Mutex<Progress>,
    done: Condvar,
    /// Start-up has returned (with or without an error): later failures
    /// are logged, not returned.
    detached: AtomicBool,
    /// Start-up failed: loaders stop.
    cancelled: AtomicBool,
}

/// Checks the specs, gives each a slot and starts loading them; returns
/// once all are ready or [`START_WAIT`] has passed. A failure within that
/// time is returned (and the rest is cancelled).
pub(crate) fn start(
    runtime: &Arc<Runtime>,
    specs: Vec<PluginSpec>,
) -> Result<Vec<Arc<Slot>>, LoadError> {
    let mut names = std::collections::HashSet::new();
    for spec in &specs {
        if !names.insert(spec.name.as_str()) {
            return Err(LoadError(format!(
                "two tenants are named {:?}: names must be unique",
                spec.name
            )));
        }
        if spec.watch && spec.source.is_none() {
            return Err(LoadError(format!(
                "tenant {}: watch needs a component file",
                spec.name
            )));
        }
    }
    let slots: Vec<Arc<Slot>> = specs
        .iter()
        .map(|spec| {
            Arc::new(Slot {
                name: spec.name.clone(),
                routes: spec.routes.clone(),
                static_site: spec.static_site.clone(),
                state: OnceLock::new(),
            })
        })
        .collect();
    let groups = group_by_component(specs, &slots);
    let loader = Arc::new(Loader {
        runtime: runtime.clone(),
        watch: FileWatch::default(),
        progress: Mutex::new(Progress {
            pending: groups.len(),
            failure: None,
        }),
        done: Condvar::new(),
        detached: AtomicBool::new(false),
        cancelled: AtomicBool::new(false),
    });
    let queue = Arc::new(Mutex::new(groups));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for _ in 0..threads {
        let (loader, queue) = (loader.clone(), queue.clone());
        std::thread::Builder::new()
            .name("plugin-loader".into())
            .spawn(move || {
                while let Some(group) = queue.lock().ok().and_then(|mut q| q.pop()) {
                    loader.load(group);
                }
            })
            .map_err(|e| LoadError(format!("cannot start a plugin loader: {e}")))?;
    }
    let deadline = Instant::now() + START_WAIT;
    let mut progress = loader.progress.lock().unwrap_or_else(|e| e.into_inner());
    while progress.pending > 0 && progress.failure.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        progress = loader
            .done
            .wait_timeout(progress, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
    loader.detached.store(true, Ordering::Release);
    if let Some(failure) = progress.failure.take() {
        loader.cancelled.store(true, Ordering::Release);
        return Err(LoadError(failure));
    }
    if progress.pending > 0 {
        tracing::info!(
            "{} component(s) still compiling: their tenants answer 503 until ready; the others serve now",
            progress.pending
        );
    }
    Ok(slots)
}

/// Tenants sharing one component, in declaration order.
struct Group {
    sha256: String,
    members: Vec<(PluginSpec, Arc<Slot>)>,
}

/// Groups specs by component: first by buffer (no hashing for shared
/// buffers), then by digest.
fn group_by_component(specs: Vec<PluginSpec>, slots: &[Arc<Slot>]) -> Vec<Group> {
    let mut by_buffer: HashMap<(usize, usize), String> = HashMap::new();
    let mut by_digest: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (spec, slot) in specs.into_iter().zip(slots) {
        let buffer = (spec.wasm.as_ptr() as usize, spec.wasm.len());
        let sha256 = by_buffer
            .entry(buffer)
            .or_insert_with(|| sha256_hex(&spec.wasm))
            .clone();
        let index = *by_digest.entry(sha256.clone()).or_insert_with(|| {
            groups.push(Group {
                sha256,
                members: Vec::new(),
            });
            groups.len() - 1
        });
        groups[index].members.push((spec, slot.clone()));
    }
    // Loaders pop from the end: the first declared loads first.
    groups.reverse();
    groups
}

impl Loader {
    fn load(&self, group: Group) {
        let mut failure = None;
        let first = group.members.first().map(|(spec, _)| spec);
        let prepared = first.map(|spec| {
            self.runtime
                .prepare_digest(&spec.name, &spec.wasm, &group.sha256)
        });
        for (spec, slot) in group.members {
            if self.cancelled.load(Ordering::Acquire) {
                return;
            }
            let name = spec.name.clone();
            let started = match &prepared {
                Some(Ok(prepared)) => Tenant::start(&self.runtime, spec, prepared.clone()),
                Some(Err(e)) => Err(LoadError(e.0.clone())),
                None => continue,
            };
            let state = match started {
                Ok(tenant) => {
                    let tenant = Arc::new(tenant);
                    if let Some(path) = tenant.watched_file() {
                        self.watch(&tenant, path.clone());
                    }
                    Ok(tenant)
                }
                Err(e) => {
                    if self.detached.load(Ordering::Acquire) {
                        tracing::error!("tenant {name} cannot start: {e}; its routes answer 503");
                    }
                    failure.get_or_insert(e.0.clone());
                    Err(e.0)
                }
            };
            let _ = slot.state.set(state);
        }
        let mut progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        progress.pending -= 1;
        if let Some(failure) = failure {
            progress.failure.get_or_insert(failure);
        }
        self.done.notify_all();
    }

    fn watch(&self, tenant: &Arc<Tenant>, path: PathBuf) {
        if let Err(e) = self.watch.add(Arc::downgrade(tenant), path) {
            tracing::error!("tenant {}: cannot start the file watch: {e}", tenant.name());
        }
    }
}
