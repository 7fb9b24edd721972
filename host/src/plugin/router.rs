//! The plugin runtime as a server [`Handler`]: routes each open request to
//! the plugin whose route matches, then forwards that connection's events to
//! the plugin's actor.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wsserver_packed as packed;

use super::actor_state::PluginShared;
use super::convert;
use super::engine::{LoadError, PluginEngine};
use super::instance::{self, PendingOpen, PluginHandle};
use super::metrics::PluginStatus;
use super::spec::{PluginSpec, Route};
use crate::server::{BoxFuture, Connection, DataIn, Handler, OpenRequest, OpenResponse};

/// Serves connections with WebAssembly plugins.
pub struct PluginRouter {
    routes: Vec<(Route, Arc<PluginHandle>)>,
}

/// What a connection carries: the plugin serving it.
struct Binding {
    plugin: Arc<PluginHandle>,
    /// The server's ReadyToSend right after Connected is not forwarded: the
    /// contract fires ready-to-send only after a would-block.
    saw_first_ready: AtomicBool,
}

impl PluginRouter {
    /// Compiles (or loads from the cache), links and instantiates every
    /// plugin; any failure is reported with the plugin's name and nothing
    /// starts.
    pub fn start(engine: &PluginEngine, specs: Vec<PluginSpec>) -> Result<Self, LoadError> {
        let mut routes = Vec::new();
        for spec in specs {
            let component = engine.load(&spec.name, &spec.wasm)?;
            let version = spec.version();
            let shared = Arc::new(PluginShared {
                name: spec.name,
                version,
                max_queued_bytes: spec.limits.max_queued_bytes,
                config: spec.config,
                topics: Default::default(),
                metrics: Default::default(),
            });
            let handle = instance::start(engine, &component, shared, spec.limits)?;
            for route in spec.routes {
                routes.push((route, handle.clone()));
            }
        }
        Ok(Self { routes })
    }

    /// The plugin serving `path` on `host`: host routes before host-less
    /// ones, then the longest path prefix.
    fn route(&self, path: &str, host: &str) -> Option<&Arc<PluginHandle>> {
        self.routes
            .iter()
            .filter_map(|(route, handle)| route.matches(path, host).map(|rank| (rank, handle)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, handle)| handle)
    }

    /// The routes and the plugin serving each, for logs and diagnostics.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.routes
            .iter()
            .map(|(route, handle)| (route.to_string(), handle.shared.name.clone()))
            .collect()
    }

    /// Every plugin with its routes, version and counters, in start order.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        let mut plugins: Vec<(&Arc<PluginHandle>, PluginStatus)> = Vec::new();
        for (route, handle) in &self.routes {
            match plugins.iter_mut().find(|(h, _)| Arc::ptr_eq(h, handle)) {
                Some((_, status)) => status.routes.push(route.to_string()),
                None => plugins.push((
                    handle,
                    PluginStatus {
                        name: handle.shared.name.clone(),
                        version: handle.shared.version.clone(),
                        routes: vec![route.to_string()],
                        queued_bytes: handle.queued_bytes(),
                        counters: handle.shared.metrics.snapshot(),
                    },
                )),
            }
        }
        plugins.into_iter().map(|(_, status)| status).collect()
    }

    fn plugin_of(conn: &Connection) -> Option<&Binding> {
        conn.attachment::<Binding>()
    }
}

/// Events staged on this thread while a connection's read is dispatched,
/// handed to the plugin in one go when the read is done (one lock per read
/// instead of per event).
#[derive(Default)]
struct Staged {
    target: Option<(Arc<PluginHandle>, Connection)>,
    events: Vec<u8>,
}

/// Staged bytes beyond which they are handed over before the read ends.
const STAGE_LIMIT: usize = 64 * 1024;

thread_local! {
    static STAGED: RefCell<Staged> = RefCell::new(Staged::default());
}

impl Staged {
    fn flush(&mut self) {
        if let Some((plugin, conn)) = self.target.take() {
            plugin.push(&self.events, &conn);
            self.events.clear();
        }
    }
}

