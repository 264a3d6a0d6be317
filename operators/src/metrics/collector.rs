//! The metrics with labels (dead letters by reason, alerts by rule, source
//! partitions, operators), encoded from the run's status at each scrape.
//! Each group of families is encoded by its own function, in the order the
//! exposition shows them.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::{lock, AlertCounts, Metrics, OperatorFigures, PartitionStatus};
use crate::dead_letter::DeadLetterReason;

/// The metrics with labels, read from the run's status at each scrape.
#[derive(Debug)]
pub(super) struct StatusCollector(pub(super) Arc<Metrics>);

/// Encodes one family: a sample per (labels, value).
fn family<V: Into<f64> + Copy>(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    samples: impl IntoIterator<Item = (Vec<(&'static str, String)>, V)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let value: f64 = value.into();
        let sample = family.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        encode_dead_letters(m, &mut encoder)?;
        let alerts = lock(&m.alerts).clone();
        encode_alerts(&alerts, &mut encoder)?;
        encode_alerts_firing(m, &alerts, &mut encoder)?;
        encode_alarm_health(m, &mut encoder)?;
        encode_partitions(m, &mut encoder)?;
        encode_operators(m, &mut encoder)?;
        Ok(())
    }
}

/// The alarm system's health: events by measure (every measure, at 0 when
/// none), and whether a flood is under way in each area that had one.
fn encode_alarm_health(
    m: &Metrics,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let health = lock(&m.health);
    family(
        encoder,
        (
            "alarm_health_events",
            "Health events of the alarm system (ISA-18.2), by measure",
            MetricType::Counter,
        ),
        ["flood_started", "flood", "stale", "rate"].map(|measure| {
            let n = health.by_measure.get(measure).copied().unwrap_or(0);
            (vec![("measure", measure.to_owned())], n as f64)
        }),
    )?;
    family(
        encoder,
        (
            "alarm_floods",
            "1 while an alarm flood is under way in the area (more activations than the limit per flood window)",
            MetricType::Gauge,
        ),
        health
            .floods
            .iter()
            .map(|(area, on)| (vec![("area", area.clone())], u8::from(*on) as f64)),
    )
}

/// Dead letters, by reason.
fn encode_dead_letters(
    m: &Metrics,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    family(
        encoder,
        (
            "dead_letters",
            "Records sent to the dead letters, by reason",
            MetricType::Counter,
        ),
        DeadLetterReason::ALL.iter().map(|r| {
            let n = m.dead_letters[r.index()].get() as f64;
            (vec![("reason", r.to_string())], n)
        }),
    )
}

/// Alert events made, by rule, severity and state.
fn encode_alerts(
    alerts: &BTreeMap<(String, String), AlertCounts>,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    family(
        encoder,
        (
            "alerts",
            "Alert events made, by rule, severity and state",
            MetricType::Counter,
        ),
        alerts.iter().flat_map(|((rule, severity), c)| {
            [
                ("firing", c.firing),
                ("escalated", c.escalated),
                ("resolved", c.resolved),
                ("chattering", c.chattering),
            ]
            .map(|(state, n)| {
                let labels = vec![
                    ("rule", rule.clone()),
                    ("severity", severity.clone()),
                    ("state", state.to_owned()),
                ];
                (labels, n as f64)
            })
        }),
    )
}

/// Alerts firing now, by rule and severity: every (rule, severity) with
/// events appears, at 0 when none fires.
fn encode_alerts_firing(
    m: &Metrics,
    alerts: &BTreeMap<(String, String), AlertCounts>,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    let mut firing: BTreeMap<(String, String), u32> = alerts
        .keys()
        .map(|(rule, severity)| ((rule.clone(), severity.clone()), 0))
        .collect();
    for (alarm, _) in m.alarm_board().alarms.iter() {
        *firing
            .entry((alarm.rule.clone(), alarm.severity.clone()))
            .or_default() += 1;
    }
    family(
        encoder,
        (
            "alerts_firing",
            "Alerts firing now, by rule and severity",
            MetricType::Gauge,
        ),
        firing
            .into_iter()
            .map(|((rule, severity), n)| (vec![("rule", rule), ("severity", severity)], n)),
    )
}

/// The families per source partition, by topic and partition.
fn encode_partitions(m: &Metrics, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let counter = MetricType::Counter;
    let gauge = MetricType::Gauge;
    let partitions = m.partitions();
    let labels =
        |(topic, p): &(String, i32)| vec![("topic", topic.clone()), ("partition", p.to_string())];
    type Field = fn(&PartitionStatus) -> Option<f64>;
    let per_partition: [(&str, &str, MetricType, Field); 8] = [
        (
            "source_records",
            "Records read, by source partition",
            counter,
            |s| Some(s.records as f64),
        ),
        (
            "source_bytes",
            "Bytes of record values read, by source partition",
            counter,
            |s| Some(s.bytes as f64),
        ),
        (
            "source_position",
            "The next offset a source partition reads",
            gauge,
            |s| Some(s.position as f64),
        ),
        (
            "source_remaining",
            "Records left before a bounded partition's end",
            gauge,
            |s| {
                s.end
                    .map(|end| end.saturating_sub(s.position).max(0) as f64)
            },
        ),
        (
            "source_lag",
            "Records in a Kafka partition not read yet: its end offset minus the position",
            gauge,
            |s| {
                s.high_watermark
                    .map(|h| h.saturating_sub(s.position).max(0) as f64)
            },
        ),
        (
            "source_watermark",
            "A source partition's watermark (ms of event time since the epoch)",
            gauge,
            |s| s.watermark.map(|w| w as f64),
        ),
        (
            "source_idle",
            "1 while a source partition is declared idle",
            gauge,
            |s| Some(f64::from(u8::from(s.idle))),
        ),
        (
            "source_held",
            "1 while a source partition is held back by watermark alignment",
            gauge,
            |s| Some(f64::from(u8::from(s.held))),
        ),
    ];
    for (name, help, kind, field) in per_partition {
        family(
            encoder,
            (name, help, kind),
            partitions
                .iter()
                .filter_map(|(key, s)| field(s).map(|v| (labels(key), v))),
        )?;
    }
    Ok(())
}

/// The families per operator (timely's logging), by name and address.
fn encode_operators(m: &Metrics, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let counter = MetricType::Counter;
    let operators = m.operator_figures();
    let labels = |(name, addr): &(String, String)| {
        vec![("operator", name.clone()), ("address", addr.clone())]
    };
    type Figure = fn(&OperatorFigures) -> f64;
    let per_operator: [(&str, &str, Figure); 4] = [
        (
            "operator_records_in",
            "Records an operator received (timely's logging)",
            |f| f.records_in as f64,
        ),
        (
            "operator_records_out",
            "Records an operator sent (timely's logging)",
            |f| f.records_out as f64,
        ),
        (
            "operator_exchanged_records",
            "Records an operator received from another worker (timely's logging)",
            |f| f.records_exchanged as f64,
        ),
        (
            "operator_busy_seconds",
            "Time spent in an operator (timely's logging)",
            |f| f.busy_seconds,
        ),
    ];
    for (name, help, field) in per_operator {
        family(
            encoder,
            (name, help, counter),
            operators.iter().map(|(key, f)| (labels(key), field(f))),
        )?;
    }
    Ok(())
}
