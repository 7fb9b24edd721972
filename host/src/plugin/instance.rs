//! One plugin instance as an actor on a thread of its own.
//!
//! Connection tasks push events into the plugin's inbox and return at once;
//! the actor takes everything waiting and hands it to the guest in one
//! `on-events` call, then applies the commands the guest returned. Wasm
//! never runs on the server's async workers, so a slow or looping plugin
//! costs its own thread (until its deadline), never other connections.
//!
//! A trap, a memory-cap failure or a missed deadline poisons the instance:
//! the connections whose events were in the failed call are closed with
//! 1011, a fresh instance replaces it, and the plugin's connection state
//! (which lives outside the guest) carries over.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::component::{ComponentExportIndex, TypedFunc};
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wsserver_packed as packed;
use wsserver_plugin_bindings::wsserver::plugin::types as wit;
use wsserver_plugin_bindings::{Plugin, PluginPre};

/// The optional export with the packed `on-events`.
const PACKED_HANDLER: &str = "wsserver:plugin/packed-handler@0.1.0";

use super::actor_state::{ActorState, PluginShared};
use super::convert;
use super::engine::{EPOCH_TICK, LoadError, PluginEngine};
use super::metrics::CallFailure;
use super::spec::PluginLimits;
use crate::protocol::close::INTERNAL_ERROR;
use crate::server::{Connection, ConnectionId, OpenResponse};

/// What the store of an instance holds.
pub(crate) struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    pub actor: ActorState,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// An open request waiting for the plugin's answer.
pub(crate) struct PendingOpen {
    pub request: wit::OpenRequest,
    pub offered: Vec<String>,
    pub conn: Connection,
    pub reply: oneshot::Sender<OpenResponse>,
}

/// Events and requests waiting for the actor.
#[derive(Default)]
struct Inbox {
    opens: Vec<PendingOpen>,
    /// Events in the packed layout, ready to hand over as they are.
    events: Vec<u8>,
    /// Connections paused because the inbox was too full.
    throttled: Vec<Connection>,
    /// Signalled once everything queued before them has been handled.
    flushes: Vec<oneshot::Sender<()>>,
    /// The actor sleeps on the condition variable.
    idle: bool,
    closed: bool,
}

/// The handle connection tasks use to reach a plugin's actor.
pub(crate) struct PluginHandle {
    pub shared: Arc<PluginShared>,
    limits: PluginLimits,
    inbox: Mutex<Inbox>,
    wake: Condvar,
}

impl PluginHandle {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues packed events of `conn`. Past the plugin's limit of queued
    /// bytes the connection is paused until the actor catches up.
    pub fn push(&self, events: &[u8], conn: &Connection) {
        let mut inbox = self.inbox();
        inbox.events.extend_from_slice(events);
        if inbox.events.len() > self.limits.max_queued_bytes {
            conn.pause_data();
            inbox.throttled.push(conn.clone());
        }
        if inbox.idle {
            self.wake.notify_one();
        }
    }

    pub fn push_open(&self, open: PendingOpen) {
        let mut inbox = self.inbox();
        inbox.opens.push(open);
        if inbox.idle {
            self.wake.notify_one();
        }
    }

    /// Signals `done` once the events queued so far have been handled and
    /// their commands applied.
    pub fn push_flush(&self, done: oneshot::Sender<()>) {
        let mut inbox = self.inbox();
        inbox.flushes.push(done);
        if inbox.idle {
            self.wake.notify_one();
        }
    }

    /// Bytes of (packed) events waiting for the actor.
    pub fn queued_bytes(&self) -> usize {
        self.inbox().events.len()
    }

    /// Stops the actor once it has handled what is queued.
    pub fn close(&self) {
        self.inbox().closed = true;
        self.wake.notify_one();
    }
}

/// An instantiation that failed, handing back the state it was given.
struct Failed {
    actor: ActorState,
    reason: String,
}

