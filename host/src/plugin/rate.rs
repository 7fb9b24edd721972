//! Message rates of a tenant's clients: a token bucket per connection and
//! one for the whole tenant (governor's GCRA), checked where a client's
//! input enters the plugin runtime, before it costs the plugin anything.
//!
//! A message takes one token from each bucket when its first piece
//! arrives; the rest of it shares that verdict, so a plugin never sees
//! part of a message. In line mode each line counts as a message. A ping
//! takes a token too (it is an event for the plugin).
//!
//! Dropping still costs the server a read per message. A client that goes
//! on sending through a whole burst's worth of drops is therefore also not
//! read for the time the bucket takes to refill: a flood then costs the
//! server at most about twice the rate, and TCP slows the client.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::spec::{OverRate, Rate, TenantPolicy};
use crate::protocol::close::POLICY_VIOLATION;

/// The seed has no code for "over a rate"; the `error` event of a dropped
/// message carries the close code the other choice sends (1008, policy
/// violation).
pub(crate) const OVER_RATE: u32 = POLICY_VIOLATION as u32;

/// A token bucket and what refilling it takes.
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
    /// From empty to full.
    refill: Duration,
}

impl Bucket {
    fn new(rate: Rate) -> Self {
        let quota = Quota::per_second(rate.per_second).allow_burst(rate.burst);
        Self {
            limiter: RateLimiter::direct(quota),
            burst: rate.burst.get(),
            refill: quota.replenish_interval() * rate.burst.get(),
        }
    }

    fn take(&self) -> bool {
        self.limiter.check().is_ok()
    }
}

/// What happens to a piece of a client's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Pass,
    /// Not delivered. `report` is true for the first message of a run of
    /// dropped ones (the plugin gets one `error` event per run); `pause`
    /// is set when the run has reached the bucket's burst: stop reading
    /// the client for that long.
    Drop {
        report: bool,
        pause: Option<Duration>,
    },
    /// Over the rate with [`OverRate::Close`]: close the connection.
    Close,
}

/// A tenant's rates: its shared bucket and how to make each connection's.
pub(crate) struct Rates {
    tenant: Option<Bucket>,
    per_connection: Option<Rate>,
    over: OverRate,
}

impl Rates {
    pub fn new(policy: &TenantPolicy) -> Self {
        Self {
            tenant: policy.tenant_rate.map(Bucket::new),
            per_connection: policy.connection_rate,
            over: policy.over_rate,
        }
    }

    /// A new connection's gate, or None when the tenant has no rate.
    pub fn gate(&self) -> Option<ConnectionGate> {
        (self.tenant.is_some() || self.per_connection.is_some()).then(|| ConnectionGate {
            bucket: self.per_connection.map(Bucket::new),
            in_message: AtomicBool::new(false),
            dropping: AtomicBool::new(false),
            dropped_in_run: AtomicU32::new(0),
            closing: AtomicBool::new(false),
        })
    }

    /// A piece of data; `ends_message` when it completes its message (or
    /// its line in line mode).
    pub fn data(&self, gate: &ConnectionGate, ends_message: bool) -> Verdict {
        // Only the connection's own task delivers its input: relaxed
        // loads and stores see each other in order.
        let starts = !gate.in_message.load(Ordering::Relaxed);
        gate.in_message.store(!ends_message, Ordering::Relaxed);
        if !starts {
            return if gate.dropping.load(Ordering::Relaxed) {
                Verdict::Drop {
                    report: false,
                    pause: None,
                }
            } else {
                Verdict::Pass
            };
        }
        let verdict = self.take_token(gate);
        gate.dropping
            .store(verdict != Verdict::Pass, Ordering::Relaxed);
        verdict
    }

    /// A ping or pong from the client.
    pub fn ping(&self, gate: &ConnectionGate) -> Verdict {
        self.take_token(gate)
    }

