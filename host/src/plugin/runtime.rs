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
use super::prepared::{InstanceSlot, InstanceState, Prepared, sha256_hex};
use super::topics::PushEvent;
use crate::cluster::Backplane;

pub(crate) struct Runtime {
    engine: PluginEngine,
    pub executors: Executors,
    linker: Linker<InstanceState>,
    /// By SHA-256: dropped when no version uses it any more. Each entry
    /// has a lock of its own, held while those bytes compile.
    prepared: Mutex<HashMap<String, Arc<Mutex<Weak<Prepared>>>>>,
    /// Live instances, all tenants together.
    live: Arc<AtomicUsize>,
    /// The link to the other nodes: each tenant's topics join it.
    pub cluster: Option<Backplane>,
    /// How each tenant's topics reach the instance serving a connection.
    pub push_event: PushEvent,
}

impl Runtime {
    pub fn start(
        engine: &PluginEngine,
        options: RuntimeOptions,
        cluster: Option<Backplane>,
        push_event: PushEvent,
    ) -> Result<Arc<Self>, LoadError> {
        let executors = Executors::start(options)
            .map_err(|e| LoadError(format!("cannot start the plugin executors: {e}")))?;
        Ok(Arc::new(Self {
            engine: engine.clone(),
            executors,
            linker: Prepared::linker(engine)?,
            prepared: Mutex::default(),
            live: Arc::default(),
            cluster,
            push_event,
        }))
    }

    pub fn engine(&self) -> &PluginEngine {
        &self.engine
    }

    /// `wasm` compiled and linked, shared with every tenant that runs the
    /// same bytes. Distinct components compile side by side, so a large
    /// one delays no other tenant; the same bytes compile once, later
    /// callers waiting for the first.
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
        let entry = {
            let mut prepared = self.prepared.lock().unwrap_or_else(|e| e.into_inner());
            // Entries in use (being compiled, or holding a live form) stay.
            prepared.retain(|_, entry| {
                Arc::strong_count(entry) > 1
                    || entry
                        .try_lock()
                        .map_or(true, |weak| weak.strong_count() > 0)
            });
            prepared.entry(sha256.to_owned()).or_default().clone()
        };
        let mut slot = entry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = slot.upgrade() {
            return Ok(found);
        }
        let made = Arc::new(Prepared::new(
            &self.engine,
            &self.linker,
            name,
            wasm,
            sha256.to_owned(),
        )?);
        *slot = Arc::downgrade(&made);
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
        Ok(InstanceSlot::new(self.live.clone(), tenant.clone()))
    }

    /// Stops the executors once what is queued has run.
    pub fn shutdown(&self) {
        self.executors.shutdown();
    }
}

#[cfg(all(test, feature = "builtin-plugins"))]
mod tests {
    use super::*;
    use std::time::Duration;

    fn echo() -> Vec<u8> {
        std::fs::read(concat!(env!("WSSERVER_PLUGIN_DIR"), "/echo.wasm")).unwrap()
    }

    #[test]
    fn a_component_compiling_holds_up_no_other_and_the_same_bytes_compile_once() {
        let engine = PluginEngine::new(None).unwrap();
        let runtime = Runtime::start(&engine, RuntimeOptions::default(), None, |_, _| {}).unwrap();
        // A large component compiling for seconds: its entry is held
        // until the end of this test.
        let slow = {
            let mut prepared = runtime.prepared.lock().unwrap();
            prepared.entry("slow".to_owned()).or_default().clone()
        };
        let compiling = slow.lock().unwrap();
        let (done, prepared) = std::sync::mpsc::channel();
        let other = runtime.clone();
        std::thread::spawn(move || {
            let _ = done.send(other.prepare("fast", &echo()).map_err(|e| e.0));
        });
        let first = prepared
            .recv_timeout(Duration::from_secs(60))
            .expect("another component waited for the compiling one")
            .unwrap();
        drop(compiling);
        // A tenant with the same bytes gets the same compiled form.
        let again = runtime.prepare("fast too", &echo()).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        runtime.shutdown();
    }
}
