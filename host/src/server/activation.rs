//! How many cores take new connections (AdaptiveCores).
//!
//! A serving thread that runs out of work blocks in `epoll_wait` and is
//! woken by the next event: two threads sharing one CPU's worth of load
//! each block and wake several times as often as one thread carrying it
//! all, and every switch costs CPU time. Measured on a 2-core machine
//! shared with the load generator, one serving thread instead of two
//! answered 15% more handshakes and 12% more unpipelined messages per CPU
//! second. So new connections go to as few cores as the load needs: one
//! at first; another once those taking connections are busy and the
//! machine has a CPU idle to run it; one fewer once the load fits in fewer,
//! or when the CPUs are too contended to run them all. Connections stay on
//! the core they were placed on; only where new ones go changes.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};

use super::ServerShared;
use super::cores::Cores;
use super::settings::Settings;
use crate::cpu::{IdleCpus, open_thread_schedstat, read_schedstat};

/// How often the load is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// Another core joins when those taking connections are this busy, on
/// average...
const GROW_BUSY: f64 = 0.75;
/// ...and at least this much of a CPU is idle to run it.
const GROW_IDLE: f64 = 0.5;
/// A core leaves when the load would fit in one fewer at this.
const SHRINK_BUSY: f64 = 0.4;
/// Samples in a row that must ask for fewer cores before one leaves: a
/// moment's lull does not move new connections back and forth.
const SHRINK_AFTER: u32 = 4;

/// The CPU use of one sample period, in CPUs (CPU-seconds per second).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Load {
    /// Used by the serving threads, all of them.
    pub demand: f64,
    /// Idle, over the CPUs the process may run on.
    pub idle: f64,
}

/// The decision, sample by sample.
#[derive(Debug)]
pub(super) struct Activation {
    cores: usize,
    accepting: usize,
    /// Samples in a row that asked for fewer.
    asking_fewer: u32,
}

impl Activation {
    pub fn new(cores: usize) -> Self {
        Self {
            cores: cores.max(1),
            accepting: 1,
            asking_fewer: 0,
        }
    }

    /// How many cores take new connections after a period of `load`.
    pub fn next(&mut self, load: Load) -> usize {
        let accepting = self.accepting as f64;
        let busy = load.demand >= GROW_BUSY * accepting;
        if self.accepting < self.cores && busy && load.idle >= GROW_IDLE {
            self.accepting += 1;
            self.asking_fewer = 0;
            return self.accepting;
        }
        let fits_in_fewer = load.demand <= SHRINK_BUSY * (accepting - 1.0);
        // The threads at work and the idle CPUs together are not enough
        // to run every accepting core.
        let contended = load.demand + load.idle < accepting - 0.5;
        if self.accepting > 1 && (fits_in_fewer || contended) {
            self.asking_fewer += 1;
            if self.asking_fewer >= SHRINK_AFTER {
                self.accepting -= 1;
                self.asking_fewer = 0;
            }
        } else {
            self.asking_fewer = 0;
        }
        self.accepting
    }
}

/// Reads the serving threads' CPU time and the idle CPUs.
pub(super) struct Sampler {
    /// Every serving thread's `schedstat`, core 0's (the sampler's own
    /// thread) added when it starts.
    threads: Vec<File>,
    idle: IdleCpus,
    last: Option<Reading>,
}

#[derive(Clone, Copy)]
struct Reading {
    at: Instant,
    cpu: Duration,
    idle: Duration,
}

impl Sampler {
    pub fn new(threads: Vec<File>, idle: IdleCpus) -> Self {
        Self {
            threads,
            idle,
            last: None,
        }
    }

    fn read(&mut self) -> Option<Reading> {
        let mut cpu = Duration::ZERO;
        for thread in &self.threads {
            cpu += read_schedstat(thread)?.cpu;
        }
        Some(Reading {
            at: Instant::now(),
            cpu,
            idle: self.idle.read()?,
        })
    }

    /// The load since the last sample; None for the first, or when a
    /// reading fails.
    fn sample(&mut self) -> Option<Load> {
        let now = self.read();
        let last = std::mem::replace(&mut self.last, now)?;
        let now = now?;
        let period = now.at.saturating_duration_since(last.at).as_secs_f64();
        if period <= 0.0 {
            return None;
        }
        Some(Load {
            demand: now.cpu.saturating_sub(last.cpu).as_secs_f64() / period,
            idle: now.idle.saturating_sub(last.idle).as_secs_f64() / period,
        })
    }
}

