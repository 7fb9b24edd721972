//! The load generator: modes that drive a server over many connections while
//! spending as little CPU per message as possible, so that the figures
//! describe the server. Every mode runs on `threads` OS threads with one
//! single-threaded tokio runtime each; connections are split among them.

mod echo;
mod error;
mod fanout;
mod handshake;
mod idle;
mod inbox;
mod measured;
mod meter;
mod pool;
mod tally;
mod workers;

use std::net::IpAddr;
use std::time::Duration;

use crate::client::Target;

pub use echo::{EchoPlan, run_echo};
pub use error::LoadError;
pub use fanout::{FanoutPlan, run_fanout};
pub use handshake::{HandshakePlan, run_handshakes};
pub use idle::{IdlePlan, run_idle};

/// What every mode needs to know about the server and the run.
#[derive(Debug, Clone)]
pub struct Setup {
    pub target: Target,
    /// The server's pids (several for a cluster of nodes), to read their
    /// CPU time (summed) and the first one's memory from /proc.
    pub server_pids: Vec<i32>,
    pub threads: usize,
    /// Local addresses to connect from, in turn; empty means the kernel's
    /// choice. More loopback addresses give more ephemeral ports.
    pub source_ips: Vec<IpAddr>,
    /// Connections being opened at once, per thread.
    pub connect_concurrency: usize,
    /// Load applied before the measurement window opens.
    pub warmup: Duration,
    /// Length of the measurement window.
    pub duration: Duration,
}

impl Setup {
    fn source_for(&self, connection_index: usize) -> Option<IpAddr> {
        (!self.source_ips.is_empty())
            .then(|| self.source_ips[connection_index % self.source_ips.len()])
    }

    /// The connection indices in `0..count` that worker `thread` owns.
    fn share_of(&self, thread: usize, count: usize) -> impl Iterator<Item = usize> + use<> {
        (thread..count).step_by(self.threads)
    }
}

/// `127.0.0.1` to `127.0.0.<count>`: loopback addresses usable as sources.
pub fn loopback_sources(count: u8) -> Vec<IpAddr> {
    (1..=count)
        .map(|last| IpAddr::from([127, 0, 0, last]))
        .collect()
}
