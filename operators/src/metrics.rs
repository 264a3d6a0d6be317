//! The metrics of a run: named Prometheus metrics that operators update
//! (counters once per batch, never per record), and the status that
//! operations show (partitions, alerts, operator figures). The runtime reads
//! them for its progress line and report; the operations server exposes
//! them with [`Metrics::register`].
//!
//! Wall-clock time appears here only in latency figures: operators still
//! decide everything on event time.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::reading::Name;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::dead_letter::DeadLetterReason;

/// A gauge of whole numbers.
pub type IntGauge = Gauge<i64, AtomicI64>;

/// The metrics of one run, shared by all workers of a process.
#[derive(Debug)]
pub struct Metrics {
    /// Records read by the sources (good and bad).
    pub records_read: Counter,
    /// Records the sources will read in all, where it is known in advance
    /// (bounded runs, replays): progress can show a rate and an ETA.
    pub records_expected: Counter,
    /// Readings decoded and accepted.
    pub readings: Counter,
    /// Readings behind their partition's watermark (a part of the dead
    /// letters, with reasons `late` and `late_after_idle`).
    pub late_records: Counter,
    /// Dead letters, by [`DeadLetterReason::index`].
    pub dead_letters: [Counter; DeadLetterReason::ALL.len()],
    /// Window aggregates emitted.
    pub windows: Counter,
    /// Windows open now (every worker's).
    pub windows_open: IntGauge,
    /// Estimated bytes held by open windows.
    pub window_state_bytes: IntGauge,
    /// (device, sensor, rule) states held by the alert evaluators.
    pub rule_states: IntGauge,
    /// Estimated bytes held by the alert evaluators (states and readings
    /// waiting for the frontier).
    pub rule_state_bytes: IntGauge,
    /// Windows still open when a stop was requested: not written, since they
    /// are not complete (with checkpoints, they are rebuilt after a restart).
    pub windows_left_open: Counter,
    /// Parquet rows written and committed.
    pub parquet_rows: Counter,
    /// Bytes of Parquet files written.
    pub parquet_bytes: Counter,
    /// Parquet files written.
    pub parquet_files: Counter,
    /// Alert events (firing and resolved) delivered to the sink.
    pub alerts_delivered: Counter,
    /// Dead letters delivered to the dead-letter sink.
    pub dead_letters_delivered: Counter,
    /// Records a sink could not deliver (alerts, dead letters).
    pub delivery_errors: Counter,
    /// Records handed to Kafka producers and not yet acknowledged.
    pub producer_queue: IntGauge,
    /// Firing events suppressed by a rule's cooldown.
    pub alerts_suppressed: Counter,
    /// Checkpoints completed.
    pub checkpoints: Counter,
    /// Frontier of the last completed checkpoint (0: none yet).
    pub last_checkpoint_frontier: IntGauge,
    /// Bytes of the last completed checkpoint.
    pub last_checkpoint_bytes: IntGauge,
    /// Seconds from a checkpoint's start to its manifest.
    pub checkpoint_duration: Histogram,
    /// Seconds from a record's arrival at the source to the alert it caused
    /// being acknowledged by its destination.
    pub alert_latency: Histogram,
    /// Seconds from a record's arrival at the source to the window row it
    /// ends being written to its Parquet file.
    pub window_latency: Histogram,
    /// Rule reloads applied.
    pub rule_reloads: Counter,
    /// Rule reloads refused (invalid files, or rules the running pipeline
    /// cannot judge); the rules in force stay.
    pub rule_reloads_refused: Counter,
    /// Version of the rule set in force (worker 0's process).
    pub rules_version: IntGauge,
    /// Event time from which that version applies (ms; 0 for the first).
    pub rules_from: IntGauge,
    /// Sources wired (one per worker and source).
    pub sources_wired: Counter,
    /// Sources that have opened their partitions.
    pub sources_open: Counter,
    /// Times a source partition was held back by watermark alignment (it
    /// ran too far ahead of the readings' frontier).
    pub partitions_held: Counter,
    alerts: Mutex<BTreeMap<(String, String), AlertCounts>>,
    files: Mutex<Vec<PathBuf>>,
    partitions: Mutex<BTreeMap<(String, i32), PartitionStatus>>,
    alert_feed: Mutex<AlertFeed>,
    arrivals: Mutex<Arrivals>,
    operators: Mutex<BTreeMap<(String, String), OperatorFigures>>,
}

