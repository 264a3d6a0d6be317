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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::de::value::StrDeserializer;
use serde::Deserialize;
use timely::dataflow::operators::Inspect;
use toml::de::{DeTable, DeValue};
use toml::Spanned;
use weir_operators::alert::AlertState;
use weir_operators::decode::{DecodeConfig, TimeFormat};
use weir_operators::memory::{MemorySource, MemoryTopic};
use weir_operators::{DeadLetterReason, Decoder, RuleSet};

use crate::config::{
    check_entry, check_fields, deserialize, element_path, parse_duration_ms, ConfigError, Diag,
};
use crate::runtime::{run, RunOptions};

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

/// One slot of a series: what arrives in one interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slot {
    /// No reading.
    Gap,
    /// A reading of `value`, whose event time is the interval's start plus
    /// `shift_ms` (negative: it arrives late).
    Value {
        /// The value.
        value: f64,
        /// Event time minus arrival time, in ms.
        shift_ms: i64,
    },
}

/// Expands the compact notation of a series' values into one [`Slot`] per
/// interval. Tokens are separated by white space:
///
/// | token | slots |
/// |---|---|
/// | `7.5` | one reading of 7.5 |
/// | `_` | no reading |
/// | `_xN` | N intervals without a reading |
/// | `AxN` | N readings of A |
/// | `A+BxN` | N + 1 readings: A, A+B, ..., A+N·B (as promtool) |
/// | `A-BxN` | N + 1 readings: A, A−B, ..., A−N·B |
/// | `A@-D` | one reading of A, arriving in this interval, whose event time is the duration D earlier (`A@+D`: later) |
///
/// An error gives the byte offset of the bad token in `text`.
///
/// ```
/// use weir::rule_tests::{expand_values, Slot};
/// let v = |value| Slot::Value { value, shift_ms: 0 };
/// assert_eq!(
///     expand_values("1 _ 2x2 -2+4x3 72@-15s").unwrap(),
///     vec![v(1.0), Slot::Gap, v(2.0), v(2.0), v(-2.0), v(2.0), v(6.0), v(10.0),
///          Slot::Value { value: 72.0, shift_ms: -15_000 }],
/// );
/// assert_eq!(expand_values("1 2 x").unwrap_err().0, 4);
/// ```
pub fn expand_values(text: &str) -> Result<Vec<Slot>, (usize, String)> {
    let mut slots = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        let token_len = rest[start..]
            .find(char::is_whitespace)
            .unwrap_or(rest.len() - start);
        let token = &rest[start..start + token_len];
        let offset = text.len() - rest.len() + start;
        expand_token(token, &mut slots).map_err(|e| (offset, e))?;
        rest = &rest[start + token_len..];
    }
    Ok(slots)
}

/// Appends the slots of one token.
fn expand_token(token: &str, slots: &mut Vec<Slot>) -> Result<(), String> {
    let hint = "write a number, `_` (no reading), `AxN`, `A+BxN`, `A-BxN`, `_xN` or `A@-D` (a late reading)";
    if let Some((value, shift)) = token.split_once('@') {
        let value = number(value, token)?;
        let (sign, duration) = match shift.as_bytes().first() {
            Some(b'-') => (-1, &shift[1..]),
            Some(b'+') => (1, &shift[1..]),
            _ => {
                return Err(format!(
                    "invalid token {token:?}: after `@` write how much earlier (`-15s`) or later (`+2s`) the event time is than the interval"
                ))
            }
        };
        let ms = parse_duration_ms(duration).map_err(|e| format!("in {token:?}: {e}"))?;
        let ms = i64::try_from(ms).map_err(|_| format!("in {token:?}: duration too long"))?;
        slots.push(Slot::Value {
            value,
            shift_ms: sign * ms,
        });
        return Ok(());
    }
    let Some((head, times)) = token.rsplit_once('x') else {
        if token == "_" {
            slots.push(Slot::Gap);
        } else {
            slots.push(Slot::Value {
                value: number(token, token)?,
                shift_ms: 0,
            });
        }
        return Ok(());
    };
    let n: usize = times.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
        format!("invalid token {token:?}: after `x` write how many times, 1 or more ({hint})")
    })?;
    if n > 1_000_000 {
        return Err(format!(
            "invalid token {token:?}: at most 1000000 repetitions"
        ));
    }
    if head == "_" {
        slots.extend(std::iter::repeat_n(Slot::Gap, n));
        return Ok(());
    }
    // A step is a `+` or `-` after the first character that does not
    // belong to an exponent (`1e-3`).
    let step_at = head
        .char_indices()
        .skip(1)
        .find(|&(i, c)| (c == '+' || c == '-') && !matches!(head.as_bytes()[i - 1], b'e' | b'E'))
        .map(|(i, _)| i);
    match step_at {
        None => {
            let value = number(head, token)?;
            slots.extend(std::iter::repeat_n(Slot::Value { value, shift_ms: 0 }, n));
        }
        Some(i) => {
            let start = number(&head[..i], token)?;
            let step = number(&head[i + 1..], token)?;
            let step = if head.as_bytes()[i] == b'-' {
                -step
            } else {
                step
            };
            for k in 0..=n {
                let value = start + k as f64 * step;
                if !value.is_finite() {
                    return Err(format!(
                        "invalid token {token:?}: reaches a value that is not finite"
                    ));
                }
                slots.push(Slot::Value { value, shift_ms: 0 });
            }
        }
    }
    Ok(())
}

/// A finite number, part of `token`.
fn number(text: &str, token: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "invalid token {token:?}: a reading's value must be a finite number"
        )),
        Err(_) => Err(format!(
            "invalid token {token:?}: write a number, `_` (no reading), `AxN`, `A+BxN`, `A-BxN`, `_xN` or `A@-D` (a late reading)"
        )),
    }
}

