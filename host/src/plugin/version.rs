//! One version of a tenant's component: compiled, linked against the host,
//! identified by its SHA-256, and the instances made from it.
//!
//! A tenant's actors hold the version they run; a hot swap prepares the
//! next one here (compiling and linking off the executors) and keeps the
//! previous one for rollback. Tenants whose components have the same bytes
//! share one compiled and linked form ([`Prepared`], from the runtime).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ComponentExportIndex, Linker, ResourceTable, TypedFunc};
use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::clocks::WasiClocksView as _;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wsserver_plugin_bindings::{Plugin, PluginPre};

use super::actor_state::ActorState;
use super::deadline::{CallBudget, Verdict};
use super::engine::{LoadError, PluginEngine};
use super::epoch::GuestCall;
use super::runtime::{InstanceSlot, Runtime};
use super::spec::PluginLimits;
use super::wasi_clocks::{self, CappedClock};
use super::wasi_io;

/// The optional export with the packed `on-events`.
const PACKED_HANDLER: &str = "wsserver:plugin/packed-handler@0.1.0";
/// The optional export that carries state across a hot swap.
const LIFECYCLE: &str = "wsserver:plugin/lifecycle@0.1.0";

/// Identifies a loaded component: the SHA-256 of its bytes, and when this
/// server loaded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentVersion {
    /// Lowercase hex.
    pub sha256: String,
    pub loaded_at: SystemTime,
}

impl ComponentVersion {
    #[cfg(test)]
    fn of(wasm: &[u8]) -> Self {
        Self {
            sha256: sha256_hex(wasm),
            loaded_at: SystemTime::now(),
        }
    }

    /// `sha256:` and the whole digest, as the admin API shows it.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.sha256)
    }
}

impl std::fmt::Display for ComponentVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Twelve hex digits tell versions apart in a log line.
        write!(f, "sha256:{}", &self.sha256[..12.min(self.sha256.len())])
    }
}

/// Interfaces the host links into every component: its own and WASI 0.2's
/// (which grants nothing: see `Version::instantiate`).
const PROVIDED_INTERFACES: &[&str] = &[
    "wsserver:plugin/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// The imports of `component` that the host does not provide.
fn unprovided_imports(component: &Component, engine: &Engine) -> Vec<String> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name)
        .filter(|name| !PROVIDED_INTERFACES.iter().any(|p| name.starts_with(p)))
        .map(str::to_owned)
        .collect()
}

/// Why a component with imports the host lacks is refused, and how to
/// build it without them.
fn refuse_imports(unprovided: &[String]) -> String {
    let mut text = format!(
        "it imports {}, which wsserver does not provide (a plugin gets \
         wsserver:plugin/host and the WASI 0.2 cli, io, clocks, random, filesystem \
         and sockets interfaces, with nothing granted); rebuild it without them",
        unprovided.join(", ")
    );
    if unprovided.iter().any(|name| name.starts_with("wasi:http/")) {
        text.push_str(
            ". componentize-js links wasi:http unless told not to: pass \
             `-d http -d fetch-event` (the wsserver JavaScript SDK builds with \
             componentize-qjs, which does not import it)",
        );
    }
    text
}

/// What the store of an instance holds.
pub(crate) struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// Its place in the process's instance budget and its linear memory,
    /// given back when the store drops.
    slot: InstanceSlot,
    /// The values `config-get` reads: this version's.
    pub config: Arc<BTreeMap<String, String>>,
    pub actor: ActorState,
    /// The CPU budget of the call in progress.
    budget: CallBudget,
}

