//! A component compiled and linked against the host ([`Prepared`], shared
//! by every tenant and version with the same bytes), the imports it may
//! have, and what the store of each of its instances holds
//! ([`InstanceState`], with its place in the process's instance budget).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ComponentExportIndex, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, StoreLimits};
use wasmtime_wasi::clocks::WasiClocksView as _;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wsserver_plugin_bindings::{Plugin, PluginPre};

use super::actor_state::{ActorState, PluginShared};
use super::deadline::CallBudget;
use super::engine::{LoadError, PluginEngine};
use super::wasi_clocks::{self, CappedClock};
use super::wasi_io;

/// The optional export with the packed `on-events`.
const PACKED_HANDLER: &str = "wsserver:plugin/packed-handler@0.1.0";
/// The optional export that carries state across a hot swap.
const LIFECYCLE: &str = "wsserver:plugin/lifecycle@0.1.0";

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
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    /// Its place in the process's instance budget and its linear memory,
    /// given back when the store drops.
    pub(super) slot: InstanceSlot,
    /// The values `config-get` reads: this version's.
    pub config: Arc<BTreeMap<String, String>>,
    pub actor: ActorState,
    /// The CPU budget of the call in progress.
    pub(super) budget: CallBudget,
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

/// One live instance's place in the process's budget, and the linear
/// memory it accounts to its tenant; both given back on drop.
pub(crate) struct InstanceSlot {
    live: Arc<AtomicUsize>,
    tenant: Arc<PluginShared>,
    memory: usize,
}

impl InstanceSlot {
    /// A place already counted in `live`, accounted to `tenant`.
    pub fn new(live: Arc<AtomicUsize>, tenant: Arc<PluginShared>) -> Self {
        Self {
            live,
            tenant,
            memory: 0,
        }
    }

    pub fn memory_grew(&mut self, from: usize, to: usize) {
        let grown = to.saturating_sub(from);
        self.memory += grown;
        self.tenant.metrics.memory_grew(grown);
    }
}

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.tenant.metrics.instance_dropped(self.memory);
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Export indexes of `lifecycle`'s functions, looked up once per component.
pub(super) struct LifecycleIndex {
    pub(super) snapshot: ComponentExportIndex,
    pub(super) restore: ComponentExportIndex,
}

/// A component compiled and linked against the host: shared by every
/// tenant and version with the same bytes.
pub(crate) struct Prepared {
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    pub(super) pre: PluginPre<InstanceState>,
    /// `packed-handler.on-events`, if the component exports it.
    pub(super) packed: Option<ComponentExportIndex>,
    pub(super) lifecycle: Option<LifecycleIndex>,
    /// Memory caps with which an instance was made once: a tenant with
    /// one of them needs no trial instantiation at start.
    pub(super) proven: Mutex<Vec<usize>>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
