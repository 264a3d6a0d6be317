//! Running a test through the real operators, and comparing its alert events.

use std::sync::{Arc, Mutex};

use timely::dataflow::operators::Inspect;
use weir_operators::decode::{DecodeConfig, TimeFormat};
use weir_operators::memory::{MemorySource, MemoryTopic};
use weir_operators::{DeadLetterReason, Decoder, RuleSet};

use super::{Event, Mark, Outcome, RuleTest};
use crate::runtime::{run, RunOptions};

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
                lock(&dead).push((d.reason, d.offset, d.detail.clone()));
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

#[cfg(test)]
mod tests {
    use weir_operators::alert::AlertState;

    use super::*;
    use crate::rule_tests::DEFAULT_TOLERANCE;

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
}