impl InstanceState {
    /// The guest's monotonic clock: its waits end with the call's time.
    fn capped_clock(&mut self) -> CappedClock<'_> {
        let wait_left = self.budget.wait_left();
        CappedClock {
            clocks: self.clocks(),
            wait_left,
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for InstanceState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grows = self.limits.memory_growing(current, desired, maximum)?;
        if grows {
            self.slot.memory_grew(current, desired);
        }
        Ok(grows)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// An instantiation that failed, handing back the state it was given.
pub(crate) struct Failed {
    pub actor: ActorState,
    pub reason: String,
}

/// The fast path of `on-events`, when the component exports it.
pub(crate) type PackedOnEvents = TypedFunc<(&'static [u8],), (Vec<u8>,)>;

/// `lifecycle.snapshot` and `lifecycle.restore`.
struct LifecycleFns {
    snapshot: TypedFunc<(), (Vec<u8>,)>,
    restore: TypedFunc<(&'static [u8],), (Result<(), String>,)>,
}

/// A running instance: its store, its typed exports and the optional ones
/// it has.
pub(crate) struct Live {
    pub store: Store<InstanceState>,
    pub plugin: Plugin,
    pub packed: Option<PackedOnEvents>,
    lifecycle: Option<LifecycleFns>,
}

impl Live {
    pub fn has_lifecycle(&self) -> bool {
        self.lifecycle.is_some()
    }

    /// Starts the CPU budget of a guest call: `deadline` of the running
    /// thread's CPU time (see `deadline.rs`). Keep the guard until the call
    /// has returned: the deadline needs the epoch to advance.
    pub fn start_call(&mut self, deadline: Duration) -> GuestCall {
        self.start_call_at(deadline, Instant::now())
    }

    /// [`start_call`](Self::start_call) with the caller's reading of the
    /// clock, taken just before.
    pub fn start_call_at(&mut self, deadline: Duration, now: Instant) -> GuestCall {
        let call = GuestCall::begin();
        let budget = CallBudget::start(deadline, now);
        self.store.set_epoch_deadline(budget.first_check());
        self.store.data_mut().budget = budget;
        call
    }

    fn lifecycle(&self) -> Result<&LifecycleFns, String> {
        self.lifecycle
            .as_ref()
            .ok_or_else(|| "the component does not export lifecycle".to_owned())
    }

    /// The plugin's state, from `lifecycle.snapshot`. A trap poisons the
    /// instance, as any failed call does.
    pub fn snapshot(&mut self, deadline: Duration) -> Result<Vec<u8>, String> {
        let snapshot = self.lifecycle()?.snapshot;
        let _call = self.start_call(deadline);
        snapshot
            .call(&mut self.store, ())
            .map(|(state,)| state)
            .map_err(|e| format!("lifecycle.snapshot failed: {e:#}"))
    }

    /// Hands `state` to `lifecycle.restore`; its error or a trap is the
    /// reason the swap stops.
    pub fn restore(&mut self, state: &[u8], deadline: Duration) -> Result<(), String> {
        let restore = self.lifecycle()?.restore;
        let _call = self.start_call(deadline);
        match restore.call(&mut self.store, (state,)) {
            Ok((Ok(()),)) => Ok(()),
            Ok((Err(message),)) => Err(format!("lifecycle.restore refused the state: {message}")),
            Err(e) => Err(format!("lifecycle.restore failed: {e:#}")),
        }
    }
}

/// Export indexes of `lifecycle`'s functions, looked up once per component.
struct LifecycleIndex {
    snapshot: ComponentExportIndex,
    restore: ComponentExportIndex,
}

/// A component compiled and linked against the host: shared by every
/// tenant and version with the same bytes.
pub(crate) struct Prepared {
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    pre: PluginPre<InstanceState>,
    /// `packed-handler.on-events`, if the component exports it.
    packed: Option<ComponentExportIndex>,
    lifecycle: Option<LifecycleIndex>,
    /// Memory caps with which an instance was made once: a tenant with
    /// one of them needs no trial instantiation at start.
    proven: Mutex<Vec<usize>>,
}

impl Prepared {
    /// Compiles (or takes from the engine's cache) and links `wasm`;
    /// errors name the tenant.
    pub fn new(
        engine: &PluginEngine,
        linker: &Linker<InstanceState>,
        name: &str,
        wasm: &[u8],
        sha256: String,
    ) -> Result<Self, LoadError> {
        // Compiling a 12-18 MB JavaScript or Python component takes seconds:
        // say which tenant waits for it, and for how long.
        let short = &sha256[..12.min(sha256.len())];
        tracing::info!(
            "tenant {name}: loading sha256:{short} ({:.1} MiB), compiling it unless cached",
            wasm.len() as f64 / (1024.0 * 1024.0)
        );
        let started = Instant::now();
        let component = engine.load(name, wasm)?;
        let fail = |what: &str, e: String| LoadError(format!("plugin {name}: {what}: {e}"));
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            let unprovided = unprovided_imports(&component, engine.engine());
            if unprovided.is_empty() {
                fail(
                    "it does not fit the wsserver:plugin contract",
                    format!("{e:#}"),
                )
            } else {
                fail("it cannot be linked", refuse_imports(&unprovided))
            }
        })?;
        let pre = PluginPre::new(pre)
            .map_err(|e| fail("it does not export the handler interface", format!("{e:#}")))?;
        let function = |interface: &str, name: &str| {
            component
                .get_export_index(None, interface)
                .and_then(|index| component.get_export_index(Some(&index), name))
        };
        // Components built with the Rust SDK also export the packed fast path.
        let packed = function(PACKED_HANDLER, "on-events");
        let lifecycle = function(LIFECYCLE, "snapshot")
            .zip(function(LIFECYCLE, "restore"))
            .map(|(snapshot, restore)| LifecycleIndex { snapshot, restore });
        tracing::info!(
            "tenant {name}: sha256:{short} compiled and linked in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Self {
            sha256,
            pre,
            packed,
            lifecycle,
            proven: Mutex::default(),
        })
    }

    /// The linker every component is linked with: WASI (nothing granted)
    /// and the host interface.
    pub fn linker(engine: &PluginEngine) -> Result<Linker<InstanceState>, LoadError> {
        let fail = |what: &str, e: String| LoadError(format!("{what}: {e}"));
        let mut linker = Linker::<InstanceState>::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| fail("linking WASI", format!("{e:#}")))?;
        wasi_clocks::add_to_linker(&mut linker, InstanceState::capped_clock)
            .map_err(|e| fail("linking the capped clock", format!("{e:#}")))?;
        wasi_io::add_to_linker(&mut linker)
            .map_err(|e| fail("linking WASI streams", format!("{e:#}")))?;
        Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| fail("linking the host interface", format!("{e:#}")))?;
        Ok(linker)
    }
}

