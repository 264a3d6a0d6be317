//! The metrics of a run: named Prometheus metrics that operators update
//! (counters once per batch, never per record), and the status that
//! operations show (partitions, alerts, operator figures). The runtime reads
//! them for its progress line and report; the operations server exposes
//! them with [`Metrics::register`].
//!
//! Wall-clock time appears here only in latency figures: operators still
//! decide everything on event time.

mod alerts;
mod arrivals;
mod collector;
mod delivery;
mod gauge_share;
mod operators;
mod partitions;
mod register;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::{Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Unit;

use crate::dead_letter::DeadLetterReason;

pub(crate) use alerts::RECENT_ALERTS;
pub use alerts::{AlertCounts, AlertEvent};
pub use delivery::ReceiverMetrics;
pub use gauge_share::GaugeShare;
pub use operators::OperatorFigures;
pub use partitions::PartitionStatus;

use alerts::AlertFeed;

/// What takes a snapshot of the alarm board.
#[derive(Clone)]
struct AlarmBoardSource(std::sync::Arc<dyn Fn() -> crate::record::AlarmBoard + Send + Sync>);

impl std::fmt::Debug for AlarmBoardSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlarmBoardSource")
    }
}
use arrivals::Arrivals;
use register::Maker;

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
    /// Control events (acknowledge, shelve, ...) decoded and accepted.
    pub control_events: Counter,
    /// Readings behind their partition's watermark (a part of the dead
    /// letters, with reasons `late` and `late_after_idle`).
    pub late_records: Counter,
    /// Dead letters, by [`DeadLetterReason::index`].
    pub dead_letters: [Counter; DeadLetterReason::ALL.len()],
    /// Delivery of alert events to Alertmanager.
    pub alertmanager: ReceiverMetrics,
    /// Delivery of alert events to a webhook.
    pub webhook: ReceiverMetrics,
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
    /// Late readings a window output took to correct its windows (within
    /// its allowed lateness) instead of a dead letter.
    pub late_readings_taken: Counter,
    /// Correction rows of windows emitted (revision 1 and up).
    pub window_corrections: Counter,
    /// Parquet rows written and committed.
    pub parquet_rows: Counter,
    /// Bytes of Parquet files written.
    pub parquet_bytes: Counter,
    /// Parquet files written.
    pub parquet_files: Counter,
    /// Alert events (firing and resolved) delivered to the sink.
    pub alerts_delivered: Counter,
    /// Alarm health events delivered to their sink.
    pub health_delivered: Counter,
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
    /// 1 when the run takes checkpoints, 0 when not: what alerting on
    /// checkpoints that stop completing needs to know.
    pub checkpoints_enabled: IntGauge,
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
    alarm_board: Mutex<Option<AlarmBoardSource>>,
    health: Mutex<alerts::HealthStatus>,
    arrivals: Mutex<Arrivals>,
    operators: Mutex<BTreeMap<(String, String), OperatorFigures>>,
    /// How each metric is registered for the exposition (see [`Maker`]).
    registrations: register::Registrations,
}

