//! The fixed pool of executor threads that run every plugin instance.
//!
//! An instance (an actor, see `instance/mod.rs`) with work is queued here once;
//! an executor takes it, runs one turn (everything waiting, in one guest
//! call) and queues it again at the back if more has arrived, so busy
//! tenants take turns. The thread count follows the cores, never the number
//! of tenants or instances: threads and their stack and signal-stack
//! mappings are what a thread per instance ran out of.
//!
//! Two lanes. A turn that uses [`HEAVY_TURN`] of CPU time or more (a
//! tenant whose clients flood it, or a CPU-heavy plugin) while other
//! instances' quick
//! turns ran makes its instance *heavy*: its next turns run on background
//! executors, threads with a lower CPU priority ([`BACKGROUND_NICE`]),
//! until one of its turns is short, or long with no quick turn beside it
//! (a busy tenant alone on the server keeps the foreground).
//! When the cores are contended, the kernel then runs the connection
//! threads and the foreground executors, which serve the other tenants'
//! quick turns, before a heavy tenant's work: a flood slows its own
//! tenant, not its neighbours. Background executors are started while
//! heavy work waits (one per core, plus spares) and leave once idle.
//!
//! Calls are synchronous (about a third of the cost of an async call, see
//! NOTES-wasm.md), so a turn cannot be suspended halfway. A turn that runs
//! longer than [`SLICE`] (a looping or CPU-heavy plugin, until its call
//! deadline ends it) no longer counts as an executor: a watchdog starts a
//! spare one in its lane, so the other tenants keep the pool's full width.
//! Spares are bounded ([`RuntimeOptions::max_spare`]) and leave once idle.
//!
//! The same watchdog asks idle instances to hibernate.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::deadline::thread_cpu_time;
use super::idle_park::Parked;

/// A turn running longer than this frees its executor's place for a spare.
pub const SLICE: Duration = Duration::from_millis(10);
/// How often the watchdog looks at busy executors and idle instances.
const WATCH_EVERY: Duration = Duration::from_millis(5);
/// The longest the watchdog sleeps with nothing to watch (it is woken
/// when work is queued or an instance is to be swept).
const IDLE_PARK: Duration = Duration::from_secs(1);
/// A spare or background executor idle this long leaves.
const SPARE_IDLE: Duration = Duration::from_secs(2);
/// A turn using at least this much CPU time makes its task heavy
/// (background lane). An echo's turn takes microseconds; a flooded
/// tenant's batch of thousands of events, or a CPU-heavy call, takes
/// longer. CPU time, not wall time: a quick turn that waited for a core
/// is not heavy (else, once in the background, its waits there would keep
/// it there).
const HEAVY_TURN: Duration = Duration::from_micros(500);
/// The background executors' nice value (the foreground runs at the
/// process's own, 0 by default). Raising it needs no privilege; at 10 a
/// thread gets about a tenth of a contended core beside one at 0, and all
/// of an idle one.
const BACKGROUND_NICE: i32 = 10;

/// Something an executor runs: one turn of an instance.
pub(crate) trait Task: Send + Sync {
    /// Runs one turn in `lane`; true asks to be queued again (more work
    /// arrived).
    fn turn(&self, lane: Lane) -> bool;
    /// Where the pool keeps what chooses the task's lane.
    fn lane_mark(&self) -> &LaneMark;
    /// Called by the watchdog; may schedule the task to hibernate.
    fn check_idle(&self, now: Instant) -> IdleCheck;
}

/// What the pool keeps in each task to choose its lane.
#[derive(Default)]
pub(crate) struct LaneMark {
    /// The last turn was heavy: the next ones run in the background.
    heavy: AtomicBool,
    /// The task's own quick turns. The pool counts every quick turn, and
    /// a task's previous turn may be counted on one executor after its
    /// next turn started on another: the difference is other tasks'.
    quick_turns: AtomicU64,
}

/// What a registered task said to the watchdog's idle check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleCheck {
    /// Still has an instance; look again later.
    Keep,
    /// Has no instance (hibernated or gone): stop looking until it
    /// registers again.
    Forget,
}

