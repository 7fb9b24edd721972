//! Repeats reduced to medians and ranges, ratios against the baseline, and
//! the markdown table.

use std::fmt::Write;

use serde::Serialize;

use super::config::{PeerSpec, Scenario};
use super::run::Outcome;
use crate::report::{Mode, Report};

/// Median and range of one figure over the repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Option<Self> {
        values.retain(|value| value.is_finite());
        values.sort_by(f64::total_cmp);
        let (first, last) = (*values.first()?, *values.last()?);
        let middle = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[middle]
        } else {
            (values[middle - 1] + values[middle]) / 2.0
        };
        Some(Self {
            median,
            min: first,
            max: last,
        })
    }
}

/// One peer's figures in one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub peer: String,
    pub runs: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub headline: Option<Spread>,
    /// Median headline over the baseline's median headline.
    pub ratio: Option<f64>,
    pub rate: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub server_us_per_event: Option<f64>,
    pub client_us_per_event: Option<f64>,
    /// Idle runs: the fewest connections that answered in any repeat.
    pub answering: Option<u64>,
    pub connections: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub mode: Mode,
    pub args: Vec<String>,
    pub unit: String,
    pub higher_is_better: bool,
    pub rows: Vec<Row>,
}

fn median_of(reports: &[&Report], figure: impl Fn(&Report) -> Option<f64>) -> Option<f64> {
    Spread::of(reports.iter().filter_map(|report| figure(report)).collect()).map(|s| s.median)
}

fn row(peer: &PeerSpec, outcomes: &[&Outcome]) -> Row {
    let reports: Vec<&Report> = outcomes.iter().filter_map(|o| o.report.as_ref()).collect();
    Row {
        peer: peer.name.clone(),
        runs: outcomes.len(),
        failed: outcomes.len() - reports.len(),
        first_error: outcomes.iter().find_map(|o| o.error.clone()),
        headline: Spread::of(reports.iter().map(|r| r.headline().value).collect()),
        ratio: None,
        rate: median_of(&reports, |r| (r.mode != Mode::Idle).then(|| r.rate())),
        p50_us: median_of(&reports, |r| r.latency.map(|l| l.p50_us)),
        p99_us: median_of(&reports, |r| r.latency.map(|l| l.p99_us)),
        server_us_per_event: median_of(&reports, Report::server_cpu_per_event_us),
        client_us_per_event: median_of(&reports, |r| {
            (r.mode != Mode::Idle).then(|| r.client_cpu_per_event_us())
        }),
        answering: reports.iter().filter_map(|r| r.answering).min(),
        connections: reports.iter().map(|r| r.connections).max(),
    }
}

/// Summarises the outcomes per scenario, peers in the given order.
pub fn summarise(
    scenarios: &[&Scenario],
    peers: &[&PeerSpec],
    outcomes: &[Outcome],
    baseline: Option<&str>,
) -> Vec<Summary> {
    scenarios
        .iter()
        .map(|scenario| {
            let of_scenario: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.scenario == scenario.name)
                .collect();
            let mut rows: Vec<Row> = peers
                .iter()
                .filter(|peer| peer.takes_part_in(scenario))
                .map(|peer| {
                    let of_peer: Vec<&Outcome> = of_scenario
                        .iter()
                        .copied()
                        .filter(|o| o.peer == peer.name)
                        .collect();
                    row(peer, &of_peer)
                })
                .collect();
            let base = rows
                .iter()
                .find(|row| Some(row.peer.as_str()) == baseline)
                .and_then(|row| row.headline)
                .map(|spread| spread.median);
            for row in &mut rows {
                row.ratio = row.headline.zip(base).map(|(own, base)| own.median / base);
            }
            let headline = of_scenario
                .iter()
                .find_map(|o| o.report.as_ref())
                .map(Report::headline);
            Summary {
                scenario: scenario.name.clone(),
                mode: scenario.mode,
                args: scenario.args.clone(),
                unit: headline
                    .as_ref()
                    .map_or_else(String::new, |h| h.unit.clone()),
                higher_is_better: headline.is_none_or(|h| h.higher_is_better),
                rows,
            }
        })
        .collect()
}

/// 3 significant figures with k/M suffixes: 3.61 M, 345 k, 272.
pub fn human(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e6 => (value / 1e6, " M"),
        v if v >= 1e3 => (value / 1e3, " k"),
        _ => (value, ""),
    };
    let decimals = match scaled.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    format!("{scaled:.decimals$}{suffix}")
}

fn cell(value: Option<f64>, format: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "–".to_owned(), format)
}