// ---------------------------------------------------------------------------
// The file, as written.
// ---------------------------------------------------------------------------

/// A test file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    /// The rules file under test, relative to the test file.
    rules: Option<Spanned<String>>,
    /// Or a pipeline file whose rules are under test.
    pipeline: Option<Spanned<String>>,
    /// The tests.
    test: Option<Vec<Spanned<RawTest>>>,
}

/// One `[[test]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    /// The test's name (required, unique).
    name: Option<Spanned<String>>,
    /// Time between two values of a series; default `1s`.
    interval: Option<Spanned<String>>,
    /// Event time of the first value: an RFC 3339 time; default the epoch.
    start: Option<Spanned<toml::Value>>,
    /// The source's out-of-orderness bound; default the pipeline's, or `5s`.
    out_of_orderness: Option<Spanned<String>>,
    /// How many readings must be late.
    late: Option<Spanned<i64>>,
    /// How far an alert's value may be from an expected value.
    tolerance: Option<Spanned<f64>>,
    /// `[[test.series]]`: the input.
    series: Option<Vec<Spanned<RawSeries>>>,
    /// `[[test.alert]]`: the expected alert events.
    alert: Option<Vec<Spanned<RawAlert>>>,
}

/// One `[[test.series]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    /// Device id (required).
    device: Option<Spanned<String>>,
    /// Sensor name (required).
    sensor: Option<Spanned<String>>,
    /// The values, in the compact notation (required).
    values: Option<Spanned<String>>,
}

/// One `[[test.alert]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    /// When: a duration after `start`, or an RFC 3339 time (required).
    at: Option<Spanned<toml::Value>>,
    /// Rule name (required).
    rule: Option<Spanned<String>>,
    /// Device id (required).
    device: Option<Spanned<String>>,
    /// Sensor name (required).
    sensor: Option<Spanned<String>>,
    /// `firing` or `resolved` (required).
    state: Option<Spanned<String>>,
    /// The alert's value.
    value: Option<Spanned<f64>>,
    /// The alert's labels, all of them: `{ site = "north" }`.
    labels: Option<BTreeMap<String, String>>,
}

/// Checks a test file part by part: each field of each test, series and alert.
fn test_file_parts(doc: &Spanned<DeTable<'_>>, out: &mut Vec<toml::de::Error>) {
    for (key, value) in doc.get_ref().iter() {
        if !(key.get_ref() == "test" && check_tests(value, out)) {
            check_entry::<RawTestFile>(key, value, doc.span(), out);
        }
    }
}

/// Checks each field of each `[[test]]` and of its series and alerts;
/// false if `value` is not an array of tables.
fn check_tests(value: &Spanned<DeValue<'_>>, out: &mut Vec<toml::de::Error>) -> bool {
    let Some(tests) = tables(value) else {
        return false;
    };
    for test in tests {
        let DeValue::Table(table) = test.get_ref() else {
            continue;
        };
        for (key, field) in table.iter() {
            let nested = match key.get_ref().as_ref() {
                "series" => tables(field).map(|s| {
                    s.iter().for_each(|t| {
                        check_fields::<RawSeries>(t, out);
                    })
                }),
                "alert" => tables(field).map(|a| {
                    a.iter().for_each(|t| {
                        check_fields::<RawAlert>(t, out);
                    })
                }),
                _ => None,
            };
            if nested.is_none() {
                check_entry::<RawTest>(key, field, test.span(), out);
            }
        }
    }
    true
}

/// The items of an array of tables.
fn tables<'a, 'd>(value: &'a Spanned<DeValue<'d>>) -> Option<&'a [Spanned<DeValue<'d>>]> {
    match value.get_ref() {
        DeValue::Array(items) if items.iter().all(|i| i.get_ref().is_table()) => Some(items),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Loading and validation.
// ---------------------------------------------------------------------------

/// Reads and validates a test file, and the rules it names.
pub fn load(path: &Path) -> Result<TestFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut d = Diag::new(path, "");
        d.other.push(format!("cannot read {}: {e}", path.display()));
        d.finish::<()>(None).unwrap_err()
    })?;
    parse(&text, path)
}

/// Validates the text of a test file. `path` names the file in messages, and
/// the rules or pipeline file it names resolves against its directory.
pub fn parse(text: &str, path: &Path) -> Result<TestFile, ConfigError> {
    let mut d = Diag::new(path, text);
    let file = deserialize::<RawTestFile>(&mut d, test_file_parts).and_then(|raw| {
        let base = path.parent().unwrap_or(Path::new(""));
        let source = rules_source(&raw, base, &mut d);
        let tests = validate_tests(raw.test.as_deref().unwrap_or_default(), &source, &mut d);
        let (rules_path, rules, decode, _) = source?;
        Some(TestFile {
            path: path.to_path_buf(),
            rules_path,
            rules: Arc::new(rules),
            decode,
            tests,
        })
    });
    d.finish(file)
}

/// The rules under test, where they come from, the pipeline's decoding and
/// its out-of-orderness (if a pipeline file is named); `None` if they could
/// not be loaded (the problems are recorded).
type RulesSource = Option<(PathBuf, RuleSet, DecodeConfig, Option<u64>)>;