impl Default for Metrics {
    fn default() -> Self {
        // 1 ms to about 4.6 hours: Parquet rows wait for their hour to end.
        let latency = || Histogram::new(exponential_buckets(0.001, 2.0, 25));
        Metrics {
            records_read: Counter::default(),
            records_expected: Counter::default(),
            readings: Counter::default(),
            late_records: Counter::default(),
            dead_letters: Default::default(),
            windows: Counter::default(),
            windows_open: IntGauge::default(),
            window_state_bytes: IntGauge::default(),
            rule_states: IntGauge::default(),
            rule_state_bytes: IntGauge::default(),
            windows_left_open: Counter::default(),
            parquet_rows: Counter::default(),
            parquet_bytes: Counter::default(),
            parquet_files: Counter::default(),
            alerts_delivered: Counter::default(),
            dead_letters_delivered: Counter::default(),
            delivery_errors: Counter::default(),
            producer_queue: IntGauge::default(),
            alerts_suppressed: Counter::default(),
            checkpoints: Counter::default(),
            last_checkpoint_frontier: IntGauge::default(),
            last_checkpoint_bytes: IntGauge::default(),
            checkpoint_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            alert_latency: latency(),
            window_latency: latency(),
            rule_reloads: Counter::default(),
            rule_reloads_refused: Counter::default(),
            rules_version: IntGauge::default(),
            rules_from: IntGauge::default(),
            sources_wired: Counter::default(),
            sources_open: Counter::default(),
            partitions_held: Counter::default(),
            alerts: Mutex::default(),
            files: Mutex::default(),
            partitions: Mutex::default(),
            alert_feed: Mutex::default(),
            arrivals: Mutex::default(),
            operators: Mutex::default(),
        }
    }
}

/// One alert event, as operations show it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEvent {
    /// Rule name.
    pub rule: Name,
    /// Severity.
    pub severity: Name,
    /// Device.
    pub device: Name,
    /// Sensor.
    pub sensor: Name,
    /// `firing`, `escalated`, `resolved` or `chattering`.
    pub state: &'static str,
    /// Event time (ms).
    pub event_time: u64,
    /// The value that caused it.
    pub value: f64,
}

/// One operator instance's share of a gauge that sums over workers (open
/// windows, state sizes): it reports changes as they come, and takes its
/// share back when dropped.
#[derive(Debug)]
pub struct GaugeShare {
    gauge: IntGauge,
    reported: i64,
    /// When it was last set, to set it at most about once a second.
    last: Option<Instant>,
}

impl GaugeShare {
    /// A share of `gauge`, at 0.
    pub fn new(gauge: &IntGauge) -> Self {
        GaugeShare {
            gauge: gauge.clone(),
            reported: 0,
            last: None,
        }
    }

    /// Whether a second passed since the last [`GaugeShare::set`]: measuring
    /// some figures costs a walk over the state, done at that pace.
    pub fn due(&self) -> bool {
        self.last
            .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1))
    }

    /// Sets this share to `value`.
    pub fn set(&mut self, value: usize) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.gauge.inc_by(value - self.reported);
        self.reported = value;
        self.last = Some(Instant::now());
    }
}

impl Drop for GaugeShare {
    fn drop(&mut self) {
        self.gauge.dec_by(self.reported);
    }
}

