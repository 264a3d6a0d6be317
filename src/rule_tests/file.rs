//! A test file: as written, then loaded and validated into a [`TestFile`].

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::value::StrDeserializer;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;
use weir_operators::alert::AlertState;
use weir_operators::decode::DecodeConfig;
use weir_operators::RuleSet;

use super::{
    expand_values, Event, RuleTest, Slot, TestFile, TestReading, DEFAULT_INTERVAL_MS,
    DEFAULT_OUT_OF_ORDERNESS_MS, DEFAULT_TOLERANCE,
};
use crate::config::{
    check_entry, check_fields, deserialize, element_path, parse_duration_ms, ConfigError, Diag,
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
