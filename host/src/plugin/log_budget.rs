//! How much a plugin may log. Lines beyond a rate are dropped and counted
//! and long lines are cut, so a plugin that logs without end can neither
//! fill the operator's disk nor drown the server's and other tenants'
//! lines, and costs the host little more than the call itself.

use std::borrow::Cow;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::metrics::PluginMetrics;

/// Sustained log lines per second, per tenant.
const LINES_PER_SECOND: NonZeroU32 = NonZeroU32::new(100).unwrap();
/// Lines a quiet tenant may write at once.
const BURST: NonZeroU32 = NonZeroU32::new(1000).unwrap();
/// Longer lines are cut to this many bytes.
pub(crate) const MAX_LINE: usize = 4096;

/// One tenant's log budget (a token bucket), shared by its instances.
pub(crate) struct LogBudget {
    limiter: DefaultDirectRateLimiter,
    /// Lines are being dropped: said once per run in the server's log.
    dropping: AtomicBool,
}

impl std::fmt::Debug for LogBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogBudget")
            .field("dropping", &self.dropping)
            .finish_non_exhaustive()
    }
}

impl Default for LogBudget {
    fn default() -> Self {
        Self {
            limiter: RateLimiter::direct(Quota::per_second(LINES_PER_SECOND).allow_burst(BURST)),
            dropping: AtomicBool::new(false),
        }
    }
}

impl LogBudget {
    /// The line to write (cut if long), or `None` when over the budget
    /// (counted in `metrics`).
    pub fn admit<'a>(
        &self,
        plugin: &str,
        line: &'a str,
        metrics: &PluginMetrics,
    ) -> Option<Cow<'a, str>> {
        if self.limiter.check().is_err() {
            metrics.record_log_dropped();
            if !self.dropping.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    plugin,
                    "logs faster than {LINES_PER_SECOND} lines/s: dropping lines \
                     (wsserver_plugin_logs_dropped_total counts them)"
                );
            }
            return None;
        }
        self.dropping.store(false, Ordering::Relaxed);
        if line.len() <= MAX_LINE {
            return Some(Cow::Borrowed(line));
        }
        let cut = line.floor_char_boundary(MAX_LINE);
        Some(Cow::Owned(format!(
            "{}... ({} bytes cut)",
            &line[..cut],
            line.len() - cut
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_burst_and_counted() {
        let budget = LogBudget::default();
        let metrics = PluginMetrics::default();
        let written = (0..5000)
            .filter(|_| budget.admit("p", "line", &metrics).is_some())
            .count();
        // The burst, and what refilled while the loop ran.
        assert!((1000..1100).contains(&written), "{written}");
        assert_eq!(metrics.snapshot().logs_dropped, 5000 - written as u64);
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let budget = LogBudget::default();
        let metrics = PluginMetrics::default();
        let long = "é".repeat(MAX_LINE);
        let line = budget.admit("p", &long, &metrics).unwrap();
        assert!(line.len() < MAX_LINE + 40, "{}", line.len());
        assert!(line.ends_with(&format!("... ({MAX_LINE} bytes cut)")));
        assert_eq!(budget.admit("p", "short", &metrics).unwrap(), "short");
    }
}
