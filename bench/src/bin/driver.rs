//! Benchmark driver: runs every configured server against every scenario,
//! interleaved and repeated, and writes results.json, table.md and
//! chart.svg to the output directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use serde::{Deserialize, Serialize};
use wsbench::driver::{
    Config, Outcome, PeerSpec, RunOptions, Scenario, Summary, describe_machine, render_chart,
    render_table, run_all, summarise,
};

#[derive(Parser)]
#[command(
    about = "Compare WebSocket servers under the wsbench load generator",
    args_override_self = true
)]
struct Cli {
    /// Peers and scenarios (TOML).
    #[arg(long, default_value = "bench/bench.toml")]
    config: PathBuf,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Seconds of load before each measurement.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Runs per peer and scenario.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Peer the ratios are taken against (default: the config's if it runs,
    /// else the first peer).
    #[arg(long)]
    baseline: Option<String>,
    /// Only these peers (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// Only this scenario, by its full name (repeatable; names contain
    /// commas, so they are not split).
    #[arg(long = "scenario")]
    scenarios: Vec<String>,
    /// Where results.json, table.md, chart.svg and logs go.
    #[arg(long, default_value = "bench/out")]
    out: PathBuf,
    /// Run nothing: summarise the runs saved in this results.json again
    /// (e.g. against another baseline).
    #[arg(long)]
    replay: Option<PathBuf>,
}

/// Everything a table needs, kept in results.json so it can be replayed.
#[derive(Serialize, Deserialize)]
struct Results {
    date: String,
    machine: String,
    command: String,
    warmup: f64,
    duration: f64,
    repeat: usize,
    baseline: String,
    /// Derived from the outcomes: written for readers, recomputed on replay.
    #[serde(skip_deserializing)]
    summaries: Vec<Summary>,
    outcomes: Vec<Outcome>,
}

fn main() -> ExitCode {
    match run(&Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("driver: {error}");
            ExitCode::FAILURE
        }
    }
}

fn selected<'a, T>(
    all: &'a [T],
    wanted: &[String],
    name: impl Fn(&T) -> &str,
) -> Result<Vec<&'a T>, String> {
    if let Some(unknown) = wanted
        .iter()
        .find(|w| !all.iter().any(|item| name(item) == w.as_str()))
    {
        return Err(format!("nothing named {unknown:?} in the config"));
    }
    Ok(all
        .iter()
        .filter(|item| wanted.is_empty() || wanted.iter().any(|w| w == name(item)))
        .collect())
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    // Children inherit the raised limit: servers that do not raise their
    // own still get through the idle run.
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("driver: cannot raise the open-file limit: {error}");
    }
    let config = Config::load(&cli.config)?;
    let peers: Vec<&PeerSpec> = selected(&config.peers, &cli.peers, |p| &p.name)?;
    let scenarios: Vec<&Scenario> = selected(&config.scenarios, &cli.scenarios, |s| &s.name)?;
    let is_selected = |name: &str| peers.iter().any(|peer| peer.name == name);
    let baseline = match (&cli.baseline, &config.baseline) {
        (Some(name), _) if !is_selected(name) => {
            return Err(format!("baseline {name:?} is not among the peers run").into());
        }
        (Some(name), _) => name.clone(),
        // The config's baseline when it runs, else the first peer that does.
        (None, Some(name)) if is_selected(name) => name.clone(),
        (None, _) => peers
            .first()
            .ok_or("the config lists no peers")?
            .name
            .clone(),
    };
    let mut results = match &cli.replay {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => Results {
            date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            machine: describe_machine(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            warmup: cli.warmup,
            duration: cli.duration,
            repeat: cli.repeat,
            baseline: String::new(),
            summaries: Vec::new(),
            outcomes: run_interleaved(cli, &peers, &scenarios)?,
        },
    };
    results.summaries = summarise(&scenarios, &peers, &results.outcomes, Some(&baseline));
    results.baseline = baseline;
    let table = format!(
        "Date: {}  \nMachine: {}  \nCommand: `{}`  \n\
         Each run: a fresh server, {} s warm-up, {} s measured; {} repeats with the \
         peers interleaved; medians and min–max over the repeats.\n\n{}",
        results.date,
        results.machine,
        results.command,
        results.warmup,
        results.duration,
        results.repeat,
        render_table(&results.summaries, Some(&results.baseline))
    );
    std::fs::create_dir_all(&cli.out)?;
    std::fs::write(cli.out.join("table.md"), &table)?;
    std::fs::write(
        cli.out.join("chart.svg"),
        render_chart(&results.summaries, &results.baseline),
    )?;
    std::fs::write(
        cli.out.join("results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    println!("{table}");
    eprintln!(
        "wrote {}/{{table.md,chart.svg,results.json}}",
        cli.out.display()
    );
    Ok(())
}

/// Runs every scenario with a fresh server per run, reporting progress.
fn run_interleaved(
    cli: &Cli,
    peers: &[&PeerSpec],
    scenarios: &[&Scenario],
) -> Result<Vec<Outcome>, Box<dyn std::error::Error>> {
    let bin_dir = std::env::current_exe()?
        .parent()
        .ok_or("the driver's executable has no directory")?
        .to_path_buf();
    let options = RunOptions {
        loadgen: bin_dir.join("loadgen"),
        bin_dir,
        warmup: cli.warmup,
        duration: cli.duration,
        repeat: cli.repeat,
        log_dir: cli.out.join("logs"),
    };
    let total: usize = scenarios
        .iter()
        .map(|s| peers.iter().filter(|p| p.takes_part_in(s)).count() * cli.repeat)
        .sum();
    let mut done = 0;
    let outcomes = run_all(peers, scenarios, &options, |outcome| {
        done += 1;
        let result = match (&outcome.report, &outcome.error) {
            (Some(report), _) => report.to_string(),
            (None, error) => format!("FAILED: {}", error.as_deref().unwrap_or("unknown")),
        };
        eprintln!(
            "[{done}/{total}] {} / {} #{}: {result}",
            outcome.scenario,
            outcome.peer,
            outcome.repeat + 1
        );
    })?;
    Ok(outcomes)
}