    fn take_token(&self, gate: &ConnectionGate) -> Verdict {
        // Closing already: what still arrives is dropped without a word.
        if gate.closing.load(Ordering::Relaxed) {
            return Verdict::Drop {
                report: false,
                pause: None,
            };
        }
        // The connection's bucket first: a client over its own rate does
        // not use up the tenant's.
        let refused = [gate.bucket.as_ref(), self.tenant.as_ref()]
            .into_iter()
            .flatten()
            .find(|bucket| !bucket.take());
        let Some(bucket) = refused else {
            gate.dropped_in_run.store(0, Ordering::Relaxed);
            return Verdict::Pass;
        };
        if self.over == OverRate::Close {
            gate.closing.store(true, Ordering::Relaxed);
            return Verdict::Close;
        }
        let run = gate.dropped_in_run.fetch_add(1, Ordering::Relaxed) + 1;
        let pause = (run >= bucket.burst).then(|| {
            gate.dropped_in_run.store(0, Ordering::Relaxed);
            bucket.refill
        });
        Verdict::Drop {
            report: run == 1,
            pause,
        }
    }
}

/// A connection's bucket and where its input stands.
pub(crate) struct ConnectionGate {
    bucket: Option<Bucket>,
    /// A message (a line in line mode) has begun and not ended.
    in_message: AtomicBool,
    /// The message under way is being dropped.
    dropping: AtomicBool,
    /// Messages dropped since the last one delivered.
    dropped_in_run: AtomicU32,
    /// Closed for going over the rate.
    closing: AtomicBool,
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn rate(per_second: u32, burst: u32) -> Option<Rate> {
        Some(Rate {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        })
    }

    fn rates(per_connection: Option<Rate>, tenant: Option<Rate>, over: OverRate) -> Rates {
        Rates::new(&TenantPolicy {
            connection_rate: per_connection,
            tenant_rate: tenant,
            over_rate: over,
            ..TenantPolicy::default()
        })
    }

    #[test]
    fn no_rate_means_no_gate() {
        assert!(rates(None, None, OverRate::Drop).gate().is_none());
    }

    fn dropped(report: bool) -> Verdict {
        Verdict::Drop {
            report,
            pause: None,
        }
    }

    #[test]
    fn a_burst_passes_then_whole_messages_are_dropped_and_reported_once_per_run() {
        // One a second: nothing refills while the test runs.
        let rates = rates(rate(1, 3), None, OverRate::Drop);
        let gate = rates.gate().unwrap();
        assert_eq!(rates.data(&gate, true), Verdict::Pass);
        // A fragmented message: its first piece takes the token.
        assert_eq!(rates.data(&gate, false), Verdict::Pass);
        assert_eq!(rates.data(&gate, true), Verdict::Pass);
        assert_eq!(rates.ping(&gate), Verdict::Pass);
        // Over the rate: the whole next message goes, reported once.
        assert_eq!(rates.data(&gate, false), dropped(true));
        assert_eq!(rates.data(&gate, true), dropped(false));
        assert_eq!(rates.data(&gate, true), dropped(false));
        // A burst's worth of drops in a row: stop reading for the refill
        // time (3 tokens at 1 a second), then a new run begins.
        assert_eq!(
            rates.ping(&gate),
            Verdict::Drop {
                report: false,
                pause: Some(Duration::from_secs(3)),
            }
        );
        assert_eq!(rates.data(&gate, true), dropped(true));
    }

    #[test]
    fn the_tenant_bucket_is_shared_by_its_connections() {
        let rates = rates(rate(1000, 1000), rate(1, 3), OverRate::Close);
        let (a, b) = (rates.gate().unwrap(), rates.gate().unwrap());
        assert_eq!(rates.data(&a, true), Verdict::Pass);
        assert_eq!(rates.data(&b, true), Verdict::Pass);
        assert_eq!(rates.ping(&a), Verdict::Pass);
        assert_eq!(rates.data(&b, true), Verdict::Close);
        assert_eq!(rates.data(&a, true), Verdict::Close);
        // Once closing, a connection's later messages go quietly.
        assert_eq!(rates.data(&a, true), dropped(false));
    }

    #[test]
    fn a_client_over_its_own_rate_leaves_the_tenant_tokens_to_others() {
        let rates = rates(rate(1, 1), rate(1, 2), OverRate::Drop);
        let (greedy, other) = (rates.gate().unwrap(), rates.gate().unwrap());
        assert_eq!(rates.data(&greedy, true), Verdict::Pass);
        for _ in 0..5 {
            assert!(matches!(rates.data(&greedy, true), Verdict::Drop { .. }));
        }
        assert_eq!(rates.data(&other, true), Verdict::Pass);
    }
}