fn rules_source(raw: &RawTestFile, base: &Path, d: &mut Diag<'_>) -> RulesSource {
    let (file, is_pipeline) = match (&raw.rules, &raw.pipeline) {
        (Some(r), None) => (r, false),
        (None, Some(p)) => (p, true),
        (Some(_), Some(p)) => {
            d.err(
                p.span(),
                "pipeline",
                "give either `rules` (a rules file) or `pipeline` (a pipeline file), not both",
            );
            return None;
        }
        (None, None) => {
            d.at(
                0,
                "rules",
                "required field is missing: give `rules = \"rules.toml\"` (the rules under test, relative to this file) or `pipeline = \"pipeline.toml\"`",
            );
            return None;
        }
    };
    let field = if is_pipeline { "pipeline" } else { "rules" };
    if file.get_ref().trim().is_empty() {
        d.err(file.span(), field, "must not be empty");
        return None;
    }
    let path = base.join(file.get_ref());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            d.err(
                file.span(),
                field,
                format!("cannot read {}: {e}", path.display()),
            );
            return None;
        }
    };
    if is_pipeline {
        match crate::config::parse_pipeline(&text, &path) {
            Ok(spec) => Some((
                path,
                spec.rules,
                spec.decode,
                Some(spec.source.out_of_orderness_ms),
            )),
            Err(e) => {
                d.other.extend(e.problems());
                None
            }
        }
    } else {
        match crate::config::parse_rules(&text, &path) {
            Ok(rules) => Some((path, rules, DecodeConfig::default(), None)),
            Err(e) => {
                d.other.extend(e.problems());
                None
            }
        }
    }
}

/// Validates every `[[test]]`; test names must be unique.
fn validate_tests(
    raw: &[Spanned<RawTest>],
    source: &RulesSource,
    d: &mut Diag<'_>,
) -> Vec<RuleTest> {
    if raw.is_empty() {
        d.at(
            0,
            "test",
            "no tests: add a [[test]] table with [[test.series]] and [[test.alert]] tables",
        );
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut tests = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let name = t.get_ref().name.as_ref();
        let label = element_path("test", i, name.map(|n| n.get_ref().as_str()));
        if let Some(name) = name.filter(|n| !n.get_ref().trim().is_empty()) {
            if let Some(first) = names.get(name.get_ref()) {
                let first = d.position(*first);
                d.err(
                    name.span(),
                    &format!("{label}.name"),
                    format!(
                        "duplicate test name {:?}: the test at {first} has it too",
                        name.get_ref()
                    ),
                );
            } else {
                names.insert(name.get_ref().clone(), name.span().start);
            }
        }
        tests.push(validate_test(t, &label, source, d));
    }
    tests
}

/// One `[[test]]`; `label` names it in messages (`test[0] "overheat"`).
fn validate_test(
    raw: &Spanned<RawTest>,
    label: &str,
    source: &RulesSource,
    d: &mut Diag<'_>,
) -> RuleTest {
    let t = raw.get_ref();
    let at = raw.span().start;
    let field = |name: &str| format!("{label}.{name}");
    let name = match &t.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            d.err(n.span(), &field("name"), "must not be empty");
            String::new()
        }
        Some(n) => n.get_ref().clone(),
        None => {
            d.at(at, &field("name"), "required field is missing");
            String::new()
        }
    };
    let interval_ms = match &t.interval {
        Some(i) => match parse_duration_ms(i.get_ref()) {
            Ok(0) => {
                d.err(i.span(), &field("interval"), "must be longer than 0");
                DEFAULT_INTERVAL_MS
            }
            Ok(ms) => ms,
            Err(e) => {
                d.err(i.span(), &field("interval"), e);
                DEFAULT_INTERVAL_MS
            }
        },
        None => DEFAULT_INTERVAL_MS,
    };
    let start_ms = match &t.start {
        Some(s) => match time_value(s.get_ref()) {
            Ok(ms) => ms,
            Err(e) => {
                d.err(s.span(), &field("start"), e);
                0
            }
        },
        None => 0,
    };
    let out_of_orderness_ms = match &t.out_of_orderness {
        Some(o) => parse_duration_ms(o.get_ref()).unwrap_or_else(|e| {
            d.err(o.span(), &field("out_of_orderness"), e);
            0
        }),
        None => source
            .as_ref()
            .and_then(|s| s.3)
            .unwrap_or(DEFAULT_OUT_OF_ORDERNESS_MS),
    };
    let late = t
        .late
        .as_ref()
        .and_then(|l| match u64::try_from(*l.get_ref()) {
            Ok(n) => Some(n),
            Err(_) => {
                d.err(
                    l.span(),
                    &field("late"),
                    format!("must be at least 0, found {}", l.get_ref()),
                );
                None
            }
        });
    let tolerance = match &t.tolerance {
        Some(tol) if tol.get_ref().is_finite() && *tol.get_ref() >= 0.0 => *tol.get_ref(),
        Some(tol) => {
            d.err(
                tol.span(),
                &field("tolerance"),
                format!(
                    "must be a finite number, 0 or more, found {}",
                    tol.get_ref()
                ),
            );
            DEFAULT_TOLERANCE
        }
        None => DEFAULT_TOLERANCE,
    };

    // The series, then the readings in arrival order.
    let raw_series = t.series.as_deref().unwrap_or_default();
    if raw_series.is_empty() {
        d.at(
            at,
            &field("series"),
            "no input: add [[test.series]] tables with device, sensor and values",
        );
    }
    let mut keys: HashMap<(String, String), usize> = HashMap::new();
    // (arrival, series index, slot index) -> reading
    let mut arrivals: Vec<((u64, usize, usize), TestReading)> = Vec::new();
    for (j, s) in raw_series.iter().enumerate() {
        let label = format!("{label}.series[{j}]");
        let r = s.get_ref();
        let device = required(d, r.device.as_ref(), s.span(), &format!("{label}.device"));
        let sensor = required(d, r.sensor.as_ref(), s.span(), &format!("{label}.sensor"));
        if let (Some(device), Some(sensor)) = (&device, &sensor) {
            let key = (device.clone(), sensor.clone());
            match keys.get(&key) {
                Some(first) => {
                    let first = d.position(*first);
                    d.err(
                        s.span(),
                        &label,
                        format!(
                            "a series of device {:?} sensor {:?} is given at {first} already: give one series per device and sensor",
                            key.0, key.1
                        ),
                    );
                }
                None => {
                    keys.insert(key, s.span().start);
                }
            }
        }
        let Some(values) = r.values.as_ref() else {
            d.at(
                s.span().start,
                &format!("{label}.values"),
                "required field is missing",
            );
            continue;
        };
        let slots = match expand_values(values.get_ref()) {
            Ok(slots) => slots,
            Err((offset, e)) => {
                d.at(string_offset(values, offset), &format!("{label}.values"), e);
                continue;
            }
        };
        let (Some(device), Some(sensor)) = (device, sensor) else {
            continue;
        };
        for (k, slot) in slots.iter().enumerate() {
            let Slot::Value { value, shift_ms } = *slot else {
                continue;
            };
            let arrival = (k as u64)
                .checked_mul(interval_ms)
                .and_then(|o| o.checked_add(start_ms));
            let time = arrival.and_then(|a| a.checked_add_signed(shift_ms));
            let (Some(arrival), Some(time)) = (arrival, time) else {
                d.err(
                    values.span(),
                    &format!("{label}.values"),
                    format!(
                        "the value {} in interval {k} (counting from 0) has an event time before 1970 or too far ahead",
                        value
                    ),
                );
                break;
            };
            arrivals.push((
                (arrival, j, k),
                TestReading {
                    device: device.clone(),
                    sensor: sensor.clone(),
                    time,
                    arrival,
                    value,
                },
            ));
        }
    }
    arrivals.sort_by_key(|(order, _)| *order);
    let readings: Vec<TestReading> = arrivals.into_iter().map(|(_, r)| r).collect();

    let rules = source.as_ref().map(|s| &s.1);
    let mut expected = Vec::new();
    for (j, a) in t.alert.as_deref().unwrap_or_default().iter().enumerate() {
        let label = format!("{label}.alert[{j}]");
        if let Some(event) = validate_alert(a, &label, start_ms, rules, &keys, d) {
            expected.push(event);
        }
    }
    expected.sort_by(|a, b| a.key().cmp(&b.key()));

    RuleTest {
        name,
        start_ms,
        out_of_orderness_ms,
        readings,
        expected,
        late,
        tolerance,
    }
}