/// Markdown: one table per scenario, then the failures if any.
pub fn render_table(summaries: &[Summary], baseline: Option<&str>) -> String {
    let versus = baseline.map_or_else(|| "vs baseline".to_owned(), |b| format!("vs {b}"));
    let mut out = String::new();
    let mut failures = Vec::new();
    for summary in summaries {
        let better = if summary.higher_is_better {
            "higher"
        } else {
            "lower"
        };
        let _ = writeln!(out, "### {}\n", summary.scenario);
        let _ = writeln!(
            out,
            "`loadgen {} {}` — {better} is better\n",
            summary.mode.name(),
            summary.args.join(" ")
        );
        if summary.mode == Mode::Idle {
            let _ = writeln!(
                out,
                "| peer | {} (median) | min–max | {versus} | answering afterwards |",
                summary.unit
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        } else {
            let _ = writeln!(
                out,
                "| peer | {} (median) | min–max | {versus} | per wall s | p50 µs | p99 µs | server CPU µs/event | client CPU µs/event |",
                summary.unit
            );
            let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        }
        for row in &summary.rows {
            let headline = cell(row.headline.map(|s| s.median), human);
            let range = cell(row.headline.map(|s| s.min), human)
                + "–"
                + &cell(row.headline.map(|s| s.max), human);
            let ratio = cell(row.ratio, |r| format!("{r:.2}×"));
            if summary.mode == Mode::Idle {
                let answering = match (row.answering, row.connections) {
                    (Some(answering), Some(total)) => format!("{answering} of {total}"),
                    _ => "–".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {headline} | {range} | {ratio} | {answering} |",
                    row.peer
                );
            } else {
                let _ = writeln!(
                    out,
                    "| {} | {headline} | {range} | {ratio} | {} | {} | {} | {} | {} |",
                    row.peer,
                    cell(row.rate, human),
                    cell(row.p50_us, |v| format!("{v:.0}")),
                    cell(row.p99_us, |v| format!("{v:.0}")),
                    cell(row.server_us_per_event, |v| format!("{v:.3}")),
                    cell(row.client_us_per_event, |v| format!("{v:.3}")),
                );
            }
            if row.failed > 0 {
                failures.push(format!(
                    "- {} / {}: {} of {} runs failed: {}",
                    summary.scenario,
                    row.peer,
                    row.failed,
                    row.runs,
                    row.first_error.as_deref().unwrap_or("unknown error")
                ));
            }
        }
        out.push('\n');
    }
    if !failures.is_empty() {
        out.push_str("Failed runs:\n\n");
        out.push_str(&failures.join("\n"));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::Config;
    use crate::report::Latency;

    #[test]
    fn spread_takes_the_middle_and_the_ends() {
        let odd = Spread::of(vec![5.0, 1.0, 3.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (3.0, 1.0, 5.0));
        assert_eq!(Spread::of(vec![4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
        assert_eq!(Spread::of(vec![f64::NAN, 2.0]).unwrap().median, 2.0);
        assert!(Spread::of(Vec::new()).is_none());
    }

    #[test]
    fn human_keeps_three_significant_figures() {
        assert_eq!(human(3_612_345.0), "3.61 M");
        assert_eq!(human(345_123.0), "345 k");
        assert_eq!(human(47_020.0), "47.0 k");
        assert_eq!(human(272.4), "272");
        assert_eq!(human(0.5), "0.50");
    }

    fn echo_report(events: u64, server_cpu: f64) -> Report {
        Report {
            mode: Mode::Echo,
            connections: 100,
            window_secs: 2.0,
            events,
            payload_bytes: events * 32,
            latency: Some(Latency {
                p50_us: 100.0,
                p99_us: 900.0,
                p999_us: 1000.0,
                max_us: 2000.0,
            }),
            server_cpu_secs: Some(server_cpu),
            client_cpu_secs: 0.5,
            rss_per_connection: None,
            answering: None,
            published: None,
        }
    }

    fn outcome(peer: &str, repeat: usize, report: Option<Report>) -> Outcome {
        Outcome {
            scenario: "echo".to_owned(),
            peer: peer.to_owned(),
            repeat,
            error: report.is_none().then(|| "server exited".to_owned()),
            report,
        }
    }

    #[test]
    fn ratios_compare_medians_per_server_cpu_second() {
        let config = Config::parse(
            r#"
            [[peer]]
            name = "fast"
            command = ["x"]
            [[peer]]
            name = "slow"
            command = ["y"]
            [[scenario]]
            name = "echo"
            mode = "echo"
            "#,
        )
        .unwrap();
        let peers: Vec<&PeerSpec> = config.peers.iter().collect();
        let scenarios: Vec<&Scenario> = config.scenarios.iter().collect();
        let outcomes = vec![
            outcome("fast", 0, Some(echo_report(4_000, 1.0))),
            outcome("slow", 0, Some(echo_report(1_000, 1.0))),
            outcome("fast", 1, Some(echo_report(6_000, 1.0))),
            outcome("slow", 1, None),
            outcome("fast", 2, Some(echo_report(3_000, 0.5))),
            outcome("slow", 2, Some(echo_report(1_000, 0.5))),
        ];
        let summary = &summarise(&scenarios, &peers, &outcomes, Some("slow"))[0];
        assert_eq!(summary.unit, "msg/server-CPU-s");
        let (fast, slow) = (&summary.rows[0], &summary.rows[1]);
        // fast: 4000, 6000, 6000 per CPU-s; slow: 1000, 2000.
        assert_eq!(fast.headline.unwrap().median, 6000.0);
        assert_eq!(slow.headline.unwrap().median, 1500.0);
        assert_eq!(fast.ratio, Some(4.0));
        assert_eq!((slow.runs, slow.failed), (3, 1));
        let table = render_table(std::slice::from_ref(summary), Some("slow"));
        assert!(
            table.contains("| fast | 6.00 k | 4.00 k–6.00 k | 4.00× |"),
            "{table}"
        );
        assert!(table.contains("echo / slow: 1 of 3 runs failed: server exited"));
    }
}
