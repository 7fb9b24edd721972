//! One server under test, started fresh for a run and killed after it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{Target, TargetError};

/// Longest a server may take to start accepting.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
const ANNOUNCEMENT: &str = "listening on ";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("starting {program}: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("server exited before printing `{ANNOUNCEMENT}ws://HOST:PORT`")]
    ExitedEarly,
    #[error("server did not start accepting within {STARTUP_TIMEOUT:?}")]
    StartupTimeout,
    #[error("bad server URL: {0}")]
    BadUrl(#[from] TargetError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A started server; dropping it kills the process.
pub struct RunningServer {
    child: Child,
    url: String,
}

impl RunningServer {
    /// Starts `command` with stdout and stderr going to `log`. Without a
    /// `fixed_url`, learns the URL from the server's announcement line.
    pub fn start(
        command: &[String],
        fixed_url: Option<&str>,
        log: File,
    ) -> Result<Self, ServerError> {
        let (program, args) = command.split_first().ok_or(ServerError::ExitedEarly)?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone()?)
            .spawn()
            .map_err(|source| ServerError::Spawn {
                program: program.clone(),
                source,
            })?;
        let mut server = Self {
            child,
            url: String::new(),
        };
        let stdout = server.child.stdout.take().ok_or(ServerError::ExitedEarly)?;
        let announced = forward_output(stdout, log);
        server.url = match fixed_url {
            Some(url) => {
                wait_until_accepting(&Target::parse(url)?)?;
                url.to_owned()
            }
            None => announced
                .recv_timeout(STARTUP_TIMEOUT)
                .map_err(|error| match error {
                    mpsc::RecvTimeoutError::Timeout => ServerError::StartupTimeout,
                    mpsc::RecvTimeoutError::Disconnected => ServerError::ExitedEarly,
                })?,
        };
        Ok(server)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // Already gone is fine; either way reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies the server's stdout to the log on a thread of its own (so the
/// pipe never fills) and sends the URL of the first announcement line.
fn forward_output(stdout: impl io::Read + Send + 'static, mut log: File) -> mpsc::Receiver<String> {
    let (announce, announced) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix(ANNOUNCEMENT) {
                // Only the first announcement has a listener; later sends fail.
                let _ = announce.send(url.trim().to_owned());
            }
            // Logging is best effort: a full disk must not stall the server.
            let _ = writeln!(log, "{line}");
        }
    });
    announced
}

fn wait_until_accepting(target: &Target) -> Result<(), ServerError> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&target.addr(), Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(ServerError::StartupTimeout)
}