/// The pool's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Executor threads running plugin instances; default one per core.
    pub executors: usize,
    /// Extra executors started while others are held by long turns.
    pub max_spare: usize,
    /// Live instances the process may hold at once, all tenants together;
    /// past it an instance cannot be created (new connections get 503).
    /// Default: what `vm.max_map_count` leaves room for.
    pub max_instances: usize,
    /// Every tenant's quick turns on the connection's thread (true), or
    /// none (false), whatever the tenants ask; None leaves it to each
    /// tenant (`PluginSpec::inline_turns`).
    pub inline_turns: Option<bool>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            executors: cores,
            // Idle, with the server's own workers (one per core) and a
            // few helpers, threads stay within 2 x cores + 16; under
            // heavy load the background lane adds up to one per core.
            max_spare: 8,
            max_instances: default_max_instances(),
            inline_turns: None,
        }
    }
}

/// Memory mappings one live instance takes (its linear memory with a
/// copy-on-write image: 4; tables and the rest: about 1).
const MAPPINGS_PER_INSTANCE: usize = 5;
/// Mappings left for everything else (threads, libraries, the heap).
const MAPPINGS_RESERVED: usize = 8192;

/// The instances `vm.max_map_count` leaves room for, so that creating one
/// fails cleanly here instead of deep inside mmap.
fn default_max_instances() -> usize {
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(65_530);
    (max_map_count.saturating_sub(MAPPINGS_RESERVED) / MAPPINGS_PER_INSTANCE).max(16)
}

/// The pool; cloning shares it. [`shutdown`](Self::shutdown) lets its
/// threads finish what is queued and end.
#[derive(Clone)]
pub(crate) struct Executors {
    pool: Arc<Pool>,
}

struct Pool {
    options: RuntimeOptions,
    queue: Mutex<Queue>,
    /// Signalled when a lane's queue gets work (by lane).
    ready: [Condvar; 2],
    /// The executors running now.
    executors: Mutex<Vec<Executor>>,
    epoch: Instant,
    /// Tasks holding an instance, for the hibernation sweep.
    live: Mutex<Vec<Weak<dyn Task>>>,
    /// Turns shorter than [`HEAVY_TURN`] so far: a long turn that saw
    /// this change had quick work beside it to make way for.
    quick_turns: AtomicU64,
    stop: AtomicBool,
    /// The watchdog's thread, to wake it from its idle park.
    watchdog: OnceLock<Thread>,
    /// The watchdog is parked: nothing queued, no instance to sweep.
    watchdog_parked: Parked,
    /// The longest the watchdog stays parked.
    idle_park: Duration,
}

/// A lane of the pool: the tasks it queues and the executors that take
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Quick turns, at the process's CPU priority.
    Foreground = 0,
    /// Heavy tasks' turns, at [`BACKGROUND_NICE`].
    Background = 1,
}

impl Lane {
    fn of(task: &dyn Task) -> Self {
        if task.lane_mark().heavy.load(Ordering::Relaxed) {
            Self::Background
        } else {
            Self::Foreground
        }
    }
}

/// One executor thread, as the watchdog sees it.
struct Executor {
    lane: Lane,
    /// When its current turn started (ms since the pool's `epoch`), or 0
    /// when it waits for work.
    busy_since: Arc<AtomicU64>,
}

#[derive(Default)]
struct Queue {
    /// Runnable tasks, by lane.
    runnable: [VecDeque<Arc<dyn Task>>; 2],
    /// Executors waiting for work, by lane.
    waiting: [usize; 2],
}

impl Executors {
    pub fn start(options: RuntimeOptions) -> std::io::Result<Self> {
        Self::start_parking_for(options, IDLE_PARK)
    }

    /// [`start`](Self::start) with the watchdog's idle park bounded by
    /// `idle_park` (a test sets it long, so only a wake-up ends it).
    fn start_parking_for(options: RuntimeOptions, idle_park: Duration) -> std::io::Result<Self> {
        let pool = Arc::new(Pool {
            options,
            idle_park,
            queue: Mutex::default(),
            ready: [Condvar::new(), Condvar::new()],
            executors: Mutex::default(),
            epoch: Instant::now(),
            live: Mutex::default(),
            quick_turns: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            watchdog: OnceLock::new(),
            watchdog_parked: Parked::new(),
        });
        for _ in 0..pool.options.executors.max(1) {
            pool.spawn_executor(Lane::Foreground, false)?;
        }
        let watched = pool.clone();
        let watchdog = std::thread::Builder::new()
            .name("plugin-watchdog".into())
            .spawn(move || watched.watch())?;
        let _ = pool.watchdog.set(watchdog.thread().clone());
        Ok(Self { pool })
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.pool.options
    }

    /// Queues one turn of `task`. The caller makes sure a task is queued
    /// at most once at a time.
    pub fn schedule(&self, task: Arc<dyn Task>) {
        self.pool.push(task);
    }

