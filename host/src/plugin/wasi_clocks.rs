//! The guest's monotonic clock, with every wait capped by its call's time.
//!
//! A guest waits through `wasi:clocks/monotonic-clock`'s `subscribe-*`
//! and `wasi:io/poll` (`std::thread::sleep` does). While it waits it runs
//! no wasm, so the epoch deadline cannot end its call: one long sleep
//! would hold an executor for as long as the guest asked. Here a clock's
//! pollable never outlasts what is left of the call's wall-time cap (see
//! `deadline.rs`): a guest asleep for an hour wakes when its call is out
//! of time, and the deadline check that follows ends the call with 1011.
//! Nothing else the host grants can block: stdin is closed, and stdout and
//! stderr take everything at once.

use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{
    self, Duration as WasiDuration, Instant,
};

use super::epoch::EPOCH_TICK;

/// The monotonic clock of one call: the WASI clock, and how long the call
/// may still wait.
pub(crate) struct CappedClock<'a> {
    pub clocks: WasiClocksCtxView<'a>,
    pub wait_left: Duration,
}

impl CappedClock<'_> {
    /// `wait`, or past what the call has left by a tick: waking with a
    /// sliver of the budget left, the check that follows would let the
    /// call run on (and finish) instead of ending it.
    fn capped(&self, wait: Duration) -> WasiDuration {
        let wait = if wait > self.wait_left {
            self.wait_left + EPOCH_TICK
        } else {
            wait
        };
        u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX)
    }
}

impl monotonic_clock::Host for CappedClock<'_> {
    fn now(&mut self) -> wasmtime::Result<Instant> {
        self.clocks.now()
    }

    fn resolution(&mut self) -> wasmtime::Result<WasiDuration> {
        self.clocks.resolution()
    }

    fn subscribe_instant(&mut self, when: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        let wait = Duration::from_nanos(when.saturating_sub(self.clocks.now()?));
        let capped = self.capped(wait);
        self.clocks.subscribe_duration(capped)
    }

    fn subscribe_duration(
        &mut self,
        duration: WasiDuration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        let capped = self.capped(Duration::from_nanos(duration));
        self.clocks.subscribe_duration(capped)
    }
}

struct HasCappedClock;

impl HasData for HasCappedClock {
    type Data<'a> = CappedClock<'a>;
}

/// Replaces WASI's monotonic clock in `linker` (which has WASI already)
/// with the capped one; `clock` gives a store's.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    clock: fn(&mut T) -> CappedClock<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = monotonic_clock::add_to_linker::<T, HasCappedClock>(linker, clock);
    linker.allow_shadowing(false);
    added
}