/// Stages an event of `conn`; events of another connection first hand over
/// what is staged, so each connection's events keep their order.
fn stage(binding: &Binding, conn: &Connection, event: &packed::Event<'_>) {
    STAGED.with_borrow_mut(|staged| {
        if let Some((plugin, staged_conn)) = &staged.target
            && (!Arc::ptr_eq(plugin, &binding.plugin) || staged_conn.id() != conn.id())
        {
            staged.flush();
        }
        if staged.target.is_none() {
            staged.target = Some((binding.plugin.clone(), conn.clone()));
        }
        packed::Writer::new(&mut staged.events).event(event);
        // A read can expand (inflated data, many small frames): hand over
        // early so flow control can pause the client within the read.
        if staged.events.len() >= STAGE_LIMIT {
            staged.flush();
        }
    });
}

/// Hands over what is staged on this thread.
fn flush_staged() {
    STAGED.with_borrow_mut(Staged::flush);
}

/// Sends one event now, after anything staged.
fn push_now(binding: &Binding, conn: &Connection, event: &packed::Event<'_>) {
    flush_staged();
    let mut bytes = Vec::new();
    packed::Writer::new(&mut bytes).event(event);
    binding.plugin.push(&bytes, conn);
}

impl Drop for PluginRouter {
    fn drop(&mut self) {
        for (_, handle) in &self.routes {
            handle.close();
        }
    }
}

impl Handler for PluginRouter {
    fn open_request(
        &self,
        conn: &Connection,
        request: Arc<OpenRequest>,
    ) -> BoxFuture<OpenResponse> {
        let Some(plugin) = self.route(request.path(), &request.host) else {
            return Box::pin(std::future::ready(OpenResponse::reject(404)));
        };
        conn.attach(Arc::new(Binding {
            plugin: plugin.clone(),
            saw_first_ready: AtomicBool::new(false),
        }));
        let (reply, answer) = tokio::sync::oneshot::channel();
        plugin.push_open(PendingOpen {
            request: convert::open_request(&request),
            offered: request.subprotocols.clone(),
            conn: conn.clone(),
            reply,
        });
        // A plugin that stops (its runtime shut down) answers nothing.
        Box::pin(async move { answer.await.unwrap_or_else(|_| OpenResponse::reject(503)) })
    }

    fn connected(&self, conn: &Connection) {
        if let Some(b) = Self::plugin_of(conn) {
            push_now(b, conn, &packed::Event::Connected(conn.id()));
        }
    }

    fn data_in(&self, conn: &Connection, data: &DataIn<'_>) {
        if let Some(b) = Self::plugin_of(conn) {
            let event = packed::Event::DataIn {
                connection: conn.id(),
                format: convert::data_format(data.format),
                eom: data.eom,
                eol: data.eol,
                data: data.data,
            };
            stage(b, conn, &event);
        }
    }

    fn ping(&self, conn: &Connection, payload: &[u8], response: bool) {
        if let Some(b) = Self::plugin_of(conn) {
            let event = packed::Event::Ping {
                connection: conn.id(),
                response,
                payload,
            };
            stage(b, conn, &event);
        }
    }

    fn ready_to_send(&self, conn: &Connection) {
        if let Some(b) = Self::plugin_of(conn)
            && b.saw_first_ready.swap(true, Ordering::Relaxed)
        {
            push_now(b, conn, &packed::Event::ReadyToSend(conn.id()));
        }
    }

    fn input_done(&self, _conn: &Connection) {
        flush_staged();
    }

    fn flush_events(&self, conn: &Connection) -> Option<BoxFuture<()>> {
        let binding = Self::plugin_of(conn)?;
        flush_staged();
        let (done, flushed) = tokio::sync::oneshot::channel();
        binding.plugin.push_flush(done);
        Some(Box::pin(async move {
            let _ = flushed.await;
        }))
    }

    fn disconnected(&self, conn: &Connection, status_code: u16, description: &str) {
        if let Some(b) = Self::plugin_of(conn)
            && conn.request().is_some()
        {
            let event = packed::Event::Disconnected {
                connection: conn.id(),
                code: status_code,
                description,
            };
            push_now(b, conn, &event);
        }
    }

    fn error(&self, conn: Option<&Connection>, code: u32, description: &str) {
        match conn.and_then(|c| Self::plugin_of(c).map(|b| (c, b))) {
            Some((conn, b)) => {
                let event = packed::Event::Error {
                    connection: conn.id(),
                    code,
                    description,
                };
                push_now(b, conn, &event);
            }
            None => tracing::warn!(code, "{description}"),
        }
    }
}
