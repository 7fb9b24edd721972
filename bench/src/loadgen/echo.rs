//! Echo throughput: every connection keeps `depth` messages in flight and
//! refills what came back with one write per read.

use std::cell::RefCell;
use std::io;

use futures_util::future::join_all;
use tokio::io::Interest;

use super::inbox::{Inbox, SCRATCH_LEN};
use super::measured::{run_measured, timed_report};
use super::pool::open_all;
use super::tally::Tally;
use super::workers::Window;
use super::{LoadError, Setup};
use crate::client::{Connection, MaskedBatch, OPCODE_BINARY, instant_of, now_stamp};
use crate::report::{Mode, Report};

#[derive(Debug, Clone)]
pub struct EchoPlan {
    pub connections: usize,
    /// Payload bytes per message; 8 or more carry a latency stamp.
    pub size: usize,
    /// Messages in flight per connection (1 = unpipelined).
    pub depth: usize,
}

pub fn run_echo(setup: &Setup, plan: &EchoPlan) -> Result<Report, LoadError> {
    let (tallies, window, cpu) = run_measured(setup, async |thread, phases| {
        let connections = open_all(
            setup,
            &setup.target,
            setup.share_of(thread, plan.connections),
        )
        .await;
        let window = phases.worker_ready();
        let tally = RefCell::new(Tally::new());
        let scratch = RefCell::new(vec![0; SCRATCH_LEN]);
        let runs = connections?
            .into_iter()
            .map(|connection| echo_on(connection, plan, window, &scratch, &tally));
        join_all(runs)
            .await
            .into_iter()
            .collect::<Result<(), _>>()?;
        Ok(tally.into_inner())
    })?;
    Ok(timed_report(
        Mode::Echo,
        plan.connections,
        &window,
        &Tally::sum(&tallies),
        cpu,
    ))
}

/// Drives one connection until the window closes.
async fn echo_on(
    connection: Connection,
    plan: &EchoPlan,
    window: Window,
    scratch: &RefCell<Vec<u8>>,
    tally: &RefCell<Tally>,
) -> Result<(), LoadError> {
    let Connection {
        stream,
        early_bytes,
    } = connection;
    let mut batch = MaskedBatch::new(OPCODE_BINARY, plan.size, plan.depth, rand::random());
    let mut inbox = Inbox::new(plan.size);
    // Messages that may be sent now: the whole depth at first, then as many
    // as came back.
    let early = inbox.preload(&early_bytes, &window, &mut tally.borrow_mut())?;
    let mut sendable = plan.depth.saturating_sub(early);
    let mut unsent: &[u8] = &[];
    let deadline = tokio::time::sleep_until(instant_of(window.end).into());
    tokio::pin!(deadline);
    loop {
        if unsent.is_empty() && sendable > 0 {
            unsent = batch.stamped(sendable, now_stamp());
            sendable = 0;
        }
        if !unsent.is_empty() {
            // Try at once: the socket is almost always writable, and this
            // saves a wake-up per batch.
            match stream.try_write(unsent) {
                Ok(written) => unsent = &unsent[written..],
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Err(error.into()),
            }
        }
        let interest = if unsent.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        let ready = tokio::select! {
            ready = stream.ready(interest) => ready?,
            () = &mut deadline => return Ok(()),
        };
        if ready.is_readable() {
            let mut tally = tally.borrow_mut();
            let mut scratch = scratch.borrow_mut();
            if let Some(received) = inbox.try_read(&stream, &mut scratch, &window, &mut tally)? {
                sendable += received;
            }
        }
    }
}
