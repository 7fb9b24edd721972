//! One version of a tenant's component: compiled, linked against the host,
//! identified by its SHA-256, and the instances made from it.
//!
//! A tenant's actors hold the version they run; a hot swap prepares the
//! next one here (compiling and linking off the executors) and keeps the
//! previous one for rollback. Tenants whose components have the same bytes
//! share one compiled and linked form ([`Prepared`], from the runtime).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use wasmtime::component::{ResourceTable, TypedFunc};
use wasmtime::{Store, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wsserver_plugin_bindings::Plugin;

use super::actor_state::ActorState;
use super::deadline::{CallBudget, Verdict};
use super::engine::LoadError;
use super::epoch::GuestCall;
use super::prepared::{InstanceState, Prepared, sha256_hex};
use super::runtime::Runtime;
use super::spec::PluginLimits;

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
}
