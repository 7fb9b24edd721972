//! Idle capacity: open many connections, let them sit, weigh the server,
//! then check that every one of them still answers.

use std::cell::RefCell;
use std::thread::sleep;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::AsyncWriteExt;

use super::inbox::{Inbox, SCRATCH_LEN};
use super::pool::open_all;
use super::tally::Tally;
use super::workers::{Window, run_workers};
use super::{LoadError, Setup};
use crate::client::{Connection, MaskedBatch, OPCODE_BINARY, now_stamp};
use crate::procstat::ProcessProbe;
use crate::report::{Mode, Report};

/// Payload of the message each connection sends to prove it still answers.
const PROBE_LEN: usize = 32;

#[derive(Debug, Clone)]
pub struct IdlePlan {
    pub connections: usize,
    /// How long the connections sit idle before the server is weighed.
    pub settle: Duration,
    /// How long each connection may take to echo the probe afterwards.
    pub answer_timeout: Duration,
}

pub fn run_idle(setup: &Setup, plan: &IdlePlan) -> Result<Report, LoadError> {
    let server = setup
        .server_pids
        .first()
        .copied()
        .map(ProcessProbe::new)
        .transpose()?;
    let rss_before = server.as_ref().map(ProcessProbe::rss_bytes).transpose()?;
    let (answered, rss_after) = run_workers(
        setup.threads,
        async |thread, phases| {
            let connections = open_all(
                setup,
                &setup.target,
                setup.share_of(thread, plan.connections),
            )
            .await;
            phases.worker_ready();
            let scratch = RefCell::new(vec![0; SCRATCH_LEN]);
            let tally = RefCell::new(Tally::new());
            let checks = connections?
                .into_iter()
                .map(|connection| answers(connection, plan.answer_timeout, &scratch, &tally));
            Ok(join_all(checks).await.into_iter().filter(|ok| *ok).count() as u64)
        },
        |phases| {
            phases.all_ready();
            sleep(plan.settle);
            let rss = server.as_ref().map(ProcessProbe::rss_bytes).transpose();
            // The answer check bounds itself; no window to measure in.
            phases.start(Window::after(Duration::ZERO, plan.answer_timeout));
            rss
        },
    );
    let answering = answered.into_iter().sum::<Result<u64, _>>()?;
    let rss_growth = rss_after?
        .zip(rss_before)
        .map(|(after, before)| after.saturating_sub(before) as f64);
    Ok(Report {
        mode: Mode::Idle,
        connections: plan.connections as u64,
        window_secs: 0.0,
        events: answering,
        payload_bytes: answering * PROBE_LEN as u64,
        latency: None,
        server_cpu_secs: None,
        client_cpu_secs: 0.0,
        rss_per_connection: rss_growth.map(|bytes| bytes / plan.connections as f64),
        answering: Some(answering),
        published: None,
    })
}

/// Sends one message and waits for its echo; any failure means "no".
async fn answers(
    connection: Connection,
    timeout: Duration,
    scratch: &RefCell<Vec<u8>>,
    tally: &RefCell<Tally>,
) -> bool {
    let round_trip = async {
        let Connection {
            mut stream,
            early_bytes,
        } = connection;
        // Counts every answer: the window is not what is measured here.
        let always = Window {
            start: 0,
            end: u64::MAX,
        };
        let mut inbox = Inbox::new(PROBE_LEN);
        let mut received = inbox.preload(&early_bytes, &always, &mut tally.borrow_mut())?;
        let mut probe = MaskedBatch::new(OPCODE_BINARY, PROBE_LEN, 1, rand::random());
        stream.write_all(probe.stamped(1, now_stamp())).await?;
        while received == 0 {
            stream.readable().await?;
            let mut scratch = scratch.borrow_mut();
            let mut tally = tally.borrow_mut();
            received += inbox
                .try_read(&stream, &mut scratch, &always, &mut tally)?
                .unwrap_or(0);
        }
        Ok::<_, LoadError>(())
    };
    matches!(tokio::time::timeout(timeout, round_trip).await, Ok(Ok(())))
}
