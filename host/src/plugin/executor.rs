//! The fixed pool of executor threads that run every plugin instance.
//!
//! An instance (an actor, see `instance.rs`) with work is queued here once;
//! an executor takes it, runs one turn (everything waiting, in one guest
//! call) and queues it again at the back if more has arrived, so busy
//! tenants take turns. The thread count follows the cores, never the number
//! of tenants or instances: threads and their stack and signal-stack
//! mappings are what a thread per instance ran out of.
//!
//! Calls are synchronous (about a third of the cost of an async call, see
//! NOTES-wasm.md), so a turn cannot be suspended halfway. A turn that runs
//! longer than [`SLICE`] (a looping or CPU-heavy plugin, until its call
//! deadline ends it) no longer counts as an executor: a watchdog starts a
//! spare one, so the other tenants keep the pool's full width. Spares are
//! bounded ([`RuntimeOptions::max_spare`]) and leave once idle.
//!
//! The same watchdog asks idle instances to hibernate.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// A turn running longer than this frees its executor's place for a spare.
pub const SLICE: Duration = Duration::from_millis(10);
/// How often the watchdog looks at busy executors and idle instances.
const WATCH_EVERY: Duration = Duration::from_millis(5);
/// A spare executor idle this long leaves.
const SPARE_IDLE: Duration = Duration::from_secs(2);

/// Something an executor runs: one turn of an instance.
pub(crate) trait Task: Send + Sync {
    /// Runs one turn; true asks to be queued again (more work arrived).
    fn turn(&self) -> bool;
    /// Called by the watchdog; may schedule the task to hibernate.
    fn check_idle(&self, now: Instant) -> IdleCheck;
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
    /// Run a turn on the connection's own thread when its events find the
    /// instance idle (no hop to an executor and back), unless the
    /// tenant's turns have lately been slow. Default false: wasmtime's
    /// synchronous WASI blocks on a tokio runtime for stream calls (a
    /// guest printing to stdout or stderr, e.g. a panic message), which
    /// panics on the server's own workers; only components that never
    /// touch WASI streams may run inline.
    pub inline_turns: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            executors: cores,
            // With the server's own workers (one per core) and a few
            // helpers, threads stay within 2 x cores + 16.
            max_spare: 8,
            max_instances: default_max_instances(),
            inline_turns: false,
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
    ready: Condvar,
    /// Per executor: when its current turn started (ms since `epoch`), or
    /// 0 when it waits for work.
    busy_since: Mutex<Vec<Arc<AtomicU64>>>,
    epoch: Instant,
    /// Tasks holding an instance, for the hibernation sweep.
    live: Mutex<Vec<Weak<dyn Task>>>,
    stop: AtomicBool,
}

#[derive(Default)]
struct Queue {
    runnable: VecDeque<Arc<dyn Task>>,
    /// Executors waiting for work.
    waiting: usize,
}

impl Executors {
    pub fn start(options: RuntimeOptions) -> std::io::Result<Self> {
        let pool = Arc::new(Pool {
            options,
            queue: Mutex::default(),
            ready: Condvar::new(),
            busy_since: Mutex::default(),
            epoch: Instant::now(),
            live: Mutex::default(),
            stop: AtomicBool::new(false),
        });
        for _ in 0..pool.options.executors.max(1) {
            pool.spawn_executor(false)?;
        }
        let watched = pool.clone();
        std::thread::Builder::new()
            .name("plugin-watchdog".into())
            .spawn(move || watched.watch())?;
        Ok(Self { pool })
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.pool.options
    }

    /// Queues one turn of `task`. The caller makes sure a task is queued
    /// at most once at a time.
    pub fn schedule(&self, task: Arc<dyn Task>) {
        let mut queue = self.pool.queue();
        queue.runnable.push_back(task);
        if queue.waiting > 0 {
            self.pool.ready.notify_one();
        }
    }

    /// Milliseconds on the pool's clock (never 0).
    pub fn now_ms(&self) -> u64 {
        self.pool.now_ms()
    }

    /// Lets the watchdog check `task` for hibernation until it answers
    /// [`IdleCheck::Forget`].
    pub fn watch_idle(&self, task: Weak<dyn Task>) {
        lock(&self.pool.live).push(task);
    }

