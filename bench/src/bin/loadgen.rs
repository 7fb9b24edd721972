//! Load generator command line: one mode per subcommand; prints a summary,
//! or with `--json` one JSON object for the driver.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use wsbench::client::Target;
use wsbench::loadgen::{
    EchoPlan, FanoutPlan, HandshakePlan, IdlePlan, LoadError, Setup, loopback_sources, run_echo,
    run_fanout, run_handshakes, run_idle,
};

#[derive(Parser)]
#[command(about = "WebSocket load generator for echo, idle, handshake and fan-out benchmarks")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    mode: ModeArgs,
}

#[derive(Args)]
struct Common {
    /// Server URL, ws://HOST:PORT[/path].
    #[arg(long, global = true, default_value = "ws://127.0.0.1:9001/")]
    url: String,
    /// Server pid, for its CPU time and memory; repeat it for a cluster of
    /// nodes (their CPU is summed).
    #[arg(long, global = true)]
    server_pid: Vec<i32>,
    /// Generator threads, each with its own runtime.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Connect from 127.0.0.1..127.0.0.N in turn (0: let the kernel pick);
    /// each address brings its own ephemeral ports.
    #[arg(long, global = true, default_value_t = 0)]
    source_ips: u8,
    /// Connections being opened at once, per thread.
    #[arg(long, global = true, default_value_t = 64)]
    connect_concurrency: usize,
    /// Seconds of load before measuring.
    #[arg(long, global = true, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, global = true, default_value_t = 5.0)]
    duration: f64,
    /// Print one JSON object instead of a summary line.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum ModeArgs {
    /// Echo throughput with pipelining.
    Echo {
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// Payload bytes per message.
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Messages in flight per connection (1 = unpipelined).
        #[arg(long, default_value_t = 32)]
        depth: usize,
    },
    /// Idle connections: server RSS per connection, then an answer check.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Seconds the connections sit idle before the server is weighed.
        #[arg(long, default_value_t = 2.0)]
        settle: f64,
        /// Seconds each connection may take to answer afterwards.
        #[arg(long, default_value_t = 10.0)]
        answer_timeout: f64,
    },
    /// Handshake rate: connect, upgrade, close, repeat.
    Handshake {
        /// Connections being set up at any moment.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Broadcast: one publisher, N subscribers in /room/<room>.
    Fanout {
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        #[arg(long, default_value_t = 32)]
        size: usize,
        /// Messages published per second.
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value = "bench")]
        room: String,
        /// Other nodes of a cluster (ws://HOST:PORT): subscribers are
        /// spread over --url and these in turn; the publisher stays on --url.
        #[arg(long = "also-url", value_name = "URL")]
        also: Vec<String>,
    },
}

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Idle runs hold thousands of sockets; the soft limit may be 1024.
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("loadgen: cannot raise the open-file limit: {error}");
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    let common = &cli.common;
    let setup = Setup {
        target: Target::parse(&common.url)?,
        server_pids: common.server_pid.clone(),
        threads: common.threads.max(1),
        source_ips: loopback_sources(common.source_ips),
        connect_concurrency: common.connect_concurrency,
        warmup: seconds(common.warmup),
        duration: seconds(common.duration),
    };
    let report = match &cli.mode {
        ModeArgs::Echo {
            connections,
            size,
            depth,
        } => run_echo(
            &setup,
            &EchoPlan {
                connections: *connections,
                size: *size,
                depth: (*depth).max(1),
            },
        ),
        ModeArgs::Idle {
            connections,
            settle,
            answer_timeout,
        } => run_idle(
            &setup,
            &IdlePlan {
                connections: *connections,
                settle: seconds(*settle),
                answer_timeout: seconds(*answer_timeout),
            },
        ),
        ModeArgs::Handshake { concurrency } => run_handshakes(
            &setup,
            &HandshakePlan {
                concurrency: (*concurrency).max(1),
            },
        ),
        ModeArgs::Fanout {
            subscribers,
            size,
            rate,
            room,
            also,
        } => run_fanout(
            &setup,
            &FanoutPlan {
                subscribers: *subscribers,
                size: *size,
                rate: *rate,
                room: room.clone(),
                other_nodes: also
                    .iter()
                    .map(|url| Target::parse(url))
                    .collect::<Result<_, _>>()?,
            },
        ),
    }
    .map_err(|error: LoadError| Box::new(error) as Box<dyn std::error::Error>)?;
    if common.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
