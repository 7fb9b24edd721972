//! The plugin runtime as a server [`Handler`]: routes each open request to
//! the tenant whose route matches, applies the tenant's admission policy
//! (Origin, max connections, message size), pins the connection to one of
//! the tenant's instances, then forwards that connection's events to it,
//! within the tenant's rates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustc_hash::FxHashMap;
use wsserver_packed as packed;

use super::convert;
use super::engine::{LoadError, PluginEngine};
use super::executor::RuntimeOptions;
use super::inbox::PendingOpen;
use super::instance::PluginHandle;
use super::loading::{self, Slot, SlotState};
use super::rate::{ConnectionGate, OVER_RATE, Verdict};
use super::runtime::Runtime;
use super::spec::{PluginSpec, Route};
use super::staging;
use super::tenant::{SwapError, SwapOutcome, Tenant, TenantStatus, Update};
use super::topics::TopicCount;
use crate::MessageKind;
use crate::cluster::Backplane;
use crate::protocol::close::POLICY_VIOLATION;
use crate::protocol::mask::MaskedPayload;
use crate::server::static_files::StaticMount;
use crate::server::{BoxFuture, Connection, DataIn, Handler, OpenRequest, OpenResponse};

/// Serves connections with WebAssembly plugins, one tenant per declared
/// plugin.
pub struct PluginRouter {
    /// Every declared tenant, in declaration order; each ready once its
    /// component has loaded.
    slots: Vec<Arc<Slot>>,
    /// Slot indexes by the path prefix of their routes: an open request
    /// looks up the prefixes of its path, not every tenant's routes. Fx:
    /// the keys are the operator's, and each open request hashes two or
    /// more paths (SipHash made this a twentieth of a handshake).
    by_prefix: FxHashMap<String, Vec<usize>>,
    runtime: Arc<Runtime>,
}

/// What a connection carries: its tenant and the instance serving it.
struct Binding {
    tenant: Arc<Tenant>,
    plugin: Arc<PluginHandle>,
    /// The server's ReadyToSend right after Connected is not forwarded: the
    /// contract fires ready-to-send only after a would-block.
    saw_first_ready: AtomicBool,
    /// The connection holds a place under the tenant's max_connections.
    seated: AtomicBool,
    /// Present when the tenant limits message rates; boxed, since every
    /// connection keeps its binding and most tenants set no rate.
    gate: Option<Box<ConnectionGate>>,
}

impl Binding {
    /// Gives the connection's place back, once.
    fn release_seat(&self) {
        if self.seated.swap(false, Ordering::AcqRel) {
            self.tenant.release_seat();
        }
    }

    /// Whether a piece of data (`end` of a message or line) passes the
    /// tenant's message rate; if not, the verdict is carried out.
    fn admits_data(&self, conn: &Connection, end: bool) -> bool {
        let Some(gate) = &self.gate else {
            return true;
        };
        let verdict = self.tenant.rates.data(gate, end);
        let pass = verdict == Verdict::Pass;
        if !pass {
            self.refuse(conn, verdict);
        }
        pass
    }

    /// Carries out a rate verdict other than Pass.
    fn refuse(&self, conn: &Connection, verdict: Verdict) {
        match verdict {
            Verdict::Pass => {}
            Verdict::Drop { report, pause } => {
                self.tenant.count_drop();
                if report {
                    let event = packed::Event::Error {
                        connection: conn.id(),
                        code: OVER_RATE,
                        description: "over the tenant's message rate: messages are dropped until the rate allows them again",
                    };
                    staging::push_now(&self.plugin, conn, &event);
                }
                // Handlers run on the server's runtime; without one (never
                // in the server) the client is simply not paused.
                if let Some(pause) = pause
                    && let Ok(runtime) = tokio::runtime::Handle::try_current()
                {
                    conn.pause_data();
                    let (plugin, conn) = (self.plugin.clone(), conn.clone());
                    runtime.spawn(async move {
                        tokio::time::sleep(pause).await;
                        // The actor resumes it unless the plugin paused it
                        // or holds its replies.
                        plugin.push_resume(conn);
                    });
                }
            }
            Verdict::Close => {
                self.tenant.count_close();
                let _ = conn.close(POLICY_VIOLATION, "message rate exceeded");
            }
        }
    }
}

impl Drop for Binding {
    /// A connection refused or dropped before its Disconnected event still
    /// gives its place back.
    fn drop(&mut self) {
        self.release_seat();
    }
}

impl PluginRouter {
    /// [`start_with`](Self::start_with) the default executor pool.
    pub fn start(engine: &PluginEngine, specs: Vec<PluginSpec>) -> Result<Self, LoadError> {
        Self::start_with(engine, specs, RuntimeOptions::default())
    }