/// One `[[test.alert]]`: its fields, that its rule exists and watches a
/// series of the test.
fn validate_alert(
    raw: &Spanned<RawAlert>,
    label: &str,
    start_ms: u64,
    rules: Option<&RuleSet>,
    series: &HashMap<(String, String), usize>,
    d: &mut Diag<'_>,
) -> Option<Event> {
    let a = raw.get_ref();
    let span = raw.span();
    let field = |name: &str| format!("{label}.{name}");
    let time = match &a.at {
        Some(at) => match alert_time(at.get_ref(), start_ms) {
            Ok(t) => Some(t),
            Err(e) => {
                d.err(at.span(), &field("at"), e);
                None
            }
        },
        None => {
            d.at(span.start, &field("at"), "required field is missing");
            None
        }
    };
    let rule = required(d, a.rule.as_ref(), span.clone(), &field("rule"));
    let device = required(d, a.device.as_ref(), span.clone(), &field("device"));
    let sensor = required(d, a.sensor.as_ref(), span.clone(), &field("sensor"));
    let state = match &a.state {
        // As the alert's JSON writes it: every state an alert can have.
        Some(s) => match AlertState::deserialize(StrDeserializer::<serde::de::value::Error>::new(
            s.get_ref(),
        )) {
            Ok(state) => Some(state),
            Err(e) => {
                d.err(s.span(), &field("state"), e);
                None
            }
        },
        None => {
            d.at(span.start, &field("state"), "required field is missing");
            None
        }
    };
    let value = match &a.value {
        Some(v) if v.get_ref().is_nan() => {
            d.err(v.span(), &field("value"), "must be a number, found nan");
            None
        }
        Some(v) => Some(*v.get_ref()),
        None => None,
    };
    // The rule must exist, and watch the device and sensor of a series.
    if let (Some(rules), Some(name)) = (rules, &rule) {
        let at = a.rule.as_ref().map_or(span.clone(), Spanned::span);
        match rules.rules.iter().find(|r| r.name == *name) {
            None => {
                let known: Vec<String> = rules
                    .rules
                    .iter()
                    .map(|r| format!("{:?}", r.name))
                    .collect();
                d.err(
                    at,
                    &field("rule"),
                    format!(
                        "unknown rule {name:?}: the rules under test are {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            Some(r) => {
                if let (Some(device), Some(sensor)) = (&device, &sensor) {
                    if rules.judge(r, device, sensor).is_none() {
                        d.err(
                            at,
                            &field("rule"),
                            format!("rule {name:?} does not watch sensor {sensor:?} of device {device:?}, so it never alerts on them"),
                        );
                    }
                }
            }
        }
    }
    if let (Some(device), Some(sensor)) = (&device, &sensor) {
        // A combination rule's alerts name its sensors joined by `+`.
        let named = std::iter::once(sensor.as_str()).chain(sensor.split('+'));
        if !named
            .into_iter()
            .any(|s| series.contains_key(&(device.clone(), s.to_owned())))
        {
            let at = a.device.as_ref().map_or(span.clone(), Spanned::span);
            d.err(
                at,
                &field("device"),
                format!("the test has no series of device {device:?} sensor {sensor:?}: add a [[test.series]] for them"),
            );
        }
    }
    Some(Event {
        time: time?,
        rule: rule?,
        device: device?,
        sensor: sensor?,
        state: state?,
        value,
        labels: a
            .labels
            .as_ref()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    })
}

/// A required, non-empty string; `span` is the table's.
fn required(
    d: &mut Diag<'_>,
    value: Option<&Spanned<String>>,
    span: Range<usize>,
    path: &str,
) -> Option<String> {
    match value {
        Some(v) if v.get_ref().trim().is_empty() => {
            d.err(v.span(), path, "must not be empty");
            None
        }
        Some(v) => Some(v.get_ref().clone()),
        None => {
            d.err(span, path, "required field is missing");
            None
        }
    }
}

/// The byte offset in the file of byte `offset` of a string value's
/// contents; the string's own start when it is written with escapes or
/// over several lines.
fn string_offset(value: &Spanned<String>, offset: usize) -> usize {
    let span = value.span();
    span.start
        + value
            .get_ref()
            .get(..offset)
            .filter(|_| {
                let written = span.end - span.start;
                written == value.get_ref().len() + 2
            })
            .map_or(0, |before| before.len() + 1)
}

/// An RFC 3339 time (a string or a TOML offset date-time), in ms since the epoch.
fn time_value(value: &toml::Value) -> Result<u64, String> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(t) => t.to_string(),
        other => {
            return Err(format!(
                "must be an RFC 3339 time like \"2026-01-01T00:00:00Z\", found {}",
                other.type_str()
            ))
        }
    };
    match chrono::DateTime::parse_from_rfc3339(&text) {
        Ok(t) => u64::try_from(t.timestamp_millis())
            .map_err(|_| format!("time {text:?} is before 1970")),
        Err(e) => Err(format!(
            "invalid time {text:?} ({e}): write an RFC 3339 time with an offset, like \"2026-01-01T00:00:00Z\""
        )),
    }
}

