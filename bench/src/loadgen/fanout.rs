//! Broadcast fan-out: one publisher sends at a fixed rate into a room, every
//! other member should receive each message; delivery latency is measured
//! from the stamp the publisher wrote.

use std::cell::RefCell;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::AsyncWriteExt;
use tokio::time::MissedTickBehavior;

use super::inbox::{Inbox, SCRATCH_LEN};
use super::measured::{run_measured, timed_report};
use super::pool::{open_all, open_one};
use super::tally::Tally;
use super::workers::Window;
use super::{LoadError, Setup};
use crate::client::{Connection, MaskedBatch, OPCODE_BINARY, Target, instant_of, now_stamp};
use crate::report::{Mode, Report};

/// The publisher tops up to its schedule this often.
const PUBLISH_TICK: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct FanoutPlan {
    pub subscribers: usize,
    pub size: usize,
    /// Messages the publisher sends per second.
    pub rate: u64,
    /// Members join `/room/<room>`.
    pub room: String,
    /// Other nodes of a cluster: subscriber `i` joins on node `i % nodes`
    /// (the setup's target first); the publisher is on the setup's target.
    pub other_nodes: Vec<Target>,
}

/// What one worker thread saw.
struct FanoutTally {
    deliveries: Tally,
    published: u64,
}

pub fn run_fanout(setup: &Setup, plan: &FanoutPlan) -> Result<Report, LoadError> {
    let path = format!("/room/{}", plan.room);
    let room = setup.target.with_path(&path);
    let rooms: Vec<Target> = std::iter::once(room.clone())
        .chain(plan.other_nodes.iter().map(|node| node.with_path(&path)))
        .collect();
    let (tallies, window, cpu) = run_measured(setup, async |thread, phases| {
        let opened = async {
            let mut subscribers = Vec::new();
            for (node, room) in rooms.iter().enumerate() {
                let mine = setup
                    .share_of(thread, plan.subscribers)
                    .filter(|index| index % rooms.len() == node);
                subscribers.extend(open_all(setup, room, mine).await?);
            }
            let publisher = match thread {
                0 => Some(open_one(setup, &room, plan.subscribers).await?),
                _ => None,
            };
            Ok::<_, LoadError>((subscribers, publisher))
        }
        .await;
        let window = phases.worker_ready();
        let (subscribers, publisher) = opened?;
        let tally = RefCell::new(Tally::new());
        let scratch = RefCell::new(vec![0; SCRATCH_LEN]);
        let receiving = join_all(
            subscribers
                .into_iter()
                .map(|connection| subscribe(connection, plan, window, &scratch, &tally)),
        );
        let publishing = async {
            match publisher {
                Some(connection) => publish(connection, plan, window).await,
                None => Ok(0),
            }
        };
        let (received, published) = tokio::join!(receiving, publishing);
        received.into_iter().collect::<Result<(), _>>()?;
        Ok(FanoutTally {
            deliveries: tally.into_inner(),
            published: published?,
        })
    })?;
    let deliveries = Tally::sum(tallies.iter().map(|tally| &tally.deliveries));
    Ok(Report {
        published: Some(tallies.iter().map(|tally| tally.published).sum()),
        ..timed_report(
            Mode::Fanout,
            plan.subscribers + 1,
            &window,
            &deliveries,
            cpu,
        )
    })
}

/// Receives until the window closes.
async fn subscribe(
    connection: Connection,
    plan: &FanoutPlan,
    window: Window,
    scratch: &RefCell<Vec<u8>>,
    tally: &RefCell<Tally>,
) -> Result<(), LoadError> {
    let Connection {
        stream,
        early_bytes,
    } = connection;
    let mut inbox = Inbox::new(plan.size);
    inbox.preload(&early_bytes, &window, &mut tally.borrow_mut())?;
    let deadline = tokio::time::sleep_until(instant_of(window.end).into());
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            ready = stream.readable() => ready?,
            () = &mut deadline => return Ok(()),
        }
        let mut scratch = scratch.borrow_mut();
        inbox.try_read(&stream, &mut scratch, &window, &mut tally.borrow_mut())?;
    }
}

/// Sends on schedule until the window closes; returns how many messages
/// were sent inside it.
async fn publish(
    connection: Connection,
    plan: &FanoutPlan,
    window: Window,
) -> Result<u64, LoadError> {
    let mut stream = connection.stream;
    // Room for 10 ms of schedule, so a late tick catches up in one write.
    let capacity = (plan.rate / 100).max(64) as usize;
    let mut batch = MaskedBatch::new(OPCODE_BINARY, plan.size, capacity, rand::random());
    let mut ticker = tokio::time::interval(PUBLISH_TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let started = now_stamp();
    let (mut sent, mut published) = (0u64, 0u64);
    loop {
        ticker.tick().await;
        let now = now_stamp();
        if now >= window.end {
            return Ok(published);
        }
        let scheduled = (u128::from(now - started) * u128::from(plan.rate) / 1_000_000_000) as u64;
        let count = (scheduled - sent).min(capacity as u64);
        if count == 0 {
            continue;
        }
        stream.write_all(batch.stamped(count as usize, now)).await?;
        sent += count;
        if window.contains(now) {
            published += count;
        }
    }
}
