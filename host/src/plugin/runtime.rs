//! What every tenant of one server shares: the wasmtime engine, the
//! executor pool, one linker, the compiled components (one per distinct
//! bytes, however many tenants run them) and the process's budget of live
//! instances.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use wasmtime::component::Linker;

use super::actor_state::PluginShared;
use super::engine::{LoadError, PluginEngine};
use super::executor::{Executors, RuntimeOptions};
use super::version::{InstanceState, Prepared, sha256_hex};
use crate::cluster::Backplane;

pub(crate) struct Runtime {
    engine: PluginEngine,
    pub executors: Executors,
    linker: Linker<InstanceState>,
    /// By SHA-256: dropped when no version uses it any more.
    prepared: Mutex<HashMap<String, Weak<Prepared>>>,
    /// Live instances, all tenants together.
    live: Arc<AtomicUsize>,
    /// The cluster every tenant's topics join, once one is set. Held
    /// while a tenant becomes ready, so none misses the cluster.
    pub cluster: Mutex<Option<Backplane>>,
}

impl Runtime {
    pub fn start(engine: &PluginEngine, options: RuntimeOptions) -> Result<Arc<Self>, LoadError> {
        let executors = Executors::start(options)
            .map_err(|e| LoadError(format!("cannot start the plugin executors: {e}")))?;
        Ok(Arc::new(Self {
            engine: engine.clone(),
            executors,
            linker: Prepared::linker(engine)?,
            prepared: Mutex::default(),
            live: Arc::default(),
            cluster: Mutex::default(),
        }))
    }

    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// `wasm` compiled and linked, shared with every tenant that runs the
    /// same bytes. Compilations happen one at a time.
    pub fn prepare(&self, name: &str, wasm: &[u8]) -> Result<Arc<Prepared>, LoadError> {
        self.prepare_digest(name, wasm, &sha256_hex(wasm))
    }

    /// [`prepare`](Self::prepare) with the digest of `wasm` already known.
    pub fn prepare_digest(
        &self,
        name: &str,
        wasm: &[u8],
        sha256: &str,
    ) -> Result<Arc<Prepared>, LoadError> {
        let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = prepared.get(sha256).and_then(Weak::upgrade) {
            return Ok(found);
        }
        let made = Arc::new(Prepared::new(
            &self.engine,
            &self.linker,
            name,
            wasm,
            sha256.to_owned(),
        )?);
        prepared.retain(|_, weak| weak.strong_count() > 0);
        prepared.insert(sha256.to_owned(), Arc::downgrade(&made));
        Ok(made)
    }

    /// A place for one more live instance of `tenant`, or why there is
    /// none.
    pub fn take_slot(&self, tenant: &Arc<PluginShared>) -> Result<InstanceSlot, String> {
        let max = self.executors.options().max_instances;
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| {
                format!("out of plugin instances: the process holds its max_instances ({max})")
            })?;
        tenant.metrics.instance_created();
        Ok(InstanceSlot {
            live: self.live.clone(),
            tenant: tenant.clone(),
            memory: 0,
        })
    }

    /// Stops the executors once what is queued has run.
    pub fn shutdown(&self) {
        self.executors.shutdown();
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