/// When an expected alert happens: a duration after the start (`"50s"`,
/// `"1m 30s"`, `"-5s"` before it), or an RFC 3339 time.
fn alert_time(value: &toml::Value, start_ms: u64) -> Result<u64, String> {
    let toml::Value::String(text) = value else {
        return time_value(value).map_err(|_| {
            format!(
                "must be a duration after the start, like \"30s\" or \"1m 30s\", or an RFC 3339 time, found {}",
                value.type_str()
            )
        });
    };
    let (negative, duration) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    if duration.starts_with(|c: char| c.is_ascii_digit()) && !duration.contains(['T', ':']) {
        let ms = parse_duration_ms(duration)?;
        let time = if negative {
            start_ms.checked_sub(ms)
        } else {
            start_ms.checked_add(ms)
        };
        return time.ok_or_else(|| format!("{text:?} from the start is before 1970"));
    }
    time_value(value)
}

// ---------------------------------------------------------------------------
// Running.
// ---------------------------------------------------------------------------

impl RuleTest {
    /// The readings as JSON payloads that `decode` reads, in arrival order.
    pub fn payloads(&self, decode: &DecodeConfig) -> Vec<Vec<u8>> {
        self.readings
            .iter()
            .map(|r| {
                let mut doc = serde_json::Map::new();
                doc.insert(decode.device_field.clone(), r.device.clone().into());
                doc.insert(decode.sensor_field.clone(), r.sensor.clone().into());
                doc.insert(decode.value_field.clone(), r.value.into());
                let time = match decode.time_format {
                    TimeFormat::EpochSeconds if r.time % 1_000 == 0 => (r.time / 1_000).into(),
                    TimeFormat::EpochSeconds => (r.time as f64 / 1_000.0).into(),
                    TimeFormat::Rfc3339 => i64::try_from(r.time)
                        .ok()
                        .and_then(chrono::DateTime::from_timestamp_millis)
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                        .unwrap_or_default()
                        .into(),
                    TimeFormat::Auto | TimeFormat::EpochMillis => r.time.into(),
                };
                doc.insert(decode.time_field.clone(), time);
                serde_json::to_vec(&serde_json::Value::Object(doc)).unwrap_or_default()
            })
            .collect()
    }

    /// Runs the test: its readings, one partition in arrival order, through
    /// the in-memory source and the alert wiring of a pipeline, bounded, on
    /// one worker; then compares the alert events with the expected ones.
    pub fn run(&self, rules: &Arc<RuleSet>, decode: &DecodeConfig) -> anyhow::Result<Outcome> {
        let payloads = self.payloads(decode);
        let topic = Arc::new(MemoryTopic::from_records(
            "readings",
            1,
            payloads.iter().map(|p| (0, None, p.as_slice(), None)),
        ));
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let dead = Arc::new(Mutex::new(Vec::new()));
        let (alerts_in, dead_in) = (alerts.clone(), dead.clone());
        let (rules, decode, bound) = (rules.clone(), decode.clone(), self.out_of_orderness_ms);
        let options = RunOptions {
            workers: 1,
            bounded: true,
            name: "rule-test".to_owned(),
            ..RunOptions::default()
        };
        run(&options, move |scope, ctx| {
            let (readings, dead_letters) =
                scope.memory_source(topic.clone(), Decoder::new(decode.clone()), bound, ctx);
            let dead = dead_in.clone();
            dead_letters.inspect(move |d| {
                lock(&dead).push((d.reason.clone(), d.offset, d.detail.clone()));
            });
            let alerts = alerts_in.clone();
            weir_operators::alert::alerts(&readings, &[], rules.clone(), ctx).inspect(move |a| {
                lock(&alerts).push(Event {
                    time: a.event_time,
                    rule: a.rule.clone(),
                    device: a.device.to_string(),
                    sensor: a.sensor.to_string(),
                    state: a.state,
                    value: Some(a.value),
                    labels: Some({
                        let mut labels = a.labels.clone();
                        labels.sort();
                        labels
                    }),
                });
            });
        })?;
        let mut actual = std::mem::take(&mut *lock(&alerts));
        actual.sort_by(|a, b| a.key().cmp(&b.key()));
        let mut late = Vec::new();
        let mut other_dead = Vec::new();
        for (reason, offset, detail) in std::mem::take(&mut *lock(&dead)) {
            let reading = usize::try_from(offset)
                .ok()
                .and_then(|i| self.readings.get(i));
            match (reason, reading) {
                (DeadLetterReason::Late | DeadLetterReason::LateAfterIdle, Some(r)) => {
                    late.push(r.clone());
                }
                (reason, _) => other_dead.push(format!("{reason}: {detail}")),
            }
        }
        Ok(Outcome {
            events: diff(&self.expected, &actual, self.tolerance),
            late,
            expected_late: self.late,
            other_dead,
        })
    }
}

