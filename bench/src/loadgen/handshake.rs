//! Handshake rate: `concurrency` loops that each connect, upgrade, close
//! politely and start over.

use std::cell::RefCell;
use std::io;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::measured::{run_measured, timed_report};
use super::pool::open_one;
use super::tally::Tally;
use super::workers::Window;
use super::{LoadError, Setup};
use crate::client::{Connection, Event, FrameDecoder, close_frame, now_stamp};
use crate::report::{Mode, Report};

/// Longest the server may take to answer a close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct HandshakePlan {
    /// Connections being set up at any moment.
    pub concurrency: usize,
}

pub fn run_handshakes(setup: &Setup, plan: &HandshakePlan) -> Result<Report, LoadError> {
    let (tallies, window, cpu) = run_measured(setup, async |thread, phases| {
        let window = phases.worker_ready();
        let tally = RefCell::new(Tally::new());
        let loops = setup
            .share_of(thread, plan.concurrency)
            .map(|slot| handshake_loop(setup, plan, slot, window, &tally));
        join_all(loops)
            .await
            .into_iter()
            .collect::<Result<(), _>>()?;
        Ok(tally.into_inner())
    })?;
    Ok(timed_report(
        Mode::Handshake,
        plan.concurrency,
        &window,
        &Tally::sum(&tallies),
        cpu,
    ))
}

async fn handshake_loop(
    setup: &Setup,
    plan: &HandshakePlan,
    slot: usize,
    window: Window,
    tally: &RefCell<Tally>,
) -> Result<(), LoadError> {
    // Successive connections of one slot rotate through the source addresses.
    for round in 0.. {
        let started = now_stamp();
        if started >= window.end {
            break;
        }
        let connection = open_one(setup, &setup.target, slot + round * plan.concurrency).await?;
        let upgraded = now_stamp();
        close_politely(connection).await?;
        if window.contains(upgraded) {
            tally.borrow_mut().record(0, Some(upgraded - started));
        }
    }
    Ok(())
}

/// Sends a close frame, waits for the server's close frame (or EOF), then
/// resets the connection: a FIN from this side would leave a TIME_WAIT
/// socket per handshake here, and tens of thousands of those make every
/// further connect() search long for a free port.
async fn close_politely(connection: Connection) -> Result<(), LoadError> {
    let Connection {
        mut stream,
        early_bytes,
    } = connection;
    stream.write_all(&close_frame(rand::random())).await?;
    let mut decoder = FrameDecoder::default();
    let mut closed = false;
    decoder.feed(&early_bytes, |event| closed |= event == Event::Close)?;
    let mut buffer = [0; 512];
    while !closed {
        let read = tokio::time::timeout(CLOSE_TIMEOUT, stream.read(&mut buffer))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?;
        match read {
            Ok(0) => break,
            Ok(read) => decoder.feed(&buffer[..read], |event| closed |= event == Event::Close)?,
            // Closing with a reset instead of a FIN still ends the connection.
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => break,
            Err(error) => return Err(error.into()),
        }
    }
    stream.set_zero_linger()?;
    Ok(())
}
