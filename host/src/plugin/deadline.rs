//! The per-call CPU deadline: a guest call may use `call_deadline` of CPU
//! time on the thread that runs it, not of wall time. On a busy machine a
//! call waits for a core, and that wait is not the plugin's doing: counted
//! as wall time, a slow but honest call (a large message through a debug
//! build) was ended with 1011 under load.
//!
//! The epoch ticker ([`EPOCH_TICK`]) interrupts a running call at its epoch
//! deadline; wasmtime then asks the store's callback, on the thread running
//! the guest, whether to go on. The callback reads that thread's scheduler
//! clocks and extends the deadline by what is left of the budget, or ends
//! the call with `Trap::Interrupt`.
//!
//! A call blocked in the host (a guest sleeping through WASI's clocks and
//! `poll`) uses no CPU time, so a call also ends once it has been blocked
//! for [`BLOCKED_FACTOR`] times its limit: a plugin that waits instead of
//! computing cannot hold an executor forever (`wasi_clocks.rs` cuts a sleep
//! short when the call's time blocked is spent). Blocked is the wall time
//! neither running nor waiting for a core: Linux reports a thread's CPU
//! time and its time runnable on a run queue in `/proc/thread-self/schedstat`.
//! Without that file, CPU time comes from `CLOCK_THREAD_CPUTIME_ID` and
//! every moment off the CPU counts as blocked.
//!
//! Reading the clocks is a system call and most calls last microseconds,
//! so a call's starting point is the thread's last reading when that is
//! under [`REFRESH`] old: what the thread did between that reading and the
//! call's start (at most `REFRESH`) is charged to the call.

use std::cell::Cell;
use std::fs::File;
use std::time::{Duration, Instant};

use super::epoch::EPOCH_TICK;
use super::wasi_io;
use crate::cpu::{Clocks, open_thread_schedstat, read_schedstat};

/// How old a thread's last reading may be to serve as the start of a call:
/// the deadline's own granularity. A reading of `schedstat` costs a few
/// microseconds, so a thread reads it at most once per tick.
const REFRESH: Duration = EPOCH_TICK;

/// A call ends once blocked for this many times its CPU limit.
pub(crate) const BLOCKED_FACTOR: u32 = 10;

/// The budget of the guest call in progress on one store.
#[derive(Debug)]
pub(crate) struct CallBudget {
    limit: Duration,
    /// The running thread's clocks at (or just before) the call's start.
    start: Clocks,
    started: Instant,
}

/// What a check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within budget: check again after this many epoch ticks.
    Continue(u64),
    /// The call has used its budget: end it.
    Expired,
}

impl CallBudget {
    /// The budget of a call starting on this thread at `now` (a reading
    /// of the clock the caller took just before the call, and shares with
    /// its own timing); see [`first_check`](Self::first_check) for the
    /// epoch deadline to set.
    pub fn start(limit: Duration, now: Instant) -> Self {
        let (started, start) = recent_thread_clocks(now);
        Self {
            limit,
            start,
            started,
        }
    }

    /// Epoch ticks until the first check: the thread cannot have used
    /// more CPU time than the wall time that passed.
    pub fn first_check(&self) -> u64 {
        ticks_for(self.limit)
    }

    /// Called at the epoch deadline, on the thread running the call.
    pub fn check(&self) -> Verdict {
        self.check_at(thread_clocks(), self.started.elapsed())
    }

    /// How much longer the call may wait in the host (asleep) before its
    /// time blocked is spent.
    pub fn wait_left(&self) -> Duration {
        self.left(thread_clocks(), self.started.elapsed()).blocked
    }

    /// [`check`](Self::check) with the thread's clocks and the call's wall
    /// time given.
    fn check_at(&self, now: Clocks, wall: Duration) -> Verdict {
        let left = self.left(now, wall);
        match left.cpu.min(left.blocked) {
            left if left.is_zero() => Verdict::Expired,
            left => Verdict::Continue(ticks_for(left)),
        }
    }
}

/// What a call has left of its budget.
struct Left {
    cpu: Duration,
    blocked: Duration,
}

impl CallBudget {
    fn left(&self, now: Clocks, wall: Duration) -> Left {
        let used = now.cpu.saturating_sub(self.start.cpu);
        let waiting = now.waiting.saturating_sub(self.start.waiting);
        let blocked = wall.saturating_sub(used + waiting);
        Left {
            cpu: self.limit.saturating_sub(used),
            blocked: (self.limit * BLOCKED_FACTOR).saturating_sub(blocked),
        }
    }
}

