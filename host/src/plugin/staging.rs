//! Events staged on a serving thread on their way to a plugin instance.
//!
//! A connection's read dispatches its events here, and they reach the
//! instance in one hand-over (one inbox lock, one plugin call) instead of
//! one by one. Events of different connections served by the same
//! instance share the hand-over: on a current-thread runtime (the
//! server's own) the end of a small read, or of a connection, does not
//! hand over at once but wakes the thread's hand-over task, which runs
//! behind the connections already ready in this round of the runtime, so
//! their events join the same batch. A plugin call costs thousands of
//! instructions whatever it carries; one per read was most of the cost of
//! a small message.
//!
//! Each connection's events keep their order: they are appended in the
//! order they were read, and events for another instance hand over what
//! is staged first.

use std::cell::RefCell;
use std::sync::{Arc, Weak};
use std::task::{Poll, Waker};

use tokio::runtime::{Handle, RuntimeFlavor};
use wsserver_packed as packed;

use super::inbox::{STAGE_LIMIT, Tally};
use super::instance::PluginHandle;
use crate::protocol::mask::MaskedPayload;
use crate::server::Connection;

struct Staged {
    /// The instance the staged events go to.
    plugin: Option<Arc<PluginHandle>>,
    /// The connections whose events are staged, each once per run of its
    /// events: paused together if the instance falls behind.
    conns: Vec<Connection>,
    events: Vec<u8>,
    tally: Tally,
    /// The last event staged is not part of a message that came in
    /// pieces: a whole small message, or no data at all.
    last_whole: bool,
    task: HandoverTask,
}

/// This thread's hand-over task, as the staging side sees it. The `Weak`
/// is the task's liveness: its future owns the `Arc`, so if its runtime
/// drops it (on whichever thread), the next hand-over starts another
/// instead of waking nothing.
enum HandoverTask {
    /// None started on this thread.
    Absent,
    /// Started or woken, not yet run: it hands over when it runs.
    Queued(Weak<()>),
    /// Ran; waits to be woken.
    Waiting(Weak<()>, Waker),
}

impl HandoverTask {
    fn alive(&self) -> bool {
        match self {
            Self::Absent => false,
            Self::Queued(alive) | Self::Waiting(alive, _) => alive.strong_count() > 0,
        }
    }
}

/// Staged bytes below which the end of a read waits for other
/// connections' reads. A read that brings more (pipelined clients) has
/// enough for one call: the reply to its own connection then leaves in the
/// same round, where a deferred one costs that connection another poll, a
/// lock and a wake-up per send (measured: deferring reads of 32 small
/// messages cost 6% more instructions per message; single messages 37%
/// fewer). A read that ends with a piece of a message larger than the
/// read is handed over at once too: deferring those (the tail of a 4 KiB
/// message, read apart from its head) cost 4 KiB messages 5–7%.
const DEFER_BELOW: usize = 1024;

thread_local! {
    static STAGED: RefCell<Staged> = const {
        RefCell::new(Staged {
            plugin: None,
            conns: Vec::new(),
            events: Vec::new(),
            tally: Tally::NONE,
            last_whole: false,
            task: HandoverTask::Absent,
        })
    };
}

/// What staging an event left to do.
enum Staging {
    Done,
    /// The staged bytes reached [`STAGE_LIMIT`]: hand them over.
    Full,
    /// Another instance's events are staged: hand them over first.
    Taken,
}

impl Staged {
    /// Makes room for an event of `conn` for `plugin`: false when another
    /// instance's events are staged, to be handed over first.
    #[inline(always)]
    fn admit(&mut self, plugin: &Arc<PluginHandle>, conn: &Connection) -> bool {
        match &self.plugin {
            Some(staged) if !Arc::ptr_eq(staged, plugin) => return false,
            Some(_) => {}
            None => self.plugin = Some(plugin.clone()),
        }
        if self
            .conns
            .last()
            .is_none_or(|last| last.address() != conn.address())
        {
            self.conns.push(conn.clone());
        }
        true
    }

    /// Counts an event just appended; `whole` when it is not part of a
    /// message that came in pieces.
    #[inline(always)]
    fn appended(&mut self, tally: Tally, whole: bool) -> Staging {
        self.tally.add(tally);
        self.last_whole = whole;
        // A read can expand (inflated data, many small frames): hand over
        // early so flow control can pause the client within the read.
        if self.events.len() >= STAGE_LIMIT {
            Staging::Full
        } else {
            Staging::Done
        }
    }
}

/// Stages an event of `conn` for `plugin`; the common case (the same
/// instance, under the limit) only appends.
// Inlined: once per event of every read.
#[inline(always)]
pub(super) fn stage(plugin: &Arc<PluginHandle>, conn: &Connection, event: &packed::Event<'_>) {
    let staging = STAGED.with_borrow_mut(|staged| {
        if !staged.admit(plugin, conn) {
            return Staging::Taken;
        }
        packed::Writer::new(&mut staged.events).event(event);
        let whole = match *event {
            packed::Event::DataIn { format, eom, .. } => eom && format != packed::CONTINUATION,
            _ => true,
        };
        staged.appended(Tally::of(event), whole)
    });
    finish(staging, || stage(plugin, conn, event));
}

