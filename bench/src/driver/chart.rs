//! The summary as an SVG bar chart: one group per scenario, one bar per
//! peer, length the ratio to the baseline on a log scale.

use svg::Document;
use svg::node::element::{Line, Rectangle, Text};

use super::summary::{Summary, human};

const WIDTH: f64 = 1100.0;
const LABEL_WIDTH: f64 = 230.0;
const PLOT_LEFT: f64 = 250.0;
const PLOT_RIGHT: f64 = 830.0;
const ROW_HEIGHT: f64 = 18.0;
const TITLE_HEIGHT: f64 = 22.0;
const GROUP_GAP: f64 = 12.0;
const TOP: f64 = 50.0;
const PALETTE: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

/// 0.46×, or 1/507× for ratios too small for two decimals.
fn ratio_label(ratio: f64) -> String {
    if ratio >= 0.1 {
        format!("{ratio:.2}×")
    } else {
        format!("1/{:.0}×", 1.0 / ratio)
    }
}

/// "Higher is better" ratio: memory ratios are inverted.
fn goodness(summary: &Summary, ratio: f64) -> f64 {
    if summary.higher_is_better {
        ratio
    } else {
        1.0 / ratio
    }
}

pub fn render_chart(summaries: &[Summary], baseline: &str) -> String {
    let peers: Vec<&str> = {
        let mut names: Vec<&str> = Vec::new();
        for row in summaries.iter().flat_map(|s| &s.rows) {
            if !names.contains(&row.peer.as_str()) {
                names.push(&row.peer);
            }
        }
        names
    };
    let colour = |peer: &str| {
        let index = peers.iter().position(|p| *p == peer).unwrap_or(0);
        PALETTE[index % PALETTE.len()]
    };
    // Log-2 axis spanning every ratio and at least 0.5×..2×.
    let logs = summaries.iter().flat_map(|summary| {
        summary
            .rows
            .iter()
            .filter_map(move |row| row.ratio.map(|r| goodness(summary, r).log2()))
            .filter(|log| log.is_finite())
    });
    let (low, high) = logs.fold((-1.0f64, 1.0f64), |(lo, hi), log| {
        (lo.min(log), hi.max(log))
    });
    let (low, high) = (low.floor(), high.ceil());
    let x = |ratio: f64| PLOT_LEFT + (ratio.log2() - low) / (high - low) * (PLOT_RIGHT - PLOT_LEFT);

    let height = TOP
        + summaries
            .iter()
            .map(|s| TITLE_HEIGHT + ROW_HEIGHT * s.rows.len() as f64 + GROUP_GAP)
            .sum::<f64>()
        + 30.0;
    let mut document = Document::new()
        .set("viewBox", (0, 0, WIDTH, height))
        .set("width", WIDTH)
        .set("height", height)
        .set("font-family", "sans-serif")
        .set("font-size", 12)
        .add(
            Rectangle::new()
                .set("width", WIDTH)
                .set("height", height)
                .set("fill", "white"),
        )
        .add(
            Text::new(format!(
                "Relative to {baseline} (log scale; higher is better, memory inverted)"
            ))
            .set("x", PLOT_LEFT)
            .set("y", 20)
            .set("font-size", 14),
        );
    // Gridlines at powers of two, labelled.
    for exponent in (low as i32)..=(high as i32) {
        let ratio = 2f64.powi(exponent);
        let at = x(ratio);
        document = document
            .add(
                Line::new()
                    .set("x1", at)
                    .set("x2", at)
                    .set("y1", TOP - 10.0)
                    .set("y2", height - 30.0)
                    .set("stroke", if exponent == 0 { "#333" } else { "#ddd" }),
            )
            .add(
                Text::new(if exponent < 0 {
                    format!("1/{}×", 1i64 << -exponent)
                } else {
                    format!("{ratio}×")
                })
                .set("x", at)
                .set("y", TOP - 14.0)
                .set("text-anchor", "middle")
                .set("fill", "#555"),
            );
    }
    let mut y = TOP;
    for summary in summaries {
        document = document.add(
            Text::new(summary.scenario.clone())
                .set("x", 10)
                .set("y", y + 15.0)
                .set("font-weight", "bold"),
        );
        y += TITLE_HEIGHT;
        for row in &summary.rows {
            document = document.add(
                Text::new(row.peer.clone())
                    .set("x", LABEL_WIDTH)
                    .set("y", y + 13.0)
                    .set("text-anchor", "end"),
            );
            if let Some(ratio) = row
                .ratio
                .map(|r| goodness(summary, r))
                .filter(|r| r.is_finite() && *r > 0.0)
            {
                let (from, to) = (x(1.0), x(ratio));
                let value = row.headline.map_or_else(String::new, |h| {
                    format!(" ({} {})", human(h.median), summary.unit)
                });
                document = document
                    .add(
                        Rectangle::new()
                            .set("x", from.min(to))
                            .set("y", y + 3.0)
                            .set("width", (to - from).abs().max(1.0))
                            .set("height", ROW_HEIGHT - 5.0)
                            .set("fill", colour(&row.peer)),
                    )
                    .add(
                        Text::new(format!("{}{value}", ratio_label(ratio)))
                            .set("x", from.max(to) + 4.0)
                            .set("y", y + 13.0)
                            .set("font-size", 11),
                    );
            } else {
                let missing = if row.headline.is_some() {
                    "no baseline figure in this scenario"
                } else {
                    "no result"
                };
                document = document.add(
                    Text::new(missing)
                        .set("x", x(1.0) + 4.0)
                        .set("y", y + 13.0)
                        .set("fill", "#999"),
                );
            }
            y += ROW_HEIGHT;
        }
        y += GROUP_GAP;
    }
    document.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ratios_read_as_fractions() {
        assert_eq!(ratio_label(2.0), "2.00×");
        assert_eq!(ratio_label(0.46), "0.46×");
        assert_eq!(ratio_label(1.0 / 507.0), "1/507×");
    }
}