/// The latest alert events, and the alerts firing now.
#[derive(Debug, Default)]
struct AlertFeed {
    recent: VecDeque<AlertEvent>,
    /// Firing since (event time), by (rule, device, sensor).
    /// By (rule, device, sensor); hashed, as every alert event updates it.
    firing: hashbrown::HashMap<(Name, Name, Name), AlertEvent>,
}

/// Alert events kept for the status page.
const RECENT_ALERTS: usize = 50;

/// Where one source partition stands, for operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionStatus {
    /// Records read from it by this run.
    pub records: u64,
    /// Bytes of record values read from it by this run.
    pub bytes: u64,
    /// The next offset to read.
    pub position: i64,
    /// Its end offset, when known (bounded reads, replays).
    pub end: Option<i64>,
    /// The broker's end offset (high watermark) last reported, if any.
    pub high_watermark: Option<i64>,
    /// Its watermark (ms of event time), once it delivered a reading.
    pub watermark: Option<u64>,
    /// Declared idle: it no longer holds the watermark back.
    pub idle: bool,
    /// Held back by watermark alignment: too far ahead of the readings'
    /// frontier, it is not read until the frontier catches up.
    pub held: bool,
}

/// Firing and resolved events of one rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// `firing` events.
    pub firing: u64,
    /// `resolved` events.
    pub resolved: u64,
    /// `escalated` events.
    pub escalated: u64,
    /// `chattering` events.
    pub chattering: u64,
}

/// What timely's logging tells of one operator, summed over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OperatorFigures {
    /// Records it received.
    pub records_in: u64,
    /// Records it sent.
    pub records_out: u64,
    /// Records it received from another worker.
    pub records_exchanged: u64,
    /// Seconds spent in it.
    pub busy_seconds: f64,
}

/// When records of each event time first arrived at a source, for latency
/// figures: event time → arrival. Bounded: the oldest entries go first.
#[derive(Debug, Default)]
struct Arrivals(BTreeMap<u64, Instant>);

