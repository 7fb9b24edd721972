//! Running the plan: for every scenario and repeat, each peer in turn gets
//! a fresh server and one load-generator process.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::{PeerSpec, Scenario};
use super::server::{RunningServer, ServerError};
use crate::report::Report;

/// Time a generator may need beyond warm-up and measurement (opening and
/// checking thousands of connections, closing).
const LOADGEN_SLACK: Duration = Duration::from_secs(90);

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where the bench binaries are: replaces `{bin_dir}` in commands.
    pub bin_dir: PathBuf,
    pub loadgen: PathBuf,
    pub warmup: f64,
    pub duration: f64,
    pub repeat: usize,
    /// Server and generator output goes here.
    pub log_dir: PathBuf,
}

/// One run's result, kept in results.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub scenario: String,
    pub peer: String,
    pub repeat: usize,
    pub report: Option<Report>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("load generator failed ({status}): {stderr}")]
    Loadgen { status: ExitStatus, stderr: String },
    #[error("load generator did not finish within {0:?}")]
    Timeout(Duration),
    #[error("load generator printed no report: {0}")]
    BadOutput(#[from] serde_json::Error),
}

/// Runs every scenario `repeat` times with the peers interleaved, calling
/// `progress` after each run.
pub fn run_all(
    peers: &[&PeerSpec],
    scenarios: &[&Scenario],
    options: &RunOptions,
    mut progress: impl FnMut(&Outcome),
) -> io::Result<Vec<Outcome>> {
    fs::create_dir_all(&options.log_dir)?;
    let mut outcomes = Vec::new();
    for scenario in scenarios {
        for repeat in 0..options.repeat {
            for peer in peers.iter().filter(|peer| peer.takes_part_in(scenario)) {
                let result = run_one(peer, scenario, options);
                let outcome = Outcome {
                    scenario: scenario.name.clone(),
                    peer: peer.name.clone(),
                    repeat,
                    error: result.as_ref().err().map(ToString::to_string),
                    report: result.ok(),
                };
                progress(&outcome);
                outcomes.push(outcome);
            }
        }
    }
    Ok(outcomes)
}

fn run_one(peer: &PeerSpec, scenario: &Scenario, options: &RunOptions) -> Result<Report, RunError> {
    let server_log = append_to(
        &options
            .log_dir
            .join(format!("{}.log", file_safe(&peer.name))),
    )?;
    let server = RunningServer::start(
        &peer.command_in(&options.bin_dir),
        peer.url.as_deref(),
        server_log,
    )?;
    let stdout_path = options.log_dir.join("loadgen.out");
    let stderr_path = options.log_dir.join("loadgen.err");
    let mut loadgen = Command::new(&options.loadgen)
        .arg(scenario.mode.name())
        .args(&scenario.args)
        .args(["--url", server.url()])
        .args(["--server-pid", &server.pid().to_string()])
        .args(["--warmup", &options.warmup.to_string()])
        .args(["--duration", &options.duration.to_string()])
        .arg("--json")
        .stdout(File::create(&stdout_path)?)
        .stderr(File::create(&stderr_path)?)
        .spawn()?;
    let limit = Duration::from_secs_f64(options.warmup + options.duration) + LOADGEN_SLACK;
    let status = wait_with_timeout(&mut loadgen, limit)?;
    drop(server);
    if !status.success() {
        return Err(RunError::Loadgen {
            status,
            stderr: fs::read_to_string(&stderr_path)?.trim().to_owned(),
        });
    }
    Ok(serde_json::from_str(
        fs::read_to_string(&stdout_path)?.trim(),
    )?)
}

fn wait_with_timeout(
    child: &mut std::process::Child,
    limit: Duration,
) -> Result<ExitStatus, RunError> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Err(RunError::Timeout(limit));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn append_to(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// A peer name usable as a file name.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
