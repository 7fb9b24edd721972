//! One plugin instance as an actor: an inbox that connection tasks fill,
//! and the turns the executor pool (`executor.rs`) runs for it.
//!
//! Connection tasks push events into the inbox; the first push schedules
//! the actor on the pool, and its turn hands everything waiting to the
//! guest in one `on-events` call, then applies the commands the guest
//! returned. With `inline_turns` (on by default for built-in components,
//! see `PluginSpec::inline_turns`), when the actor is idle and its turns
//! have been quick (under a millisecond), the pushing connection's thread
//! runs the turn itself: an echo then costs no hop to an executor and
//! back. A turn that runs long sends the actor's turns to the executors
//! for a while, so a slow or looping plugin holds connection threads at
//! most once per period.
//!
//! A plugin may say which methods it keeps as the SDK's defaults (the
//! packed `defaults` command): its open requests are then answered 101
//! without a call or a turn (the connections admitted at the next turn),
//! and the events it ignores (connected, ping) are left out, until the
//! instance goes or the version changes.
//!
//! The wasm instance itself is made on demand: an actor starts without
//! one, makes it when the first event or open request arrives, and drops
//! it again after `hibernate_after` without events (its connections stay
//! open, their state and attachments stay in the host; a plugin exporting
//! `lifecycle` is snapshotted before and restored after).
//!
//! A trap, a memory-cap failure or a missed deadline poisons the instance:
//! the connections whose events were in the failed call are closed with
//! 1011 and the next event gets a fresh instance. Failures of the runtime
//! itself are supervised alike: an instance that cannot be made (out of
//! memory, mappings or the process's instance budget) closes the
//! connections waiting for it with 1011 and refuses new ones with 503; a
//! panic during a turn closes the actor's connections with 1011. Each is
//! logged at error level and counted per tenant.
//!
//! A hot swap is taken between two turns: the actor hands the plugin's
//! state (`lifecycle`) to an instance of the new version that the tenant
//! made beforehand, reports, and takes no event until the tenant's verdict
//! (every instance of a tenant switches, or none does). Events arriving
//! meanwhile wait in the inbox, so none is lost or reordered.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use wsserver_packed as packed;
use wsserver_plugin_bindings::wsserver::plugin::types as wit;

use super::actor_state::{ActorState, PluginShared};
use super::convert;
use super::deadline::Stopwatch;
use super::executor::{Executors, IdleCheck, Lane, LaneMark, Task};
use super::inbox::{Inbox, PendingOpen, SwapOrder, Tally};
use super::metrics::{CallFailure, TurnMetrics};
use super::spec::PluginLimits;
use super::version::{Failed, Live, Version};
use crate::protocol::close::INTERNAL_ERROR;
use crate::server::{Connection, ConnectionId, OpenResponse};

/// The handle connection tasks use to reach a plugin's actor; also the
/// task the executor pool runs.
pub(crate) struct PluginHandle {
    pub shared: Arc<PluginShared>,
    limits: PluginLimits,
    executors: Executors,
    me: Weak<PluginHandle>,
    inbox: Mutex<Inbox>,
    /// Only the executor running a turn locks it (the inbox's `scheduled`
    /// flag makes that one at a time); the watchdog tries it.
    actor: Mutex<Actor>,
    /// No instance now, after hibernation: pings are not delivered (the
    /// host answers them), so they do not wake it.
    hibernated: AtomicBool,
    /// Quick turns may run on the pushing connection's thread
    /// (`PluginSpec::inline_turns`).
    inline: bool,
    /// Until when (the pool's clock, ms) turns go to the executors only: a
    /// turn took longer than [`INLINE_MAX`].
    slow_until: AtomicU64,
    /// Turns so far, to time one in [`TIMED_BY_CPU`] by CPU.
    turns: AtomicU32,
    /// Methods for which the instance said it keeps the SDK's default
    /// (packed command `defaults`, `packed::DEFAULT_*` bits): open requests
    /// answered 101 without a call, events it ignores left out, until the
    /// instance goes or the version changes.
    defaults: AtomicU8,
    /// The executor pool's note on the actor's turns (its lane).
    lane_mark: LaneMark,
    /// The counters of its turns and calls; the tenant's status sums them.
    pub turn_metrics: TurnMetrics,
}

