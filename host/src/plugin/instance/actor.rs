//! The actor behind a plugin handle (the parent module): its instance, made
//! on demand, dropped after `hibernate_after`, replaced after a failure and
//! switched on a hot swap; its turns; and its calls into the guest.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use wsserver_packed as packed;
use wsserver_plugin_bindings::wsserver::plugin::types as wit;

use super::PluginHandle;
use crate::plugin::actor_state::{ActorState, PluginShared};
use crate::plugin::convert;
use crate::plugin::executor::Task;
use crate::plugin::inbox::{PendingOpen, Tally};
use crate::plugin::metrics::CallFailure;
use crate::plugin::version::{Failed, Live, Version};
use crate::protocol::close::INTERNAL_ERROR;
use crate::server::{ConnectionId, OpenResponse};

mod swap;
use swap::PendingSwap;

/// What a turn leaves to its end.
#[derive(Default)]
pub(super) struct Turned {
    /// The buffer of the events it handled, for the next batch.
    pub handled: Vec<u8>,
    /// When its work ended (a reading of the clock), if it had any.
    pub ended: Option<Instant>,
}

/// The instance, or the plugin's connection state while there is none.
pub(super) enum Slot {
    Live(Box<Live>),
    Parked(ActorState),
}

pub(super) struct Actor {
    /// The version the instance is (or will be) made from.
    version: Arc<Version>,
    pub slot: Slot,
    /// The plugin's state from `lifecycle.snapshot`, taken when it
    /// hibernated: the next instance is restored from it.
    snapshot: Option<Vec<u8>>,
    pub pending: Option<PendingSwap>,
    /// When the last turn with work ended: hibernation counts from here.
    pub last_active: Instant,
    /// Registered with the watchdog's hibernation sweep.
    pub watched: bool,
}

impl Actor {
    /// An actor of `version` without an instance yet.
    pub fn new(version: Arc<Version>, shared: Arc<PluginShared>) -> Self {
        Self {
            version,
            slot: Slot::Parked(ActorState::new(shared)),
            snapshot: None,
            pending: None,
            last_active: Instant::now(),
            watched: false,
        }
    }

    pub fn state(&self) -> &ActorState {
        match &self.slot {
            Slot::Live(live) => &live.store.data().actor,
            Slot::Parked(state) => state,
        }
    }

    fn state_mut(&mut self) -> &mut ActorState {
        match &mut self.slot {
            Slot::Live(live) => &mut live.store.data_mut().actor,
            Slot::Parked(state) => state,
        }
    }

    /// Drops the instance (if any), keeping the plugin's connection state;
    /// what the instance declared (its defaults) goes with it.
    fn park(&mut self, handle: &PluginHandle) {
        handle.defaults.store(0, Ordering::Release);
        let shared = self.state().shared.clone();
        let slot = std::mem::replace(&mut self.slot, Slot::Parked(ActorState::new(shared)));
        self.slot = Slot::Parked(match slot {
            Slot::Live(live) => live.store.into_data().actor,
            Slot::Parked(state) => state,
        });
    }