/// Locks a mutex, also after a panic elsewhere.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether an alert's value matches an expected one: within `tolerance`,
/// or the same infinity.
fn close(expected: f64, actual: f64, tolerance: f64) -> bool {
    expected == actual || (expected - actual).abs() <= tolerance
}

/// Pairs expected and produced events: each expected event takes the first
/// produced one with the same time, rule, device, sensor and state (and a
/// value within `tolerance`, if it gives one). Returns every event in time
/// order, marked [`Mark::Same`] (the produced event), [`Mark::Missing`] or
/// [`Mark::Unexpected`].
pub fn diff(expected: &[Event], actual: &[Event], tolerance: f64) -> Vec<(Mark, Event)> {
    let mut taken = vec![false; actual.len()];
    let mut out = Vec::new();
    for e in expected {
        let found = actual.iter().enumerate().position(|(i, a)| {
            !taken[i]
                && a.key() == e.key()
                && match (e.value, a.value) {
                    (Some(want), Some(got)) => close(want, got, tolerance),
                    (Some(_), None) => false,
                    (None, _) => true,
                }
                && (e.labels.is_none() || e.labels == a.labels)
        });
        match found {
            Some(i) => {
                taken[i] = true;
                out.push((Mark::Same, actual[i].clone()));
            }
            None => out.push((Mark::Missing, e.clone())),
        }
    }
    for (a, taken) in actual.iter().zip(taken) {
        if !taken {
            out.push((Mark::Unexpected, a.clone()));
        }
    }
    out.sort_by(|(ma, a), (mb, b)| a.key().cmp(&b.key()).then(ma.cmp(mb)));
    out
}

// ---------------------------------------------------------------------------
// Reporting.
// ---------------------------------------------------------------------------

/// A time as an offset from `start`: `50s`, `1m 30s`, `-5s`.
pub fn offset(time: u64, start: u64) -> String {
    let (sign, ms) = if time >= start {
        ("", time - start)
    } else {
        ("-", start - time)
    };
    let text = humantime::format_duration(std::time::Duration::from_millis(ms)).to_string();
    format!("{sign}{text}")
}

/// A value, shortest form.
fn show_value(v: f64) -> String {
    format!("{v}")
}

impl Outcome {
    /// What went wrong, for a failed test: the alert events as a diff
    /// (`-` expected but not produced, `+` produced but not expected, the
    /// others unmarked), the late readings, and any other dead letter. Each
    /// line starts with `indent`; times are offsets from `start`.
    pub fn explain(&self, start: u64, indent: &str) -> String {
        let mut s = String::new();
        if self.events.iter().any(|(m, _)| *m != Mark::Same) {
            let _ = writeln!(
                s,
                "{indent}alert events (- expected, not produced; + produced, not expected), at times from the start:"
            );
            let rows: Vec<(char, String, &Event)> = self
                .events
                .iter()
                .map(|(m, e)| {
                    let sign = match m {
                        Mark::Same => ' ',
                        Mark::Missing => '-',
                        Mark::Unexpected => '+',
                    };
                    (sign, offset(e.time, start), e)
                })
                .collect();
            let width = |f: &dyn Fn(&(char, String, &Event)) -> usize| {
                rows.iter().map(f).max().unwrap_or(0)
            };
            let (tw, rw) = (width(&|r| r.1.len()), width(&|r| r.2.rule.len()));
            let kw = width(&|r| r.2.device.len() + r.2.sensor.len() + 1);
            let sw = width(&|r| r.2.state.as_str().len());
            for (sign, at, e) in &rows {
                let key = format!("{}/{}", e.device, e.sensor);
                let mut line = format!(
                    "{indent}{sign} {at:>tw$}  {:<sw$}  {:<rw$}  {key:<kw$}",
                    e.state.as_str(),
                    e.rule
                );
                if let Some(v) = e.value {
                    let _ = write!(line, "  value {}", show_value(v));
                }
                if let Some(labels) = e.labels.as_ref().filter(|l| !l.is_empty()) {
                    let labels: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let _ = write!(line, "  labels {}", labels.join(","));
                }
                let _ = writeln!(s, "{}", line.trim_end());
            }
        } else if self.events.is_empty() {
            let _ = writeln!(s, "{indent}no alert events (none expected)");
        }
        match self.expected_late {
            Some(n) if n != self.late.len() as u64 => {
                let _ = writeln!(
                    s,
                    "{indent}late readings (dead letters): expected {n}, found {}",
                    self.late.len()
                );
            }
            _ if !self.late.is_empty() => {
                let _ = writeln!(
                    s,
                    "{indent}late readings (dead letters): {}",
                    self.late.len()
                );
            }
            _ => {}
        }
        for r in &self.late {
            let _ = writeln!(
                s,
                "{indent}  {}/{} value {} with event time {}, arrived at {}",
                r.device,
                r.sensor,
                show_value(r.value),
                offset(r.time, start),
                offset(r.arrival, start)
            );
        }
        for d in &self.other_dead {
            let _ = writeln!(s, "{indent}dead letter: {d}");
        }
        s
    }
}

