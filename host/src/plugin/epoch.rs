//! The epoch ticker behind CPU deadlines. A guest call's deadline is
//! counted in epochs, so the epoch has to advance while a call may run;
//! with none running the ticker parks instead of waking every tick for
//! nothing (two wake-ups every 5 ms cost an idle server about 1% of a
//! core). A call that starts while it is parked wakes it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};
use std::time::Duration;

use wasmtime::EngineWeak;

use super::idle_park::Parked;

/// How often the epoch advances: the granularity of CPU deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Ticks without a call before the ticker parks.
const IDLE_TICKS: u32 = 20;
/// The longest a parked ticker sleeps (a call wakes it sooner).
const IDLE_PARK: Duration = Duration::from_secs(1);

/// Every engine's calls and tickers.
static CALLS: Calls = Calls::new();

/// Guest calls running now, and the tickers that advance their epochs.
struct Calls {
    running: AtomicUsize,
    /// Tickers parked for want of calls.
    parked: Parked,
    tickers: Mutex<Vec<Thread>>,
}

impl Calls {
    const fn new() -> Self {
        Self {
            running: AtomicUsize::new(0),
            parked: Parked::new(),
            tickers: Mutex::new(Vec::new()),
        }
    }

    fn tickers(&self) -> MutexGuard<'_, Vec<Thread>> {
        self.tickers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn begin(&self) {
        // Counted before looking for parked tickers (see `idle_park`).
        self.running.fetch_add(1, Ordering::SeqCst);
        if self.parked.any() {
            for ticker in self.tickers().iter() {
                ticker.unpark();
            }
        }
    }

    fn end(&self) {
        self.running.fetch_sub(1, Ordering::Release);
    }

    fn idle(&self) -> bool {
        self.running.load(Ordering::SeqCst) == 0
    }

    /// Ticks on this thread, calling `advance` every [`EPOCH_TICK`] while
    /// calls run, until `advance` answers false (the engine is gone) or
    /// `stop` is set.
    fn tick(&self, advance: impl Fn() -> bool, stop: &AtomicBool, idle_park: Duration) {
        self.tickers().push(thread::current());
        let mut idle = 0;
        while !stop.load(Ordering::Relaxed) {
            thread::sleep(EPOCH_TICK);
            if !advance() {
                break;
            }
            if !self.idle() {
                idle = 0;
                continue;
            }
            idle += 1;
            if idle >= IDLE_TICKS {
                self.parked.park_while(|| self.idle(), idle_park);
                // Still idle (a timeout, or a call that has ended): one
                // tick, then park again.
                idle = if self.idle() { IDLE_TICKS - 1 } else { 0 };
            }
        }
        let me = thread::current().id();
        self.tickers().retain(|ticker| ticker.id() != me);
    }
}

/// A guest call in progress: keeps the epoch advancing until dropped.
#[must_use = "the epoch advances only while the guard lives"]
pub(crate) struct GuestCall(());

impl GuestCall {
    pub(crate) fn begin() -> Self {
        CALLS.begin();
        Self(())
    }
}

impl Drop for GuestCall {
    fn drop(&mut self) {
        CALLS.end();
    }
}

/// Starts `engine`'s ticker, which ends once the engine is gone or `stop`
/// is set.
pub(crate) fn start_ticker(engine: EngineWeak, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    let advance = move || match engine.upgrade() {
        Some(engine) => {
            engine.increment_epoch();
            true
        }
        None => false,
    };
    thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || CALLS.tick(advance, &stop, IDLE_PARK))
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// The ticker parks without calls, stays still while parked, and a
    /// call wakes it at once (its own timeout here is an hour).
    #[test]
    fn a_parked_ticker_is_woken_by_a_call_and_parks_again_after_it() {
        let calls: &'static Calls = Box::leak(Box::new(Calls::new()));
        let ticks = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (ticks, stop) = (ticks.clone(), stop.clone());
            let advance = move || {
                ticks.fetch_add(1, Ordering::SeqCst);
                true
            };
            thread::spawn(move || calls.tick(advance, &stop, Duration::from_secs(3600)))
        };
        let parked = || calls.parked.any();
        wait_until("the ticker parks", parked);
        let still = ticks.load(Ordering::SeqCst);
        thread::sleep(EPOCH_TICK * 10);
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            still,
            "a parked ticker ticked"
        );

        calls.begin();
        wait_until("a call's epochs advance", || {
            ticks.load(Ordering::SeqCst) >= still + 3
        });
        assert!(!parked(), "parked during a call");
        calls.end();
        wait_until("the ticker parks again", parked);

        stop.store(true, Ordering::SeqCst);
        calls.begin();
        ticker.join().unwrap();
        assert!(
            calls.tickers().is_empty(),
            "the ended ticker is still listed"
        );
        calls.end();
    }
}