/// Epoch ticks covering `time` (at least one).
fn ticks_for(time: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    u64::try_from(time.as_nanos().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}

thread_local! {
    /// This thread's last reading, and when it was taken.
    static LAST_READING: Cell<Option<(Instant, Clocks)>> = const { Cell::new(None) };
    /// This thread's `/proc/thread-self/schedstat`, opened once.
    static SCHEDSTAT: Option<File> = open_thread_schedstat();
}

/// The calling thread's clocks at `now` (a recent reading of the wall
/// clock), or a reading of them under [`REFRESH`] older (never ahead of
/// the true values), with when they hold. A reading taken after `now` (a
/// call that started since) holds at its own time, which is returned.
fn recent_thread_clocks(now: Instant) -> (Instant, Clocks) {
    LAST_READING.with(|last| match last.get() {
        Some((at, clocks)) if now.saturating_duration_since(at) < REFRESH => (now.max(at), clocks),
        _ => {
            let clocks = thread_clocks();
            last.set(Some((now, clocks)));
            (now, clocks)
        }
    })
}

/// Times a stretch of work on this thread (a turn) by the CPU time it
/// used and the time it was blocked in a WASI wait, not by wall time: on
/// a busy machine a quick turn is preempted now and then, and that wait
/// is not its doing. Reading the thread's CPU clock is a system call
/// (a few percent of a small message's cost), so a caller may time only
/// some stretches by CPU; the others are judged by their WASI waits and
/// by a wall time no preemption reaches ([`UNTIMED_LIMIT`]). The wall
/// clock's readings (even these cost tens of nanoseconds) come from the
/// caller, which shares them with its other timing.
pub(crate) struct Stopwatch {
    started: Instant,
    cpu: Option<Duration>,
    blocked: Duration,
}

/// A stretch not timed by CPU exceeds its limit past this wall time.
pub(crate) const UNTIMED_LIMIT: Duration = Duration::from_millis(50);

impl Stopwatch {
    /// Starts timing at `now`; `by_cpu` reads the thread's CPU clock.
    pub fn start(now: Instant, by_cpu: bool) -> Self {
        Self {
            started: now,
            cpu: by_cpu.then(thread_cpu_time),
            blocked: wasi_io::time_blocked(),
        }
    }

    /// Whether the stretch until `now` ran on a CPU, or waited in WASI,
    /// for more than `limit`.
    pub fn exceeded(&self, limit: Duration, now: Instant) -> bool {
        let wall = now.saturating_duration_since(self.started);
        if wall <= limit {
            return false;
        }
        if wasi_io::time_blocked().saturating_sub(self.blocked) > limit {
            return true;
        }
        match self.cpu {
            Some(cpu) => thread_cpu_time().saturating_sub(cpu) > limit,
            None => wall > UNTIMED_LIMIT.max(limit),
        }
    }
}

/// The calling thread's clocks.
fn thread_clocks() -> Clocks {
    SCHEDSTAT
        .with(|file| file.as_ref().and_then(read_schedstat))
        .unwrap_or_else(|| Clocks {
            cpu: thread_cpu_time(),
            waiting: Duration::ZERO,
        })
}

/// CPU time the calling thread has used.
pub(crate) fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn budget(limit: Duration, cpu: Duration) -> CallBudget {
        CallBudget {
            limit,
            start: Clocks {
                cpu,
                waiting: Duration::ZERO,
            },
            started: Instant::now(),
        }
    }

    fn clocks(cpu: Duration, waiting: Duration) -> Clocks {
        Clocks { cpu, waiting }
    }

    #[test]
    fn only_the_threads_cpu_time_is_charged() {
        let budget = budget(200 * MS, 1_000 * MS);
        assert_eq!(budget.first_check(), 40);
        // The call waited 5 s for a core: 50 ms of CPU time leave 150 ms.
        assert_eq!(
            budget.check_at(clocks(1_050 * MS, 5_000 * MS), 5_050 * MS),
            Verdict::Continue(30)
        );
        assert_eq!(
            budget.check_at(clocks(1_197 * MS, 5_000 * MS), 5_200 * MS),
            Verdict::Continue(1)
        );
        assert_eq!(
            budget.check_at(clocks(1_200 * MS, 5_000 * MS), 5_210 * MS),
            Verdict::Expired
        );
    }

    #[test]
    fn a_call_blocked_ten_times_its_limit_ends() {
        let budget = budget(200 * MS, Duration::ZERO);
        // Asleep in the host: 1 ms of CPU time in 1.9 s, 10 ms of it
        // waiting for a core.
        assert_eq!(
            budget.check_at(clocks(MS, 10 * MS), 1_900 * MS),
            Verdict::Continue(23)
        );
        assert_eq!(
            budget.check_at(clocks(MS, 10 * MS), 2_011 * MS),
            Verdict::Expired
        );
    }

    #[test]
    fn a_sleeping_thread_keeps_its_budget_and_a_spinning_one_spends_it() {
        let limit = 50 * MS;
        let budget = CallBudget::start(limit, Instant::now());
        // Asleep for twice the limit: a wall-clock deadline would end the
        // call, but it has used hardly any CPU time (and was blocked for a
        // fifth of what ends it).
        std::thread::sleep(2 * limit);
        assert!(matches!(budget.check(), Verdict::Continue(_)));
        // Spinning for the limit's worth of CPU time ends it (the loop is
        // bounded by wall time in case the clock misbehaves).
        let cpu_then = thread_cpu_time();
        let give_up = Instant::now() + Duration::from_secs(30);
        while thread_cpu_time() - cpu_then < limit && Instant::now() < give_up {
            std::hint::spin_loop();
        }
        assert_eq!(budget.check(), Verdict::Expired);
    }

    #[test]
    fn a_stopwatch_counts_cpu_time_not_time_off_the_cpu() {
        let limit = 10 * MS;
        let quick = Stopwatch::start(Instant::now(), true);
        assert!(!quick.exceeded(limit, Instant::now()));
        // Off the CPU outside WASI, as a preempted turn is (a WASI wait
        // counts: see wasi_io's tests).
        let preempted = Stopwatch::start(Instant::now(), true);
        std::thread::sleep(3 * limit);
        assert!(!preempted.exceeded(limit, Instant::now()));
        // Not timed by CPU: past the wall time no preemption reaches.
        let untimed = Stopwatch::start(Instant::now(), false);
        std::thread::sleep(2 * limit);
        assert!(!untimed.exceeded(limit, Instant::now()));
        std::thread::sleep(UNTIMED_LIMIT);
        assert!(untimed.exceeded(limit, Instant::now()));
        let spinning = Stopwatch::start(Instant::now(), true);
        let cpu_then = thread_cpu_time();
        let give_up = Instant::now() + Duration::from_secs(30);
        while thread_cpu_time() - cpu_then < 3 * limit && Instant::now() < give_up {
            std::hint::spin_loop();
        }
        assert!(spinning.exceeded(limit, Instant::now()));
    }

    #[test]
    fn a_recent_reading_is_never_ahead_of_the_clocks() {
        let (_, first) = recent_thread_clocks(Instant::now());
        let (_, cached) = recent_thread_clocks(Instant::now());
        let now = thread_clocks();
        assert!(first.cpu <= cached.cpu && cached.cpu <= now.cpu);
        assert!(first.waiting <= cached.waiting && cached.waiting <= now.waiting);
    }

    #[test]
    fn a_reading_taken_after_a_calls_start_holds_at_its_own_time() {
        let early = Instant::now();
        std::thread::sleep(MS);
        let late = Instant::now();
        // No reading yet on this thread: this one is taken at `late`.
        LAST_READING.with(|last| last.set(None));
        assert_eq!(recent_thread_clocks(late).0, late);
        // A call said to start earlier starts where those clocks hold.
        assert_eq!(recent_thread_clocks(early).0, late);
    }

    #[test]
    fn the_schedstat_clock_agrees_with_the_thread_cpu_clock() {
        let Some(clocks) = SCHEDSTAT.with(|file| file.as_ref().and_then(read_schedstat)) else {
            return; // a kernel without schedstat: the fallback is used
        };
        let direct = thread_cpu_time();
        // Read one after the other: within a few milliseconds.
        assert!(direct >= clocks.cpu, "{direct:?} < {clocks:?}");
        assert!(direct - clocks.cpu < 50 * MS, "{direct:?} vs {clocks:?}");
    }
}
