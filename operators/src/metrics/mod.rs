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

use crate::dead_letter::DeadLetterReason;

pub use alerts::{AlertCounts, AlertEvent};
pub use gauge_share::GaugeShare;
pub use operators::OperatorFigures;
pub use partitions::PartitionStatus;

use alerts::AlertFeed;
use arrivals::Arrivals;

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
}