/// With AdaptiveCores and extra `cores`: the decision and its readings,
/// when this machine gives them (schedstat, /proc/stat) and the listening
/// runtime is one thread (core 0). None: every core takes connections.
pub(super) fn for_cores(settings: &Settings, cores: &Cores) -> Option<(Activation, Sampler)> {
    let one_thread = Handle::current().runtime_flavor() == RuntimeFlavor::CurrentThread;
    if !settings.adaptive_cores || cores.handles().is_empty() || !one_thread {
        return None;
    }
    let sampler = Sampler::new(cores.schedstats()?, IdleCpus::open().ok()?);
    Some((Activation::new(1 + cores.handles().len()), sampler))
}

/// Samples the load and updates `accepting`, until aborted with the
/// listener. Runs on core 0, whose thread it counts as its own.
pub(super) async fn run(
    mut activation: Activation,
    mut sampler: Sampler,
    accepting: Arc<AtomicUsize>,
    shared: Arc<ServerShared>,
) {
    if let Some(own) = open_thread_schedstat() {
        sampler.threads.push(own);
    }
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Some(load) = sampler.sample() {
            let taking = activation.next(load);
            accepting.store(taking, Ordering::Relaxed);
            shared.metrics.cores_accepting(taking);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(demand: f64, idle: f64) -> Load {
        Load { demand, idle }
    }

    #[test]
    fn a_busy_core_is_joined_only_while_a_cpu_is_idle() {
        let mut a = Activation::new(4);
        assert_eq!(a.next(load(0.3, 3.0)), 1, "not busy");
        assert_eq!(a.next(load(0.95, 0.1)), 1, "busy, but no CPU idle");
        assert_eq!(a.next(load(0.95, 2.5)), 2);
        assert_eq!(a.next(load(1.8, 1.9)), 3);
        assert_eq!(a.next(load(2.9, 1.0)), 4);
        assert_eq!(a.next(load(3.9, 0.9)), 4, "every core is taking");
    }

    #[test]
    fn a_core_leaves_after_a_second_of_light_load() {
        let mut a = Activation::new(2);
        a.next(load(0.9, 1.0));
        let mut taking = Vec::new();
        for _ in 0..SHRINK_AFTER {
            taking.push(a.next(load(0.2, 1.7)));
        }
        assert_eq!(taking, [2, 2, 2, 1]);
    }

    #[test]
    fn a_lull_does_not_move_connections_back() {
        let mut a = Activation::new(2);
        a.next(load(0.9, 1.0));
        for _ in 0..10 {
            a.next(load(0.2, 1.7));
            a.next(load(0.2, 1.7));
            // Busy again: the count of light samples starts over.
            assert_eq!(a.next(load(1.2, 0.7)), 2);
        }
    }

    #[test]
    fn contended_cpus_take_a_core_away_under_load() {
        // Two serving threads and a load generator on two CPUs: the
        // threads get 1.2 CPUs between them, none idle.
        let mut a = Activation::new(2);
        a.next(load(0.9, 1.0));
        let taking: Vec<usize> = (0..SHRINK_AFTER).map(|_| a.next(load(1.2, 0.0))).collect();
        assert_eq!(taking, [2, 2, 2, 1]);
        // Fully used and nothing idle, on one: stays.
        assert_eq!(a.next(load(1.0, 0.05)), 1);
        // Two threads with the machine to themselves: stays at two.
        let mut b = Activation::new(2);
        b.next(load(0.9, 1.0));
        assert!((0..10).all(|_| b.next(load(1.9, 0.05)) == 2));
    }

    #[test]
    fn the_sampler_reads_this_threads_cpu_and_the_idle_cpus() {
        let Some(own) = open_thread_schedstat() else {
            return; // a kernel without schedstat: activation stays off
        };
        let mut sampler = Sampler::new(vec![own], IdleCpus::open().expect("procfs"));
        assert_eq!(sampler.sample(), None, "the first reading has no period");
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(60) {
            std::hint::black_box(0u64.wrapping_add(1));
        }
        let load = sampler.sample().expect("a second reading");
        // This thread spun through the period: a whole CPU's worth on an
        // idle machine, less when other work shares the cores (0.5 seen
        // beside an Autobahn run and the other tests), never nothing.
        assert!(load.demand > 0.1 && load.demand < 1.5, "{load:?}");
        assert!(load.idle >= 0.0);
    }
}
