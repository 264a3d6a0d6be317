//! Counters shared by every operator of a run, read by the runtime for its
//! progress line and final report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::dead_letter::DeadLetterReason;

/// Counters for one run, shared by all workers of a process (`Arc<Metrics>`).
///
/// Counters are bumped once per batch, not per record, so they cost nothing
/// on the hot path.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records read from Kafka (good and bad).
    pub records_read: AtomicU64,
    /// Records the sources will read in all, where it is known in advance
    /// (bounded runs, replays): progress can show a rate and an ETA.
    pub records_expected: AtomicU64,
    /// Readings decoded and accepted.
    pub readings: AtomicU64,
    /// Dead letters, by [`DeadLetterReason::index`].
    pub dead_letters: [AtomicU64; DeadLetterReason::ALL.len()],
    /// Window aggregates emitted.
    pub windows: AtomicU64,
    /// Parquet rows written and committed.
    pub parquet_rows: AtomicU64,
    /// Alert events (firing and resolved) delivered to the sink.
    pub alerts_delivered: AtomicU64,
    /// Dead letters delivered to the dead-letter sink.
    pub dead_letters_delivered: AtomicU64,
    /// Firing events suppressed by a rule's cooldown.
    pub alerts_suppressed: AtomicU64,
    /// Checkpoints completed.
    pub checkpoints: AtomicU64,
    /// Frontier of the last completed checkpoint (0: none yet).
    pub last_checkpoint_frontier: AtomicU64,
    /// Bytes of the last completed checkpoint.
    pub last_checkpoint_bytes: AtomicU64,
    /// Windows still open when a stop was requested: not written, since they
    /// are not complete (with checkpoints, they are rebuilt after a restart).
    pub windows_left_open: AtomicU64,
    /// Sources wired (one per worker and source).
    pub sources_wired: AtomicU64,
    /// Sources that have opened their partitions.
    pub sources_open: AtomicU64,
    /// Set to ask the sources to stop reading, so the dataflow drains:
    /// windows close, sinks flush, and the run ends.
    stop: AtomicBool,
    alerts: Mutex<BTreeMap<String, AlertCounts>>,
    files: Mutex<Vec<PathBuf>>,
    errors: Mutex<Vec<String>>,
    partitions: Mutex<BTreeMap<(String, i32), PartitionStatus>>,
    alert_feed: Mutex<AlertFeed>,
}

/// One alert event, as operations show it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEvent {
    /// Rule name.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Device.
    pub device: String,
    /// Sensor.
    pub sensor: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// Event time (ms).
    pub event_time: u64,
    /// The value that caused it.
    pub value: f64,
}

/// The latest alert events, and the alerts firing now.
#[derive(Debug, Default)]
struct AlertFeed {
    recent: std::collections::VecDeque<AlertEvent>,
    /// Firing since (event time), by (rule, device, sensor).
    firing: BTreeMap<(String, String, String), AlertEvent>,
}

/// Alert events kept for the status page.
const RECENT_ALERTS: usize = 50;

/// Where one source partition stands, for operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionStatus {
    /// Records read from it by this run.
    pub records: u64,
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
}

/// Firing and resolved events of one rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// `firing` events.
    pub firing: u64,
    /// `resolved` events.
    pub resolved: u64,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts dead letters of one reason.
    pub fn add_dead_letters(&self, reason: &DeadLetterReason, n: u64) {
        Self::add(&self.dead_letters[reason.index()], n);
    }

    /// Dead letters counted so far, by reason (reasons with none are left out).
    pub fn dead_letters_by_reason(&self) -> Vec<(DeadLetterReason, u64)> {
        DeadLetterReason::ALL
            .iter()
            .map(|r| (r.clone(), Self::get(&self.dead_letters[r.index()])))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Total dead letters of every reason.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.iter().map(Self::get).sum()
    }

    /// Counts alert events of one rule.
    pub fn add_alerts(&self, rule: &str, counts: AlertCounts) {
        let mut alerts = self.alerts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = alerts.entry(rule.to_owned()).or_default();
        entry.firing += counts.firing;
        entry.resolved += counts.resolved;
    }

    /// Alert events so far, by rule name.
    pub fn alerts_by_rule(&self) -> BTreeMap<String, AlertCounts> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records alert events for operations: the latest ones, and which
    /// alerts are firing.
    pub fn note_alerts(&self, events: impl IntoIterator<Item = AlertEvent>) {
        let mut feed = self.alert_feed.lock().unwrap_or_else(|e| e.into_inner());
        for event in events {
            let key = (
                event.rule.clone(),
                event.device.clone(),
                event.sensor.clone(),
            );
            if event.state == "firing" {
                feed.firing.insert(key, event.clone());
            } else {
                feed.firing.remove(&key);
            }
            if feed.recent.len() == RECENT_ALERTS {
                feed.recent.pop_front();
            }
            feed.recent.push_back(event);
        }
    }

    /// The latest alert events (oldest first), and the firing ones (each
    /// with the event that made it fire).
    pub fn alert_feed(&self) -> (Vec<AlertEvent>, Vec<AlertEvent>) {
        let feed = self.alert_feed.lock().unwrap_or_else(|e| e.into_inner());
        (
            feed.recent.iter().cloned().collect(),
            feed.firing.values().cloned().collect(),
        )
    }

    /// Records where the partitions of `topic` stand.
    pub fn set_partitions(
        &self,
        topic: &str,
        status: impl IntoIterator<Item = (i32, PartitionStatus)>,
    ) {
        let mut partitions = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        for (p, s) in status {
            partitions.insert((topic.to_owned(), p), s);
        }
    }

    /// Where every source partition stands, by (topic, partition).
    pub fn partitions(&self) -> BTreeMap<(String, i32), PartitionStatus> {
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks every source of the run to stop; the dataflow then drains.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records a completed checkpoint.
    pub fn add_checkpoint(&self, frontier: u64, bytes: u64) {
        Self::add(&self.checkpoints, 1);
        self.last_checkpoint_frontier
            .store(frontier, Ordering::Relaxed);
        self.last_checkpoint_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Records a completed output file.
    pub fn add_file(&self, path: PathBuf) {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path);
    }

    /// Output files completed so far.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a failure of the pipeline itself (a sink that could not
    /// deliver, a file that could not be written) and asks the sources to
    /// stop: the run drains and ends with an error.
    pub fn add_error(&self, error: String) {
        tracing::error!(%error, "Pipeline error");
        self.request_stop();
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(error);
    }

    /// Failures recorded so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