/// Arrivals remembered.
const ARRIVALS_KEPT: usize = 1 << 16;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &Counter, n: u64) {
        if n > 0 {
            counter.inc_by(n);
        }
    }

    /// Reads a counter.
    pub fn get(counter: &Counter) -> u64 {
        counter.get()
    }

    /// Counts dead letters of one reason.
    pub fn add_dead_letters(&self, reason: &DeadLetterReason, n: u64) {
        Self::add(&self.dead_letters[reason.index()], n);
        if matches!(
            reason,
            DeadLetterReason::Late | DeadLetterReason::LateAfterIdle
        ) {
            Self::add(&self.late_records, n);
        }
    }

    /// Dead letters counted so far, by reason (reasons with none are left out).
    pub fn dead_letters_by_reason(&self) -> Vec<(DeadLetterReason, u64)> {
        DeadLetterReason::ALL
            .iter()
            .map(|r| (r.clone(), self.dead_letters[r.index()].get()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Total dead letters of every reason.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.iter().map(Counter::get).sum()
    }

    /// Counts alert events of one rule and severity.
    pub fn add_alerts(&self, rule: &str, severity: &str, counts: AlertCounts) {
        let mut alerts = lock(&self.alerts);
        let entry = alerts
            .entry((rule.to_owned(), severity.to_owned()))
            .or_default();
        entry.firing += counts.firing;
        entry.resolved += counts.resolved;
        entry.escalated += counts.escalated;
        entry.chattering += counts.chattering;
    }

    /// Alert events so far, by rule name.
    pub fn alerts_by_rule(&self) -> BTreeMap<String, AlertCounts> {
        let mut by_rule: BTreeMap<String, AlertCounts> = BTreeMap::new();
        for ((rule, _), c) in lock(&self.alerts).iter() {
            let entry = by_rule.entry(rule.clone()).or_default();
            entry.firing += c.firing;
            entry.resolved += c.resolved;
            entry.escalated += c.escalated;
            entry.chattering += c.chattering;
        }
        by_rule
    }

    /// Records alert events for operations: the latest ones, and which
    /// alerts are firing.
    pub fn note_alerts(&self, events: impl IntoIterator<Item = AlertEvent>) {
        let mut feed = lock(&self.alert_feed);
        for event in events {
            let key = (
                event.rule.clone(),
                event.device.clone(),
                event.sensor.clone(),
            );
            match (event.state, feed.firing.get_mut(&key)) {
                ("resolved", _) => {
                    feed.firing.remove(&key);
                }
                // Firing since its firing event, now at another severity.
                ("escalated", Some(firing)) => firing.severity = event.severity.clone(),
                _ => {
                    feed.firing.insert(key, event.clone());
                }
            }
            if feed.recent.len() == RECENT_ALERTS {
                feed.recent.pop_front();
            }
            feed.recent.push_back(event);
        }
    }

    /// The latest alert events (oldest first), and the firing ones (each
    /// with the event that made it fire), by rule, device and sensor.
    pub fn alert_feed(&self) -> (Vec<AlertEvent>, Vec<AlertEvent>) {
        let feed = lock(&self.alert_feed);
        let mut firing: Vec<AlertEvent> = feed.firing.values().cloned().collect();
        firing
            .sort_by(|a, b| (&a.rule, &a.device, &a.sensor).cmp(&(&b.rule, &b.device, &b.sensor)));
        (feed.recent.iter().cloned().collect(), firing)
    }

    /// Records where the partitions of `topic` stand.
    pub fn set_partitions(
        &self,
        topic: &str,
        status: impl IntoIterator<Item = (i32, PartitionStatus)>,
    ) {
        let mut partitions = lock(&self.partitions);
        for (p, s) in status {
            partitions.insert((topic.to_owned(), p), s);
        }
    }

    /// Where every source partition stands, by (topic, partition).
    pub fn partitions(&self) -> BTreeMap<(String, i32), PartitionStatus> {
        lock(&self.partitions).clone()
    }

    /// Records a completed checkpoint, and how long it took.
    pub fn add_checkpoint(&self, frontier: u64, bytes: u64, took: std::time::Duration) {
        Self::add(&self.checkpoints, 1);
        self.last_checkpoint_frontier
            .set(i64::try_from(frontier).unwrap_or(i64::MAX));
        self.last_checkpoint_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        self.checkpoint_duration.observe(took.as_secs_f64());
    }

    /// Records a rule reload: applied (the new version, and the event time
    /// it applies from), or refused (`None`).
    pub fn note_reload(&self, applied: Option<(u64, u64)>) {
        match applied {
            Some((version, from)) => {
                Self::add(&self.rule_reloads, 1);
                self.rules_version
                    .set(i64::try_from(version).unwrap_or(i64::MAX));
                self.rules_from.set(i64::try_from(from).unwrap_or(i64::MAX));
            }
            None => Self::add(&self.rule_reloads_refused, 1),
        }
    }

    /// Records a completed output file.
    pub fn add_file(&self, path: PathBuf) {
        Self::add(&self.parquet_files, 1);
        lock(&self.files).push(path);
    }

    /// Output files completed so far.
    pub fn files(&self) -> Vec<PathBuf> {
        lock(&self.files).clone()
    }

    /// Notes that records up to event time `time` have arrived at a source
    /// now (the first arrival of each event time is kept).
    pub fn note_arrival(&self, time: u64) {
        let mut arrivals = lock(&self.arrivals);
        if arrivals.0.last_key_value().is_some_and(|(&t, _)| t >= time) {
            return;
        }
        arrivals.0.insert(time, Instant::now());
        if arrivals.0.len() > ARRIVALS_KEPT {
            arrivals.0.pop_first();
        }
    }

    /// When the first record at or after event time `time` arrived at a
    /// source, if it is still remembered.
    pub fn arrival(&self, time: u64) -> Option<Instant> {
        lock(&self.arrivals)
            .0
            .range(time..)
            .next()
            .map(|(_, &at)| at)
    }

    /// Observes in `histogram` the seconds since the arrival of each of
    /// `times` (event times), as far as arrivals are remembered.
    pub fn observe_since_arrival(
        &self,
        histogram: &Histogram,
        times: impl IntoIterator<Item = u64>,
    ) {
        let arrivals = lock(&self.arrivals);
        let now = Instant::now();
        for time in times {
            if let Some((_, &at)) = arrivals.0.range(time..).next() {
                histogram.observe(now.duration_since(at).as_secs_f64());
            }
        }
    }

    /// Adds timely's figures for the operator `name` at address `addr`.
    pub fn add_operator_figures(&self, name: &str, addr: &str, figures: OperatorFigures) {
        let mut operators = lock(&self.operators);
        let entry = operators
            .entry((name.to_owned(), addr.to_owned()))
            .or_default();
        entry.records_in += figures.records_in;
        entry.records_out += figures.records_out;
        entry.records_exchanged += figures.records_exchanged;
        entry.busy_seconds += figures.busy_seconds;
    }

    /// Timely's figures per operator, by (name, address), when collected.
    pub fn operator_figures(&self) -> BTreeMap<(String, String), OperatorFigures> {
        lock(&self.operators).clone()
    }

    /// Registers every metric of the run in `registry`, under the names
    /// Prometheus shows (with the registry's prefix, `weir_`).
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
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
        let histograms: [(&str, &str, &Histogram); 3] = [
            ("checkpoint_duration", "Time from a checkpoint's start to its manifest", &self.checkpoint_duration),
            ("alert_latency", "Time from a record's arrival at the source to its alert being acknowledged", &self.alert_latency),
            ("window_latency", "Time from a record's arrival at the source to the window row it ends being written", &self.window_latency),
        ];
        for (name, help, histogram) in histograms {
            registry.register_with_unit(name, help, Unit::Seconds, histogram.clone());
        }
        registry.register_collector(Box::new(StatusCollector(self.clone())));
    }
}