    /// Counts a quick turn run on a server thread (an inline turn): a
    /// long turn beside it is heavy, as beside one run here.
    pub fn count_inline_turn(&self, mark: &LaneMark) {
        self.pool.count_quick_turn(mark);
    }

    /// Milliseconds on the pool's clock (never 0).
    pub fn now_ms(&self) -> u64 {
        self.pool.now_ms()
    }

    /// Lets the watchdog check `task` for hibernation until it answers
    /// [`IdleCheck::Forget`].
    pub fn watch_idle(&self, task: Weak<dyn Task>) {
        lock(&self.pool.live).push(task);
        self.pool.wake_watchdog();
    }

    /// Stops the pool once the turns queued now have run.
    pub fn shutdown(&self) {
        self.pool.stop.store(true, Ordering::Release);
        {
            let _queue = self.pool.queue();
            for ready in &self.pool.ready {
                ready.notify_all();
            }
        }
        self.pool.wake_watchdog();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.queue)
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means idle.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Queues `task` in its lane and wakes an executor of that lane.
    fn push(&self, task: Arc<dyn Task>) {
        let lane = Lane::of(task.as_ref());
        {
            let mut queue = self.queue();
            queue.runnable[lane as usize].push_back(task);
            if queue.waiting[lane as usize] > 0 {
                self.ready[lane as usize].notify_one();
            }
        }
        self.wake_watchdog();
    }

    /// Wakes the watchdog if it parked. Called after the queue or the
    /// sweep list got work (see `idle_park`).
    fn wake_watchdog(&self) {
        if self.watchdog_parked.any()
            && let Some(watchdog) = self.watchdog.get()
        {
            watchdog.unpark();
        }
    }

    /// Whether the watchdog has anything to look at: work queued (an
    /// executor may be held by a long turn) or instances to sweep.
    fn needs_watching(&self) -> bool {
        let queued = {
            let queue = self.queue();
            queue.runnable.iter().any(|lane| !lane.is_empty())
        };
        queued || !lock(&self.live).is_empty()
    }