    /// Compiles (or loads from the cache) and links every tenant's plugin
    /// (once per distinct component, distinct components in parallel),
    /// proves each instantiates, starts the executor pool and the file
    /// watches. Returns when all tenants are ready, or after
    /// `loading::START_WAIT` with the slower ones still loading (their
    /// routes answer 503 until they are ready); a failure before then is
    /// reported with the tenant's name and nothing starts. Instances are
    /// made when connections arrive.
    pub fn start_with(
        engine: &PluginEngine,
        specs: Vec<PluginSpec>,
        options: RuntimeOptions,
    ) -> Result<Self, LoadError> {
        Self::start_in_cluster(engine, specs, options, None)
    }

    /// [`start_with`](Self::start_with), each tenant's topics joined to
    /// the other nodes through `cluster` (see [`crate::cluster`]).
    pub fn start_in_cluster(
        engine: &PluginEngine,
        specs: Vec<PluginSpec>,
        options: RuntimeOptions,
        cluster: Option<Backplane>,
    ) -> Result<Self, LoadError> {
        let runtime = Runtime::start(engine, options, cluster, push_event)?;
        match loading::start(&runtime, specs) {
            Ok(slots) => {
                let mut by_prefix: FxHashMap<String, Vec<usize>> = FxHashMap::default();
                for (index, slot) in slots.iter().enumerate() {
                    for route in &slot.routes {
                        let indexes = by_prefix.entry(route.path_prefix.clone()).or_default();
                        if indexes.last() != Some(&index) {
                            indexes.push(index);
                        }
                    }
                }
                Ok(Self {
                    slots,
                    by_prefix,
                    runtime,
                })
            }
            Err(e) => {
                runtime.shutdown();
                Err(e)
            }
        }
    }

    /// The tenants that are ready, in the order they were declared.
    fn ready(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.slots.iter().filter_map(|slot| slot.ready())
    }

    /// The tenant serving `path` on `host` (ready or not): host routes
    /// before host-less ones, then the longest path prefix.
    fn route(&self, path: &str, host: &str) -> Option<&Slot> {
        self.matching_route(path, host).map(|(_, slot)| slot)
    }

    /// The route that wins for `path` on `host`, and its tenant's slot.
    fn matching_route(&self, path: &str, host: &str) -> Option<(&Route, &Slot)> {
        // The best rank; of equals, the last found.
        let mut best: Option<((bool, usize), &Route, &Slot)> = None;
        let mut consider = |prefix: &str| {
            for &index in self.by_prefix.get(prefix).into_iter().flatten() {
                let slot = &self.slots[index];
                for route in &slot.routes {
                    if let Some(rank) = route.matches(path, host)
                        && best.is_none_or(|(best, ..)| rank >= best)
                    {
                        best = Some((rank, route, slot));
                    }
                }
            }
        };
        // The path itself and each prefix ending before a `/`, then "/".
        if !path.is_empty() {
            consider(path);
        }
        for (at, _) in path.match_indices('/').rev().filter(|&(at, _)| at > 0) {
            consider(&path[..at]);
        }
        consider("/");
        best.map(|(_, route, slot)| (route, slot))
    }

    fn tenant(&self, name: &str) -> Result<&Arc<Tenant>, SwapError> {
        self.ready()
            .find(|t| t.name() == name)
            .ok_or_else(|| SwapError::UnknownTenant(name.to_owned()))
    }

