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
use wasmtime::{Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wsserver_plugin_bindings::wsserver::plugin::types as wit;
use wsserver_plugin_bindings::{Plugin, PluginPre};

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
    events: Vec<wit::Event>,
    /// Data bytes in `events`, for flow control.
    bytes: usize,
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

    /// Queues an event; `data_len` bytes of data make the inbox fuller, and
    /// past the limit `conn` is paused until the actor catches up.
    pub fn push(&self, event: wit::Event, data_len: usize, conn: &Connection) {
        let mut inbox = self.inbox();
        inbox.events.push(event);
        inbox.bytes += data_len;
        if data_len > 0 && inbox.bytes > self.limits.max_queued_bytes {
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

    /// Events and open requests waiting for the actor.
    pub fn queued_events(&self) -> usize {
        let inbox = self.inbox();
        inbox.events.len() + inbox.opens.len()
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

/// Builds instances of one compiled component.
struct Factory {
    engine: PluginEngine,
    pre: PluginPre<InstanceState>,
    limits: PluginLimits,
}

impl Factory {
    fn deadline_ticks(&self) -> u64 {
        (self.limits.call_deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
    }

    /// A fresh instance carrying `actor`; on failure the state comes back
    /// (boxed: it is large) with the reason.
    fn instantiate(
        &self,
        actor: ActorState,
    ) -> Result<(Store<InstanceState>, Plugin), Box<Failed>> {
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
        match self.pre.instantiate(&mut store) {
            Ok(plugin) => Ok((store, plugin)),
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
    let factory = Factory {
        engine: engine.clone(),
        pre,
        limits: limits.clone(),
    };
    let (store, plugin) = factory
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
        store,
        plugin,
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
    store: Store<InstanceState>,
    plugin: Plugin,
}

impl Actor {
    fn run(mut self) {
        let mut events = Vec::new();
        loop {
            let (opens, throttled, flushes) = {
                let mut inbox = self.handle.inbox();
                while inbox.opens.is_empty()
                    && inbox.events.is_empty()
                    && inbox.flushes.is_empty()
                    && self.store.data().actor.errors.is_empty()
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
                inbox.bytes = 0;
                (
                    std::mem::take(&mut inbox.opens),
                    std::mem::take(&mut inbox.throttled),
                    std::mem::take(&mut inbox.flushes),
                )
            };
            for conn in throttled {
                let actor = &self.store.data().actor;
                if !actor.paused_by_plugin.contains(&conn.id()) && !actor.is_held(conn.id()) {
                    conn.resume_data();
                }
            }
            for open in opens {
                self.open(open);
            }
            let errors = std::mem::take(&mut self.store.data_mut().actor.errors);
            if !errors.is_empty() {
                events.splice(0..0, errors);
            }
            if !events.is_empty() {
                self.deliver(&mut events);
                events.clear();
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
        self.store.set_epoch_deadline(self.factory.deadline_ticks());
        let started = Instant::now();
        let answer = self
            .plugin
            .wsserver_plugin_handler()
            .call_on_open_request(&mut self.store, &request);
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
            self.store
                .data_mut()
                .actor
                .connections
                .insert(conn.id(), conn);
        }
        let _ = reply.send(response);
    }

    /// One `on-events` call for everything waiting, then its commands.
    fn deliver(&mut self, events: &mut [wit::Event]) {
        // Room again: commands held for these connections go first.
        for event in events.iter() {
            if let wit::Event::ReadyToSend(id) = event {
                self.store.data_mut().actor.release_held(*id);
            }
        }
        self.store.set_epoch_deadline(self.factory.deadline_ticks());
        let started = Instant::now();
        let result = self
            .plugin
            .wsserver_plugin_handler()
            .call_on_events(&mut self.store, events);
        let metrics = &self.handle.shared.metrics;
        metrics.record_call(started.elapsed(), events.len());
        let ended: Vec<ConnectionId> = events
            .iter()
            .filter_map(|e| match e {
                wit::Event::Disconnected(d) => Some(d.connection),
                _ => None,
            })
            .collect();
        match result {
            Ok(commands) => {
                let actor = &mut self.store.data_mut().actor;
                for command in commands {
                    actor.apply(command);
                }
            }
            Err(e) => {
                metrics.record_failure(CallFailure::of(&e));
                let involved: Vec<ConnectionId> = events.iter().map(event_connection).collect();
                self.fail(&involved, &format!("{e:#}"));
            }
        }
        let actor = &mut self.store.data_mut().actor;
        for id in ended {
            actor.forget(id);
        }
    }

    /// The instance failed: close the connections involved with 1011 and
    /// carry on with a fresh instance.
    fn fail(&mut self, involved: &[ConnectionId], reason: &str) {
        let why = describe_failure(reason);
        self.log_error(&format!("instance failed ({why}); replacing it"));
        let actor = &mut self.store.data_mut().actor;
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
            Ok((store, plugin)) => {
                self.store = store;
                self.plugin = plugin;
            }
            Err(failed) => {
                let Failed { actor, reason: e } = *failed;
                // Instantiation worked at load time; if it fails now, keep
                // the state and try again on the next event.
                self.log_error(&format!("cannot instantiate a replacement: {e}"));
                self.store.data_mut().actor = actor;
            }
        }
    }

    fn log_error(&self, message: &str) {
        tracing::error!(plugin = %self.handle.shared.name, "{message}");
    }
}

/// The connection an event concerns.
fn event_connection(event: &wit::Event) -> ConnectionId {
    match event {
        wit::Event::Connected(id) | wit::Event::ReadyToSend(id) => *id,
        wit::Event::DataIn(d) => d.connection,
        wit::Event::Ping(p) => p.connection,
        wit::Event::Disconnected(d) => d.connection,
        wit::Event::Error(e) => e.connection,
    }
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
