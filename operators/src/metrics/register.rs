//! The metrics without labels, registered under the names Prometheus shows.
//! Each kind is a table of (name, help, metric): the names and help texts
//! are the exposition's, so they stay together, one entry per metric.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::collector::StatusCollector;
use super::{IntGauge, Metrics};

impl Metrics {
    /// Registers every metric of the run in `registry`, under the names
    /// Prometheus shows (with the registry's prefix, `weir_`).
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        self.register_counters(registry);
        self.register_gauges(registry);
        self.register_histograms(registry);
        registry.register_collector(Box::new(StatusCollector(self.clone())));
    }

    /// Registers the counters (the exposition adds `_total`).
    fn register_counters(&self, registry: &mut Registry) {
        let counters: [(&str, &str, &Counter); 18] = [
            (
                "records_read",
                "Records read by the sources",
                &self.records_read,
            ),
            ("readings", "Readings decoded and accepted", &self.readings),
            (
                "parquet_files",
                "Parquet files written",
                &self.parquet_files,
            ),
            (
                "late_records",
                "Readings behind their partition's watermark (sent to the dead letters)",
                &self.late_records,
            ),
            (
                "windows_emitted",
                "Window aggregates emitted",
                &self.windows,
            ),
            (
                "windows_left_open",
                "Windows still open at a stop (not written)",
                &self.windows_left_open,
            ),
            (
                "parquet_rows",
                "Rows written to committed Parquet files",
                &self.parquet_rows,
            ),
            (
                "parquet_written_bytes",
                "Bytes of Parquet files written",
                &self.parquet_bytes,
            ),
            (
                "alerts_delivered",
                "Alert events delivered to the alert sink",
                &self.alerts_delivered,
            ),
            (
                "alerts_suppressed",
                "Firing events suppressed by a cooldown",
                &self.alerts_suppressed,
            ),
            (
                "dead_letters_delivered",
                "Dead letters delivered to the dead-letter sink",
                &self.dead_letters_delivered,
            ),
            (
                "sink_delivery_errors",
                "Records a sink could not deliver",
                &self.delivery_errors,
            ),
            ("checkpoints", "Checkpoints completed", &self.checkpoints),
            ("rule_reloads", "Rule reloads applied", &self.rule_reloads),
            (
                "rule_reloads_refused",
                "Rule reloads refused; the rules in force stay",
                &self.rule_reloads_refused,
            ),
            (
                "sources_wired",
                "Sources wired (one per worker and source)",
                &self.sources_wired,
            ),
            (
                "sources_open",
                "Sources that opened their partitions",
                &self.sources_open,
            ),
            (
                "partitions_held",
                "Times a source partition was held back by watermark alignment",
                &self.partitions_held,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
    }

    /// Registers the gauges, with their unit where they have one.
    fn register_gauges(&self, registry: &mut Registry) {
        let gauges: [(&str, &str, Option<Unit>, &IntGauge); 9] = [
            (
                "rules_version",
                "Version of the rule set in force",
                None,
                &self.rules_version,
            ),
            (
                "rules_from",
                "Event time from which the rule set in force applies (ms since the epoch)",
                None,
                &self.rules_from,
            ),
            ("windows_open", "Windows open now", None, &self.windows_open),
            (
                "window_state",
                "Estimated memory held by open windows",
                Some(Unit::Bytes),
                &self.window_state_bytes,
            ),
            (
                "rule_states",
                "(device, sensor, rule) states held by the alert evaluators",
                None,
                &self.rule_states,
            ),
            (
                "rule_state",
                "Estimated memory held by the alert evaluators",
                Some(Unit::Bytes),
                &self.rule_state_bytes,
            ),
            (
                "producer_queue_records",
                "Records handed to Kafka producers and not yet acknowledged",
                None,
                &self.producer_queue,
            ),
            (
                "checkpoint_size",
                "Size of the last completed checkpoint",
                Some(Unit::Bytes),
                &self.last_checkpoint_bytes,
            ),
            (
                "checkpoint_frontier",
                "Event-time frontier of the last completed checkpoint (ms since the epoch)",
                None,
                &self.last_checkpoint_frontier,
            ),
        ];
        for (name, help, unit, gauge) in gauges {
            match unit {
                Some(unit) => registry.register_with_unit(name, help, unit, gauge.clone()),
                None => registry.register(name, help, gauge.clone()),
            }
        }
    }

    /// Registers the histograms, all in seconds.
    fn register_histograms(&self, registry: &mut Registry) {
        let histograms: [(&str, &str, &Histogram); 3] = [
            ("checkpoint_duration", "Time from a checkpoint's start to its manifest", &self.checkpoint_duration),
            ("alert_latency", "Time from a record's arrival at the source to its alert being acknowledged", &self.alert_latency),
            ("window_latency", "Time from a record's arrival at the source to the window row it ends being written", &self.window_latency),
        ];
        for (name, help, histogram) in histograms {
            registry.register_with_unit(name, help, Unit::Seconds, histogram.clone());
        }
    }
}
