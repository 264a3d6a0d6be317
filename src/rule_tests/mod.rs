//! `weir test rules`: unit tests for alert rules files, in the spirit of
//! Prometheus' `promtool test rules`.
//!
//! A test file names the rules under test and holds tests. Each test gives
//! input series (per device and sensor, one value per interval, in a compact
//! notation) and the alert events it expects. Running a test turns the
//! series into JSON readings, feeds them in arrival order through the real
//! operators (an in-memory source with the Kafka source's decoding,
//! lateness and watermark logic, then [`weir_operators::alert::alerts`], the
//! wiring of window and reading rules a pipeline file uses) in a bounded
//! run, and compares the alert events with the expected ones.
//!
//! ```toml
//! rules = "plant-rules.toml"          # the rules under test, relative to this file
//! # or: pipeline = "demo.toml"        # the rules of a pipeline file (inline or its rules file)
//!
//! [[test]]
//! name = "overheat fires after 30 s above 90"   # required, unique in the file
//! interval = "10s"                    # time between two values of a series; default 1s
//! start = "2026-01-01T00:00:00Z"      # event time of the first value; default the epoch
//! out_of_orderness = "5s"             # as in [source]; default the pipeline's, or 5s
//! late = 0                            # optional: the readings that must be dead letters as late
//! tolerance = 1e-6                    # optional: how far an alert's value may be from `value`
//!
//! [[test.series]]
//! device = "press-1"
//! sensor = "temperature"
//! values = "80 85 91 92 95 _ 96 88 84"
//!
//! [[test.alert]]
//! at = "50s"                          # offset from `start`, or an RFC 3339 time
//! rule = "press-overheat"
//! device = "press-1"
//! sensor = "temperature"
//! state = "firing"                    # firing | resolved (any state an alert has)
//! value = 95.0                        # optional
//! labels = { site = "north" }         # optional: all the alert's labels
//! ```
//!
//! The values of a series are tokens separated by white space, one per
//! interval (see [`expand_values`]): `7.5` a value, `_` no reading, `_x3`
//! three intervals without a reading, `95x3` three readings of 95,
//! `70+1x3` the four readings 70 71 72 73 (as promtool: a start and three
//! steps), `10-0.5x2` 10 9.5 9, and `72@-15s` a reading of 72 that arrives
//! in this interval with an event time 15 s earlier (a late or out-of-order
//! arrival).
//!
//! Readings arrive in the order of their intervals, and within one interval
//! in the order of the series in the file. All series share one partition,
//! and so one watermark, as the readings of many devices share a Kafka
//! partition: a reading whose event time is more than `out_of_orderness`
//! behind the largest event time that arrived before it is late, goes to
//! the dead letters, and reaches no rule.
//!
//! The expected alerts of a test are all of its alerts: an alert event that
//! is not expected fails the test as much as an expected one that is not
//! produced. Events are compared as (event time, rule, device, sensor,
//! state), and by value when the expectation gives one.

use std::path::PathBuf;
use std::sync::Arc;

use weir_operators::alert::AlertState;
use weir_operators::decode::DecodeConfig;
use weir_operators::RuleSet;

mod file;
mod notation;
mod report;
mod run;

pub use file::{load, parse};
pub use notation::{expand_values, Slot};
pub use report::{cli, offset, run_files, Summary};
pub use run::diff;

/// Interval between two values of a series when a test gives none: 1 s.
const DEFAULT_INTERVAL_MS: u64 = 1_000;
/// Out-of-orderness when neither the test nor the pipeline gives one (as in `[source]`).
const DEFAULT_OUT_OF_ORDERNESS_MS: u64 = 5_000;
/// How far an alert's value may be from an expected `value` by default.
pub const DEFAULT_TOLERANCE: f64 = 1e-6;

/// A loaded test file: the rules under test and the tests.
#[derive(Clone, Debug)]
pub struct TestFile {
    /// The test file.
    pub path: PathBuf,
    /// The file the rules come from: a rules file, or a pipeline file.
    pub rules_path: PathBuf,
    /// The rules under test.
    pub rules: Arc<RuleSet>,
    /// How readings are written, so that the pipeline's decoder reads them
    /// (its `[decode]` table, or the defaults).
    pub decode: DecodeConfig,
    /// The tests, in file order.
    pub tests: Vec<RuleTest>,
}

/// One `[[test]]`: input readings and the alert events they must produce.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleTest {
    /// The test's name.
    pub name: String,
    /// Event time of the first interval, ms since the epoch.
    pub start_ms: u64,
    /// The source's out-of-orderness bound, in ms.
    pub out_of_orderness_ms: u64,
    /// The readings, in arrival order.
    pub readings: Vec<TestReading>,
    /// The expected alert events, by time.
    pub expected: Vec<Event>,
    /// How many readings must be late (dead letters), if the test says.
    pub late: Option<u64>,
    /// How far an alert's value may be from an expected value.
    pub tolerance: f64,
}

/// One reading of a test's input.
#[derive(Clone, Debug, PartialEq)]
pub struct TestReading {
    /// Device id.
    pub device: String,
    /// Sensor name.
    pub sensor: String,
    /// Event time, ms since the epoch.
    pub time: u64,
    /// When it arrives: the start of its interval, ms since the epoch.
    pub arrival: u64,
    /// The value.
    pub value: f64,
}

/// An alert event as a test compares them.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Event time, ms since the epoch.
    pub time: u64,
    /// Rule name.
    pub rule: String,
    /// Device id.
    pub device: String,
    /// Sensor name.
    pub sensor: String,
    /// Firing or resolved.
    pub state: AlertState,
    /// The alert's value; `None` in an expectation that does not check it.
    pub value: Option<f64>,
    /// The alert's labels (see [`weir_operators::alert::Alert::labels`]),
    /// sorted by name; `None` in an expectation that does not check them.
    pub labels: Option<Vec<(String, String)>>,
}

impl Event {
    /// What events are ordered by: time, rule, device, sensor, state.
    fn key(&self) -> (u64, &str, &str, &str, AlertState) {
        (
            self.time,
            &self.rule,
            &self.device,
            &self.sensor,
            self.state,
        )
    }
}

/// How an event shows in a test's diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// Expected and produced.
    Same,
    /// Expected, not produced (`-`).
    Missing,
    /// Produced, not expected (`+`).
    Unexpected,
}

/// What one test did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Every expected and produced event, in time order, marked.
    pub events: Vec<(Mark, Event)>,
    /// The readings that were late (dead letters).
    pub late: Vec<TestReading>,
    /// How many late readings the test expects, if it says.
    pub expected_late: Option<u64>,
    /// Dead letters for any other reason than lateness (none, unless a
    /// pipeline's decoding cannot read the readings written for it).
    pub other_dead: Vec<String>,
}

impl Outcome {
    /// Whether the test passed: every expected event and no other, and the
    /// expected number of late readings.
    pub fn passed(&self) -> bool {
        self.events.iter().all(|(m, _)| *m == Mark::Same)
            && self
                .expected_late
                .is_none_or(|n| n == self.late.len() as u64)
            && self.other_dead.is_empty()
    }
}

/// A test file's `[[test]]` failed: `weir test rules` exits with 1.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} rule tests failed")]
pub struct TestsFailed {
    /// Tests that failed.
    pub failed: usize,
    /// Tests run.
    pub total: usize,
}
