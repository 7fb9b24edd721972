//! What the timed modes (echo, handshake, fan-out) share: the window opens
//! after the warm-up on all threads at once, CPU is metered inside it, and
//! the threads' tallies become one report.

use super::meter::{CpuMeter, CpuUse};
use super::tally::Tally;
use super::workers::{Phases, Window, run_workers};
use super::{LoadError, Setup};
use crate::report::{Latency, Mode, Report};

/// Runs `worker` on every thread (see `run_workers`) and returns what each
/// returned, the window, and the CPU used inside it.
pub fn run_measured<T: Send>(
    setup: &Setup,
    worker: impl AsyncFn(usize, &Phases) -> Result<T, LoadError> + Sync,
) -> Result<(Vec<T>, Window, CpuUse), LoadError> {
    let meter = CpuMeter::new(&setup.server_pids)?;
    let (results, metered) = run_workers(setup.threads, worker, |phases| {
        phases.all_ready();
        let window = Window::after(setup.warmup, setup.duration);
        phases.start(window);
        meter.over(&window).map(|cpu| (cpu, window))
    });
    let (cpu, window) = metered?;
    let results = results.into_iter().collect::<Result<_, _>>()?;
    Ok((results, window, cpu))
}

/// The report of a timed mode; mode-specific fields are left empty.
pub fn timed_report(
    mode: Mode,
    connections: usize,
    window: &Window,
    tally: &Tally,
    cpu: CpuUse,
) -> Report {
    Report {
        mode,
        connections: connections as u64,
        window_secs: window.secs(),
        events: tally.events,
        payload_bytes: tally.payload_bytes,
        latency: Latency::from_histogram(&tally.latency),
        server_cpu_secs: cpu.server_secs,
        client_cpu_secs: cpu.client_secs,
        rss_per_connection: None,
        answering: None,
        published: None,
    }
}
