//! Per-tenant counters: events delivered, guest calls and their latency
//! (their sum is the guest time an operator bills), calls ended by a trap
//! or by the CPU deadline, answers the host refused, commands and log
//! lines it dropped, and the instances behind them: live and hibernated,
//! their linear memory, how many were made and how long that took, and how
//! many could not be made or failed in the runtime.
//!
//! Plain relaxed atomics: a scrape reads them without stopping anything.
//! The ones every turn writes ([`TurnMetrics`]) are kept per instance and
//! summed when read: an instance's turns run one at a time, mostly on one
//! thread (a tenant with inline turns has an instance per server thread),
//! so its counters stay in that core's cache, where tenant-wide ones
//! moved between the cores on every turn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the call latency buckets, in microseconds: a call costs
/// ~1-3 µs at the least, and the default CPU deadline is 200 ms.
const LATENCY_BOUNDS_US: [u64; 16] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000,
];

/// How a failed guest call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallFailure {
    /// Interrupted by the CPU deadline (epoch interruption).
    Deadline,
    /// Any other trap: unreachable, out of bounds, the memory cap, ...
    Trap,
    /// The call returned what the host refuses: a malformed command batch,
    /// an open-request answer it cannot send.
    Refused,
}

impl CallFailure {
    pub fn of(error: &wasmtime::Error) -> Self {
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => Self::Deadline,
            _ => Self::Trap,
        }
    }
}

/// The live counters of one plugin, but for those its instances' turns
/// keep (see [`TurnMetrics`]).
#[derive(Debug, Default)]
pub(crate) struct PluginMetrics {
    /// Calls made outside an instance's own counters (open requests).
    calls: TurnMetrics,
    traps: AtomicU64,
    deadline_hits: AtomicU64,
    refused: AtomicU64,
    commands_dropped: AtomicU64,
    logs_dropped: AtomicU64,
    instances_live: AtomicU64,
    instances_hibernated: AtomicU64,
    instantiations: AtomicU64,
    instantiation_nanos: AtomicU64,
    instance_failures: AtomicU64,
    memory_bytes: AtomicU64,
    opens_accepted_by_host: AtomicU64,
}

/// The counters of one instance's turns and guest calls.
#[derive(Debug, Default)]
pub(crate) struct TurnMetrics {
    events: AtomicU64,
    calls: AtomicU64,
    latency: LatencyHistogram,
    background_turns: AtomicU64,
    inline_turns: AtomicU64,
}

impl TurnMetrics {
    /// One guest call that carried `events` events and took `elapsed`.
    pub fn record_call(&self, elapsed: Duration, events: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
        self.latency.observe(elapsed);
    }

    /// A turn ran on the background executors (the instance was heavy).
    pub fn record_background_turn(&self) {
        self.background_turns.fetch_add(1, Ordering::Relaxed);
    }

    /// A turn ran on a server thread (`inline_turns`).
    pub fn record_inline_turn(&self) {
        self.inline_turns.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds these counts to `counters` (a tenant's, summed over its
    /// instances).
    pub fn add_to(&self, counters: &mut PluginCounters) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counters.events += get(&self.events);
        counters.calls += get(&self.calls);
        counters.background_turns += get(&self.background_turns);
        counters.inline_turns += get(&self.inline_turns);
        self.latency.add_to(&mut counters.call_latency);
    }
}

impl PluginMetrics {
    /// One guest call outside an instance's turn counters (an open
    /// request) that took `elapsed`.
    pub fn record_call(&self, elapsed: Duration, events: usize) {
        self.calls.record_call(elapsed, events);
    }

