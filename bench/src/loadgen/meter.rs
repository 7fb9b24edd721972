//! CPU used by the server and by the generator over the measurement window.

use std::thread::sleep;

use super::LoadError;
use super::workers::Window;
use crate::procstat::ProcessProbe;

pub struct CpuMeter {
    /// Every server process; their CPU is summed.
    servers: Vec<ProcessProbe>,
    client: ProcessProbe,
}

#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub server_secs: Option<f64>,
    pub client_secs: f64,
}

impl CpuMeter {
    pub fn new(server_pids: &[i32]) -> Result<Self, LoadError> {
        Ok(Self {
            servers: server_pids
                .iter()
                .map(|pid| ProcessProbe::new(*pid))
                .collect::<Result<_, _>>()?,
            client: ProcessProbe::myself()?,
        })
    }

    fn sample(&self) -> Result<(Option<f64>, f64), LoadError> {
        let server = if self.servers.is_empty() {
            None
        } else {
            let mut total = 0.0;
            for probe in &self.servers {
                total += probe.cpu_seconds()?;
            }
            Some(total)
        };
        Ok((server, self.client.cpu_seconds()?))
    }

    /// Blocks until the window has passed and returns the CPU used inside it.
    pub fn over(&self, window: &Window) -> Result<CpuUse, LoadError> {
        sleep(
            window
                .start_instant()
                .saturating_duration_since(std::time::Instant::now()),
        );
        let (server_before, client_before) = self.sample()?;
        sleep(
            window
                .end_instant()
                .saturating_duration_since(std::time::Instant::now()),
        );
        let (server_after, client_after) = self.sample()?;
        Ok(CpuUse {
            server_secs: server_after.zip(server_before).map(|(a, b)| a - b),
            client_secs: client_after - client_before,
        })
    }
}
