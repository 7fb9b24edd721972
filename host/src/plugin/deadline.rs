//! The per-call CPU deadline: a guest call may use `call_deadline` of CPU
//! time on the thread that runs it, not of wall time. On a busy machine a
//! call waits for a core, and that wait is not the plugin's doing: counted
//! as wall time, a slow but honest call (a large message through a debug
//! build) was ended with 1011 under load.
//!
//! The epoch ticker ([`EPOCH_TICK`]) interrupts a running call at its epoch
//! deadline; wasmtime then asks the store's callback, on the thread running
//! the guest, whether to go on. The callback reads that thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`) and extends the deadline by what is left of
//! the budget, or ends the call with `Trap::Interrupt`.
//!
//! A call blocked in the host (a guest sleeping through WASI's clocks and
//! `poll`) uses no CPU time, so a call also ends after [`WALL_FACTOR`]
//! times its limit in wall time: a plugin that waits instead of computing
//! cannot hold an executor forever (`wasi_clocks.rs` wakes a sleep when the
//! call is out of wall time), and a call slowed down tenfold by a busy
//! machine still finishes.
//!
//! Reading a thread's CPU clock is a system call and most calls last
//! microseconds, so a call's starting point is the thread's last reading
//! when that is under [`REFRESH`] old: the CPU time between that reading
//! and the call's start (at most `REFRESH`) is charged to the call.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::engine::EPOCH_TICK;

/// How old a thread's last CPU clock reading may be to serve as the start
/// of a call.
const REFRESH: Duration = Duration::from_millis(1);

/// A call ends after this many times its CPU limit in wall time.
pub(crate) const WALL_FACTOR: u32 = 10;

/// The budget of the guest call in progress on one store.
#[derive(Debug)]
pub(crate) struct CallBudget {
    limit: Duration,
    /// The running thread's CPU clock at (or just before) the call's start.
    cpu_start: Duration,
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
    /// The budget of a call starting now on this thread; see
    /// [`first_check`](Self::first_check) for the epoch deadline to set.
    pub fn start(limit: Duration) -> Self {
        let (started, cpu_start) = recent_thread_cpu_time();
        Self {
            limit,
            cpu_start,
            started,
        }
    }

    /// Epoch ticks until the first check: the thread cannot have used
    /// more CPU time than the wall time that passed.
    pub fn first_check(&self) -> u64 {
        ticks_for(self.limit)
    }

    /// How much longer the call may wait in the host (asleep): what is
    /// left of its wall-time cap.
    pub fn wait_left(&self) -> Duration {
        self.wall_cap().saturating_sub(self.started.elapsed())
    }

    fn wall_cap(&self) -> Duration {
        self.limit * WALL_FACTOR
    }

    /// Called at the epoch deadline, on the thread running the call.
    pub fn check(&self) -> Verdict {
        self.check_at(thread_cpu_time(), self.started.elapsed())
    }

    /// [`check`](Self::check) with the thread's CPU clock and the call's
    /// wall time given.
    fn check_at(&self, thread_cpu: Duration, wall: Duration) -> Verdict {
        let used = thread_cpu.saturating_sub(self.cpu_start);
        let cpu_left = self.limit.saturating_sub(used);
        let wall_left = self.wall_cap().saturating_sub(wall);
        match cpu_left.min(wall_left) {
            left if left.is_zero() => Verdict::Expired,
            left => Verdict::Continue(ticks_for(left)),
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
    /// This thread's last CPU clock reading, and when it was taken.
    static LAST_READING: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
}

/// Now, and the calling thread's CPU time or a reading of it under
/// [`REFRESH`] old (never more than the true value).
fn recent_thread_cpu_time() -> (Instant, Duration) {
    let now = Instant::now();
    let cpu = LAST_READING.with(|last| match last.get() {
        Some((at, cpu)) if now.duration_since(at) < REFRESH => cpu,
        _ => {
            let cpu = thread_cpu_time();
            last.set(Some((now, cpu)));
            cpu
        }
    });
    (now, cpu)
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
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

    fn budget(limit: Duration, cpu_start: Duration) -> CallBudget {
        CallBudget {
            limit,
            cpu_start,
            started: Instant::now(),
        }
    }

    #[test]
    fn only_the_threads_cpu_time_is_charged() {
        let budget = budget(200 * MS, 1_000 * MS);
        assert_eq!(budget.first_check(), 40);
        // The call waited a second for a core: 50 ms of CPU time leave
        // 150 ms.
        assert_eq!(
            budget.check_at(1_050 * MS, 1_000 * MS),
            Verdict::Continue(30)
        );
        assert_eq!(
            budget.check_at(1_197 * MS, 1_200 * MS),
            Verdict::Continue(1)
        );
        assert_eq!(budget.check_at(1_200 * MS, 1_210 * MS), Verdict::Expired);
    }

    #[test]
    fn a_call_waiting_ten_times_its_limit_ends() {
        let budget = budget(200 * MS, Duration::ZERO);
        // Asleep in the host: 1 ms of CPU time in 1.9 s.
        assert_eq!(budget.check_at(MS, 1_900 * MS), Verdict::Continue(20));
        assert_eq!(budget.check_at(MS, 2_000 * MS), Verdict::Expired);
    }

    #[test]
    fn a_sleeping_thread_keeps_its_budget_and_a_spinning_one_spends_it() {
        let limit = 50 * MS;
        let budget = CallBudget::start(limit);
        // Asleep for twice the limit: a wall-clock deadline would end the
        // call, but it has used hardly any CPU time (and a fifth of its
        // wall time).
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
    fn a_recent_reading_is_never_ahead_of_the_clock() {
        let (_, first) = recent_thread_cpu_time();
        let (_, cached) = recent_thread_cpu_time();
        assert!(first <= cached && cached <= thread_cpu_time());
    }
}
