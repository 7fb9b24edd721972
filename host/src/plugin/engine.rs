//! The wasmtime engine shared by every plugin: configuration, its epoch
//! ticker (see [`super::epoch`]), and compiling components with a cache of
//! precompiled artifacts (see [`super::cache`] for what it trusts).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use super::cache::ComponentCache;
use super::epoch;

/// The engine and its ticker; dropping the last handle stops the ticker.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    cache: Option<ComponentCache>,
    stop: Arc<AtomicBool>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A component that failed to load, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

impl PluginEngine {
    /// An engine caching precompiled components in `cache_dir` (created if
    /// missing); `None`, or a directory that fails the cache's checks
    /// (logged), compiles every time.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, LoadError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Deadlines: a call is interrupted once the epoch passes its limit.
        config.epoch_interruption(true);
        let engine =
            Engine::new(&config).map_err(|e| LoadError(format!("wasmtime engine: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        epoch::start_ticker(engine.weak(), stop.clone())
            .map_err(|e| LoadError(format!("cannot start the epoch ticker: {e}")))?;
        let cache = cache_dir.and_then(|dir| {
            ComponentCache::open(&dir)
                .map_err(|e| tracing::warn!("compiled-component cache not used: {e}"))
                .ok()
        });
        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                cache,
                stop,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The default cache: `$XDG_CACHE_HOME/wsserver/components` or
    /// `~/.cache/wsserver/components`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
        Some(base.join("wsserver/components"))
    }

    /// Compiles a component, or loads its precompiled artifact from the
    /// cache. Artifacts are keyed by the component's SHA-256 and the
    /// engine's compatibility hash, so a changed component or wasmtime
    /// never loads a stale artifact.
    pub fn load(&self, name: &str, wasm: &[u8]) -> Result<Component, LoadError> {
        let engine = &self.inner.engine;
        if let Err(kind) = check_component(wasm) {
            return Err(LoadError(format!("plugin {name}: {kind}")));
        }
        // `{:#}` keeps wasmtime's cause ("failed to parse ...: at offset ...").
        let fail =
            |what: &str, e: &wasmtime::Error| LoadError(format!("plugin {name}: {what}: {e:#}"));
        let Some(cache) = &self.inner.cache else {
            return Component::new(engine, wasm).map_err(|e| fail("invalid component", &e));
        };
        let file = format!("{}.cwasm", self.cache_key(wasm));
        if let Some(artifact) = cache.get(&file)
            && let Ok(component) = load_artifact(engine, &artifact)
        {
            return Ok(component);
        }
        let artifact = engine
            .precompile_component(wasm)
            .map_err(|e| fail("invalid component", &e))?;
        cache.put(&file, &artifact);
        load_artifact(engine, &artifact).map_err(|e| fail("cannot load its compiled form", &e))
    }

    fn cache_key(&self, wasm: &[u8]) -> String {
        let mut hasher = DefaultHasher::new();
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let digest = Sha256::digest(wasm);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{hex}-{:016x}", hasher.finish())
    }
}

/// What a file that is not a component is, as far as its first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAComponent {
    #[error(
        "it is a core WebAssembly module, not a component. Build the plugin for \
         wasm32-wasip2 (Rust: `cargo build --release --target wasm32-wasip2`), or make the \
         module a component with `wasm-tools component new MODULE.wasm -o PLUGIN.wasm` \
         (add `--adapt wasi_snapshot_preview1.reactor.wasm` if it imports WASI preview 1)"
    )]
    CoreModule,
    #[error("it is not WebAssembly (a component starts with the bytes \\0asm)")]
    NotWasm,
}

/// Tells a component from a core module or anything else by its header:
/// the magic `\0asm`, then a version and layer (1 for components).
pub fn check_component(wasm: &[u8]) -> Result<(), NotAComponent> {
    match wasm {
        [0, b'a', b's', b'm', _, _, 0, 0, ..] => Err(NotAComponent::CoreModule),
        [0, b'a', b's', b'm', ..] => Ok(()),
        _ => Err(NotAComponent::NotWasm),
    }
}

// Deserializing runs native code compiled earlier, which is why wasmtime
// marks it unsafe. It only ever receives artifacts this process produced
// with `precompile_component` just now, or ones the cache proved it wrote:
// a private file of this user tagged with the cache's secret key.
#[allow(unsafe_code)]
fn load_artifact(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: see above: the bytes are one of our own precompiled artifacts.
    unsafe { Component::deserialize(engine, artifact) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_module_and_a_text_file_are_told_apart_from_a_component() {
        let core = [0, b'a', b's', b'm', 1, 0, 0, 0];
        let component = [0, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert_eq!(check_component(&core), Err(NotAComponent::CoreModule));
        assert_eq!(
            check_component(b"hello, world"),
            Err(NotAComponent::NotWasm)
        );
        assert_eq!(check_component(&component), Ok(()));
        let engine = PluginEngine::new(None).unwrap();
        let error = engine.load("core", &core).err().unwrap().to_string();
        assert!(
            error.contains("core WebAssembly module, not a component"),
            "{error}"
        );
        assert!(error.contains("wasm32-wasip2"), "{error}");
    }
}