    pub fn record_failure(&self, failure: CallFailure) {
        let counter = match failure {
            CallFailure::Deadline => &self.deadline_hits,
            CallFailure::Trap => &self.traps,
            CallFailure::Refused => &self.refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A command dropped because the connection's queue and the commands
    /// held for it are full.
    pub fn record_command_dropped(&self) {
        self.commands_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A log line over the plugin's log budget, not written.
    pub fn record_log_dropped(&self) {
        self.logs_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn instance_created(&self) {
        self.instances_live.fetch_add(1, Ordering::Relaxed);
    }

    /// An instance is gone, with the linear memory it had.
    pub fn instance_dropped(&self, memory: usize) {
        self.instances_live.fetch_sub(1, Ordering::Relaxed);
        self.memory_bytes
            .fetch_sub(memory as u64, Ordering::Relaxed);
    }

    pub fn memory_grew(&self, bytes: usize) {
        self.memory_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// An instance was made (and restored, after hibernation) in `took`.
    pub fn record_instantiation(&self, took: Duration) {
        self.instantiations.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.instantiation_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// An instance could not be made, or the runtime failed during a turn.
    pub fn record_instance_failure(&self) {
        self.instance_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// An open request answered 101 by the host: the instance said it
    /// accepts every one.
    pub fn record_open_accepted_by_host(&self) {
        self.opens_accepted_by_host.fetch_add(1, Ordering::Relaxed);
    }

    pub fn hibernated(&self) {
        self.instances_hibernated.fetch_add(1, Ordering::Relaxed);
    }

    pub fn woke(&self) {
        self.instances_hibernated.fetch_sub(1, Ordering::Relaxed);
    }

    /// The tenant's counters, but for its instances' [`TurnMetrics`]
    /// (added with [`TurnMetrics::add_to`]).
    pub fn snapshot(&self) -> PluginCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut counters = PluginCounters {
            events: 0,
            calls: 0,
            traps: get(&self.traps),
            deadline_hits: get(&self.deadline_hits),
            refused: get(&self.refused),
            commands_dropped: get(&self.commands_dropped),
            logs_dropped: get(&self.logs_dropped),
            call_latency: LatencyCounts::default(),
            instances_live: get(&self.instances_live),
            instances_hibernated: get(&self.instances_hibernated),
            instantiations: get(&self.instantiations),
            instantiation_time: Duration::from_nanos(get(&self.instantiation_nanos)),
            instance_failures: get(&self.instance_failures),
            memory_bytes: get(&self.memory_bytes),
            background_turns: 0,
            inline_turns: 0,
            opens_accepted_by_host: get(&self.opens_accepted_by_host),
        };
        self.calls.add_to(&mut counters);
        counters
    }
}

/// Call durations in fixed buckets.
#[derive(Debug, Default)]
struct LatencyHistogram {
    /// One per bound in [`LATENCY_BOUNDS_US`], then one for longer calls.
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_nanos: AtomicU64,
}

impl LatencyHistogram {
    fn observe(&self, elapsed: Duration) {
        let micros = elapsed.as_micros();
        let index = LATENCY_BOUNDS_US
            .iter()
            .position(|&bound| micros <= u128::from(bound))
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Adds these counts to `counts` (empty, or of the same bounds).
    fn add_to(&self, counts: &mut LatencyCounts) {
        if counts.buckets.is_empty() {
            counts.buckets = LATENCY_BOUNDS_US
                .iter()
                .map(|&us| (Duration::from_micros(us), 0))
                .collect();
        }
        for ((_, count), bucket) in counts.buckets.iter_mut().zip(&self.buckets) {
            *count += bucket.load(Ordering::Relaxed);
        }
        counts.over += self.buckets[LATENCY_BOUNDS_US.len()].load(Ordering::Relaxed);
        counts.sum += Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed));
    }
}

/// A copy of a plugin's counters (totals since it started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginCounters {
    /// Events handed to the guest (open requests included).
    pub events: u64,
    /// Guest calls: one per batch of events, one per open request.
    pub calls: u64,
    /// Calls ended by a trap (the memory cap included).
    pub traps: u64,
    /// Calls interrupted by the CPU deadline.
    pub deadline_hits: u64,
    /// Calls whose answer the host refused (malformed command batch, open
    /// response it cannot send).
    pub refused: u64,
    /// Commands dropped because the connection's send queue and the
    /// commands held for it were full (the plugin got a 10035 `error`).
    pub commands_dropped: u64,
    /// Log lines dropped over the plugin's log budget.
    pub logs_dropped: u64,
    /// How long calls took, applying the commands they returned included.
    /// Its sum is the time spent in the guest (calls never wait, so it is
    /// CPU time but for the host's share of applying commands).
    pub call_latency: LatencyCounts,
    /// Instances alive now.
    pub instances_live: u64,
    /// Actors whose instance was dropped after `hibernate_after` and not
    /// made again yet.
    pub instances_hibernated: u64,
    /// Instances made (on first use, after a failure, after hibernation).
    pub instantiations: u64,
    /// Time those took, restoring hibernated state included.
    pub instantiation_time: Duration,
    /// Instances that could not be made (out of memory, mappings or the
    /// process's instance budget) and turns the runtime failed in; their
    /// connections were closed with 1011 or refused with 503.
    pub instance_failures: u64,
    /// Linear memory of the live instances, in bytes.
    pub memory_bytes: u64,
    /// Turns run on the background executors: the instance was heavy (a
    /// long turn while other tenants' quick turns ran).
    pub background_turns: u64,
    /// Turns run on the server thread of the connection whose events
    /// found the instance idle (`inline_turns`), not on the executors.
    pub inline_turns: u64,
    /// Open requests the host answered 101 without a call: the plugin
    /// keeps the default answer and said so (packed command `defaults`).
    pub opens_accepted_by_host: u64,
}

/// How long calls took: per bucket (not cumulative), calls up to its upper
/// bound and above the previous one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyCounts {
    pub buckets: Vec<(Duration, u64)>,
    /// Calls longer than the last bound.
    pub over: u64,
    pub sum: Duration,
}

impl LatencyCounts {
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum::<u64>() + self.over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_the_bucket_of_their_duration() {
        let metrics = PluginMetrics::default();
        metrics.record_call(Duration::from_micros(3), 10);
        metrics.record_call(Duration::from_micros(10), 1);
        metrics.record_call(Duration::from_millis(3), 2);
        metrics.record_call(Duration::from_secs(2), 1);
        metrics.record_failure(CallFailure::Deadline);
        metrics.record_failure(CallFailure::Trap);
        metrics.record_failure(CallFailure::Trap);
        metrics.record_failure(CallFailure::Refused);
        metrics.record_log_dropped();
        metrics.record_command_dropped();
        let c = metrics.snapshot();
        assert_eq!((c.calls, c.events, c.traps, c.deadline_hits), (4, 14, 2, 1));
        assert_eq!((c.refused, c.logs_dropped, c.commands_dropped), (1, 1, 1));
        let count_at = |us| {
            c.call_latency
                .buckets
                .iter()
                .find(|(bound, _)| *bound == Duration::from_micros(us))
                .map(|(_, n)| *n)
        };
        assert_eq!(count_at(5), Some(1));
        assert_eq!(count_at(10), Some(1));
        assert_eq!(count_at(5_000), Some(1));
        assert_eq!(count_at(1_000_000), Some(0));
        assert_eq!(c.call_latency.over, 1);
        assert_eq!(c.call_latency.count(), 4);
        assert_eq!(
            c.call_latency.sum,
            Duration::from_micros(2_003_013),
            "the sum is exact"
        );
    }

    #[test]
    fn instances_turn_counters_add_up_with_the_tenants() {
        let tenant = PluginMetrics::default();
        tenant.record_call(Duration::from_micros(3), 1);
        let instances = [TurnMetrics::default(), TurnMetrics::default()];
        instances[0].record_call(Duration::from_micros(7), 5);
        instances[0].record_inline_turn();
        instances[1].record_call(Duration::from_secs(2), 2);
        instances[1].record_background_turn();
        let mut c = tenant.snapshot();
        for instance in &instances {
            instance.add_to(&mut c);
        }
        assert_eq!((c.calls, c.events), (3, 8));
        assert_eq!((c.inline_turns, c.background_turns), (1, 1));
        assert_eq!(c.call_latency.count(), 3);
        assert_eq!(c.call_latency.buckets[0], (Duration::from_micros(5), 1));
        assert_eq!(c.call_latency.buckets[1], (Duration::from_micros(10), 1));
        assert_eq!(c.call_latency.over, 1);
        assert_eq!(c.call_latency.sum, Duration::from_micros(2_000_010));
    }

    #[test]
    fn an_interrupt_is_a_deadline_hit_and_other_traps_are_traps() {
        let interrupt = wasmtime::Error::from(wasmtime::Trap::Interrupt);
        let unreachable = wasmtime::Error::from(wasmtime::Trap::UnreachableCodeReached);
        assert_eq!(CallFailure::of(&interrupt), CallFailure::Deadline);
        assert_eq!(CallFailure::of(&unreachable), CallFailure::Trap);
        let context = interrupt.context("in on-events");
        assert_eq!(CallFailure::of(&context), CallFailure::Deadline);
    }
}