/// A turn that runs (or is blocked) longer than this keeps the actor's
/// turns off connection threads for [`SLOW_FOR`]: a slow plugin must not
/// hold a connection thread. Time waiting for a core does not count.
const INLINE_MAX: Duration = Duration::from_millis(1);
const SLOW_FOR: Duration = Duration::from_secs(10);
/// One turn in this many is timed by CPU for the slow-turn judgment (see
/// `deadline::Stopwatch`): a plugin slow on every turn is caught within
/// this many, one that loops or sleeps on its first.
const TIMED_BY_CPU: u32 = 8;
/// Turns run in a row on a connection's thread before the rest goes to
/// the executors.
const INLINE_TURNS: usize = 2;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl PluginHandle {
    /// An actor of `version` for the tenant `shared`, without an instance
    /// until work arrives; `inline`: its quick turns may run on connection
    /// threads.
    pub fn new(
        version: Arc<Version>,
        shared: Arc<PluginShared>,
        limits: PluginLimits,
        executors: Executors,
        inline: bool,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            actor: Mutex::new(Actor {
                version,
                slot: Slot::Parked(ActorState::new(shared.clone())),
                snapshot: None,
                pending: None,
                last_active: Instant::now(),
                watched: false,
            }),
            shared,
            limits,
            executors,
            me: me.clone(),
            inbox: Mutex::new(Inbox::default()),
            hibernated: AtomicBool::new(false),
            inline,
            slow_until: AtomicU64::new(0),
            turns: AtomicU32::new(0),
            defaults: AtomicU8::new(0),
            lane_mark: LaneMark::default(),
            turn_metrics: TurnMetrics::default(),
        })
    }

    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        lock(&self.inbox)
    }

    /// Schedules the actor unless it is already queued or running.
    fn wake(&self, mut inbox: MutexGuard<'_, Inbox>) {
        if inbox.scheduled {
            return;
        }
        inbox.scheduled = true;
        drop(inbox);
        self.schedule();
    }

    /// Queues packed events of `conn`. Past the plugin's limit of queued
    /// bytes the connection is paused until the actor catches up. An idle
    /// actor whose turns are quick runs its turn here, on the connection's
    /// thread: no hop to an executor and back.
    pub fn push(&self, events: &mut Vec<u8>, tally: Tally, conn: &Connection) {
        let mut inbox = self.inbox();
        inbox.queue_events(events, tally);
        if inbox.events.len() > self.limits.max_queued_bytes {
            conn.pause_data();
            inbox.throttled.push(conn.clone());
        }
        self.run_here(inbox);
    }

    /// Runs the actor's turn on this (the pushing connection's) thread
    /// when it is idle and its turns are quick; otherwise schedules it.
    fn run_here(&self, mut inbox: MutexGuard<'_, Inbox>) {
        if inbox.scheduled {
            return;
        }
        inbox.scheduled = true;
        drop(inbox);
        if !self.runs_inline() {
            return self.schedule();
        }
        for _ in 0..INLINE_TURNS {
            let again = Task::turn(self, Lane::Foreground);
            self.turn_metrics.record_inline_turn();
            let quick = self.runs_inline();
            if quick {
                self.executors.count_inline_turn(&self.lane_mark);
            }
            if !again {
                return;
            }
            if !quick {
                break;
            }
        }
        self.schedule();
    }

    fn runs_inline(&self) -> bool {
        if !self.inline {
            return false;
        }
        // Zero: never slow, or forgiven (no clock to read).
        let until = self.slow_until.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        let forgiven = until <= self.executors.now_ms();
        if forgiven {
            self.slow_until.store(0, Ordering::Relaxed);
        }
        forgiven
    }

    /// Queues a turn on the executors; the caller has set `scheduled`.
    fn schedule(&self) {
        if let Some(me) = self.me.upgrade() {
            self.executors.schedule(me);
        }
    }

    /// Resumes `conn` after the next batch, unless the plugin paused it
    /// itself or the host holds replies for it.
    pub fn push_resume(&self, conn: Connection) {
        let mut inbox = self.inbox();
        inbox.throttled.push(conn);
        self.wake(inbox);
    }

    /// Whether the instance keeps the default of `method` (a
    /// `packed::DEFAULT_*` bit): see [`admit`](Self::admit) and
    /// [`announce`](Self::announce).
    pub fn keeps_default(&self, method: u8) -> bool {
        self.defaults.load(Ordering::Acquire) & method != 0
    }

    /// Admits `conn`, accepted without asking the instance, at its next
    /// turn; it schedules none (the connection's first event follows).
    pub fn admit(&self, conn: Connection) {
        self.inbox().admitted.push(conn);
    }

    /// Notes, at the next turn, that connection `id` is open, when its
    /// `connected` event is left out (the instance ignores them); it
    /// schedules none.
    pub fn announce(&self, id: ConnectionId) {
        self.inbox().announced.push(id);
    }

    pub fn push_open(&self, open: PendingOpen) {
        let mut inbox = self.inbox();
        inbox.opens.push(open);
        self.run_here(inbox);
    }

    /// Signals `done` once the events queued so far have been handled and
    /// their commands applied.
    pub fn push_flush(&self, done: oneshot::Sender<()>) {
        let mut inbox = self.inbox();
        inbox.flushes.push(done);
        self.wake(inbox);
    }

    /// Queues a switch to another version, taken before the next batch.
    pub fn push_swap(&self, order: SwapOrder) {
        let mut inbox = self.inbox();
        inbox.swap = Some(order);
        self.wake(inbox);
    }

    /// The tenant's verdict on the swap this actor has prepared.
    pub fn push_verdict(&self, commit: bool) {
        let mut inbox = self.inbox();
        inbox.verdict = Some(commit);
        self.wake(inbox);
    }

    /// Bytes of (packed) events waiting for the actor.
    pub fn queued_bytes(&self) -> usize {
        self.inbox().events.len()
    }

    /// Whether the actor has no instance now after hibernating.
    pub fn is_hibernated(&self) -> bool {
        self.hibernated.load(Ordering::Acquire)
    }
}