    fn spawn_executor(self: &Arc<Self>, lane: Lane, spare: bool) -> std::io::Result<()> {
        let busy = Arc::new(AtomicU64::new(0));
        lock(&self.executors).push(Executor {
            lane,
            busy_since: busy.clone(),
        });
        let name = match (lane, spare) {
            (Lane::Foreground, false) => "plugin-exec",
            (Lane::Foreground, true) => "plugin-spare",
            (Lane::Background, _) => "plugin-background",
        };
        let (pool, mine) = (self.clone(), busy.clone());
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                if lane == Lane::Background {
                    lower_priority();
                }
                // Background executors come and go with heavy work.
                pool.run(lane, &mine, spare || lane == Lane::Background)
            });
        if spawned.is_err() {
            self.leave(&busy);
        }
        spawned.map(drop)
    }

    /// An executor: takes its lane's turns until the pool stops (or, when
    /// `leaves_idle`, until it has been idle a while). A task is queued
    /// again in the lane its turn's length asks for.
    fn run(self: Arc<Self>, lane: Lane, busy: &AtomicU64, leaves_idle: bool) {
        let at = lane as usize;
        loop {
            let task = {
                let mut queue = self.queue();
                loop {
                    if let Some(task) = queue.runnable[at].pop_front() {
                        break task;
                    }
                    if self.stop.load(Ordering::Acquire) {
                        return self.leave(busy);
                    }
                    queue.waiting[at] += 1;
                    let (q, timeout) = self.ready[at]
                        .wait_timeout(queue, SPARE_IDLE)
                        .unwrap_or_else(|e| e.into_inner());
                    queue = q;
                    queue.waiting[at] -= 1;
                    if leaves_idle && timeout.timed_out() && queue.runnable[at].is_empty() {
                        drop(queue);
                        return self.leave(busy);
                    }
                }
            };
            let mark = task.lane_mark();
            // The task's count first, then the pool's; a quick turn adds
            // to the pool's first, then to the task's. So a quick turn of
            // this task counted meanwhile is never taken for another's
            // (at worst, a long turn stays in the foreground once).
            let own_before = mark.quick_turns.load(Ordering::SeqCst);
            let all_before = self.quick_turns.load(Ordering::SeqCst);
            let started = thread_cpu_time();
            busy.store(self.now_ms(), Ordering::Release);
            let again = task.turn(lane);
            busy.store(0, Ordering::Release);
            let heavy = if thread_cpu_time().saturating_sub(started) >= HEAVY_TURN {
                let all = self
                    .quick_turns
                    .load(Ordering::SeqCst)
                    .wrapping_sub(all_before);
                let own = mark
                    .quick_turns
                    .load(Ordering::SeqCst)
                    .wrapping_sub(own_before);
                all > own
            } else {
                self.count_quick_turn(mark);
                false
            };
            mark.heavy.store(heavy, Ordering::Relaxed);
            if again {
                self.push(task);
            }
        }
    }

    /// Counts a quick turn of the task marked `mark`: the pool's count
    /// first, then the task's (see `run`).
    fn count_quick_turn(&self, mark: &LaneMark) {
        self.quick_turns.fetch_add(1, Ordering::SeqCst);
        mark.quick_turns.fetch_add(1, Ordering::SeqCst);
    }

    fn leave(&self, busy: &AtomicU64) {
        lock(&self.executors).retain(|e| !std::ptr::eq(e.busy_since.as_ref(), busy));
    }

    /// Starts executors while work waits in a lane whose executors are
    /// all busy: spares beside long turns in the foreground, background
    /// executors for heavy work. Sweeps idle instances.
    fn watch(self: Arc<Self>) {
        let mut last_sweep = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            std::thread::sleep(WATCH_EVERY);
            if !self.needs_watching() {
                // Idle: no wake-up every few milliseconds for nothing.
                let idle = || !self.needs_watching() && !self.stop.load(Ordering::Acquire);
                self.watchdog_parked.park_while(idle, self.idle_park);
                continue;
            }
            for lane in [Lane::Foreground, Lane::Background] {
                if let Some(spare) = self.needs_executor(lane)
                    && let Err(e) = self.spawn_executor(lane, spare)
                {
                    tracing::error!("cannot start a plugin executor ({lane:?}): {e}");
                }
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = Instant::now();
                self.sweep();
            }
        }
    }

    /// Whether `lane` needs one more executor (and whether it is a spare):
    /// work waits, no executor of the lane waits for work, and fewer than
    /// one per core are free of long turns. Spares count against
    /// `max_spare`, in both lanes together.
    fn needs_executor(&self, lane: Lane) -> Option<bool> {
        let starved = {
            let queue = self.queue();
            !queue.runnable[lane as usize].is_empty() && queue.waiting[lane as usize] == 0
        };
        if !starved {
            return None;
        }
        let now = self.now_ms();
        let slice = SLICE.as_millis() as u64;
        let mut threads = [0usize; 2];
        let mut held = 0;
        for executor in lock(&self.executors).iter() {
            threads[executor.lane as usize] += 1;
            let since = executor.busy_since.load(Ordering::Acquire);
            if executor.lane == lane && since != 0 && now.saturating_sub(since) > slice {
                held += 1;
            }
        }
        let cores = self.options.executors;
        let mine = threads[lane as usize];
        if mine - held >= cores {
            return None;
        }
        // Each lane has one executor per core (the foreground's from the
        // start, the background's on demand); beyond that, spares.
        let spare = mine >= cores;
        let spares: usize = threads.iter().map(|n| n.saturating_sub(cores)).sum();
        if spare && spares >= self.options.max_spare {
            return None;
        }
        Some(spare)
    }

    /// Asks every task holding an instance whether it has been idle long
    /// enough to hibernate.
    fn sweep(&self) {
        let tasks: Vec<Weak<dyn Task>> = std::mem::take(&mut *lock(&self.live));
        let now = Instant::now();
        let kept: Vec<Weak<dyn Task>> = tasks
            .into_iter()
            .filter(|weak| {
                weak.upgrade()
                    .is_some_and(|task| task.check_idle(now) == IdleCheck::Keep)
            })
            .collect();
        lock(&self.live).extend(kept);
    }
}

/// How often idle instances are looked for: the precision of
/// `hibernate_after`.
const SWEEP_EVERY: Duration = Duration::from_millis(50);