/// What `weir test rules` found over several files.
#[derive(Debug, Default)]
pub struct Summary {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed.
    pub failed: usize,
    /// Files that could not be loaded.
    pub unloaded: usize,
    /// Their problems, one per line.
    pub problems: Vec<String>,
}

/// Loads and runs every test of `files`, writing `ok` or `FAILED` per test
/// (with a diff on failure) to `out`.
pub fn run_files(files: &[PathBuf], out: &mut dyn std::io::Write) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    for path in files {
        let file = match load(path) {
            Ok(file) => file,
            Err(e) => {
                writeln!(out, "{}: not run: the file has errors", path.display())?;
                summary.unloaded += 1;
                summary.problems.extend(e.problems());
                continue;
            }
        };
        writeln!(
            out,
            "{}: {} test(s) of the rules in {}",
            path.display(),
            file.tests.len(),
            file.rules_path.display()
        )?;
        for test in &file.tests {
            let outcome = test.run(&file.rules, &file.decode)?;
            if outcome.passed() {
                summary.passed += 1;
                writeln!(out, "  ok      {}", test.name)?;
            } else {
                summary.failed += 1;
                writeln!(out, "  FAILED  {}", test.name)?;
                write!(out, "{}", outcome.explain(test.start_ms, "          "))?;
            }
        }
    }
    let mut tally = format!(
        "{} test(s): {} passed, {} failed",
        summary.passed + summary.failed,
        summary.passed,
        summary.failed
    );
    if summary.unloaded > 0 {
        let _ = write!(tally, "; {} file(s) not run", summary.unloaded);
    }
    writeln!(out, "{tally}.")?;
    Ok(summary)
}