impl Default for Metrics {
    fn default() -> Self {
        // 1 ms to about 4.6 hours: Parquet rows wait for their hour to end.
        let latency = || exponential_buckets(0.001, 2.0, 25);
        // Each metric is registered where it is made: its name and help
        // text are the exposition's.
        let mut m = Maker::default();
        Metrics {
            records_read: m.counter("records_read", "Records read by the sources"),
            records_expected: Counter::default(),
            readings: m.counter("readings", "Readings decoded and accepted"),
            control_events: m.counter("control_events", "Control events (acknowledge, shelve, unshelve, out of service) decoded and accepted"),
            late_records: m.counter("late_records", "Readings behind their partition's watermark (sent to the dead letters)"),
            dead_letters: Default::default(),
            alertmanager: ReceiverMetrics::alertmanager(&mut m),
            webhook: ReceiverMetrics::webhook(&mut m),
            windows: m.counter("windows_emitted", "Window aggregates emitted"),
            windows_open: m.gauge("windows_open", "Windows open now", None),
            window_state_bytes: m.gauge("window_state", "Estimated memory held by open windows", Some(Unit::Bytes)),
            rule_states: m.gauge("rule_states", "(device, sensor, rule) states held by the alert evaluators", None),
            rule_state_bytes: m.gauge("rule_state", "Estimated memory held by the alert evaluators", Some(Unit::Bytes)),
            windows_left_open: m.counter("windows_left_open", "Windows still open at a stop (not written)"),
            late_readings_taken: m.counter("late_readings_taken", "Late readings taken to correct windows within their allowed lateness"),
            window_corrections: m.counter("window_corrections", "Correction rows of windows emitted (revision 1 and up)"),
            parquet_rows: m.counter("parquet_rows", "Rows written to committed Parquet files"),
            parquet_bytes: m.counter("parquet_written_bytes", "Bytes of Parquet files written"),
            parquet_files: m.counter("parquet_files", "Parquet files written"),
            alerts_delivered: m.counter("alerts_delivered", "Alert events delivered to the alert sink"),
            health_delivered: m.counter("alarm_health_delivered", "Alarm health events delivered to their sink"),
            dead_letters_delivered: m.counter("dead_letters_delivered", "Dead letters delivered to the dead-letter sink"),
            delivery_errors: m.counter("sink_delivery_errors", "Records a sink could not deliver"),
            producer_queue: m.gauge("producer_queue_records", "Records handed to Kafka producers and not yet acknowledged", None),
            alerts_suppressed: m.counter("alerts_suppressed", "Firing events suppressed by a cooldown"),
            checkpoints: m.counter("checkpoints", "Checkpoints completed"),
            checkpoints_enabled: m.gauge("checkpoints_enabled", "1 when the run takes checkpoints ([checkpoint]), 0 when not", None),
            last_checkpoint_frontier: m.gauge("checkpoint_frontier", "Event-time frontier of the last completed checkpoint (ms since the epoch)", None),
            last_checkpoint_bytes: m.gauge("checkpoint_size", "Size of the last completed checkpoint", Some(Unit::Bytes)),
            checkpoint_duration: m.histogram("checkpoint_duration", "Time from a checkpoint's start to its manifest", exponential_buckets(0.001, 2.0, 16)),
            alert_latency: m.histogram("alert_latency", "Time from a record's arrival at the source to its alert being acknowledged", latency()),
            window_latency: m.histogram("window_latency", "Time from a record's arrival at the source to the window row it ends being written", latency()),
            rule_reloads: m.counter("rule_reloads", "Rule reloads applied"),
            rule_reloads_refused: m.counter("rule_reloads_refused", "Rule reloads refused; the rules in force stay"),
            rules_version: m.gauge("rules_version", "Version of the rule set in force", None),
            rules_from: m.gauge("rules_from", "Event time from which the rule set in force applies (ms since the epoch)", None),
            sources_wired: m.counter("sources_wired", "Sources wired (one per worker and source)"),
            sources_open: m.counter("sources_open", "Sources that opened their partitions"),
            partitions_held: m.counter("partitions_held", "Times a source partition was held back by watermark alignment"),
            alerts: Mutex::default(),
            files: Mutex::default(),
            partitions: Mutex::default(),
            alert_feed: Mutex::default(),
            alarm_board: Mutex::default(),
            health: Mutex::default(),
            arrivals: Mutex::default(),
            operators: Mutex::default(),
            registrations: m.registrations,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// Counts dead letters of one reason.
    pub fn add_dead_letters(&self, reason: &DeadLetterReason, n: u64) {
        self.dead_letters[reason.index()].inc_by(n);
        if matches!(
            reason,
            DeadLetterReason::Late | DeadLetterReason::LateAfterIdle
        ) {
            self.late_records.inc_by(n);
        }
    }

    /// Dead letters counted so far, by reason (reasons with none are left out).
    pub fn dead_letters_by_reason(&self) -> Vec<(DeadLetterReason, u64)> {
        DeadLetterReason::ALL
            .iter()
            .map(|r| (*r, self.dead_letters[r.index()].get()))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Total dead letters of every reason.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.iter().map(Counter::get).sum()
    }

    /// Records a completed checkpoint, and how long it took.
    pub fn add_checkpoint(&self, frontier: u64, bytes: u64, took: std::time::Duration) {
        self.checkpoints.inc_by(1);
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
                self.rule_reloads.inc();
                self.rules_version
                    .set(i64::try_from(version).unwrap_or(i64::MAX));
                self.rules_from.set(i64::try_from(from).unwrap_or(i64::MAX));
            }
            None => {
                self.rule_reloads_refused.inc();
            }
        }
    }

    /// Records a completed output file.
    pub fn add_file(&self, path: PathBuf) {
        self.parquet_files.inc_by(1);
        lock(&self.files).push(path);
    }

    /// Output files completed so far.
    pub fn files(&self) -> Vec<PathBuf> {
        lock(&self.files).clone()
    }
}