    /// The routes and the tenant serving each, for logs and diagnostics.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.slots
            .iter()
            .flat_map(|slot| {
                slot.routes
                    .iter()
                    .map(|r| (r.to_string(), slot.name.clone()))
            })
            .collect()
    }

    /// Every tenant with its version, connections and counters, in the
    /// order they were declared.
    pub fn tenants(&self) -> Vec<TenantStatus> {
        self.ready().map(|t| t.status()).collect()
    }

    /// Hot swap: compiles, links and instantiates `update` beside the
    /// running version, then switches every instance of the tenant to it
    /// between two batches. Connections stay open; events arriving during
    /// the switch wait and go to the new version, in order. The plugin's
    /// state moves through `lifecycle` when both versions export it;
    /// otherwise the new instances start fresh and receive `connected` for
    /// each open connection. On any failure the running version keeps
    /// serving. Blocks until done (compiling a large component takes
    /// seconds): call it off async workers.
    pub fn swap(&self, tenant: &str, update: Update) -> Result<SwapOutcome, SwapError> {
        self.tenant(tenant)?.swap(update)
    }

    /// Swaps back to the version before the last swap (a second rollback
    /// undoes the first). Blocks, as [`swap`](Self::swap) does.
    pub fn rollback(&self, tenant: &str) -> Result<SwapOutcome, SwapError> {
        self.tenant(tenant)?.rollback()
    }

    /// Reads the tenant's component file again and swaps to it (with
    /// `config`, or the running configuration) if that changes anything.
    /// Blocks, as [`swap`](Self::swap) does.
    pub fn reload(
        &self,
        tenant: &str,
        config: Option<BTreeMap<String, String>>,
    ) -> Result<SwapOutcome, SwapError> {
        self.tenant(tenant)?.reload(config)
    }

    /// Brings the running tenants to `specs` (the configuration read
    /// again): each tenant swaps to its spec's component and configuration
    /// if they changed. What only a restart can apply (tenants added or
    /// removed, routes, limits, policy, instances, watch) is logged and
    /// left as it is; a spec for an unknown tenant is an `UnknownTenant`
    /// result. Blocks, as [`swap`](Self::swap) does.
    pub fn reconfigure(
        &self,
        specs: Vec<PluginSpec>,
    ) -> Vec<(String, Result<SwapOutcome, SwapError>)> {
        for tenant in self.ready() {
            if !specs.iter().any(|s| s.name == tenant.name()) {
                tracing::warn!(
                    "tenant {} is no longer configured; it serves until a restart",
                    tenant.name()
                );
            }
        }
        specs
            .into_iter()
            .map(|spec| {
                let result = self.tenant(&spec.name).and_then(|tenant| {
                    if tenant.needs_restart(&spec) {
                        tracing::warn!(
                            "tenant {}: changes other than its component and config need a restart",
                            spec.name
                        );
                    }
                    tenant.swap(Update {
                        wasm: spec.wasm.to_vec(),
                        config: Some(spec.config.clone()),
                    })
                });
                (spec.name, result)
            })
            .collect()
    }

    fn binding(conn: &Connection) -> Option<&Binding> {
        conn.attachment::<Binding>()
    }

    /// Publishes to a tenant's topic from outside its plugin (the admin
    /// API): its subscribers on this node and, with a cluster, on the
    /// others. Returns how many subscribers on this node took it.
    pub fn publish(
        &self,
        tenant: &str,
        topic: &str,
        kind: MessageKind,
        payload: bytes::Bytes,
    ) -> Result<usize, SwapError> {
        let tenant = self.tenant(tenant)?;
        Ok(tenant.shared.topics.publish_from_host(topic, kind, payload))
    }

    /// A tenant's topics with their subscriber counts, by name.
    pub fn topics(&self, tenant: &str) -> Result<Vec<TopicCount>, SwapError> {
        Ok(self.tenant(tenant)?.shared.topics.topics())
    }
}

/// Hands the plugin instance serving `conn` an event that no client input
/// caused: an error for a topic message its queue refused, a presence
/// change for a topic it watches.
fn push_event(conn: &Connection, event: &packed::Event<'_>) {
    if let Some(b) = PluginRouter::binding(conn) {
        staging::push_now(&b.plugin, conn, event);
    }
}

impl Drop for PluginRouter {
    fn drop(&mut self) {
        self.runtime.shutdown();
    }
}

impl Handler for PluginRouter {
    /// The static files of the tenant whose route matches, if it has any.
    fn static_site(&self, path: &str, host: &str) -> Option<StaticMount> {
        let (route, slot) = self.matching_route(path, host)?;
        Some(StaticMount {
            site: slot.static_site.clone()?,
            prefix: route.path_prefix.clone(),
        })
    }