impl Task for PluginHandle {
    fn lane_mark(&self) -> &LaneMark {
        &self.lane_mark
    }

    fn turn(&self, lane: Lane) -> bool {
        if lane == Lane::Background {
            self.turn_metrics.record_background_turn();
        }
        let mut actor = lock(&self.actor);
        // Making the instance is not the plugin's slowness.
        let judged = matches!(actor.slot, Slot::Live(_));
        let by_cpu = self
            .turns
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(TIMED_BY_CPU);
        // The turn's readings of the clock, shared by the stopwatch, the
        // call's budget and metrics, and the hibernation clock (each
        // reading costs tens of nanoseconds, a turn a few microseconds).
        let started = Instant::now();
        let stopwatch = Stopwatch::start(started, by_cpu);
        let turned = catch_unwind(AssertUnwindSafe(|| actor.turn(self, started)));
        let Turned { handled, ended } = turned.unwrap_or_else(|panic| {
            actor.recover(self, &panic_message(panic.as_ref()));
            Turned::default()
        });
        if judged && stopwatch.exceeded(INLINE_MAX, ended.unwrap_or_else(Instant::now)) {
            let until = self.executors.now_ms() + SLOW_FOR.as_millis() as u64;
            self.slow_until.store(until, Ordering::Relaxed);
        }
        let owed = !actor.state().owed.is_empty();
        let waiting_verdict = actor.pending.is_some();
        let mut inbox = self.inbox();
        inbox.recycle(handled);
        let more = if waiting_verdict {
            inbox.verdict.is_some()
        } else {
            inbox.has_work() || owed
        };
        if !more {
            inbox.scheduled = false;
        }
        more
    }

