//! One plugin instance as an actor: an inbox that connection tasks fill,
//! and the turns the executor pool (`executor.rs`) runs for it. This file
//! is the handle connection tasks hold; the actor behind it (its instance
//! and its calls into the guest) is in `actor`, a part of this module.
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

use actor::{Actor, Slot, Turned};

use super::actor_state::PluginShared;
use super::deadline::Stopwatch;
use super::executor::{Executors, IdleCheck, Lane, LaneMark, Task};
use super::inbox::{Inbox, PendingOpen, SwapOrder, Tally};
use super::metrics::TurnMetrics;
use super::spec::PluginLimits;
use super::version::Version;
use crate::server::{Connection, ConnectionId};

mod actor;

/// The handle connection tasks use to reach a plugin's actor; also the
/// task the executor pool runs.
pub(crate) struct PluginHandle {
    pub shared: Arc<PluginShared>,
    pub(super) limits: PluginLimits,
    pub(super) executors: Executors,
    pub(super) me: Weak<PluginHandle>,
    inbox: Mutex<Inbox>,
    /// Only the executor running a turn locks it (the inbox's `scheduled`
    /// flag makes that one at a time); the watchdog tries it.
    actor: Mutex<Actor>,
    /// No instance now, after hibernation: pings are not delivered (the
    /// host answers them), so they do not wake it.
    pub(super) hibernated: AtomicBool,
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
    pub(super) defaults: AtomicU8,
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
            actor: Mutex::new(Actor::new(version, shared.clone())),
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

    pub(super) fn inbox(&self) -> MutexGuard<'_, Inbox> {
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

    /// Queues packed events of `conns`. Past the plugin's limit of queued
    /// bytes the connections are paused until the actor catches up. An
    /// idle actor whose turns are quick runs its turn here, on the
    /// connections' thread: no hop to an executor and back.
    pub fn push(&self, events: &mut Vec<u8>, tally: Tally, conns: &[Connection]) {
        let mut inbox = self.inbox();
        inbox.queue_events(events, tally);
        if inbox.events.len() > self.limits.max_queued_bytes {
            for conn in conns {
                conn.pause_data();
                inbox.throttled.push(conn.clone());
            }
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

    /// Whether the actor has no events waiting and is neither queued nor
    /// running.
    pub fn is_idle(&self) -> bool {
        let inbox = self.inbox();
        inbox.events.is_empty() && !inbox.scheduled
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
