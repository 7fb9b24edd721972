//! `/metrics`: the server's, the plugins' and the tenants' counters in the
//! Prometheus text format (0.0.4), written by prometheus-client's encoder
//! from one snapshot per scrape. A plugin is its tenant: the `plugin` and
//! `tenant` labels carry the same names.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::cluster::ClusterStatus;
use crate::plugin::metrics::PluginCounters;
use crate::plugin::{TenantCounters, TenantStatus};
use crate::server::ServerMetrics;

/// The `Content-Type` of the text [`render`] writes.
pub(super) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The exposition text for one scrape.
pub(super) fn render(
    server: ServerMetrics,
    plugins: Vec<TenantStatus>,
    cluster: Option<ClusterStatus>,
) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot {
        server,
        plugins,
        cluster,
    }));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut text, &registry);
    text
}

/// Reads one counter of a plugin.
type PluginCounter = fn(&PluginCounters) -> u64;

/// The per-plugin counters: name, help, value.
const PLUGIN_COUNTERS: [(&str, &str, PluginCounter); 12] = [
    (
        "wsserver_plugin_events",
        "Events handed to the plugin, open requests included",
        |c| c.events,
    ),
    (
        "wsserver_plugin_calls",
        "Calls into the plugin: one per batch of events or open request",
        |c| c.calls,
    ),
    (
        "wsserver_plugin_traps",
        "Plugin calls ended by a trap (the memory cap included)",
        |c| c.traps,
    ),
    (
        "wsserver_plugin_deadline_hits",
        "Plugin calls interrupted by the CPU deadline",
        |c| c.deadline_hits,
    ),
    (
        "wsserver_plugin_refused_answers",
        "Plugin answers the host refused: malformed command batches, open responses it cannot send",
        |c| c.refused,
    ),
    (
        "wsserver_plugin_commands_dropped",
        "Plugin commands dropped: the connection's send queue and the commands held for it were full",
        |c| c.commands_dropped,
    ),
    (
        "wsserver_plugin_logs_dropped",
        "Plugin log lines dropped over the plugin's log budget",
        |c| c.logs_dropped,
    ),
    (
        "wsserver_plugin_instantiations",
        "Plugin instances made: on first use, after a failure, after hibernation",
        |c| c.instantiations,
    ),
    (
        "wsserver_plugin_instance_failures",
        "Instances that could not be made (out of a resource) or runtime failures; their connections got 1011 or 503",
        |c| c.instance_failures,
    ),
    (
        "wsserver_plugin_background_turns",
        "Plugin turns run at a lower CPU priority: the instance was heavy (long turns while other tenants' quick turns waited)",
        |c| c.background_turns,
    ),
    (
        "wsserver_plugin_inline_turns",
        "Plugin turns run on a server thread, with no hop to an executor (tenants with inline_turns)",
        |c| c.inline_turns,
    ),
    (
        "wsserver_plugin_opens_accepted_by_host",
        "Open requests answered 101 by the host without a plugin call: the plugin accepts every one (it keeps the SDK's default answer)",
        |c| c.opens_accepted_by_host,
    ),
];

/// Reads one duration of a plugin, in seconds.
type PluginSeconds = fn(&PluginCounters) -> f64;

/// The per-plugin gauges: name, help, value.
const PLUGIN_GAUGES: [(&str, &str, PluginCounter); 3] = [
    (
        "wsserver_plugin_instances_live",
        "Plugin instances alive now",
        |c| c.instances_live,
    ),
    (
        "wsserver_plugin_instances_hibernated",
        "Plugin instances dropped after hibernate_after whose connections wait for the next event",
        |c| c.instances_hibernated,
    ),
    (
        "wsserver_plugin_memory_bytes",
        "Linear memory of the plugin's live instances",
        |c| c.memory_bytes,
    ),
];

/// Reads one counter of a tenant.
type TenantCounter = fn(&TenantCounters) -> u64;

/// The per-tenant counters with the tenant as their only label.
const TENANT_COUNTERS: [(&str, &str, TenantCounter); 3] = [
    (
        "wsserver_tenant_swaps",
        "Hot swaps that switched the tenant to another version",
        |c| c.swaps,
    ),
    (
        "wsserver_tenant_swap_failures",
        "Swaps and rollbacks that failed; the running version kept serving",
        |c| c.failed_swaps,
    ),
    (
        "wsserver_tenant_rollbacks",
        "Rollbacks to the previous version",
        |c| c.rollbacks,
    ),
];

#[derive(Debug)]
struct Snapshot {
    server: ServerMetrics,
    plugins: Vec<TenantStatus>,
    cluster: Option<ClusterStatus>,
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_server(&mut encoder)?;
        self.encode_plugins(&mut encoder)?;
        self.encode_tenants(&mut encoder)?;
        self.encode_cluster(&mut encoder)
    }
}