    fn check_idle(&self, now: Instant) -> IdleCheck {
        let Some(after) = self.limits.hibernate_after else {
            return IdleCheck::Forget;
        };
        let Ok(mut actor) = self.actor.try_lock() else {
            return IdleCheck::Keep;
        };
        if !matches!(actor.slot, Slot::Live(_)) {
            actor.watched = false;
            return IdleCheck::Forget;
        }
        if now.duration_since(actor.last_active) >= after {
            drop(actor);
            let mut inbox = self.inbox();
            inbox.hibernate = true;
            self.wake(inbox);
        }
        IdleCheck::Keep
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// What a turn leaves to its end.
#[derive(Default)]
struct Turned {
    /// The buffer of the events it handled, for the next batch.
    handled: Vec<u8>,
    /// When its work ended (a reading of the clock), if it had any.
    ended: Option<Instant>,
}

/// The instance, or the plugin's connection state while there is none.
enum Slot {
    Live(Box<Live>),
    Parked(ActorState),
}

/// A prepared swap waiting for the tenant's verdict.
struct PendingSwap {
    version: Arc<Version>,
    next: Live,
    /// The state moved through `lifecycle` (else the new version hears of
    /// the open connections again).
    carried: bool,
}

struct Actor {
    /// The version the instance is (or will be) made from.
    version: Arc<Version>,
    slot: Slot,
    /// The plugin's state from `lifecycle.snapshot`, taken when it
    /// hibernated: the next instance is restored from it.
    snapshot: Option<Vec<u8>>,
    pending: Option<PendingSwap>,
    /// When the last turn with work ended: hibernation counts from here.
    last_active: Instant,
    /// Registered with the watchdog's hibernation sweep.
    watched: bool,
}

impl Actor {
    fn state(&self) -> &ActorState {
        match &self.slot {
            Slot::Live(live) => &live.store.data().actor,
            Slot::Parked(state) => state,
        }
    }

    fn state_mut(&mut self) -> &mut ActorState {
        match &mut self.slot {
            Slot::Live(live) => &mut live.store.data_mut().actor,
            Slot::Parked(state) => state,
        }
    }

    /// Drops the instance (if any), keeping the plugin's connection state;
    /// what the instance declared (its defaults) goes with it.
    fn park(&mut self, handle: &PluginHandle) {
        handle.defaults.store(0, Ordering::Release);
        let shared = self.state().shared.clone();
        let slot = std::mem::replace(&mut self.slot, Slot::Parked(ActorState::new(shared)));
        self.slot = Slot::Parked(match slot {
            Slot::Live(live) => live.store.into_data().actor,
            Slot::Parked(state) => state,
        });
    }

    /// One turn, begun at `started`.
    fn turn(&mut self, handle: &PluginHandle, started: Instant) -> Turned {
        let (admitted, announced, opens, mut events, mut tally, throttled, flushes, hibernate) = {
            let mut inbox = handle.inbox();
            if self.pending.is_some() {
                let verdict = inbox.verdict.take();
                drop(inbox);
                if let Some(commit) = verdict {
                    self.finish_swap(handle, commit);
                }
                return Turned::default();
            }
            if let Some(order) = inbox.swap.take() {
                drop(inbox);
                self.begin_swap(handle, order);
                return Turned::default();
            }
            inbox.verdict = None;
            (
                std::mem::take(&mut inbox.admitted),
                std::mem::take(&mut inbox.announced),
                std::mem::take(&mut inbox.opens),
                std::mem::take(&mut inbox.events),
                std::mem::take(&mut inbox.tally),
                std::mem::take(&mut inbox.throttled),
                std::mem::take(&mut inbox.flushes),
                std::mem::take(&mut inbox.hibernate),
            )
        };
        let owed = std::mem::take(&mut self.state_mut().owed);
        if !owed.is_empty() {
            let errors = packed::events(&owed).count();
            tally.add(Tally {
                events: errors,
                bookkeeping: false,
            });
            events.splice(0..0, owed);
        }
        let worked = !admitted.is_empty() || !opens.is_empty() || !events.is_empty();
        for conn in admitted {
            self.state_mut().admit(conn);
        }
        for id in announced {
            self.state_mut().announced(id);
        }
        // Open requests' calls time themselves: the events' call starts
        // after them.
        let call_start = if opens.is_empty() {
            started
        } else {
            for open in opens {
                self.open(handle, open);
            }
            Instant::now()
        };
        let mut ended = None;
        if !events.is_empty() {
            ended = self.deliver(handle, &events, tally, call_start);
        }
        // Only now: a connection whose replies the batch could not send
        // stays paused until they have left.
        for conn in throttled {
            let state = self.state();
            if !state.shared.paused_by_plugin(conn.id()) && !state.is_held(conn.id()) {
                conn.resume_data();
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
        if worked {
            let ended = ended.unwrap_or_else(Instant::now);
            self.last_active = ended;
            return Turned {
                handled: events,
                ended: Some(ended),
            };
        } else if hibernate
            && handle
                .limits
                .hibernate_after
                .is_some_and(|after| self.last_active.elapsed() >= after)
        {
            self.hibernate(handle);
        }
        Turned::default()
    }

    /// Makes an instance if there is none (restoring the hibernated
    /// state); on failure the reason, logged and counted.
    fn ensure_live(&mut self, handle: &PluginHandle) -> Result<(), String> {
        if matches!(self.slot, Slot::Live(_)) {
            return Ok(());
        }
        let shared = handle.shared.clone();
        let Slot::Parked(state) =
            std::mem::replace(&mut self.slot, Slot::Parked(ActorState::new(shared)))
        else {
            unreachable!("checked above");
        };
        let started = Instant::now();
        let mut live = match self.version.instantiate(state) {
            Ok(live) => live,
            Err(failed) => {
                let Failed { actor, reason } = *failed;
                self.slot = Slot::Parked(actor);
                let reason = format!("cannot create an instance: {reason}");
                handle.shared.metrics.record_instance_failure();
                log_error(handle, &reason);
                return Err(reason);
            }
        };
        let metrics = &handle.shared.metrics;
        if let Some(state) = self.snapshot.take()
            && live.has_lifecycle()
            && let Err(reason) = live.restore(&state, self.version.call_deadline())
        {
            log_error(
                handle,
                &format!("the state saved at hibernation is lost: {reason}"),
            );
        }
        metrics.record_instantiation(started.elapsed());
        if handle.hibernated.swap(false, Ordering::AcqRel) {
            metrics.woke();
        }
        self.slot = Slot::Live(Box::new(live));
        self.watch_idle(handle);
        Ok(())
    }

    /// Registers with the hibernation sweep, once.
    fn watch_idle(&mut self, handle: &PluginHandle) {
        if handle.limits.hibernate_after.is_some() && !self.watched {
            self.watched = true;
            let me: Weak<dyn Task> = handle.me.clone();
            handle.executors.watch_idle(me);
        }
    }

    /// Drops the instance after `hibernate_after` without events; a plugin
    /// with `lifecycle` leaves its state in a snapshot.
    fn hibernate(&mut self, handle: &PluginHandle) {
        let Slot::Live(live) = &mut self.slot else {
            return;
        };
        if live.has_lifecycle() {
            match live.snapshot(self.version.call_deadline()) {
                Ok(state) => self.snapshot = Some(state),
                Err(reason) => {
                    log_error(handle, &format!("hibernating without its state: {reason}"))
                }
            }
        }
        self.park(handle);
        handle.inbox().release_buffer();
        handle.hibernated.store(true, Ordering::Release);
        handle.shared.metrics.hibernated();
    }

    fn open(&mut self, handle: &PluginHandle, open: PendingOpen) {
        let PendingOpen {
            request,
            offered,
            conn,
            reply,
        } = open;
        if let Err(reason) = self.ensure_live(handle) {
            // Out of a resource: refused at once, with the reason.
            let _ = reply.send(OpenResponse::reject(503).with_header("X-Wsserver-Reason", reason));
            return;
        }
        let Slot::Live(live) = &mut self.slot else {
            return;
        };
        live.start_call(self.version.call_deadline());
        let started = Instant::now();
        let answer = live
            .plugin
            .wsserver_plugin_handler()
            .call_on_open_request(&mut live.store, &request);
        let metrics = &handle.shared.metrics;
        metrics.record_call(started.elapsed(), 1);
        let response = match answer {
            Ok(resp) => match convert::open_response(resp, &offered) {
                Ok(resp) => resp,
                Err(mistake) => {
                    metrics.record_failure(CallFailure::Refused);
                    log_error(
                        handle,
                        &format!("connection {}: plugin {mistake}; answering 500", conn.id()),
                    );
                    OpenResponse::reject(500)
                }
            },
            Err(e) => {
                metrics.record_failure(CallFailure::of(&e));
                self.fail(handle, &[], &format!("{e:#}"));
                OpenResponse::reject(500)
            }
        };
        if response.status_code == 101 {
            self.state_mut().admit(conn);
        }
        let _ = reply.send(response);
    }

    /// One `on-events` call for everything waiting (`batch`, packed, of
    /// which `tally` tells), then its commands; the call starts at (a
    /// reading of the clock taken just before) `now`. Returns when the
    /// call ended, if it was made.
    fn deliver(
        &mut self,
        handle: &PluginHandle,
        batch: &[u8],
        tally: Tally,
        now: Instant,
    ) -> Option<Instant> {
        let (mut ended, mut released) = (Vec::new(), Vec::new());
        if tally.bookkeeping {
            for event in packed::events(batch).flatten() {
                match event {
                    // Room again: commands held for it go first.
                    packed::Event::ReadyToSend(id) => {
                        self.state_mut().release_held(id);
                        released.push(id);
                    }
                    packed::Event::Connected(id) => self.state_mut().announced(id),
                    packed::Event::Disconnected { connection, .. } => ended.push(connection),
                    _ => {}
                }
            }
        }
        let involved = || -> Vec<ConnectionId> {
            packed::events(batch)
                .flatten()
                .filter_map(|e| e.connection())
                .collect()
        };
        // Making an instance takes a while: the call starts after it.
        let now = match self.slot {
            Slot::Live(_) => now,
            Slot::Parked(_) => {
                if let Err(reason) = self.ensure_live(handle) {
                    self.fail(handle, &involved(), &reason);
                    self.forget(released, ended);
                    return None;
                }
                Instant::now()
            }
        };
        let (failure, call_ended) = self.call_on_events(handle, batch, tally.events, now);
        if let Some(reason) = failure {
            self.fail(handle, &involved(), &reason);
        }
        self.forget(released, ended);
        Some(call_ended)
    }

    /// After a batch: resumes the clients whose held commands left, and
    /// forgets the connections that ended.
    fn forget(&mut self, released: Vec<ConnectionId>, ended: Vec<ConnectionId>) {
        let state = self.state_mut();
        for id in released {
            state.resume_released(id);
        }
        for id in ended {
            state.forget(id);
        }
    }

    /// The guest call of [`deliver`](Self::deliver), started at `started`:
    /// a failure's reason, and when it ended.
    fn call_on_events(
        &mut self,
        handle: &PluginHandle,
        batch: &[u8],
        delivered: usize,
        started: Instant,
    ) -> (Option<String>, Instant) {
        let Slot::Live(live) = &mut self.slot else {
            return (Some("no instance".to_owned()), started);
        };
        live.start_call_at(self.version.call_deadline(), started);
        let metrics = &handle.shared.metrics;
        let failure = match &live.packed {
            Some(on_events) => match on_events.call(&mut live.store, (batch,)) {
                Ok((commands,)) => {
                    let actor = &mut live.store.data_mut().actor;
                    let applied = apply_packed(handle, actor, &commands, batch);
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
        let ended = Instant::now();
        handle
            .turn_metrics
            .record_call(ended.saturating_duration_since(started), delivered);
        (failure, ended)
    }

    /// The instance failed (or could not be made): close the connections
    /// involved with 1011 and drop the instance; the next event gets a
    /// fresh one.
    fn fail(&mut self, handle: &PluginHandle, involved: &[ConnectionId], reason: &str) {
        let why = describe_failure(reason);
        log_error(handle, &format!("instance failed ({why}); replacing it"));
        let state = self.state();
        let mut closed = involved.to_vec();
        closed.sort_unstable();
        closed.dedup();
        for id in closed {
            if let Some(conn) = state.connections.get(&id) {
                let _ = conn.close(INTERNAL_ERROR, "plugin failed");
            }
        }
        self.park(handle);
        self.snapshot = None;
    }

    /// A turn panicked: whatever the instance was doing is suspect, so
    /// every connection it served closes with 1011 and the next event gets
    /// a fresh instance.
    fn recover(&mut self, handle: &PluginHandle, panic: &str) {
        handle.shared.metrics.record_instance_failure();
        log_error(
            handle,
            &format!("the plugin runtime failed ({panic}); closing its connections with 1011"),
        );
        self.pending = None;
        self.park(handle);
        self.snapshot = None;
        for conn in self.state().connections.values() {
            let _ = conn.close(INTERNAL_ERROR, "plugin runtime failure");
        }
    }

    /// Takes a swap order: prepares the new instance and reports; the
    /// switch waits for the tenant's verdict.
    fn begin_swap(&mut self, handle: &PluginHandle, order: SwapOrder) {
        let SwapOrder {
            version,
            mut next,
            prepared,
        } = order;
        let carried = match self.carry_state(handle, &version, &mut next) {
            Ok(carried) => carried,
            Err(reason) => {
                let _ = prepared.send(Err(reason));
                return;
            }
        };
        if prepared.send(Ok(())).is_ok() {
            // Until the verdict, this actor takes no event: what arrives
            // waits for whichever version wins.
            self.pending = Some(PendingSwap {
                version,
                next,
                carried,
            });
        }
    }

    fn finish_swap(&mut self, handle: &PluginHandle, commit: bool) {
        let Some(PendingSwap {
            version,
            mut next,
            carried,
        }) = self.pending.take()
        else {
            return;
        };
        if !commit {
            return;
        }
        self.park(handle);
        let Slot::Parked(state) = std::mem::replace(
            &mut self.slot,
            Slot::Parked(ActorState::new(handle.shared.clone())),
        ) else {
            unreachable!("parked above");
        };
        next.store.data_mut().actor = state;
        self.slot = Slot::Live(Box::new(next));
        self.version = version;
        self.snapshot = None;
        if handle.hibernated.swap(false, Ordering::AcqRel) {
            handle.shared.metrics.woke();
        }
        self.last_active = Instant::now();
        self.watch_idle(handle);
        if !carried {
            self.state_mut().announce_again();
        }
    }

    /// Hands the plugin's state from the running instance (or the snapshot
    /// it hibernated with) to `next` when both versions export `lifecycle`
    /// (true), or leaves `next` fresh (false). A failed snapshot poisons
    /// the running instance, which is dropped.
    fn carry_state(
        &mut self,
        handle: &PluginHandle,
        version: &Version,
        next: &mut Live,
    ) -> Result<bool, String> {
        if !(self.version.has_lifecycle() && next.has_lifecycle()) {
            return Ok(false);
        }
        let state = match &mut self.slot {
            Slot::Live(live) => match live.snapshot(self.version.call_deadline()) {
                Ok(state) => Some(state),
                Err(reason) => {
                    self.fail(handle, &[], &reason);
                    return Err(reason);
                }
            },
            Slot::Parked(_) => self.snapshot.clone(),
        };
        if let Some(state) = state {
            next.restore(&state, version.call_deadline())?;
        }
        Ok(true)
    }
}

fn log_error(handle: &PluginHandle, message: &str) {
    tracing::error!(plugin = %handle.shared.name, "{message}");
}

/// Applies the commands of a packed batch in order; sends of the events'
/// own bytes are taken from `events`, the batch they answer. A batch that
/// does not follow the layout is the plugin's failure, like a trap: the
/// commands before the malformed record have been applied.
fn apply_packed(
    handle: &PluginHandle,
    actor: &mut ActorState,
    commands: &[u8],
    events: &[u8],
) -> Result<(), String> {
    for command in packed::commands(commands) {
        let command = command.map_err(|e| format!("returned a {e}"))?;
        if let packed::Command::Defaults(methods) = command {
            handle.defaults.fetch_or(methods, Ordering::AcqRel);
            continue;
        }
        match command.with_input(events) {
            Some(command) => actor.apply(command),
            None => return Err("returned a send of bytes outside its batch of events".to_owned()),
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
