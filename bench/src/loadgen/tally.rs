//! Counts and latencies one thread gathered inside the measurement window.

use hdrhistogram::Histogram;

const LOWEST_NANOS: u64 = 1;
const HIGHEST_NANOS: u64 = 60_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

pub struct Tally {
    pub events: u64,
    pub payload_bytes: u64,
    pub latency: Histogram<u64>,
}

impl Tally {
    pub fn new() -> Self {
        Self {
            events: 0,
            payload_bytes: 0,
            latency: Histogram::new_with_bounds(LOWEST_NANOS, HIGHEST_NANOS, SIGNIFICANT_DIGITS)
                .expect("constant histogram bounds are valid"),
        }
    }

    pub fn record(&mut self, payload_len: u64, latency_nanos: Option<u64>) {
        self.events += 1;
        self.payload_bytes += payload_len;
        if let Some(nanos) = latency_nanos {
            self.latency.saturating_record(nanos.max(LOWEST_NANOS));
        }
    }

    /// All the tallies together.
    pub fn sum<'a>(tallies: impl IntoIterator<Item = &'a Tally>) -> Self {
        tallies.into_iter().fold(Self::new(), |mut total, tally| {
            total.events += tally.events;
            total.payload_bytes += tally.payload_bytes;
            total
                .latency
                .add(&tally.latency)
                .expect("tallies share bounds, so adding cannot overflow them");
            total
        })
    }
}
