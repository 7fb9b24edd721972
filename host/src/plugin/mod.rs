//! The WebAssembly plugin runtime: components compiled once by a shared
//! wasmtime engine, tenants (named plugin deployments with their own
//! limits, rates and versions, hot-swappable), one actor thread per plugin
//! instance receiving its connections' events in batches, the `host`
//! functions plugins call, and the route table. The server core knows
//! nothing of it: the runtime is one implementation of the server's
//! `Handler`.

mod actor_state;
mod convert;
pub mod engine;
mod host_api;
mod instance;
pub mod metrics;
mod rate;
mod router;
pub mod spec;
mod tenant;
mod topics;
mod version;
mod watch;

pub use engine::{LoadError, PluginEngine};
pub use router::PluginRouter;
pub use spec::{OverRate, PluginLimits, PluginSpec, Rate, Route, TenantPolicy};
pub use tenant::{SwapError, SwapOutcome, TenantCounters, TenantStatus, Update};
pub use version::ComponentVersion;
pub use watch::WATCH_INTERVAL;
