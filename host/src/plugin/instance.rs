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
//!
//! A hot swap is taken between two batches: the actor hands the plugin's
//! state (`lifecycle`) to an instance of the new version that the tenant
//! made beforehand, waits for the tenant's verdict (every instance of a
//! tenant switches, or none does), and carries on with the new instance.
//! Events arriving meanwhile wait in the inbox, so none is lost or
//! reordered.

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::oneshot;
use wsserver_packed as packed;
use wsserver_plugin_bindings::wsserver::plugin::types as wit;

use super::actor_state::{ActorState, PluginShared};
use super::convert;
use super::engine::LoadError;
use super::metrics::CallFailure;
use super::spec::PluginLimits;
use super::version::{Failed, Live, Version};
use crate::protocol::close::INTERNAL_ERROR;
use crate::server::{Connection, ConnectionId, OpenResponse};

/// An open request waiting for the plugin's answer.
pub(crate) struct PendingOpen {
    pub request: wit::OpenRequest,
    pub offered: Vec<String>,
    pub conn: Connection,
    pub reply: oneshot::Sender<OpenResponse>,
}

/// A switch to another version, prepared by the tenant: the new version's
/// instance is already made.
pub(crate) struct SwapOrder {
    pub version: Arc<Version>,
    pub next: Live,
    /// Where the actor says whether the new instance is ready (the state
    /// restored, when both versions export `lifecycle`), or why not.
    pub prepared: mpsc::SyncSender<Result<(), String>>,
    /// The tenant's verdict once every instance has answered: true
    /// switches, false (or a dropped sender) keeps the old version.
    pub verdict: mpsc::Receiver<bool>,
}

/// Events and requests waiting for the actor.
#[derive(Default)]
struct Inbox {
    opens: Vec<PendingOpen>,
    /// Events in the packed layout, ready to hand over as they are.
    events: Vec<u8>,
    /// Connections paused for the plugin's sake (its inbox was too full,
    /// or they went over their rate), resumed after the next batch.
    throttled: Vec<Connection>,
    /// Signalled once everything queued before them has been handled.
    flushes: Vec<oneshot::Sender<()>>,
    swap: Option<SwapOrder>,
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

