//! A tenant: a named plugin deployment with its instances (connections
//! pinned to one each), its admission policy and rates, and its versions.
//! Hot swap and rollback are coordinated here: the new version is compiled,
//! linked and instantiated on the caller's thread while the old one keeps
//! serving, then every instance switches between two batches, or none does.
//! A tenant starts without instances: each actor makes its own when its
//! first connection arrives.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use super::actor_state::{ActorState, PluginShared};
use super::engine::LoadError;
use super::inbox::SwapOrder;
use super::instance::PluginHandle;
use super::metrics::PluginCounters;
use super::prepared::Prepared;
use super::rate::Rates;
use super::runtime::Runtime;
use super::spec::{PluginLimits, PluginSpec, Route, TenantPolicy};
use super::version::{ComponentVersion, Version};
use crate::server::static_files::StaticSite;

/// A new component for a tenant, and optionally new configuration values
/// (None keeps the running version's).
#[derive(Debug, Clone)]
pub struct Update {
    pub wasm: Vec<u8>,
    pub config: Option<BTreeMap<String, String>>,
}

/// What a swap or rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapOutcome {
    /// The version now serving.
    pub version: ComponentVersion,
    /// False when the update was the running version (same component
    /// bytes and configuration): nothing was done.
    pub changed: bool,
    /// True when the plugin's state moved through `lifecycle` (both
    /// versions export it); false when the new instances started fresh and
    /// received a `connected` event for each open connection.
    pub state_carried: bool,
}

impl std::fmt::Display for SwapOutcome {
    /// The version and how its state came to be, for log lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.state_carried {
            "state carried over by lifecycle"
        } else {
            "started fresh; told of each open connection"
        };
        write!(f, "{} ({how})", self.version)
    }
}

/// Why a swap, rollback or reload did not happen. The running version
/// keeps serving in every case.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    #[error("no tenant named {0:?}")]
    UnknownTenant(String),
    #[error("tenant {0} has no previous version to roll back to")]
    NoPreviousVersion(String),
    #[error("tenant {0} was not loaded from a file")]
    NoSource(String),
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The component does not compile or does not fit the contract.
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("plugin {tenant}: the new version cannot be instantiated: {reason}")]
    Instantiate { tenant: String, reason: String },
    /// `lifecycle.snapshot` or `restore` failed on one instance.
    #[error("plugin {tenant}: instance {instance} could not hand over its state: {reason}")]
    State {
        tenant: String,
        instance: usize,
        reason: String,
    },
    #[error("plugin {tenant}: instance {instance} has stopped")]
    Stopped { tenant: String, instance: usize },
}

/// What the operator sees of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantStatus {
    pub name: String,
    /// The routes it serves, as written in the configuration.
    pub routes: Vec<String>,
    pub instances: usize,
    /// Connections open (or being opened) on it now.
    pub connections: usize,
    pub version: ComponentVersion,
    /// The version a rollback returns to.
    pub previous: Option<ComponentVersion>,
    /// Bytes of events waiting in its instances' inboxes now (the
    /// flow-control limit, `max_queued_bytes`, is per instance).
    pub queued_bytes: usize,
    /// Events, calls, traps, deadline hits and call latency, all instances
    /// and versions together.
    pub plugin: PluginCounters,
    pub counters: TenantCounters,
}

/// A tenant's totals since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantCounters {
    pub swaps: u64,
    pub failed_swaps: u64,
    pub rollbacks: u64,
    /// Open requests refused with 503: max_connections reached.
    pub refused_full: u64,
    /// Open requests refused with 403: an Origin not allowed.
    pub refused_origin: u64,
    /// Messages (and pings) dropped over a rate.
    pub dropped_over_rate: u64,
    /// Connections closed with 1008 over a rate.
    pub closed_over_rate: u64,
}

