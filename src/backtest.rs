//! `weir backtest`: runs several rule sets over one recording in one pass,
//! and reports how their alerts differ.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use timely::dataflow::operators::Inspect;
use weir_operators::recording::Recording;
use weir_operators::source::RecordingSource;
use weir_operators::storage::Location;
use weir_operators::{Decoder, RuleSet};

use crate::config::PipelineSpec;
use crate::runtime::{run, RunOptions};

/// An alert event as a backtest compares them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Event {
    /// Rule name.
    pub rule: String,
    /// Device.
    pub device: String,
    /// Sensor (empty for combined rules).
    pub sensor: String,
    /// `firing` or `resolved`.
    pub state: String,
    /// Event time (ms).
    pub time: u64,
}

/// How an event of the first rule set compares with the second.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// Only the first set (`current`) has it.
    OnlyCurrent {
        /// The event.
        event: Event,
    },
    /// Only the second set (`candidate`) has it.
    OnlyCandidate {
        /// The event.
        event: Event,
    },
    /// Both have it, at different times.
    TimingChanged {
        /// The event in the current set.
        current: Event,
        /// When the candidate set has it.
        candidate_time: u64,
    },
}

/// Counts of one rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuleCounts {
    /// Events of the current set.
    pub current: usize,
    /// Events of the candidate set.
    pub candidate: usize,
    /// Events both have at the same time.
    pub same: usize,
    /// Events both have at different times.
    pub timing_changed: usize,
    /// Events only the current set has.
    pub only_current: usize,
    /// Events only the candidate set has.
    pub only_candidate: usize,
}

/// What a backtest found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BacktestReport {
    /// The rule files compared.
    pub rule_files: Vec<PathBuf>,
    /// Counts by rule name.
    pub rules: BTreeMap<String, RuleCounts>,
    /// Every difference, by rule, device, sensor, state and time.
    pub differences: Vec<Difference>,
}

/// Runs `rule_sets` over `recording` in one pass, with the decoding and
/// lateness settings of `spec`, and returns the alert events of each set.
pub fn alert_events(
    recording: &Path,
    spec: &PipelineSpec,
    rule_sets: &[RuleSet],
    workers: usize,
) -> anyhow::Result<Vec<Vec<Event>>> {
    let recording = Location::from_flag(recording).map_err(anyhow::Error::msg)?;
    let recording = Arc::new(Recording::open_at(&recording)?);
    let events: Arc<Mutex<Vec<Vec<Event>>>> =
        Arc::new(Mutex::new(vec![Vec::new(); rule_sets.len()]));
    let sets: Vec<Arc<RuleSet>> = rule_sets.iter().cloned().map(Arc::new).collect();
    let decode = spec.decode.clone();
    let (bound, step) = (
        spec.source.out_of_orderness_ms,
        spec.source.watermark_step_ms,
    );
    let sink = events.clone();
    let options = RunOptions {
        workers,
        bounded: true,
        name: format!("{}-backtest", spec.name),
        ..RunOptions::default()
    };
    run(&options, move |scope, ctx| {
        let (readings, _dead) = scope.recording_source(
            recording.clone(),
            Decoder::new(decode.clone()),
            bound,
            step,
            ctx,
        );
        for (i, rules) in sets.iter().enumerate() {
            let sink = sink.clone();
            weir_operators::alert::alerts(&readings, &[], rules.clone(), ctx).inspect(
                move |alert| {
                    sink.lock().unwrap_or_else(|p| p.into_inner())[i].push(Event {
                        rule: alert.rule.to_string(),
                        device: alert.device.to_string(),
                        sensor: alert.sensor.to_string(),
                        state: alert.state.as_str().to_owned(),
                        time: alert.event_time,
                    });
                },
            );
        }
    })?;
    let mut events = std::mem::take(&mut *events.lock().unwrap_or_else(|p| p.into_inner()));
    for e in &mut events {
        e.sort();
    }
    Ok(events)
}

