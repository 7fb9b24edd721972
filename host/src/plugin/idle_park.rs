//! Parking a housekeeping thread (the epoch ticker, the executors'
//! watchdog) while it has nothing to look at, without losing a wake-up.
//!
//! The parking thread counts itself parked, then looks for work once
//! more; a thread that brings work publishes it, then looks for a parked
//! thread to unpark. Both steps are SeqCst, so either the parking thread
//! sees the work or the other one sees it parked.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

/// How many threads are parked in [`park_while`](Self::park_while).
#[derive(Debug, Default)]
pub(crate) struct Parked(AtomicUsize);

impl Parked {
    pub const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// Parks the calling thread for at most `timeout`, unless `idle` turns
    /// false once it counts as parked. Returns when unparked, on the
    /// timeout, or at once.
    pub fn park_while(&self, idle: impl Fn() -> bool, timeout: Duration) {
        self.0.fetch_add(1, Ordering::SeqCst);
        if idle() {
            thread::park_timeout(timeout);
        }
        self.0.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether a thread is parked: asked after publishing work, which then
    /// unparks it.
    pub fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}
