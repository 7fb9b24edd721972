//! CPU time as Linux reports it in procfs: a thread's own, from its
//! `schedstat` (readable from any thread once opened, so one thread can
//! follow others), and the idle time of the CPUs this process may run on,
//! from `/proc/stat`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// A thread's scheduler clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clocks {
    /// Time on a CPU.
    pub cpu: Duration,
    /// Time runnable, waiting for a CPU.
    pub waiting: Duration,
}

/// The calling thread's `schedstat`; None on a kernel without it.
pub(crate) fn open_thread_schedstat() -> Option<File> {
    File::open("/proc/thread-self/schedstat").ok()
}

/// `schedstat`: nanoseconds on a CPU, nanoseconds waiting on a run queue,
/// time slices.
pub(crate) fn read_schedstat(file: &File) -> Option<Clocks> {
    let mut buf = [0u8; 96];
    let read = file.read_at(&mut buf, 0).ok()?;
    let mut fields = std::str::from_utf8(&buf[..read])
        .ok()?
        .split_ascii_whitespace()
        .map(|field| field.parse::<u64>().ok().map(Duration::from_nanos));
    Some(Clocks {
        cpu: fields.next()??,
        waiting: fields.next()??,
    })
}

/// The idle time of the CPUs this process may run on (its affinity when
/// opened), read again on each [`IdleCpus::read`].
#[derive(Debug)]
pub(crate) struct IdleCpus {
    stat: File,
    allowed: rustix::thread::CpuSet,
    /// `/proc/stat` counts in these per second (USER_HZ).
    ticks_per_second: u64,
    buf: Vec<u8>,
}

impl IdleCpus {
    pub fn open() -> io::Result<Self> {
        Ok(Self {
            stat: File::open("/proc/stat")?,
            allowed: rustix::thread::sched_getaffinity(None)?,
            ticks_per_second: rustix::param::clock_ticks_per_second().max(1),
            buf: Vec::with_capacity(4096),
        })
    }

    /// Idle time summed over the allowed CPUs since boot (idle and iowait:
    /// both are time a runnable thread would have had).
    pub fn read(&mut self) -> Option<Duration> {
        self.buf.clear();
        let mut stat = &self.stat;
        stat.seek(SeekFrom::Start(0)).ok()?;
        stat.read_to_end(&mut self.buf).ok()?;
        let text = std::str::from_utf8(&self.buf).ok()?;
        let allowed = |cpu| cpu < rustix::thread::CpuSet::MAX_CPU && self.allowed.is_set(cpu);
        let ticks = idle_ticks(text, allowed)?;
        let per_second = self.ticks_per_second;
        Some(
            Duration::from_secs(ticks / per_second)
                + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second),
        )
    }
}

/// Idle plus iowait ticks of the `cpuN` lines of `/proc/stat` whose N is
/// `allowed`; None if there is no such line.
fn idle_ticks(stat: &str, allowed: impl Fn(usize) -> bool) -> Option<u64> {
    let mut total = None;
    for line in stat.lines() {
        // "cpuN ..." per CPU; the first line, "cpu  ...", sums them all.
        let Some((name, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some(Ok(cpu)) = name.strip_prefix("cpu").map(str::parse::<usize>) else {
            continue;
        };
        if !allowed(cpu) {
            continue;
        }
        // user nice system idle iowait ...
        let mut fields = rest.split_ascii_whitespace().skip(3).map(str::parse::<u64>);
        let (Some(Ok(idle)), Some(Ok(iowait))) = (fields.next(), fields.next()) else {
            continue;
        };
        *total.get_or_insert(0) += idle + iowait;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  100 0 50 9000 10 0 5 0 0 0\n\
                        cpu0 60 0 30 4000 4 0 3 0 0 0\n\
                        cpu1 40 0 20 5000 6 0 2 0 0 0\n\
                        intr 12345 0 0\n\
                        ctxt 999\n";

    #[test]
    fn idle_time_is_summed_over_the_allowed_cpus_only() {
        assert_eq!(idle_ticks(STAT, |_| true), Some(4004 + 5006));
        assert_eq!(idle_ticks(STAT, |cpu| cpu == 1), Some(5006));
        assert_eq!(idle_ticks(STAT, |_| false), None);
        assert_eq!(idle_ticks("intr 1\n", |_| true), None);
    }

    #[test]
    fn this_machine_reports_idle_time_and_this_threads_clocks() {
        let mut idle = IdleCpus::open().expect("procfs");
        let first = idle.read().expect("/proc/stat has cpu lines");
        std::thread::sleep(Duration::from_millis(30));
        assert!(idle.read().expect("read again") >= first);
        if let Some(file) = open_thread_schedstat() {
            let clocks = read_schedstat(&file).expect("schedstat fields");
            assert!(clocks.cpu > Duration::ZERO);
        }
    }
}