#[derive(Debug, Default)]
struct Counters {
    swaps: AtomicU64,
    failed_swaps: AtomicU64,
    rollbacks: AtomicU64,
    refused_full: AtomicU64,
    refused_origin: AtomicU64,
    dropped_over_rate: AtomicU64,
    closed_over_rate: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> TenantCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TenantCounters {
            swaps: get(&self.swaps),
            failed_swaps: get(&self.failed_swaps),
            rollbacks: get(&self.rollbacks),
            refused_full: get(&self.refused_full),
            refused_origin: get(&self.refused_origin),
            dropped_over_rate: get(&self.dropped_over_rate),
            closed_over_rate: get(&self.closed_over_rate),
        }
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The version serving and the one before it.
struct Versions {
    current: Arc<Version>,
    previous: Option<Arc<Version>>,
}

/// What of a spec a running tenant cannot change without a restart.
#[derive(Debug, Clone, PartialEq)]
struct Fixed {
    routes: Vec<Route>,
    limits: PluginLimits,
    policy: TenantPolicy,
    instances: usize,
    source: Option<PathBuf>,
    watch: bool,
    static_site: Option<Arc<StaticSite>>,
}

impl Fixed {
    fn of(spec: &PluginSpec) -> Self {
        Self {
            routes: spec.routes.clone(),
            limits: spec.limits.clone(),
            policy: spec.policy.clone(),
            instances: spec.instances,
            source: spec.source.clone(),
            watch: spec.watch,
            static_site: spec.static_site.clone(),
        }
    }
}

pub(crate) struct Tenant {
    pub shared: Arc<PluginShared>,
    runtime: Arc<Runtime>,
    fixed: Fixed,
    instances: Vec<Arc<PluginHandle>>,
    /// Round robin over `instances` for new connections.
    next_instance: AtomicUsize,
    /// Turns run on connection threads: a connection takes its thread's
    /// instance.
    inline: bool,
    pub rates: Rates,
    /// Connections holding a place under max_connections.
    seated: AtomicUsize,
    versions: Mutex<Versions>,
    /// Held for the whole of a swap or rollback: one at a time.
    swapping: Mutex<()>,
    counters: Counters,
}

/// A number for the calling thread, fixed for its life and counted from
/// 0 in the order threads first ask: the server's threads, which make
/// connections, get 0, 1, 2...
fn server_thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tenant {
    /// The tenant of `spec` running `prepared` (its component, compiled
    /// and linked): proves it instantiates with the tenant's memory cap,
    /// and makes an actor per instance, without instances yet.
    pub fn start(
        runtime: &Arc<Runtime>,
        spec: PluginSpec,
        prepared: Arc<Prepared>,
    ) -> Result<Self, LoadError> {
        let fixed = Fixed::of(&spec);
        let instances = spec.instances.max(1);
        let version = Arc::new(Version::new(
            runtime,
            prepared,
            spec.limits.clone(),
            spec.config,
        ));
        let shared = Arc::new(PluginShared::new(
            spec.name,
            spec.limits.max_queued_bytes,
            instances,
            runtime.push_event,
        ));
        if let Some(cluster) = &runtime.cluster {
            shared.topics.join(cluster);
        }
        version
            .prove(ActorState::new(shared.clone()))
            .map_err(|reason| {
                LoadError(format!(
                    "plugin {}: instantiation failed: {reason}",
                    shared.name
                ))
            })?;
        let inline = runtime
            .executors
            .options()
            .inline_turns
            .unwrap_or(spec.inline_turns);
        let handles = (0..instances)
            .map(|_| {
                PluginHandle::new(
                    version.clone(),
                    shared.clone(),
                    spec.limits.clone(),
                    runtime.executors.clone(),
                    inline,
                )
            })
            .collect();
        Ok(Self {
            rates: Rates::new(&spec.policy),
            shared,
            runtime: runtime.clone(),
            fixed,
            instances: handles,
            next_instance: AtomicUsize::new(0),
            inline,
            seated: AtomicUsize::new(0),
            versions: Mutex::new(Versions {
                current: version,
                previous: None,
            }),
            swapping: Mutex::new(()),
            counters: Counters::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn policy(&self) -> &TenantPolicy {
        &self.fixed.policy
    }

    /// The file the component came from, when it is watched.
    pub fn watched_file(&self) -> Option<&PathBuf> {
        self.fixed.source.as_ref().filter(|_| self.fixed.watch)
    }

    /// The instance a new connection stays with: its thread's, when turns
    /// run inline (so each thread's turns find their instance idle instead
    /// of waiting for another thread's), otherwise the next in turn.
    pub fn pick_instance(&self) -> Arc<PluginHandle> {
        let n = if self.inline {
            server_thread_number()
        } else {
            self.next_instance.fetch_add(1, Ordering::Relaxed)
        };
        self.instances[n % self.instances.len()].clone()
    }

    /// Whether an open request with this Origin header ("" when absent)
    /// may proceed; counts refusals.
    pub fn admits_origin(&self, origin: &str) -> bool {
        let allowed = &self.fixed.policy.allowed_origins;
        let admitted = origin.is_empty()
            || allowed.is_empty()
            || allowed
                .iter()
                .any(|a| a == "*" || a.eq_ignore_ascii_case(origin));
        if !admitted {
            count(&self.counters.refused_origin);
        }
        admitted
    }

    /// Takes a place for a new connection; false (and counted) when
    /// max_connections are open. Give it back with
    /// [`release_seat`](Self::release_seat).
    pub fn take_seat(&self) -> bool {
        let max = self.fixed.policy.max_connections.unwrap_or(usize::MAX);
        let taken = self
            .seated
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            count(&self.counters.refused_full);
        }
        taken
    }

    pub fn release_seat(&self) {
        self.seated.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn count_drop(&self) {
        count(&self.counters.dropped_over_rate);
    }

    pub fn count_close(&self) {
        count(&self.counters.closed_over_rate);
    }

    /// Whether `spec` asks for something only a restart can apply.
    pub fn needs_restart(&self, spec: &PluginSpec) -> bool {
        self.fixed != Fixed::of(spec)
    }

    /// Swaps to `update`, unless it is the running version.
    pub fn swap(&self, update: Update) -> Result<SwapOutcome, SwapError> {
        let _one_at_a_time = lock(&self.swapping);
        let current = lock(&self.versions).current.clone();
        let config = update
            .config
            .unwrap_or_else(|| current.config.as_ref().clone());
        if current.is(&update.wasm, &config) {
            return Ok(SwapOutcome {
                version: current.id.clone(),
                changed: false,
                // Nothing moved: the state is where it was.
                state_carried: true,
            });
        }
        let loaded = Version::load(
            &self.runtime,
            self.name(),
            &update.wasm,
            self.fixed.limits.clone(),
            config,
        );
        let next = match loaded {
            Ok(version) => Arc::new(version),
            Err(e) => {
                count(&self.counters.failed_swaps);
                return Err(e.into());
            }
        };
        let outcome = self.switch(&current, &next)?;
        *lock(&self.versions) = Versions {
            current: next,
            previous: Some(current),
        };
        count(&self.counters.swaps);
        Ok(outcome)
    }

    /// Swaps back to the previous version; the version left becomes the
    /// previous one, so a second rollback undoes the first.
    pub fn rollback(&self) -> Result<SwapOutcome, SwapError> {
        let _one_at_a_time = lock(&self.swapping);
        let (current, previous) = {
            let versions = lock(&self.versions);
            (versions.current.clone(), versions.previous.clone())
        };
        let previous =
            previous.ok_or_else(|| SwapError::NoPreviousVersion(self.name().to_owned()))?;
        let outcome = self.switch(&current, &previous)?;
        *lock(&self.versions) = Versions {
            current: previous,
            previous: Some(current),
        };
        count(&self.counters.rollbacks);
        Ok(outcome)
    }

    /// Reads the component's file again and swaps to it (with `config`,
    /// or the running configuration) if that changes anything.
    pub fn reload(
        &self,
        config: Option<BTreeMap<String, String>>,
    ) -> Result<SwapOutcome, SwapError> {
        let path = self
            .fixed
            .source
            .clone()
            .ok_or_else(|| SwapError::NoSource(self.name().to_owned()))?;
        let wasm = std::fs::read(&path).map_err(|error| SwapError::Read { path, error })?;
        self.swap(Update { wasm, config })
    }

    /// Moves every instance from `current` to `next`, or none: each gets a
    /// new instance made here (the actors keep serving meanwhile), hands
    /// over its state between two batches and waits until all have, then
    /// all switch. On any failure all keep `current`.
    fn switch(&self, current: &Version, next: &Arc<Version>) -> Result<SwapOutcome, SwapError> {
        let failed = |e: SwapError| {
            count(&self.counters.failed_swaps);
            e
        };
        let mut fresh = Vec::with_capacity(self.instances.len());
        for _ in &self.instances {
            let live = next
                .instantiate(ActorState::new(self.shared.clone()))
                .map_err(|f| {
                    failed(SwapError::Instantiate {
                        tenant: self.name().to_owned(),
                        reason: f.reason,
                    })
                })?;
            fresh.push(live);
        }
        let mut pending = Vec::with_capacity(fresh.len());
        for (handle, live) in self.instances.iter().zip(fresh) {
            // Buffered, so the actor never blocks on sending.
            let (prepared, prepared_rx) = mpsc::sync_channel(1);
            handle.push_swap(SwapOrder {
                version: next.clone(),
                next: live,
                prepared,
            });
            pending.push(prepared_rx);
        }
        let mut error = None;
        for (instance, prepared) in pending.iter().enumerate() {
            let tenant = self.name().to_owned();
            let refusal = match prepared.recv() {
                Ok(Ok(())) => continue,
                Ok(Err(reason)) => SwapError::State {
                    tenant,
                    instance,
                    reason,
                },
                // The actor is gone and the order with it.
                Err(_) => SwapError::Stopped { tenant, instance },
            };
            error.get_or_insert(refusal);
        }
        let commit = error.is_none();
        for handle in &self.instances {
            handle.push_verdict(commit);
        }
        match error {
            Some(e) => Err(failed(e)),
            None => Ok(SwapOutcome {
                version: next.id.clone(),
                changed: true,
                state_carried: current.has_lifecycle() && next.has_lifecycle(),
            }),
        }
    }

    /// The plugin's counters: the tenant's and its instances' turns'.
    fn plugin_counters(&self) -> PluginCounters {
        let mut counters = self.shared.metrics.snapshot();
        for instance in &self.instances {
            instance.turn_metrics.add_to(&mut counters);
        }
        counters
    }

    pub fn status(&self) -> TenantStatus {
        let versions = lock(&self.versions);
        TenantStatus {
            name: self.name().to_owned(),
            routes: self.fixed.routes.iter().map(Route::to_string).collect(),
            instances: self.instances.len(),
            connections: self.seated.load(Ordering::Acquire),
            version: versions.current.id.clone(),
            previous: versions.previous.as_ref().map(|v| v.id.clone()),
            queued_bytes: self.instances.iter().map(|h| h.queued_bytes()).sum(),
            plugin: self.plugin_counters(),
            counters: self.counters.snapshot(),
        }
    }
}