    /// Resumes `conn` after the next batch, unless the plugin paused it
    /// itself or the host holds replies for it.
    pub fn push_resume(&self, conn: Connection) {
        let mut inbox = self.inbox();
        inbox.throttled.push(conn);
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

    /// Queues a switch to another version, taken before the next batch. A
    /// stopped actor drops the order, which its sender sees.
    pub fn push_swap(&self, order: SwapOrder) {
        let mut inbox = self.inbox();
        if inbox.closed {
            return;
        }
        inbox.swap = Some(order);
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

/// Instantiates `version` once to prove it works, and starts the actor
/// thread of instance `index` of the tenant.
pub(crate) fn start(
    version: Arc<Version>,
    shared: Arc<PluginShared>,
    limits: PluginLimits,
    index: usize,
) -> Result<Arc<PluginHandle>, LoadError> {
    let name = shared.name.clone();
    let fail = |what: &str, e: String| LoadError(format!("plugin {name}: {what}: {e}"));
    let live = version
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
        version,
        live,
    };
    std::thread::Builder::new()
        .name(format!("plugin {name}#{index}"))
        .spawn(move || actor.run())
        .map_err(|e| fail("cannot start its thread", e.to_string()))?;
    Ok(handle)
}

/// Marks the inbox closed however the actor's thread ends, so a swap
/// order never waits for an actor that is gone.
struct ActorExit(Arc<PluginHandle>);

impl Drop for ActorExit {
    fn drop(&mut self) {
        let mut inbox = self.0.inbox();
        inbox.closed = true;
        inbox.swap = None;
    }
}

struct Actor {
    handle: Arc<PluginHandle>,
    /// The version `live` is an instance of.
    version: Arc<Version>,
    live: Live,
}

impl Actor {
    fn actor_state(&mut self) -> &mut ActorState {
        &mut self.live.store.data_mut().actor
    }

    fn run(mut self) {
        let _exit = ActorExit(self.handle.clone());
        let mut events = Vec::new();
        loop {
            let (opens, throttled, flushes, swap) = {
                let mut inbox = self.handle.inbox();
                while inbox.opens.is_empty()
                    && inbox.events.is_empty()
                    && inbox.throttled.is_empty()
                    && inbox.flushes.is_empty()
                    && inbox.swap.is_none()
                    && self.live.store.data().actor.owed.is_empty()
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
                    inbox.swap.take(),
                )
            };
            // Before the batch: everything taken with the order goes to
            // the new version.
            if let Some(order) = swap {
                self.swap(order);
            }
            for open in opens {
                self.open(open);
            }
            let owed = std::mem::take(&mut self.actor_state().owed);
            if !owed.is_empty() {
                events.splice(0..0, owed);
            }
            if !events.is_empty() {
                self.deliver(&events);
                events.clear();
            }
            // Only now: a connection whose replies the batch could not send
            // stays paused until they have left.
            for conn in throttled {
                let actor = &self.live.store.data().actor;
                if !actor.shared.paused_by_plugin(conn.id()) && !actor.is_held(conn.id()) {
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
        live.store.set_epoch_deadline(self.version.deadline_ticks());
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
                    metrics.record_failure(CallFailure::Refused);
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
            self.actor_state().admit(conn);
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
                packed::Event::Connected(id) => self.actor_state().announced(id),
                packed::Event::Disconnected { connection, .. } => ended.push(connection),
                _ => {}
            }
        }
        let deadline = self.version.deadline_ticks();
        let live = &mut self.live;
        live.store.set_epoch_deadline(deadline);
        let metrics = &self.handle.shared.metrics;
        let started = Instant::now();
        let failure = match &live.packed {
            Some(on_events) => match on_events.call(&mut live.store, (batch,)) {
                Ok((commands,)) => {
                    let applied = apply_packed(&mut live.store.data_mut().actor, &commands);
                    if applied.is_err() {
                        metrics.record_failure(CallFailure::Refused);
                    }
                    applied.err()
                }
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
        match self.version.instantiate(actor) {
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

    /// Takes a swap order: prepares the new instance, reports, and switches
    /// if the tenant says so.
    fn swap(&mut self, order: SwapOrder) {
        let SwapOrder {
            version,
            mut next,
            prepared,
            verdict,
        } = order;
        let carried = match self.carry_state(&version, &mut next) {
            Ok(carried) => carried,
            Err(reason) => {
                let _ = prepared.send(Err(reason));
                return;
            }
        };
        // Until the verdict, this instance takes no event: what arrives
        // waits for whichever version wins.
        if prepared.send(Ok(())).is_err() || verdict.recv() != Ok(true) {
            return;
        }
        let shared = self.handle.shared.clone();
        let actor = std::mem::replace(self.actor_state(), ActorState::new(shared));
        next.store.data_mut().actor = actor;
        self.live = next;
        self.version = version;
        if !carried {
            self.actor_state().announce_again();
        }
    }

    /// Hands the plugin's state from the running instance to `next` when
    /// both versions export `lifecycle` (true), or leaves `next` fresh
    /// (false). A failed snapshot poisons the running instance, which is
    /// replaced by a fresh one of its own version.
    fn carry_state(&mut self, version: &Version, next: &mut Live) -> Result<bool, String> {
        if !(self.live.has_lifecycle() && next.has_lifecycle()) {
            return Ok(false);
        }
        let state = match self.live.snapshot(self.version.deadline_ticks()) {
            Ok(state) => state,
            Err(reason) => {
                self.fail(&[], &reason);
                return Err(reason);
            }
        };
        next.restore(&state, version.deadline_ticks())?;
        Ok(true)
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