impl Snapshot {
    /// The backplane's state; nothing without one.
    fn encode_cluster(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(c) = &self.cluster else {
            return Ok(());
        };
        gauge(
            encoder,
            "wsserver_cluster_connected",
            "1 while the link to Redis is up, 0 during an outage",
            u64::from(c.connected),
        )?;
        gauge(
            encoder,
            "wsserver_cluster_subscribed_channels",
            "Redis channels this node subscribes to (topics with local subscribers)",
            c.subscribed_channels as u64,
        )?;
        let counters = [
            (
                "wsserver_cluster_published",
                "Messages sent to Redis for the other nodes",
                c.published,
            ),
            (
                "wsserver_cluster_publish_failures",
                "Messages for the other nodes that could not be sent (Redis down, an error, a full queue)",
                c.publish_failures,
            ),
            (
                "wsserver_cluster_received",
                "Messages received from other nodes",
                c.received,
            ),
            (
                "wsserver_cluster_outages",
                "Times the link to Redis went down",
                c.outages,
            ),
        ];
        for (name, help, value) in counters {
            counter(encoder, name, help, None, value)?;
        }
        Ok(())
    }

    fn encode_server(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.server;
        gauge(
            encoder,
            "wsserver_connections_open",
            "WebSocket connections open now",
            s.connections_open,
        )?;
        gauge(
            encoder,
            "wsserver_cores_accepting",
            "Serving threads that new connections go to (AdaptiveCores)",
            s.cores_accepting,
        )?;
        gauge(
            encoder,
            "wsserver_connections_parked",
            "Open connections idle long enough to wait in a parking lot, without a task of their own",
            s.connections_parked,
        )?;
        counter(
            encoder,
            "wsserver_connections_accepted",
            "Connections whose opening handshake succeeded",
            None,
            s.connections_accepted,
        )?;
        let mut family = encoder.encode_descriptor(
            "wsserver_connections_refused",
            "Clients refused before their WebSocket opened, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in s.connections_refused.iter() {
            ConstCounter::new(n).encode(family.encode_family(&[("reason", reason.as_str())])?)?;
        }
        counter(
            encoder,
            "wsserver_messages_received",
            "Data messages received from clients",
            None,
            s.messages_received,
        )?;
        counter(
            encoder,
            "wsserver_messages_sent",
            "Data messages queued to clients and handed to their writers",
            None,
            s.messages_sent,
        )?;
        counter(
            encoder,
            "wsserver_received",
            "Bytes read from client sockets, frame headers included",
            Some(&Unit::Bytes),
            s.bytes_received,
        )?;
        counter(
            encoder,
            "wsserver_sent",
            "Bytes written to client sockets, frame headers included",
            Some(&Unit::Bytes),
            s.bytes_sent,
        )?;
        counter(
            encoder,
            "wsserver_send_would_block",
            "Sends refused because the connection's send queue was full (10035)",
            None,
            s.would_block,
        )
    }

