//! What one load-generator run measured. The generator prints it as JSON;
//! the driver reads it back, so both sides share this one definition.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Echo,
    Idle,
    Handshake,
    Fanout,
}

impl Mode {
    /// The load generator's subcommand for this mode.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Idle => "idle",
            Mode::Handshake => "handshake",
            Mode::Fanout => "fanout",
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Latency {
    pub fn from_histogram(histogram: &hdrhistogram::Histogram<u64>) -> Option<Self> {
        let us = |nanos: u64| nanos as f64 / 1000.0;
        (!histogram.is_empty()).then(|| Self {
            p50_us: us(histogram.value_at_quantile(0.5)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub mode: Mode,
    /// Connections open during the measurement.
    pub connections: u64,
    /// Length of the measurement window (0 for idle runs).
    pub window_secs: f64,
    /// What the mode counts inside the window: messages echoed, handshakes
    /// completed, or messages delivered to subscribers.
    pub events: u64,
    /// Payload bytes of those events, one direction.
    pub payload_bytes: u64,
    pub latency: Option<Latency>,
    /// CPU the server used during the window, when its pid was given.
    pub server_cpu_secs: Option<f64>,
    /// CPU the generator itself used during the window.
    pub client_cpu_secs: f64,
    /// Idle runs: growth of the server's RSS divided by connections.
    pub rss_per_connection: Option<f64>,
    /// Idle runs: connections that echoed a message after the idle period.
    pub answering: Option<u64>,
    /// Fan-out runs: messages the publisher sent inside the window.
    pub published: Option<u64>,
}

/// The figure a run is ranked by.
#[derive(Debug, Clone)]
pub struct Headline {
    pub value: f64,
    pub unit: String,
    pub higher_is_better: bool,
}

impl Report {
    /// Events per wall-clock second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.window_secs
    }

    /// Events per CPU-second the server used.
    pub fn per_server_cpu_second(&self) -> Option<f64> {
        self.server_cpu_secs.map(|cpu| self.events as f64 / cpu)
    }

    pub fn server_cpu_per_event_us(&self) -> Option<f64> {
        self.server_cpu_secs
            .map(|cpu| cpu * 1e6 / self.events as f64)
    }

    pub fn client_cpu_per_event_us(&self) -> f64 {
        self.client_cpu_secs * 1e6 / self.events as f64
    }

    /// Per server CPU-second when the server's CPU is known (the fair figure
    /// on a machine the client shares), else per wall second; RSS per
    /// connection for idle runs.
    pub fn headline(&self) -> Headline {
        let what = match self.mode {
            Mode::Idle => {
                return Headline {
                    value: self.rss_per_connection.unwrap_or(f64::NAN),
                    unit: "B RSS/connection".to_owned(),
                    higher_is_better: false,
                };
            }
            Mode::Echo => "msg",
            Mode::Handshake => "handshakes",
            Mode::Fanout => "deliveries",
        };
        let (value, unit) = match self.per_server_cpu_second() {
            Some(value) => (value, format!("{what}/server-CPU-s")),
            None => (self.rate(), format!("{what}/s")),
        };
        Headline {
            value,
            unit,
            higher_is_better: true,
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mode == Mode::Idle {
            write!(f, "{} connections", self.connections)?;
            if let Some(rss) = self.rss_per_connection {
                write!(f, ", server RSS {rss:.0} B/connection")?;
            }
            if let Some(answering) = self.answering {
                write!(f, ", {answering} answering afterwards")?;
            }
            return Ok(());
        }
        write!(
            f,
            "{} connections: {} events in {:.2} s = {:.0}/s, {:.1} MB/s",
            self.connections,
            self.events,
            self.window_secs,
            self.rate(),
            self.payload_bytes as f64 / self.window_secs / 1e6
        )?;
        if let Some(per_cpu) = self.per_server_cpu_second() {
            write!(f, ", {per_cpu:.0} per server CPU-s")?;
        }
        if let Some(server) = self.server_cpu_per_event_us() {
            write!(f, "; CPU/event: server {server:.3} µs")?;
        }
        write!(f, ", client {:.3} µs", self.client_cpu_per_event_us())?;
        if let Some(published) = self.published {
            write!(f, "; {published} published")?;
        }
        if let Some(l) = self.latency {
            write!(
                f,
                "; latency p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
                l.p50_us, l.p99_us, l.p999_us, l.max_us
            )?;
        }
        Ok(())
    }
}