    /// One turn, begun at `started`.
    pub fn turn(&mut self, handle: &PluginHandle, started: Instant) -> Turned {
        let (admitted, announced, opens, mut events, mut tally, throttled, flushes, hibernate) = {
            let mut inbox = handle.inbox();
            if self.pending.is_some() {
                let verdict = inbox.verdict.take();
                drop(inbox);
                if let Some(commit) = verdict {
                    self.finish_swap(handle, commit);
                }
                return Turned::default();
            }
            if let Some(order) = inbox.swap.take() {
                drop(inbox);
                self.begin_swap(handle, order);
                return Turned::default();
            }
            inbox.verdict = None;
            (
                std::mem::take(&mut inbox.admitted),
                std::mem::take(&mut inbox.announced),
                std::mem::take(&mut inbox.opens),
                std::mem::take(&mut inbox.events),
                std::mem::take(&mut inbox.tally),
                std::mem::take(&mut inbox.throttled),
                std::mem::take(&mut inbox.flushes),
                std::mem::take(&mut inbox.hibernate),
            )
        };
        let owed = std::mem::take(&mut self.state_mut().owed);
        if !owed.is_empty() {
            let errors = packed::events(&owed).count();
            tally.add(Tally {
                events: errors,
                bookkeeping: false,
            });
            events.splice(0..0, owed);
        }
        let worked = !admitted.is_empty() || !opens.is_empty() || !events.is_empty();
        for conn in admitted {
            self.state_mut().admit(conn);
        }
        for id in announced {
            self.state_mut().announced(id);
        }
        // Open requests' calls time themselves: the events' call starts
        // after them.
        let call_start = if opens.is_empty() {
            started
        } else {
            for open in opens {
                self.open(handle, open);
            }
            Instant::now()
        };
        let mut ended = None;
        if !events.is_empty() {
            ended = self.deliver(handle, &events, tally, call_start);
        }
        // Only now: a connection whose replies the batch could not send
        // stays paused until they have left.
        for conn in throttled {
            let state = self.state();
            if !state.shared.paused_by_plugin(conn.id()) && !state.is_held(conn.id()) {
                conn.resume_data();
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
        if worked {
            let ended = ended.unwrap_or_else(Instant::now);
            self.last_active = ended;
            return Turned {
                handled: events,
                ended: Some(ended),
            };
        } else if hibernate
            && handle
                .limits
                .hibernate_after
                .is_some_and(|after| self.last_active.elapsed() >= after)
        {
            self.hibernate(handle);
        }
        Turned::default()
    }

    /// Makes an instance if there is none (restoring the hibernated
    /// state); on failure the reason, logged and counted.
    fn ensure_live(&mut self, handle: &PluginHandle) -> Result<(), String> {
        if matches!(self.slot, Slot::Live(_)) {
            return Ok(());
        }
        let shared = handle.shared.clone();
        let Slot::Parked(state) =
            std::mem::replace(&mut self.slot, Slot::Parked(ActorState::new(shared)))
        else {
            unreachable!("checked above");
        };
        let started = Instant::now();
        let mut live = match self.version.instantiate(state) {
            Ok(live) => live,
            Err(failed) => {
                let Failed { actor, reason } = *failed;
                self.slot = Slot::Parked(actor);
                let reason = format!("cannot create an instance: {reason}");
                handle.shared.metrics.record_instance_failure();
                log_error(handle, &reason);
                return Err(reason);
            }
        };
        let metrics = &handle.shared.metrics;
        if let Some(state) = self.snapshot.take()
            && live.has_lifecycle()
            && let Err(reason) = live.restore(&state, self.version.call_deadline())
        {
            log_error(
                handle,
                &format!("the state saved at hibernation is lost: {reason}"),
            );
        }
        metrics.record_instantiation(started.elapsed());
        if handle.hibernated.swap(false, Ordering::AcqRel) {
            metrics.woke();
        }
        self.slot = Slot::Live(Box::new(live));
        self.watch_idle(handle);
        Ok(())
    }

    /// Registers with the hibernation sweep, once.
    fn watch_idle(&mut self, handle: &PluginHandle) {
        if handle.limits.hibernate_after.is_some() && !self.watched {
            self.watched = true;
            let me: Weak<dyn Task> = handle.me.clone();
            handle.executors.watch_idle(me);
        }
    }

    /// Drops the instance after `hibernate_after` without events; a plugin
    /// with `lifecycle` leaves its state in a snapshot.
    fn hibernate(&mut self, handle: &PluginHandle) {
        let Slot::Live(live) = &mut self.slot else {
            return;
        };
        if live.has_lifecycle() {
            match live.snapshot(self.version.call_deadline()) {
                Ok(state) => self.snapshot = Some(state),
                Err(reason) => {
                    log_error(handle, &format!("hibernating without its state: {reason}"))
                }
            }
        }
        self.park(handle);
        handle.inbox().release_buffer();
        handle.hibernated.store(true, Ordering::Release);
        handle.shared.metrics.hibernated();
    }

    fn open(&mut self, handle: &PluginHandle, open: PendingOpen) {
        let PendingOpen {
            request,
            offered,
            conn,
            reply,
        } = open;
        if let Err(reason) = self.ensure_live(handle) {
            // Out of a resource: refused at once, with the reason.
            let _ = reply.send(OpenResponse::reject(503).with_header("X-Wsserver-Reason", reason));
            return;
        }
        let Slot::Live(live) = &mut self.slot else {
            return;
        };
        let call = live.start_call(self.version.call_deadline());
        let started = Instant::now();
        let answer = live
            .plugin
            .wsserver_plugin_handler()
            .call_on_open_request(&mut live.store, &request);
        drop(call);
        let metrics = &handle.shared.metrics;
        metrics.record_call(started.elapsed(), 1);
        let response = match answer {
            Ok(resp) => match convert::open_response(resp, &offered) {
                Ok(resp) => resp,
                Err(mistake) => {
                    metrics.record_failure(CallFailure::Refused);
                    log_error(
                        handle,
                        &format!("connection {}: plugin {mistake}; answering 500", conn.id()),
                    );
                    OpenResponse::reject(500)
                }
            },
            Err(e) => {
                metrics.record_failure(CallFailure::of(&e));
                self.fail(handle, &[], &format!("{e:#}"));
                OpenResponse::reject(500)
            }
        };
        if response.status_code == 101 {
            self.state_mut().admit(conn);
        }
        let _ = reply.send(response);
    }

    /// One `on-events` call for everything waiting (`batch`, packed, of
    /// which `tally` tells), then its commands; the call starts at (a
    /// reading of the clock taken just before) `now`. Returns when the
    /// call ended, if it was made.
    fn deliver(
        &mut self,
        handle: &PluginHandle,
        batch: &[u8],
        tally: Tally,
        now: Instant,
    ) -> Option<Instant> {
        let (mut ended, mut released) = (Vec::new(), Vec::new());
        if tally.bookkeeping {
            for event in packed::events(batch).flatten() {
                match event {
                    // Room again: commands held for it go first.
                    packed::Event::ReadyToSend(id) => {
                        self.state_mut().release_held(id);
                        released.push(id);
                    }
                    packed::Event::Connected(id) => self.state_mut().announced(id),
                    packed::Event::Disconnected { connection, .. } => ended.push(connection),
                    _ => {}
                }
            }
        }
        let involved = || -> Vec<ConnectionId> {
            packed::events(batch)
                .flatten()
                .filter_map(|e| e.connection())
                .collect()
        };
        // Making an instance takes a while: the call starts after it.
        let now = match self.slot {
            Slot::Live(_) => now,
            Slot::Parked(_) => {
                if let Err(reason) = self.ensure_live(handle) {
                    self.fail(handle, &involved(), &reason);
                    self.forget(released, ended);
                    return None;
                }
                Instant::now()
            }
        };
        let (failure, call_ended) = self.call_on_events(handle, batch, tally.events, now);
        if let Some(reason) = failure {
            self.fail(handle, &involved(), &reason);
        }
        self.forget(released, ended);
        Some(call_ended)
    }

    /// After a batch: resumes the clients whose held commands left, and
    /// forgets the connections that ended.
    fn forget(&mut self, released: Vec<ConnectionId>, ended: Vec<ConnectionId>) {
        let state = self.state_mut();
        for id in released {
            state.resume_released(id);
        }
        for id in ended {
            state.forget(id);
        }
    }

    /// The guest call of [`deliver`](Self::deliver), started at `started`:
    /// a failure's reason, and when it ended.
    fn call_on_events(
        &mut self,
        handle: &PluginHandle,
        batch: &[u8],
        delivered: usize,
        started: Instant,
    ) -> (Option<String>, Instant) {
        let Slot::Live(live) = &mut self.slot else {
            return (Some("no instance".to_owned()), started);
        };
        let _call = live.start_call_at(self.version.call_deadline(), started);
        let metrics = &handle.shared.metrics;
        let failure = match &live.packed {
            Some(on_events) => match on_events.call(&mut live.store, (batch,)) {
                Ok((commands,)) => {
                    let actor = &mut live.store.data_mut().actor;
                    let applied = apply_packed(handle, actor, &commands, batch);
                    if applied.is_err() {
                        metrics.record_failure(CallFailure::Refused);
                    }
                    applied.err()
                }
                Err(e) => {
                    metrics.record_failure(CallFailure::of(&e));
                    Some(format!("{e:#}"))
                }
            },
            None => {
                let events: Vec<wit::Event> = packed::events(batch)
                    .flatten()
                    .map(convert::typed_event)
                    .collect();
                let handler = live.plugin.wsserver_plugin_handler();
                match handler.call_on_events(&mut live.store, &events) {
                    Ok(commands) => {
                        let actor = &mut live.store.data_mut().actor;
                        for command in &commands {
                            actor.apply(convert::packed_command(command));
                        }
                        None
                    }
                    Err(e) => {
                        metrics.record_failure(CallFailure::of(&e));
                        Some(format!("{e:#}"))
                    }
                }
            }
        };
        let ended = Instant::now();
        handle
            .turn_metrics
            .record_call(ended.saturating_duration_since(started), delivered);
        (failure, ended)
    }

    /// The instance failed (or could not be made): close the connections
    /// involved with 1011 and drop the instance; the next event gets a
    /// fresh one.
    fn fail(&mut self, handle: &PluginHandle, involved: &[ConnectionId], reason: &str) {
        let why = describe_failure(reason);
        log_error(handle, &format!("instance failed ({why}); replacing it"));
        let state = self.state();
        let mut closed = involved.to_vec();
        closed.sort_unstable();
        closed.dedup();
        for id in closed {
            if let Some(conn) = state.connections.get(&id) {
                let _ = conn.close(INTERNAL_ERROR, "plugin failed");
            }
        }
        self.park(handle);
        self.snapshot = None;
    }

    /// A turn panicked: whatever the instance was doing is suspect, so
    /// every connection it served closes with 1011 and the next event gets
    /// a fresh instance.
    pub fn recover(&mut self, handle: &PluginHandle, panic: &str) {
        handle.shared.metrics.record_instance_failure();
        log_error(
            handle,
            &format!("the plugin runtime failed ({panic}); closing its connections with 1011"),
        );
        self.pending = None;
        self.park(handle);
        self.snapshot = None;
        for conn in self.state().connections.values() {
            let _ = conn.close(INTERNAL_ERROR, "plugin runtime failure");
        }
    }
}

fn log_error(handle: &PluginHandle, message: &str) {
    tracing::error!(plugin = %handle.shared.name, "{message}");
}

/// Applies the commands of a packed batch in order; sends of the events'
/// own bytes are taken from `events`, the batch they answer. A batch that
/// does not follow the layout is the plugin's failure, like a trap: the
/// commands before the malformed record have been applied.
fn apply_packed(
    handle: &PluginHandle,
    actor: &mut ActorState,
    commands: &[u8],
    events: &[u8],
) -> Result<(), String> {
    let outside = || "returned a send of bytes outside its batch of events".to_owned();
    let mut commands = packed::commands(commands);
    loop {
        // An echo's every reply: read and sent without the general path,
        // a run of them to one connection at a time.
        if let Some(first) = commands.next_send_input() {
            let connection = first.connection;
            let mut next = Some(first);
            let mut within = true;
            // Ends at the first bytes outside the batch, without reading on.
            let run = std::iter::from_fn(|| {
                let send = next
                    .take()
                    .or_else(|| commands.next_send_input_to(connection))?;
                let data = send.bytes(events);
                within = data.is_some();
                Some((send.format, data?))
            })
            .fuse();
            actor.apply_send_run(connection, run);
            if !within {
                return Err(outside());
            }
            continue;
        }
        let Some(command) = commands.next() else {
            return Ok(());
        };
        let command = command.map_err(|e| format!("returned a {e}"))?;
        if let packed::Command::Defaults(methods) = command {
            handle.defaults.fetch_or(methods, Ordering::AcqRel);
            continue;
        }
        actor.apply(command.with_input(events).ok_or_else(outside)?);
    }
}

/// A short reason for the log: deadline, memory or trap.
fn describe_failure(error: &str) -> String {
    let first = error.lines().next().unwrap_or(error);
    if error.contains("interrupt") {
        "CPU deadline exceeded".to_owned()
    } else {
        first.to_owned()
    }
}
