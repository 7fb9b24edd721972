//! Worker threads and the hand-over between them and the coordinating
//! thread: workers open their connections, everyone meets, the coordinator
//! fixes the measurement window, and the load starts on all threads at once.

use std::sync::{Barrier, OnceLock};
use std::time::Duration;

use super::LoadError;
use crate::client::{Stamp, instant_of, now_stamp};

/// The span in which events count, in payload-stamp time.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Stamp,
    pub end: Stamp,
}

impl Window {
    /// A window that opens after `warmup` and lasts `duration`.
    pub fn after(warmup: Duration, duration: Duration) -> Self {
        let start = now_stamp() + warmup.as_nanos() as Stamp;
        Self {
            start,
            end: start + duration.as_nanos() as Stamp,
        }
    }

    pub fn contains(&self, stamp: Stamp) -> bool {
        (self.start..self.end).contains(&stamp)
    }

    pub fn secs(&self) -> f64 {
        (self.end - self.start) as f64 / 1e9
    }

    pub fn start_instant(&self) -> std::time::Instant {
        instant_of(self.start)
    }

    pub fn end_instant(&self) -> std::time::Instant {
        instant_of(self.end)
    }
}

pub struct Phases {
    ready: Barrier,
    go: Barrier,
    window: OnceLock<Window>,
}

impl Phases {
    /// Workers call this exactly once, when their connections are open (or
    /// failed to open); it returns when the load is to start.
    pub fn worker_ready(&self) -> Window {
        self.ready.wait();
        self.go.wait();
        *self
            .window
            .get()
            .expect("the coordinator sets the window before releasing workers")
    }

    /// The coordinator's side: returns once every worker is ready.
    pub fn all_ready(&self) {
        self.ready.wait();
    }

    /// The coordinator's side: releases the workers into `window`.
    pub fn start(&self, window: Window) {
        // Set once per run, by the only coordinator: cannot already be set.
        let _ = self.window.set(window);
        self.go.wait();
    }
}

/// Runs `worker(thread_index, phases)` on `threads` threads and
/// `coordinator(phases)` on this one; the coordinator must call
/// `all_ready` and then `start` exactly once.
pub fn run_workers<T, M>(
    threads: usize,
    worker: impl AsyncFn(usize, &Phases) -> Result<T, LoadError> + Sync,
    coordinator: impl FnOnce(&Phases) -> M,
) -> (Vec<Result<T, LoadError>>, M)
where
    T: Send,
{
    let phases = Phases {
        ready: Barrier::new(threads + 1),
        go: Barrier::new(threads + 1),
        window: OnceLock::new(),
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let (phases, worker) = (&phases, &worker);
                scope.spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime.block_on(worker(index, phases)),
                        Err(error) => {
                            phases.worker_ready();
                            Err(error.into())
                        }
                    }
                })
            })
            .collect();
        let coordinated = coordinator(&phases);
        let results = handles
            .into_iter()
            .map(|handle| match handle.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect();
        (results, coordinated)
    })
}
