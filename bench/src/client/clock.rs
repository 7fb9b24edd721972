//! Send timestamps carried inside message payloads, so latency needs no
//! bookkeeping per message in flight.

use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds since this process first asked for the time.
pub type Stamp = u64;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The current time as a payload stamp.
pub fn now_stamp() -> Stamp {
    // u64 nanoseconds cover 584 years of uptime: the cast cannot truncate.
    epoch().elapsed().as_nanos() as Stamp
}

/// The instant a stamp stands for, to sleep until it.
pub fn instant_of(stamp: Stamp) -> Instant {
    epoch() + std::time::Duration::from_nanos(stamp)
}
