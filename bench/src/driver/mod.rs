//! The driver: starts each server fresh for every run, runs the peers
//! interleaved (A B A B ...) so machine noise hits them alike, and
//! summarises the repeats as a table and a chart.

mod chart;
mod config;
mod machine;
mod run;
mod server;
mod summary;

pub use chart::render_chart;
pub use config::{Config, ConfigError, PeerSpec, Scenario};
pub use machine::describe_machine;
pub use run::{Outcome, RunOptions, run_all};
pub use server::{RunningServer, ServerError};
pub use summary::{Summary, render_table, summarise};