/// Gives the calling thread [`BACKGROUND_NICE`] (Linux keeps a nice value
/// per thread). Best effort: without it the lanes still separate heavy
/// work from quick turns, the kernel just does not favour the latter.
fn lower_priority() {
    // On Linux, "the calling process" of setpriority is the calling thread.
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
        tracing::debug!("cannot lower a background executor's priority: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A task that runs `body` once per turn.
    struct Once<F: Fn() + Send + Sync>(F, LaneMark);

    fn once<F: Fn() + Send + Sync + 'static>(body: F) -> Arc<Once<F>> {
        Arc::new(Once(body, LaneMark::default()))
    }

    impl<F: Fn() + Send + Sync> Task for Once<F> {
        fn turn(&self, _lane: Lane) -> bool {
            (self.0)();
            false
        }

        fn lane_mark(&self) -> &LaneMark {
            &self.1
        }

        fn check_idle(&self, _now: Instant) -> IdleCheck {
            IdleCheck::Forget
        }
    }

    #[test]
    fn a_turn_that_holds_the_only_executor_gets_a_spare_beside_it() {
        let options = RuntimeOptions {
            executors: 1,
            max_spare: 1,
            max_instances: 16,
            inline_turns: None,
        };
        let executors = Executors::start_parking_for(options, Duration::from_secs(3600)).unwrap();
        // With nothing to watch the watchdog parks (for an hour here); the
        // queued work below must wake it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !executors.pool.watchdog_parked.any() {
            assert!(Instant::now() < deadline, "the idle watchdog did not park");
            std::thread::sleep(Duration::from_millis(2));
        }
        let (release, held) = mpsc::channel::<()>();
        let held = Mutex::new(held);
        let (started, started_rx) = mpsc::channel();
        executors.schedule(once(move || {
            let _ = started.send(());
            // Holds its executor until the test lets go.
            let _ = lock(&held).recv_timeout(Duration::from_secs(10));
        }));
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let (ran, ran_rx) = mpsc::channel();
        executors.schedule(once(move || {
            let _ = ran.send(());
        }));
        // Served by a spare while the first turn still runs.
        ran_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        release.send(()).unwrap();
        executors.shutdown();
    }

    /// A task whose turns each use `turn` of CPU time, three times in a
    /// row; sends the name of the thread that ran each turn.
    struct Repeating {
        turn: Duration,
        left: AtomicU64,
        ran_on: Mutex<mpsc::Sender<String>>,
        mark: LaneMark,
        /// Each turn also lasts until this pool has counted another
        /// task's quick turn: on a loaded machine the other executor may
        /// not get a core while a turn spins.
        beside: Option<Arc<Pool>>,
    }

    impl Task for Repeating {
        fn turn(&self, _lane: Lane) -> bool {
            let quick_before = self
                .beside
                .as_ref()
                .map(|p| p.quick_turns.load(Ordering::SeqCst));
            let started = thread_cpu_time();
            while thread_cpu_time().saturating_sub(started) < self.turn {
                std::hint::spin_loop();
            }
            if let (Some(pool), Some(before)) = (&self.beside, quick_before) {
                let deadline = Instant::now() + Duration::from_secs(10);
                while pool.quick_turns.load(Ordering::SeqCst) == before && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            let name = std::thread::current().name().unwrap_or("").to_owned();
            let _ = lock(&self.ran_on).send(name);
            self.left.fetch_sub(1, Ordering::Relaxed) > 1
        }

        fn lane_mark(&self) -> &LaneMark {
            &self.mark
        }

        fn check_idle(&self, _now: Instant) -> IdleCheck {
            IdleCheck::Forget
        }
    }

    #[test]
    fn long_turns_beside_quick_ones_move_to_the_background_lane() {
        let executors = Executors::start(RuntimeOptions {
            executors: 2,
            max_spare: 1,
            max_instances: 16,
            inline_turns: None,
        })
        .unwrap();
        let threads = |turn: Duration, beside_quick_turns: bool| {
            let (ran_on, ran) = mpsc::channel();
            executors.schedule(Arc::new(Repeating {
                turn,
                left: AtomicU64::new(3),
                ran_on: Mutex::new(ran_on),
                mark: LaneMark::default(),
                beside: beside_quick_turns.then(|| executors.pool.clone()),
            }));
            let mut names = Vec::new();
            while names.len() < 3 {
                if beside_quick_turns {
                    executors.schedule(once(|| {}));
                }
                if let Ok(name) = ran.recv_timeout(HEAVY_TURN / 4) {
                    names.push(name);
                }
            }
            names
        };
        // Alone, a tenant's long turns keep the foreground.
        let long = HEAVY_TURN * 4;
        assert_eq!(
            threads(long, false),
            ["plugin-exec", "plugin-exec", "plugin-exec"]
        );
        // Beside other tenants' quick turns, the turns after the first
        // long one run in the background; quick ones never do.
        assert_eq!(
            threads(long, true),
            ["plugin-exec", "plugin-background", "plugin-background"]
        );
        assert_eq!(
            threads(Duration::ZERO, true),
            ["plugin-exec", "plugin-exec", "plugin-exec"]
        );
        executors.shutdown();
    }
}