    fn open_request(
        &self,
        conn: &Connection,
        request: Arc<OpenRequest>,
    ) -> BoxFuture<OpenResponse> {
        let refuse = |status| -> BoxFuture<OpenResponse> {
            Box::pin(std::future::ready(OpenResponse::reject(status)))
        };
        let Some(slot) = self.route(request.path(), request.host()) else {
            return refuse(404);
        };
        let tenant = match slot.state() {
            SlotState::Ready(tenant) => tenant,
            SlotState::Loading => {
                let reason = format!(
                    "tenant {} is starting: its component is compiling",
                    slot.name
                );
                return Box::pin(std::future::ready(
                    OpenResponse::reject(503).with_header("X-Wsserver-Reason", reason),
                ));
            }
            SlotState::Failed(why) => {
                // One line: a header value cannot hold more.
                let why = why.lines().next().unwrap_or_default();
                let reason = format!("tenant {} could not start: {why}", slot.name);
                return Box::pin(std::future::ready(
                    OpenResponse::reject(503).with_header("X-Wsserver-Reason", reason),
                ));
            }
        };
        if !tenant.admits_origin(request.origin()) {
            tracing::info!(
                tenant = tenant.name(),
                connection = conn.id(),
                "Origin {:?} is not allowed; answering 403",
                request.origin()
            );
            return refuse(403);
        }
        if !tenant.take_seat() {
            tracing::info!(
                tenant = tenant.name(),
                connection = conn.id(),
                "max_connections reached; answering 503"
            );
            return refuse(503);
        }
        let binding = Arc::new(Binding {
            tenant: tenant.clone(),
            plugin: tenant.pick_instance(),
            saw_first_ready: AtomicBool::new(false),
            seated: AtomicBool::new(true),
            gate: tenant.rates.gate().map(Box::new),
        });
        conn.attach(binding.clone());
        let max_message_size = tenant.policy().max_message_size;
        let limited = move |response: OpenResponse| match max_message_size {
            Some(limit) => response.with_max_message_size(limit),
            None => response,
        };
        if binding.plugin.keeps_default(packed::DEFAULT_OPEN_REQUEST) {
            // The plugin's answer is known: no call, no turn.
            binding.plugin.admit(conn.clone());
            binding.plugin.shared.metrics.record_open_accepted_by_host();
            return Box::pin(std::future::ready(limited(OpenResponse::accept())));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        binding.plugin.push_open(PendingOpen {
            request: convert::open_request(&request),
            offered: request.subprotocols().map(str::to_owned).collect(),
            conn: conn.clone(),
            reply,
        });
        Box::pin(async move {
            // A plugin that stops (its runtime shut down) answers nothing.
            let response = answer.await.unwrap_or_else(|_| OpenResponse::reject(503));
            if response.status_code != 101 {
                binding.release_seat();
            }
            limited(response)
        })
    }

    fn connected(&self, conn: &Connection) {
        if let Some(b) = Self::binding(conn) {
            if b.plugin.keeps_default(packed::DEFAULT_CONNECTED) {
                b.plugin.announce(conn.id());
            } else {
                staging::push_now(&b.plugin, conn, &packed::Event::Connected(conn.id()));
            }
        }
    }

    fn data_in(&self, conn: &Connection, data: &DataIn<'_>) {
        if let Some(b) = Self::binding(conn)
            && b.admits_data(conn, data.eom || data.eol)
        {
            let event = packed::Event::DataIn {
                connection: conn.id(),
                format: convert::data_format(data.format),
                eom: data.eom,
                eol: data.eol,
                data: data.data,
            };
            staging::stage(&b.plugin, conn, &event);
        }
    }

    fn binary_message(&self, conn: &Connection, payload: MaskedPayload<'_>) {
        if let Some(b) = Self::binding(conn)
            && b.admits_data(conn, true)
        {
            staging::stage_masked(&b.plugin, conn, &payload);
        }
    }

    fn ping(&self, conn: &Connection, payload: &[u8], response: bool) {
        let Some(b) = Self::binding(conn) else {
            return;
        };
        if let Some(gate) = &b.gate {
            let verdict = b.tenant.rates.ping(gate);
            if verdict != Verdict::Pass {
                return b.refuse(conn, verdict);
            }
        }
        // The host has answered it; a hibernated instance is not woken
        // just to hear of it, and one that ignores pings is not told.
        if !b.plugin.is_hibernated() && !b.plugin.keeps_default(packed::DEFAULT_PING) {
            let event = packed::Event::Ping {
                connection: conn.id(),
                response,
                payload,
            };
            staging::stage(&b.plugin, conn, &event);
        }
    }

    fn ready_to_send(&self, conn: &Connection) {
        if let Some(b) = Self::binding(conn)
            && b.saw_first_ready.swap(true, Ordering::Relaxed)
        {
            staging::push_now(&b.plugin, conn, &packed::Event::ReadyToSend(conn.id()));
        }
    }

    fn input_done(&self, _conn: &Connection) {
        staging::hand_over_soon();
    }

    fn flush_events(&self, conn: &Connection) -> Option<BoxFuture<()>> {
        let binding = Self::binding(conn)?;
        // Nothing of the connection's is staged, queued or being handled:
        // no reply can still come.
        if !staging::has_staged(conn) && binding.plugin.is_idle() {
            return None;
        }
        staging::hand_over();
        let (done, flushed) = tokio::sync::oneshot::channel();
        binding.plugin.push_flush(done);
        Some(Box::pin(async move {
            let _ = flushed.await;
        }))
    }

    fn disconnected(&self, conn: &Connection, status_code: u16, description: &str) {
        if let Some(b) = Self::binding(conn)
            && conn.has_request()
        {
            let event = packed::Event::Disconnected {
                connection: conn.id(),
                code: status_code,
                description,
            };
            // Connections that end together (a burst of short-lived
            // clients) tell the plugin in one call.
            staging::stage(&b.plugin, conn, &event);
            staging::hand_over_soon();
            b.release_seat();
        }
    }

    fn error(&self, conn: Option<&Connection>, code: u32, description: &str) {
        match conn.and_then(|c| Some((c, Self::binding(c)?))) {
            Some((conn, b)) => {
                let event = packed::Event::Error {
                    connection: conn.id(),
                    code,
                    description,
                };
                staging::push_now(&b.plugin, conn, &event);
            }
            None => tracing::warn!(code, "{description}"),
        }
    }
}