    fn encode_plugins(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in PLUGIN_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for p in &self.plugins {
                ConstCounter::new(value(&p.plugin))
                    .encode(family.encode_family(&plugin_label(p))?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "wsserver_plugin_queued",
            "Bytes of events waiting in the plugin's inbox",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for p in &self.plugins {
            ConstGauge::new(p.queued_bytes as u64)
                .encode(family.encode_family(&plugin_label(p))?)?;
        }
        for (name, help, value) in PLUGIN_GAUGES {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for p in &self.plugins {
                ConstGauge::new(value(&p.plugin))
                    .encode(family.encode_family(&plugin_label(p))?)?;
            }
        }
        let seconds: [(&str, &str, PluginSeconds); 2] = [
            (
                "wsserver_plugin_guest",
                "Time spent in the plugin's calls (the guest's CPU time, for billing)",
                |c| c.call_latency.sum.as_secs_f64(),
            ),
            (
                "wsserver_plugin_instantiation",
                "Time spent making the plugin's instances",
                |c| c.instantiation_time.as_secs_f64(),
            ),
        ];
        for (name, help, value) in seconds {
            let mut family =
                encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Counter)?;
            for p in &self.plugins {
                ConstCounter::new(value(&p.plugin))
                    .encode(family.encode_family(&plugin_label(p))?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "wsserver_plugin_call_duration",
            "Time each plugin call took, applying the commands it returned included",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for p in &self.plugins {
            let latency = &p.plugin.call_latency;
            let buckets: Vec<(f64, u64)> = latency
                .buckets
                .iter()
                .map(|(bound, n)| (bound.as_secs_f64(), *n))
                .chain([(f64::INFINITY, latency.over)])
                .collect();
            family
                .encode_family(&plugin_label(p))?
                .encode_histogram::<NoLabelSet>(
                    latency.sum.as_secs_f64(),
                    latency.count(),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

fn plugin_label(p: &TenantStatus) -> [(&'static str, &str); 1] {
    [("plugin", p.name.as_str())]
}

fn tenant_label(t: &TenantStatus) -> [(&'static str, &str); 1] {
    [("tenant", t.name.as_str())]
}

impl Snapshot {
    fn encode_tenants(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "wsserver_tenant_connections",
            "Connections open (or being opened) on the tenant now",
            None,
            MetricType::Gauge,
        )?;
        for t in &self.plugins {
            ConstGauge::new(t.connections as u64)
                .encode(family.encode_family(&tenant_label(t))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "wsserver_tenant_version_info",
            "The version serving the tenant: the digest of its component",
            None,
            MetricType::Gauge,
        )?;
        for t in &self.plugins {
            let version = t.version.digest();
            let labels = [("tenant", t.name.as_str()), ("version", version.as_str())];
            ConstGauge::new(1).encode(family.encode_family(&labels)?)?;
        }
        for (name, help, value) in TENANT_COUNTERS {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for t in &self.plugins {
                ConstCounter::new(value(&t.counters))
                    .encode(family.encode_family(&tenant_label(t))?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "wsserver_tenant_refused",
            "Open requests the tenant's policy refused before its plugin saw them, by reason",
            None,
            MetricType::Counter,
        )?;
        for t in &self.plugins {
            for (reason, n) in [
                ("max_connections", t.counters.refused_full),
                ("origin", t.counters.refused_origin),
            ] {
                let labels = [("tenant", t.name.as_str()), ("reason", reason)];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "wsserver_tenant_over_rate",
            "Client messages over the tenant's rates, by what happened to them",
            None,
            MetricType::Counter,
        )?;
        for t in &self.plugins {
            for (action, n) in [
                ("dropped", t.counters.dropped_over_rate),
                ("closed", t.counters.closed_over_rate),
            ] {
                let labels = [("tenant", t.name.as_str()), ("action", action)];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::ComponentVersion;
    use crate::plugin::metrics::LatencyCounts;
    use std::time::Duration;

    #[test]
    fn counters_histograms_and_labels_are_written_in_the_text_format() {
        let server = ServerMetrics {
            connections_open: 2,
            connections_accepted: 5,
            messages_received: 7,
            bytes_sent: 1234,
            ..Default::default()
        };
        let plugins = vec![TenantStatus {
            name: "echo \"x\"".into(),
            routes: vec!["/".into()],
            instances: 1,
            connections: 4,
            version: ComponentVersion {
                sha256: "00ff".into(),
                loaded_at: std::time::SystemTime::UNIX_EPOCH,
            },
            previous: None,
            queued_bytes: 3,
            counters: TenantCounters {
                swaps: 2,
                refused_origin: 1,
                dropped_over_rate: 9,
                ..Default::default()
            },
            plugin: PluginCounters {
                calls: 3,
                call_latency: LatencyCounts {
                    buckets: vec![
                        (Duration::from_micros(5), 1),
                        (Duration::from_micros(10), 1),
                    ],
                    over: 1,
                    sum: Duration::from_millis(250),
                },
                ..Default::default()
            },
        }];
        let text = render(server, plugins, None);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has("# TYPE wsserver_connections_open gauge"), "{text}");
        assert!(has("wsserver_connections_open 2"), "{text}");
        assert!(has("wsserver_connections_accepted_total 5"), "{text}");
        assert!(
            has("wsserver_connections_refused_total{reason=\"max_connections\"} 0"),
            "{text}"
        );
        assert!(has("wsserver_sent_bytes_total 1234"), "{text}");
        assert!(
            has("wsserver_plugin_calls_total{plugin=\"echo \\\"x\\\"\"} 3"),
            "label values are escaped: {text}"
        );
        assert!(has(
            "wsserver_plugin_queued_bytes{plugin=\"echo \\\"x\\\"\"} 3"
        ));
        let tenant = "tenant=\"echo \\\"x\\\"\"";
        for line in [
            format!("wsserver_tenant_connections{{{tenant}}} 4"),
            format!("wsserver_tenant_version_info{{{tenant},version=\"sha256:00ff\"}} 1"),
            format!("wsserver_tenant_swaps_total{{{tenant}}} 2"),
            format!("wsserver_tenant_rollbacks_total{{{tenant}}} 0"),
            format!("wsserver_tenant_refused_total{{{tenant},reason=\"origin\"}} 1"),
            format!("wsserver_tenant_over_rate_total{{{tenant},action=\"dropped\"}} 9"),
        ] {
            assert!(has(&line), "{line} missing from {text}");
        }
        // Buckets are cumulative, and +Inf equals the count.
        let histogram = "wsserver_plugin_call_duration_seconds";
        let label = "plugin=\"echo \\\"x\\\"\"";
        for line in [
            format!("{histogram}_bucket{{{label},le=\"5e-06\"}} 1"),
            format!("{histogram}_bucket{{{label},le=\"1e-05\"}} 2"),
            format!("{histogram}_bucket{{{label},le=\"+Inf\"}} 3"),
            format!("{histogram}_sum{{{label}}} 0.25"),
            format!("{histogram}_count{{{label}}} 3"),
        ] {
            assert!(has(&line), "{line} missing from {text}");
        }
    }
}
