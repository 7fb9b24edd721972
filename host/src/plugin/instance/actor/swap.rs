//! A hot swap, as one actor sees it: the new instance prepared (the
//! plugin's state carried over through `lifecycle`), then switched to or
//! dropped on the tenant's verdict.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Actor, Slot};
use crate::plugin::actor_state::ActorState;
use crate::plugin::inbox::SwapOrder;
use crate::plugin::instance::PluginHandle;
use crate::plugin::version::{Live, Version};

/// A prepared swap waiting for the tenant's verdict.
pub(in crate::plugin) struct PendingSwap {
    version: Arc<Version>,
    next: Live,
    /// The state moved through `lifecycle` (else the new version hears of
    /// the open connections again).
    carried: bool,
    /// The running instance's defaults, withdrawn while the verdict is
    /// out and given back if the swap is called off.
    defaults: u8,
}

impl Actor {
    /// Takes a swap order: prepares the new instance and reports; the
    /// switch waits for the tenant's verdict.
    pub(super) fn begin_swap(&mut self, handle: &PluginHandle, order: SwapOrder) {
        let SwapOrder {
            version,
            mut next,
            prepared,
        } = order;
        let carried = match self.carry_state(handle, &version, &mut next) {
            Ok(carried) => carried,
            Err(reason) => {
                let _ = prepared.send(Err(reason));
                return;
            }
        };
        // Until the verdict, this actor takes no event: what arrives waits
        // for whichever version wins. The host stops answering for the
        // running version before the tenant hears "prepared", so no open
        // request is accepted on its behalf once the swap has returned.
        let defaults = handle.defaults.swap(0, Ordering::AcqRel);
        if prepared.send(Ok(())).is_ok() {
            self.pending = Some(PendingSwap {
                version,
                next,
                carried,
                defaults,
            });
        } else {
            handle.defaults.fetch_or(defaults, Ordering::AcqRel);
        }
    }

    pub(super) fn finish_swap(&mut self, handle: &PluginHandle, commit: bool) {
        let Some(PendingSwap {
            version,
            mut next,
            carried,
            defaults,
        }) = self.pending.take()
        else {
            return;
        };
        if !commit {
            handle.defaults.fetch_or(defaults, Ordering::AcqRel);
            return;
        }
        self.park(handle);
        let Slot::Parked(state) = std::mem::replace(
            &mut self.slot,
            Slot::Parked(ActorState::new(handle.shared.clone())),
        ) else {
            unreachable!("parked above");
        };
        next.store.data_mut().actor = state;
        self.slot = Slot::Live(Box::new(next));
        self.version = version;
        self.snapshot = None;
        if handle.hibernated.swap(false, Ordering::AcqRel) {
            handle.shared.metrics.woke();
        }
        self.last_active = Instant::now();
        self.watch_idle(handle);
        if !carried {
            self.state_mut().announce_again();
        }
    }

    /// Hands the plugin's state from the running instance (or the snapshot
    /// it hibernated with) to `next` when both versions export `lifecycle`
    /// (true), or leaves `next` fresh (false). A failed snapshot poisons
    /// the running instance, which is dropped.
    fn carry_state(
        &mut self,
        handle: &PluginHandle,
        version: &Version,
        next: &mut Live,
    ) -> Result<bool, String> {
        if !(self.version.has_lifecycle() && next.has_lifecycle()) {
            return Ok(false);
        }
        let state = match &mut self.slot {
            Slot::Live(live) => match live.snapshot(self.version.call_deadline()) {
                Ok(state) => Some(state),
                Err(reason) => {
                    self.fail(handle, &[], &reason);
                    return Err(reason);
                }
            },
            Slot::Parked(_) => self.snapshot.clone(),
        };
        if let Some(state) = state {
            next.restore(&state, version.call_deadline())?;
        }
        Ok(true)
    }
}