/// The fast path of `on-events`, when the component exports it.
type PackedOnEvents = TypedFunc<(&'static [u8],), (Vec<u8>,)>;

/// A running instance: its store, its typed exports and, if exported, the
/// packed `on-events`.
struct Live {
    store: Store<InstanceState>,
    plugin: Plugin,
    packed: Option<PackedOnEvents>,
}

/// Builds instances of one compiled component.
struct Factory {
    engine: PluginEngine,
    pre: PluginPre<InstanceState>,
    /// `packed-handler.on-events`, if the component exports it.
    packed: Option<ComponentExportIndex>,
    limits: PluginLimits,
}

impl Factory {
    fn deadline_ticks(&self) -> u64 {
        (self.limits.call_deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
    }

    /// A fresh instance carrying `actor`; on failure the state comes back
    /// (boxed: it is large) with the reason.
    fn instantiate(&self, actor: ActorState) -> Result<Live, Box<Failed>> {
        let state = InstanceState {
            // Nothing granted: no files, sockets, environment or arguments.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .build(),
            actor,
        };
        let mut store = Store::new(self.engine.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(self.deadline_ticks());
        let instance = self.pre.instance_pre().instantiate(&mut store);
        let live = instance.and_then(|instance| {
            let plugin = Plugin::new(&mut store, &instance)?;
            let packed = match &self.packed {
                Some(index) => Some(instance.get_typed_func(&mut store, index)?),
                None => None,
            };
            Ok((plugin, packed))
        });
        match live {
            Ok((plugin, packed)) => Ok(Live {
                store,
                plugin,
                packed,
            }),
            Err(e) => Err(Box::new(Failed {
                actor: store.into_data().actor,
                reason: format!("{e:#}"),
            })),
        }
    }
}

/// Compiles and links a plugin, instantiates it once to prove it works, and
/// starts its actor thread.
pub(crate) fn start(
    engine: &PluginEngine,
    component: &Component,
    shared: Arc<PluginShared>,
    limits: PluginLimits,
) -> Result<Arc<PluginHandle>, LoadError> {
    let name = shared.name.clone();
    let fail = |what: &str, e: String| LoadError(format!("plugin {name}: {what}: {e}"));
    let mut linker = Linker::<InstanceState>::new(engine.engine());
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| fail("linking WASI", format!("{e:#}")))?;
    Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
        .map_err(|e| fail("linking the host interface", format!("{e:#}")))?;
    let pre = linker.instantiate_pre(component).map_err(|e| {
        fail(
            "it does not fit the wsserver:plugin contract",
            format!("{e:#}"),
        )
    })?;
    let pre = PluginPre::new(pre)
        .map_err(|e| fail("it does not export the handler interface", format!("{e:#}")))?;
    // Components built with the Rust SDK also export the packed fast path.
    let packed = component
        .get_export_index(None, PACKED_HANDLER)
        .and_then(|interface| component.get_export_index(Some(&interface), "on-events"));
    let factory = Factory {
        engine: engine.clone(),
        pre,
        packed,
        limits: limits.clone(),
    };
    let live = factory
        .instantiate(ActorState::new(shared.clone()))
        .map_err(|failed| fail("instantiation failed", failed.reason))?;
    let handle = Arc::new(PluginHandle {
        shared,
        limits,
        inbox: Mutex::new(Inbox::default()),
        wake: Condvar::new(),
    });
    let actor = Actor {
        handle: handle.clone(),
        factory,
        live,
    };
    std::thread::Builder::new()
        .name(format!("plugin {name}"))
        .spawn(move || actor.run())
        .map_err(|e| fail("cannot start its thread", e.to_string()))?;
    Ok(handle)
}

struct Actor {
    handle: Arc<PluginHandle>,
    factory: Factory,
    live: Live,
}

impl Actor {
    fn actor_state(&mut self) -> &mut ActorState {
        &mut self.live.store.data_mut().actor
    }

    fn run(mut self) {
        let mut events = Vec::new();
        loop {
            let (opens, throttled, flushes) = {
                let mut inbox = self.handle.inbox();
                while inbox.opens.is_empty()
                    && inbox.events.is_empty()
                    && inbox.flushes.is_empty()
                    && self.live.store.data().actor.errors.is_empty()
                {
                    if inbox.closed {
                        return;
                    }
                    inbox.idle = true;
                    inbox = self
                        .handle
                        .wake
                        .wait(inbox)
                        .unwrap_or_else(|e| e.into_inner());
                    inbox.idle = false;
                }
                std::mem::swap(&mut events, &mut inbox.events);
                (
                    std::mem::take(&mut inbox.opens),
                    std::mem::take(&mut inbox.throttled),
                    std::mem::take(&mut inbox.flushes),
                )
            };
            for open in opens {
                self.open(open);
            }
            let errors = std::mem::take(&mut self.actor_state().errors);
            if !errors.is_empty() {
                events.splice(0..0, errors);
            }
            if !events.is_empty() {
                self.deliver(&events);
                events.clear();
            }
            // Only now: a connection whose replies the batch could not send
            // stays paused until they have left.
            for conn in throttled {
                let actor = &self.live.store.data().actor;
                if !actor.paused_by_plugin.contains(&conn.id()) && !actor.is_held(conn.id()) {
                    conn.resume_data();
                }
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
    }

    fn open(&mut self, open: PendingOpen) {
        let PendingOpen {
            request,
            offered,
            conn,
            reply,
        } = open;
        let live = &mut self.live;
        live.store.set_epoch_deadline(self.factory.deadline_ticks());
        let started = Instant::now();
        let answer = live
            .plugin
            .wsserver_plugin_handler()
            .call_on_open_request(&mut live.store, &request);
        let metrics = &self.handle.shared.metrics;
        metrics.record_call(started.elapsed(), 1);
        let response = match answer {
            Ok(resp) => match convert::open_response(resp, &offered) {
                Ok(resp) => resp,
                Err(mistake) => {
                    self.log_error(&format!(
                        "connection {}: plugin {mistake}; answering 500",
                        conn.id()
                    ));
                    OpenResponse::reject(500)
                }
            },
            Err(e) => {
                metrics.record_failure(CallFailure::of(&e));
                self.fail(&[], &format!("{e:#}"));
                OpenResponse::reject(500)
            }
        };
        if response.status_code == 101 {
            self.actor_state().connections.insert(conn.id(), conn);
        }
        let _ = reply.send(response);
    }

    /// One `on-events` call for everything waiting (`batch`, packed), then
    /// its commands.
    fn deliver(&mut self, batch: &[u8]) {
        let (mut ended, mut released) = (Vec::new(), Vec::new());
        let mut delivered = 0;
        for event in packed::events(batch).flatten() {
            delivered += 1;
            match event {
                // Room again: commands held for it go first.
                packed::Event::ReadyToSend(id) => {
                    self.actor_state().release_held(id);
                    released.push(id);
                }
                packed::Event::Disconnected { connection, .. } => ended.push(connection),
                _ => {}
            }
        }
        let deadline = self.factory.deadline_ticks();
        let live = &mut self.live;
        live.store.set_epoch_deadline(deadline);
        let metrics = &self.handle.shared.metrics;
        let started = Instant::now();
        let failure = match &live.packed {
            Some(on_events) => match on_events.call(&mut live.store, (batch,)) {
                Ok((commands,)) => apply_packed(&mut live.store.data_mut().actor, &commands).err(),
                Err(e) => {
                    metrics.record_failure(CallFailure::of(&e));
                    Some(format!("{e:#}"))
                }
            },
            None => {
                let events: Vec<wit::Event> = packed::events(batch)
                    .flatten()
                    .map(convert::typed_event)
                    .collect();
                let handler = live.plugin.wsserver_plugin_handler();
                match handler.call_on_events(&mut live.store, &events) {
                    Ok(commands) => {
                        let actor = &mut live.store.data_mut().actor;
                        for command in &commands {
                            actor.apply(convert::packed_command(command));
                        }
                        None
                    }
                    Err(e) => {
                        metrics.record_failure(CallFailure::of(&e));
                        Some(format!("{e:#}"))
                    }
                }
            }
        };
        metrics.record_call(started.elapsed(), delivered);
        if let Some(reason) = failure {
            let involved: Vec<ConnectionId> = packed::events(batch)
                .flatten()
                .map(|e| e.connection())
                .collect();
            self.fail(&involved, &reason);
        }
        let actor = self.actor_state();
        for id in released {
            actor.resume_released(id);
        }
        for id in ended {
            actor.forget(id);
        }
    }

    /// The instance failed: close the connections involved with 1011 and
    /// carry on with a fresh instance.
    fn fail(&mut self, involved: &[ConnectionId], reason: &str) {
        let why = describe_failure(reason);
        self.log_error(&format!("instance failed ({why}); replacing it"));
        let actor = self.actor_state();
        let mut closed = involved.to_vec();
        closed.sort_unstable();
        closed.dedup();
        for id in closed {
            if let Some(conn) = actor.connections.get(&id) {
                let _ = conn.close(INTERNAL_ERROR, "plugin failed");
            }
        }
        let placeholder = ActorState::new(actor.shared.clone());
        let actor = std::mem::replace(actor, placeholder);
        match self.factory.instantiate(actor) {
            Ok(live) => self.live = live,
            Err(failed) => {
                let Failed { actor, reason: e } = *failed;
                // Instantiation worked at load time; if it fails now, keep
                // the state and try again on the next event.
                self.log_error(&format!("cannot instantiate a replacement: {e}"));
                *self.actor_state() = actor;
            }
        }
    }

    fn log_error(&self, message: &str) {
        tracing::error!(plugin = %self.handle.shared.name, "{message}");
    }
}

/// Applies the commands of a packed batch in order. A batch that does not
/// follow the layout is the plugin's failure, like a trap: the commands
/// before the malformed record have been applied.
fn apply_packed(actor: &mut ActorState, commands: &[u8]) -> Result<(), String> {
    for command in packed::commands(commands) {
        match command {
            Ok(command) => actor.apply(command),
            Err(e) => return Err(format!("returned a {e}")),
        }
    }
    Ok(())
}

/// A short reason for the log: deadline, memory or trap.
fn describe_failure(error: &str) -> String {
    let first = error.lines().next().unwrap_or(error);
    if error.contains("interrupt") {
        "CPU deadline exceeded".to_owned()
    } else {
        first.to_owned()
    }
}