/// SHA-256 of a component's bytes, lowercase hex.
pub(crate) fn sha256_hex(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

/// A compiled and linked component with the limits and configuration its
/// instances get.
pub(crate) struct Version {
    pub id: ComponentVersion,
    runtime: Arc<Runtime>,
    prepared: Arc<Prepared>,
    limits: PluginLimits,
    pub config: Arc<BTreeMap<String, String>>,
}

impl Version {
    /// The component `wasm` (compiled once per distinct bytes) with
    /// `limits` and `config`; errors name the tenant.
    pub fn load(
        runtime: &Arc<Runtime>,
        name: &str,
        wasm: &[u8],
        limits: PluginLimits,
        config: BTreeMap<String, String>,
    ) -> Result<Self, LoadError> {
        let prepared = runtime.prepare(name, wasm)?;
        Ok(Self::new(runtime, prepared, limits, config))
    }

    /// A version of a component compiled and linked already.
    pub fn new(
        runtime: &Arc<Runtime>,
        prepared: Arc<Prepared>,
        limits: PluginLimits,
        config: BTreeMap<String, String>,
    ) -> Self {
        Self {
            id: ComponentVersion {
                sha256: prepared.sha256.clone(),
                loaded_at: SystemTime::now(),
            },
            runtime: runtime.clone(),
            prepared,
            limits,
            config: Arc::new(config),
        }
    }

    /// Makes one instance to prove this version can be instantiated with
    /// its memory cap, unless one with the same component and cap was
    /// made before.
    pub fn prove(&self, actor: ActorState) -> Result<(), String> {
        let cap = self.limits.memory_bytes;
        if self.prepared.proven.lock().is_ok_and(|p| p.contains(&cap)) {
            return Ok(());
        }
        self.instantiate(actor).map_err(|failed| failed.reason)?;
        if let Ok(mut proven) = self.prepared.proven.lock() {
            proven.push(cap);
        }
        Ok(())
    }

    /// Whether this is `wasm` with `config`: swapping to it changes nothing.
    pub fn is(&self, wasm: &[u8], config: &BTreeMap<String, String>) -> bool {
        self.id.sha256 == sha256_hex(wasm) && *self.config == *config
    }

    /// Whether the component exports `lifecycle`.
    pub fn has_lifecycle(&self) -> bool {
        self.prepared.lifecycle.is_some()
    }

    /// The CPU time one guest call may take.
    pub fn call_deadline(&self) -> Duration {
        self.limits.call_deadline
    }

    /// A fresh instance carrying `actor`; on failure the state comes back
    /// (boxed: it is large) with the reason.
    pub fn instantiate(&self, actor: ActorState) -> Result<Live, Box<Failed>> {
        let slot = match self.runtime.take_slot(&actor.shared) {
            Ok(slot) => slot,
            Err(reason) => return Err(Box::new(Failed { actor, reason })),
        };
        let state = InstanceState {
            // Nothing granted: no files, sockets, environment or arguments.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .build(),
            slot,
            config: self.config.clone(),
            actor,
            // Instantiation runs the component's start functions.
            budget: CallBudget::start(self.limits.call_deadline, Instant::now()),
        };
        let mut store = Store::new(self.runtime.engine().engine(), state);
        store.limiter(|s| s);
        store.epoch_deadline_callback(|store| {
            Ok(match store.data().budget.check() {
                Verdict::Continue(ticks) => UpdateDeadline::Continue(ticks),
                Verdict::Expired => UpdateDeadline::Interrupt,
            })
        });
        store.set_epoch_deadline(store.data().budget.first_check());
        // The component's start functions run within instantiation.
        let _call = GuestCall::begin();
        let prepared = &self.prepared;
        let instance = prepared.pre.instance_pre().instantiate(&mut store);
        let live = instance.and_then(|instance| {
            let plugin = Plugin::new(&mut store, &instance)?;
            let packed = match &prepared.packed {
                Some(index) => Some(instance.get_typed_func(&mut store, index)?),
                None => None,
            };
            let lifecycle = match &prepared.lifecycle {
                Some(index) => Some(LifecycleFns {
                    snapshot: instance.get_typed_func(&mut store, index.snapshot)?,
                    restore: instance.get_typed_func(&mut store, index.restore)?,
                }),
                None => None,
            };
            Ok((plugin, packed, lifecycle))
        });
        match live {
            Ok((plugin, packed, lifecycle)) => Ok(Live {
                store,
                plugin,
                packed,
                lifecycle,
            }),
            Err(e) => Err(Box::new(Failed {
                actor: store.into_data().actor,
                reason: format!("{e:#}"),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_the_digest_of_the_component() {
        // SHA-256 of the empty input, a published test vector.
        let empty = ComponentVersion::of(b"");
        assert_eq!(
            empty.digest(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(empty.to_string(), "sha256:e3b0c44298fc");
        assert_ne!(ComponentVersion::of(b"a"), ComponentVersion::of(b"b"));
    }

    #[test]
    fn a_refused_import_is_named_with_how_to_drop_it() {
        let plain = refuse_imports(&["example:missing/thing@1.0.0".to_owned()]);
        assert!(
            plain.starts_with(
                "it imports example:missing/thing@1.0.0, which wsserver does not provide"
            ),
            "{plain}"
        );
        assert!(!plain.contains("componentize-js"), "{plain}");
        let http = refuse_imports(&[
            "wasi:http/types@0.2.3".to_owned(),
            "wasi:http/outgoing-handler@0.2.3".to_owned(),
        ]);
        assert!(
            http.contains("wasi:http/types@0.2.3, wasi:http/outgoing-handler@0.2.3"),
            "{http}"
        );
        assert!(http.contains("`-d http -d fetch-event`"), "{http}");
    }
}