    /// Stops the pool once the turns queued now have run.
    pub fn shutdown(&self) {
        self.pool.stop.store(true, Ordering::Release);
        let _queue = self.pool.queue();
        self.pool.ready.notify_all();
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

    fn spawn_executor(self: &Arc<Self>, spare: bool) -> std::io::Result<()> {
        let busy = Arc::new(AtomicU64::new(0));
        lock(&self.busy_since).push(busy.clone());
        let (pool, mine) = (self.clone(), busy.clone());
        let spawned = std::thread::Builder::new()
            .name(if spare { "plugin-spare" } else { "plugin-exec" }.into())
            .spawn(move || pool.run(&mine, spare));
        if spawned.is_err() {
            self.leave(&busy);
        }
        spawned.map(drop)
    }

    /// An executor: takes turns until the pool stops (or, for a spare,
    /// until it has been idle a while).
    fn run(self: Arc<Self>, busy: &AtomicU64, spare: bool) {
        loop {
            let task = {
                let mut queue = self.queue();
                loop {
                    if let Some(task) = queue.runnable.pop_front() {
                        break task;
                    }
                    if self.stop.load(Ordering::Acquire) {
                        return self.leave(busy);
                    }
                    queue.waiting += 1;
                    let (q, timeout) = self
                        .ready
                        .wait_timeout(queue, SPARE_IDLE)
                        .unwrap_or_else(|e| e.into_inner());
                    queue = q;
                    queue.waiting -= 1;
                    if spare && timeout.timed_out() && queue.runnable.is_empty() {
                        drop(queue);
                        return self.leave(busy);
                    }
                }
            };
            busy.store(self.now_ms(), Ordering::Release);
            let again = task.turn();
            busy.store(0, Ordering::Release);
            if again {
                self.queue().runnable.push_back(task);
            }
        }
    }

    fn leave(&self, busy: &AtomicU64) {
        lock(&self.busy_since).retain(|b| !std::ptr::eq(b.as_ref(), busy));
    }

    /// Starts spares while long turns hold executors and work waits, and
    /// sweeps idle instances.
    fn watch(self: Arc<Self>) {
        let mut last_sweep = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            std::thread::sleep(WATCH_EVERY);
            let now = self.now_ms();
            let slice = SLICE.as_millis() as u64;
            let (held, threads) = {
                let busy = lock(&self.busy_since);
                let held = busy
                    .iter()
                    .filter(|b| {
                        let since = b.load(Ordering::Acquire);
                        since != 0 && now.saturating_sub(since) > slice
                    })
                    .count();
                (held, busy.len())
            };
            let starved = {
                let queue = self.queue();
                !queue.runnable.is_empty() && queue.waiting == 0
            };
            let width = threads - held;
            let spares = threads.saturating_sub(self.options.executors);
            if starved
                && width < self.options.executors
                && spares < self.options.max_spare
                && let Err(e) = self.spawn_executor(true)
            {
                tracing::error!("cannot start a spare plugin executor: {e}");
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = Instant::now();
                self.sweep();
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A task that runs `body` once per turn.
    struct Once<F: Fn() + Send + Sync>(F);

    impl<F: Fn() + Send + Sync> Task for Once<F> {
        fn turn(&self) -> bool {
            (self.0)();
            false
        }

        fn check_idle(&self, _now: Instant) -> IdleCheck {
            IdleCheck::Forget
        }
    }

    #[test]
    fn a_turn_that_holds_the_only_executor_gets_a_spare_beside_it() {
        let executors = Executors::start(RuntimeOptions {
            executors: 1,
            max_spare: 1,
            max_instances: 16,
            inline_turns: false,
        })
        .unwrap();
        let (release, held) = mpsc::channel::<()>();
        let held = Mutex::new(held);
        let (started, started_rx) = mpsc::channel();
        executors.schedule(Arc::new(Once(move || {
            let _ = started.send(());
            // Holds its executor until the test lets go.
            let _ = lock(&held).recv_timeout(Duration::from_secs(10));
        })));
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let (ran, ran_rx) = mpsc::channel();
        executors.schedule(Arc::new(Once(move || {
            let _ = ran.send(());
        })));
        // Served by a spare while the first turn still runs.
        ran_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        release.send(()).unwrap();
        executors.shutdown();
    }
}