/// Runs `weir backtest`: the two rule files over `recording` (decoded and
/// judged as `pipeline` says, or with the defaults), prints the table and
/// writes `OUT/backtest.json` and `OUT/backtest.csv`.
pub fn backtest(
    recording: &Path,
    rule_files: &[PathBuf],
    pipeline: Option<&Path>,
    out: &Path,
    workers: usize,
) -> anyhow::Result<BacktestReport> {
    anyhow::ensure!(
        rule_files.len() == 2,
        "give exactly two rule files: --rules current.toml --rules candidate.toml"
    );
    let spec = match pipeline {
        Some(path) => crate::config::load_pipeline(path)?,
        None => crate::config::parse_pipeline(
            "name = \"backtest\"\n[source]\nbrokers = \"-\"\ntopic = \"readings\"\n[sinks.parquet]\npath = \"-\"\n",
            Path::new("defaults.toml"),
        )?,
    };
    let sets = rule_files
        .iter()
        .map(|f| crate::config::load_rules(f))
        .collect::<Result<Vec<_>, _>>()?;
    let events = alert_events(recording, &spec, &sets, workers)?;
    let mut report = compare(&events[0], &events[1]);
    report.rule_files = rule_files.to_vec();
    std::fs::create_dir_all(out)?;
    let json = serde_json::to_vec_pretty(&report)?;
    std::fs::write(out.join("backtest.json"), json)?;
    std::fs::write(out.join("backtest.csv"), report.csv())?;
    Ok(report)
}

/// Compares the events of two rule sets. Events of one (rule, device,
/// sensor, state) at the same time are the same; the rest are paired in time
/// order as timing changes, and what is left is only in one set.
pub fn compare(current: &[Event], candidate: &[Event]) -> BacktestReport {
    type Key = (String, String, String, String);
    let group = |events: &[Event]| {
        let mut by: BTreeMap<Key, Vec<u64>> = BTreeMap::new();
        for e in events {
            by.entry((
                e.rule.clone(),
                e.device.clone(),
                e.sensor.clone(),
                e.state.clone(),
            ))
            .or_default()
            .push(e.time);
        }
        by
    };
    let (a, b) = (group(current), group(candidate));
    let mut report = BacktestReport::default();
    let keys: std::collections::BTreeSet<&Key> = a.keys().chain(b.keys()).collect();
    for key in keys {
        let event = |time: u64| Event {
            rule: key.0.clone(),
            device: key.1.clone(),
            sensor: key.2.clone(),
            state: key.3.clone(),
            time,
        };
        let empty = Vec::new();
        let (xs, ys) = (a.get(key).unwrap_or(&empty), b.get(key).unwrap_or(&empty));
        let counts = report.rules.entry(key.0.clone()).or_default();
        counts.current += xs.len();
        counts.candidate += ys.len();
        let only_x: Vec<u64> = xs.iter().filter(|t| !ys.contains(t)).copied().collect();
        let only_y: Vec<u64> = ys.iter().filter(|t| !xs.contains(t)).copied().collect();
        counts.same += xs.len() - only_x.len();
        let paired = only_x.len().min(only_y.len());
        for (&x, &y) in only_x.iter().zip(&only_y) {
            report.differences.push(Difference::TimingChanged {
                current: event(x),
                candidate_time: y,
            });
        }
        for &x in &only_x[paired..] {
            report
                .differences
                .push(Difference::OnlyCurrent { event: event(x) });
        }
        for &y in &only_y[paired..] {
            report
                .differences
                .push(Difference::OnlyCandidate { event: event(y) });
        }
        counts.timing_changed += paired;
        counts.only_current += only_x.len() - paired;
        counts.only_candidate += only_y.len() - paired;
    }
    report
}

