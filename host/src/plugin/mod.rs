//! The WebAssembly plugin runtime: components compiled once by a shared
//! wasmtime engine, tenants (named plugin deployments with their own
//! limits, rates and versions, hot-swappable), actors receiving their
//! connections' events in batches and run by a fixed pool of executors,
//! instances made on demand and dropped when idle (hibernation), the
//! `host` functions plugins call, and the route table. The server core knows
//! nothing of it: the runtime is one implementation of the server's
//! `Handler`.

mod actor_state;
mod cache;
mod convert;
mod deadline;
pub mod engine;
mod epoch;
mod executor;
mod host_api;
mod idle_park;
mod inbox;
mod instance;
mod loading;
mod log_budget;
pub mod metrics;
mod prepared;
mod rate;
mod router;
mod runtime;
pub mod spec;
mod staging;
mod tenant;
mod topics;
mod version;
mod wasi_clocks;
mod wasi_io;
mod watch;

pub use engine::{LoadError, NotAComponent, PluginEngine, check_component};
pub use executor::RuntimeOptions;
pub use router::PluginRouter;
pub use spec::{OverRate, PluginLimits, PluginSpec, Rate, Route, TenantPolicy};
pub use tenant::{SwapError, SwapOutcome, TenantCounters, TenantStatus, Update};
pub use topics::TopicCount;
pub use version::ComponentVersion;
pub use watch::WATCH_INTERVAL;
