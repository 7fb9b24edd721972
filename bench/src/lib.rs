//! Benchmark harness for wsserver: a WebSocket load generator that stays out
//! of the way of the server it measures, the comparison peers it is measured
//! against, and the driver that runs them interleaved and reports the figures.

pub mod client;
pub mod driver;
pub mod loadgen;
pub mod peer;
pub mod procstat;
pub mod report;