/// Stages a whole binary message of `conn` whose payload is still masked,
/// unmasking it as it is copied: [`stage`] of its DataIn, without
/// building the event to take it apart again (the commonest event).
#[inline(always)]
pub(super) fn stage_masked(
    plugin: &Arc<PluginHandle>,
    conn: &Connection,
    payload: &MaskedPayload<'_>,
) {
    let staging = STAGED.with_borrow_mut(|staged| {
        if !staged.admit(plugin, conn) {
            return Staging::Taken;
        }
        packed::Writer::new(&mut staged.events).data_in_head(
            conn.id(),
            packed::BINARY,
            true,
            false,
            payload.len(),
        );
        payload.extend_unmasked(&mut staged.events);
        staged.appended(Tally::DATA, true)
    });
    finish(staging, || stage_masked(plugin, conn, payload));
}

/// What is left after staging: a hand-over when the staged bytes are many,
/// or when another instance's were staged (then `stage_again`).
#[inline(always)]
fn finish(staging: Staging, stage_again: impl FnOnce()) {
    match staging {
        Staging::Done => {}
        Staging::Full => hand_over(),
        Staging::Taken => after_hand_over(stage_again),
    }
}

#[cold]
#[inline(never)]
fn after_hand_over(stage_again: impl FnOnce()) {
    hand_over();
    stage_again();
}

/// Whether events of `conn` are staged on this thread.
pub(super) fn has_staged(conn: &Connection) -> bool {
    STAGED.with_borrow(|staged| staged.conns.iter().any(|c| c.address() == conn.address()))
}

/// Sends one event of `conn` now, after everything staged.
pub(super) fn push_now(plugin: &Arc<PluginHandle>, conn: &Connection, event: &packed::Event<'_>) {
    stage(plugin, conn, event);
    hand_over();
}

/// The events staged so far (a read's, a connection's last) may wait a
/// little: a few are handed over once the connections ready in this round
/// of the runtime have had their turn too (on a current-thread runtime);
/// many, or on another runtime, now.
pub(super) fn hand_over_soon() {
    let next = STAGED.with_borrow_mut(|staged| {
        if staged.plugin.is_none() {
            Next::Nothing
        } else if staged.events.len() >= DEFER_BELOW || !staged.last_whole {
            Next::HandOver
        } else if !staged.task.alive() {
            Next::Start
        } else {
            match std::mem::replace(&mut staged.task, HandoverTask::Absent) {
                HandoverTask::Waiting(alive, task) => {
                    staged.task = HandoverTask::Queued(alive);
                    Next::Wake(task)
                }
                queued => {
                    staged.task = queued;
                    Next::Nothing
                }
            }
        }
    });
    match next {
        Next::Nothing => {}
        Next::HandOver => hand_over(),
        // Behind the tasks already ready, as a new task would be.
        Next::Wake(task) => task.wake(),
        Next::Start => start_task(),
    }
}

/// What [`hand_over_soon`] does after looking at what is staged.
enum Next {
    /// Nothing staged, or a hand-over already queued.
    Nothing,
    HandOver,
    /// Queue this thread's hand-over task.
    Wake(Waker),
    /// Start one on this thread's runtime.
    Start,
}

/// Starts this thread's hand-over task, which hands over whenever it is
/// woken, for as long as the runtime runs: waking it costs less than a
/// task per hand-over. On a runtime whose tasks may run on other threads
/// (an embedder's multi-thread runtime) there is none, and what is staged
/// is handed over at once.
fn start_task() {
    match Handle::try_current() {
        // Its tasks run on this thread, so the task finds this thread's
        // staged events.
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::CurrentThread => {
            let alive = Arc::new(());
            STAGED.with_borrow_mut(|staged| {
                staged.task = HandoverTask::Queued(Arc::downgrade(&alive));
            });
            runtime.spawn(std::future::poll_fn(move |cx| {
                STAGED.with_borrow_mut(|staged| {
                    staged.task = HandoverTask::Waiting(Arc::downgrade(&alive), cx.waker().clone());
                });
                hand_over();
                Poll::<()>::Pending
            }));
        }
        _ => hand_over(),
    }
}

/// Hands over what is staged on this thread: outside the thread-local's
/// borrow, because handing over may run the plugin's turn on this thread.
pub(super) fn hand_over() {
    let taken = STAGED.with_borrow_mut(|staged| {
        let plugin = staged.plugin.take()?;
        Some((
            plugin,
            std::mem::take(&mut staged.conns),
            std::mem::take(&mut staged.events),
            std::mem::take(&mut staged.tally),
        ))
    });
    let Some((plugin, mut conns, mut events, tally)) = taken else {
        return;
    };
    plugin.push(&mut events, tally, &conns);
    conns.clear();
    // Keep the buffers (the inbox's spare, when it took ours) for the next
    // read, unless others were staged since.
    STAGED.with_borrow_mut(|staged| {
        if staged.events.capacity() == 0 {
            staged.events = events;
        }
        if staged.conns.capacity() == 0 {
            staged.conns = conns;
        }
    });
}