/// `weir test rules FILE...`: runs the tests and prints the results on
/// standard output. `Ok` when every test passed; [`TestsFailed`] when some
/// failed; any other error (with every problem, `file:line:col: ...`) when a
/// file could not be loaded.
pub fn cli(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let summary = run_files(files, &mut stdout)?;
    if !summary.problems.is_empty() {
        anyhow::bail!("{}", summary.problems.join("\n"));
    }
    if summary.failed > 0 {
        return Err(TestsFailed {
            failed: summary.failed,
            total: summary.passed + summary.failed,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(value: f64) -> Slot {
        Slot::Value { value, shift_ms: 0 }
    }

    #[test]
    fn notation_expands_as_documented() {
        assert_eq!(expand_values("").unwrap(), vec![]);
        assert_eq!(
            expand_values(" 80  85\n91 ").unwrap(),
            vec![v(80.0), v(85.0), v(91.0)]
        );
        assert_eq!(expand_values("_ _x2").unwrap(), vec![Slot::Gap; 3]);
        assert_eq!(expand_values("95x3").unwrap(), vec![v(95.0); 3]);
        // promtool's examples: '-2+4x3' is '-2 2 6 10', '1-2x4' is '1 -1 -3 -5 -7'.
        assert_eq!(
            expand_values("-2+4x3").unwrap(),
            vec![v(-2.0), v(2.0), v(6.0), v(10.0)]
        );
        assert_eq!(
            expand_values("1-2x4").unwrap(),
            vec![v(1.0), v(-1.0), v(-3.0), v(-5.0), v(-7.0)]
        );
        assert_eq!(expand_values("1e-3x2").unwrap(), vec![v(0.001); 2]);
        assert_eq!(
            expand_values("1e2+1e1x1").unwrap(),
            vec![v(100.0), v(110.0)]
        );
        assert_eq!(
            expand_values("72@-15s 5@+500ms").unwrap(),
            vec![
                Slot::Value {
                    value: 72.0,
                    shift_ms: -15_000
                },
                Slot::Value {
                    value: 5.0,
                    shift_ms: 500
                }
            ]
        );
    }

    #[test]
    fn notation_errors_point_at_the_token() {
        let (at, e) = expand_values("1 2 abc").unwrap_err();
        assert_eq!(at, 4);
        assert!(e.starts_with("invalid token \"abc\""), "{e}");
        let (at, e) = expand_values("1 95x0").unwrap_err();
        assert_eq!(at, 2);
        assert!(e.contains("1 or more"), "{e}");
        let (at, e) = expand_values("  5@15s").unwrap_err();
        assert_eq!(at, 2);
        assert!(e.contains("`-15s`"), "{e}");
        assert!(expand_values("5@-15")
            .unwrap_err()
            .1
            .contains("invalid duration"));
        assert!(expand_values("inf").unwrap_err().1.contains("finite"));
        assert!(expand_values("1+x3").is_err());
    }

    fn event(time: u64, state: AlertState, value: Option<f64>) -> Event {
        Event {
            time,
            rule: "hot".into(),
            device: "d".into(),
            sensor: "t".into(),
            state,
            value,
            labels: None,
        }
    }

    #[test]
    fn diff_pairs_events_and_marks_the_rest() {
        use AlertState::{Firing, Resolved};
        let expected = [
            event(1_000, Firing, Some(95.0)),
            event(3_000, Resolved, None),
            event(5_000, Firing, Some(2.5)),
        ];
        let actual = [
            event(1_000, Firing, Some(95.0000001)),
            event(4_000, Resolved, Some(80.0)),
            event(5_000, Firing, Some(2.6)),
        ];
        let marks: Vec<(Mark, u64)> = diff(&expected, &actual, DEFAULT_TOLERANCE)
            .iter()
            .map(|(m, e)| (*m, e.time))
            .collect();
        assert_eq!(
            marks,
            vec![
                (Mark::Same, 1_000),
                (Mark::Missing, 3_000),
                (Mark::Unexpected, 4_000),
                (Mark::Missing, 5_000),
                (Mark::Unexpected, 5_000),
            ]
        );
        // A wider tolerance accepts 2.6 for 2.5.
        assert!(diff(&expected[2..], &actual[2..], 0.2)
            .iter()
            .all(|(m, _)| *m == Mark::Same));
        // The same infinity matches.
        let inf = [event(0, Firing, Some(f64::INFINITY))];
        assert_eq!(diff(&inf, &inf, 0.0)[0].0, Mark::Same);
    }

    /// Parses `text` as a test file next to `tests/cases/rule_tests/rules.toml`
    /// (one rule, "hot", on sensor "temp") and returns its problems.
    fn problems(text: &str) -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/rule_tests/t.test.toml");
        match parse(text, &path) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems()
                .into_iter()
                .map(|p| {
                    p.split_once("t.test.toml:")
                        .map_or(p.clone(), |(_, p)| p.to_owned())
                })
                .collect(),
        }
    }

    #[test]
    fn expectations_must_name_a_rule_watching_a_series() {
        let text = r#"rules = "rules.toml"
[[test]]
name = "a"
[[test.series]]
device = "d1"
sensor = "temp"
values = "1"
[[test.series]]
device = "d1"
sensor = "temp"
values = "2"
[[test.alert]]
at = "0s"
rule = "hot"
device = "d1"
sensor = "pressure"
state = "firing"
[[test.alert]]
at = "0s"
rule = "hot"
device = "d1"
sensor = "temp"
state = "firing"
colour = "red"
[[test]]
name = "a"
"#;
        assert_eq!(
            problems(text),
            vec![
                "24:1: test[0] \"a\".alert[1].colour: unknown field `colour`, expected one of `at`, `rule`, `device`, `sensor`, `state`, `value`, `labels`"
                    .to_owned()
            ]
        );
        let text = text.replace("colour = \"red\"\n", "");
        assert_eq!(
            problems(&text),
            vec![
                "8:1: test[0] \"a\".series[1]: a series of device \"d1\" sensor \"temp\" is given at tests/cases/rule_tests/t.test.toml:4:1 already: give one series per device and sensor".to_owned(),
                "14:8: test[0] \"a\".alert[0].rule: rule \"hot\" does not watch sensor \"pressure\" of device \"d1\", so it never alerts on them".to_owned(),
                "15:10: test[0] \"a\".alert[0].device: the test has no series of device \"d1\" sensor \"pressure\": add a [[test.series]] for them".to_owned(),
                "24:1: test[1] \"a\".series: no input: add [[test.series]] tables with device, sensor and values".to_owned(),
                "25:8: test[1] \"a\".name: duplicate test name \"a\": the test at tests/cases/rule_tests/t.test.toml:3:8 has it too".to_owned(),
            ]
            .into_iter()
            .map(|p| p.replace("tests/cases/rule_tests/t.test.toml", &format!("{}/tests/cases/rule_tests/t.test.toml", env!("CARGO_MANIFEST_DIR"))))
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_rules_come_from_one_place() {
        assert_eq!(
            problems("[[test]]\nname = \"a\"\n[[test.series]]\ndevice = \"d\"\nsensor = \"s\"\nvalues = \"1\"\n"),
            vec!["1:1: rules: required field is missing: give `rules = \"rules.toml\"` (the rules under test, relative to this file) or `pipeline = \"pipeline.toml\"`"]
        );
        let both = problems("rules = \"rules.toml\"\npipeline = \"p.toml\"\n[[test]]\nname = \"a\"\n[[test.series]]\ndevice = \"d\"\nsensor = \"s\"\nvalues = \"1\"\n");
        assert_eq!(
            both,
            vec!["2:12: pipeline: give either `rules` (a rules file) or `pipeline` (a pipeline file), not both"]
        );
        let missing = problems("rules = \"absent.toml\"\n[[test]]\nname = \"a\"\n[[test.series]]\ndevice = \"d\"\nsensor = \"s\"\nvalues = \"1\"\n");
        assert_eq!(missing.len(), 1);
        assert!(
            missing[0].starts_with("1:9: rules: cannot read "),
            "{missing:?}"
        );
    }

    #[test]
    fn offsets_from_the_start() {
        assert_eq!(offset(10_000, 10_000), "0s");
        assert_eq!(offset(100_000, 10_000), "1m 30s");
        assert_eq!(offset(5_000, 10_000), "-5s");
    }

    #[test]
    fn alert_times() {
        let s = |t: &str| toml::Value::String(t.into());
        assert_eq!(alert_time(&s("30s"), 1_000), Ok(31_000));
        assert_eq!(alert_time(&s("1m 30s"), 0), Ok(90_000));
        assert_eq!(alert_time(&s("-1s"), 1_000), Ok(0));
        assert_eq!(alert_time(&s("1970-01-01T00:01:00Z"), 5_000), Ok(60_000));
        assert!(alert_time(&s("-2s"), 1_000).is_err());
        assert!(alert_time(&toml::Value::Integer(30), 0)
            .unwrap_err()
            .contains("like \"30s\""));
    }
}