impl BacktestReport {
    /// The per-rule table shown on the terminal.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>9} {:>6} {:>8} {:>12} {:>14}",
            "rule", "current", "candidate", "same", "timing", "only current", "only candidate"
        );
        for (rule, c) in &self.rules {
            let _ = writeln!(
                out,
                "{rule:<28} {:>8} {:>9} {:>6} {:>8} {:>12} {:>14}",
                c.current, c.candidate, c.same, c.timing_changed, c.only_current, c.only_candidate
            );
        }
        out
    }

    /// One line per difference: kind, rule, device, sensor, state, current
    /// time, candidate time (empty where the set has none).
    pub fn csv(&self) -> String {
        let mut out = String::from("kind,rule,device,sensor,state,current_time,candidate_time\n");
        for d in &self.differences {
            let (kind, e, current, candidate) = match d {
                Difference::OnlyCurrent { event } => {
                    ("only_current", event, Some(event.time), None)
                }
                Difference::OnlyCandidate { event } => {
                    ("only_candidate", event, None, Some(event.time))
                }
                Difference::TimingChanged {
                    current,
                    candidate_time,
                } => (
                    "timing_changed",
                    current,
                    Some(current.time),
                    Some(*candidate_time),
                ),
            };
            let time = |t: Option<u64>| t.map(|t| t.to_string()).unwrap_or_default();
            let _ = writeln!(
                out,
                "{kind},{},{},{},{},{},{}",
                csv_field(&e.rule),
                csv_field(&e.device),
                csv_field(&e.sensor),
                e.state,
                time(current),
                time(candidate)
            );
        }
        out
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_operators::recording::{RecordRef, Recorder};

    /// A recording of one device's temperatures, one per second.
    fn recording(values: &[f64]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mut recorder = Recorder::open(dir.path(), "readings").unwrap();
        for (i, v) in values.iter().enumerate() {
            let payload = format!(
                r#"{{"device_id":"d1","sensor":"temperature","value":{v},"ts":{}}}"#,
                (i as u64 + 1) * 1_000
            );
            recorder
                .push(&RecordRef {
                    partition: 0,
                    offset: i as i64,
                    timestamp: None,
                    key: None,
                    value: payload.as_bytes(),
                    headers: &[],
                })
                .unwrap();
        }
        recorder.seal().unwrap();
        dir
    }

    fn rules(text: &str) -> RuleSet {
        crate::config::parse_rules(text, Path::new("rules.toml")).unwrap()
    }

    fn spec() -> PipelineSpec {
        let toml = "name = \"t\"\n[source]\nbrokers = \"127.0.0.1:1\"\ntopic = \"readings\"\n[sinks.parquet]\npath = \"out\"\n";
        crate::config::parse_pipeline(toml, Path::new("p.toml")).unwrap()
    }

    fn ev(rule: &str, state: &str, s: u64) -> Event {
        Event {
            rule: rule.into(),
            device: "d1".into(),
            sensor: "temperature".into(),
            state: state.into(),
            time: s * 1_000,
        }
    }

    /// Worked by hand. Temperatures at seconds 1..=8: 80 92 93 86 84 95 96 80.
    /// - `hot` now: above 90, clear at 85: fires at 2, resolves at 5, fires
    ///   at 6, resolves at 8. The candidate raises the limit to 94: fires at
    ///   6, resolves at 8. So the first episode is only in the current set.
    /// - `hot2` now: above 90, clear at 85; the candidate wants 2 readings in
    ///   a row: it fires at 3 instead of 2 and at 7 instead of 6, and resolves
    ///   at the same times.
    /// - `cold` exists only in the candidate: below 81 (clearing at 81):
    ///   fires at 1, resolves at 2, fires at 8.
    #[test]
    fn hand_made_rule_pairs_report_exactly_the_known_differences() {
        let rec = recording(&[80.0, 92.0, 93.0, 86.0, 84.0, 95.0, 96.0, 80.0]);
        let current = rules(
            "[[rule]]\nname = \"hot\"\nsensor = \"temperature\"\nabove = 90.0\nclear = 85.0\n\
             [[rule]]\nname = \"hot2\"\nsensor = \"temperature\"\nabove = 90.0\nclear = 85.0\n",
        );
        let candidate = rules(
            "[[rule]]\nname = \"hot\"\nsensor = \"temperature\"\nabove = 94.0\nclear = 85.0\n\
             [[rule]]\nname = \"hot2\"\nsensor = \"temperature\"\nabove = 90.0\nclear = 85.0\nconsecutive = 2\n\
             [[rule]]\nname = \"cold\"\nsensor = \"temperature\"\nbelow = 81.0\n",
        );
        for workers in [1, 2] {
            let events = alert_events(
                rec.path(),
                &spec(),
                &[current.clone(), candidate.clone()],
                workers,
            )
            .unwrap();
            let report = compare(&events[0], &events[1]);
            let mut expected = vec![
                Difference::OnlyCandidate {
                    event: ev("cold", "firing", 1),
                },
                Difference::OnlyCandidate {
                    event: ev("cold", "resolved", 2),
                },
                Difference::OnlyCandidate {
                    event: ev("cold", "firing", 8),
                },
                Difference::OnlyCurrent {
                    event: ev("hot", "firing", 2),
                },
                Difference::OnlyCurrent {
                    event: ev("hot", "resolved", 5),
                },
                Difference::TimingChanged {
                    current: ev("hot2", "firing", 2),
                    candidate_time: 3_000,
                },
                Difference::TimingChanged {
                    current: ev("hot2", "firing", 6),
                    candidate_time: 7_000,
                },
            ];
            expected.sort_by_key(|d| format!("{d:?}"));
            let mut got = report.differences.clone();
            got.sort_by_key(|d| format!("{d:?}"));
            assert_eq!(got, expected, "{workers} worker(s)");
            assert_eq!(report.rules["hot"].same, 2);
            assert_eq!(report.rules["hot2"].same, 2);
            assert!(report
                .csv()
                .contains("timing_changed,hot2,d1,temperature,firing,2000,3000\n"));
        }
    }
}