/// The metrics with labels, read from the run's status at each scrape.
#[derive(Debug)]
struct StatusCollector(Arc<Metrics>);

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
        let counter = MetricType::Counter;
        let gauge = MetricType::Gauge;
        family(
            &mut encoder,
            (
                "dead_letters",
                "Records sent to the dead letters, by reason",
                counter,
            ),
            DeadLetterReason::ALL.iter().map(|r| {
                let n = m.dead_letters[r.index()].get() as f64;
                (vec![("reason", r.to_string())], n)
            }),
        )?;
        let alerts = lock(&m.alerts).clone();
        family(
            &mut encoder,
            (
                "alerts",
                "Alert events made, by rule, severity and state",
                counter,
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
        )?;
        let mut firing: BTreeMap<(String, String), u32> = alerts
            .keys()
            .map(|(rule, severity)| ((rule.clone(), severity.clone()), 0))
            .collect();
        for event in lock(&m.alert_feed).firing.values() {
            *firing
                .entry((event.rule.to_string(), event.severity.to_string()))
                .or_default() += 1;
        }
        family(
            &mut encoder,
            (
                "alerts_firing",
                "Alerts firing now, by rule and severity",
                gauge,
            ),
            firing
                .into_iter()
                .map(|((rule, severity), n)| (vec![("rule", rule), ("severity", severity)], n)),
        )?;

        let partitions = m.partitions();
        let labels = |(topic, p): &(String, i32)| {
            vec![("topic", topic.clone()), ("partition", p.to_string())]
        };
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
                &mut encoder,
                (name, help, kind),
                partitions
                    .iter()
                    .filter_map(|(key, s)| field(s).map(|v| (labels(key), v))),
            )?;
        }

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
                &mut encoder,
                (name, help, counter),
                operators.iter().map(|(key, f)| (labels(key), field(f))),
            )?;
        }
        Ok(())
    }
}
