//! The last 15 minutes of the run, sampled once a second for the status
//! page's charts: records per second, lag per partition, how far each
//! partition's watermark trails the wall clock, and the alarms firing by
//! severity.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use weir_operators::Run;

/// Samples kept: 15 minutes at one a second.
pub(super) const KEEP: usize = 900;

/// One second of the run.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Sample {
    /// Wall clock, ms since the epoch.
    pub(super) at_ms: u64,
    /// Records read per second since the sample before (`None` for the
    /// first).
    pub(super) rate: Option<f64>,
    /// Lag (records not read yet) of each partition, by `topic/partition`.
    pub(super) lag: BTreeMap<String, i64>,
    /// Seconds the slowest partition's watermark trails the wall clock.
    pub(super) trail_s: Option<f64>,
    /// Alarms firing now, by severity.
    pub(super) firing: BTreeMap<String, usize>,
}

/// The samples, oldest first.
#[derive(Debug, Default)]
pub(super) struct History {
    samples: VecDeque<Sample>,
    /// Records read at the last sample, and when.
    last: Option<(Instant, u64)>,
}

impl History {
    /// Takes a sample of `run` now.
    pub(super) fn sample(&mut self, run: &Run) {
        let now = Instant::now();
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let read = run.metrics.records_read.get();
        let rate = self.last.and_then(|(at, before)| {
            let secs = now.duration_since(at).as_secs_f64();
            (secs > 0.0).then(|| read.saturating_sub(before) as f64 / secs)
        });
        self.last = Some((now, read));
        let partitions = run.metrics.partitions();
        let lag = partitions
            .iter()
            .filter_map(|((topic, p), s)| {
                let end = s.high_watermark.or(s.end)?;
                Some((format!("{topic}/{p}"), (end - s.position).max(0)))
            })
            .collect();
        let trail_s = partitions
            .iter()
            .filter(|(_, s)| !s.idle)
            .filter_map(|(_, s)| s.watermark)
            .map(|w| at_ms.saturating_sub(w) as f64 / 1000.0)
            .reduce(f64::max);
        let mut firing = BTreeMap::new();
        for (alarm, _) in run.metrics.alarm_board().alarms {
            *firing.entry(alarm.severity).or_default() += 1;
        }
        self.push(Sample {
            at_ms,
            rate,
            lag,
            trail_s,
            firing,
        });
    }

    /// Adds a sample, dropping the oldest beyond [`KEEP`].
    pub(super) fn push(&mut self, sample: Sample) {
        if self.samples.len() == KEEP {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The records read per second at the last sample.
    pub(super) fn rate(&self) -> Option<f64> {
        self.samples.back().and_then(|s| s.rate)
    }

    /// The samples as series for the page: `t` (ms), `rate`, `trail_s`,
    /// `lag` by partition and `firing` by severity, each an array with one
    /// value (or null) per sample.
    pub(super) fn to_json(&self) -> Value {
        let series =
            |f: &dyn Fn(&Sample) -> Value| -> Vec<Value> { self.samples.iter().map(f).collect() };
        let names = |f: &dyn Fn(&Sample) -> Vec<String>| -> Vec<String> {
            let mut all: Vec<String> = self.samples.iter().flat_map(f).collect();
            all.sort();
            all.dedup();
            all
        };
        let partitions = names(&|s| s.lag.keys().cloned().collect());
        let severities = names(&|s| s.firing.keys().cloned().collect());
        let lag: serde_json::Map<String, Value> = partitions
            .iter()
            .map(|p| (p.clone(), Value::from(series(&|s| json!(s.lag.get(p))))))
            .collect();
        let firing: serde_json::Map<String, Value> = severities
            .iter()
            .map(|v| {
                let counts = series(&|s| json!(s.firing.get(v).copied().unwrap_or(0)));
                (v.clone(), Value::from(counts))
            })
            .collect();
        json!({
            "t": series(&|s| json!(s.at_ms)),
            "rate": series(&|s| json!(s.rate)),
            "trail_s": series(&|s| json!(s.trail_s)),
            "lag": lag,
            "firing": firing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, rate: f64) -> Sample {
        Sample {
            at_ms,
            rate: Some(rate),
            lag: BTreeMap::from([("readings/0".to_owned(), at_ms as i64)]),
            trail_s: Some(1.5),
            firing: BTreeMap::from([("critical".to_owned(), 2)]),
        }
    }

    #[test]
    fn fifteen_minutes_are_kept_as_series() {
        let mut history = History::default();
        for i in 0..(KEEP as u64 + 5) {
            history.push(sample(i, i as f64));
        }
        let json = history.to_json();
        assert_eq!(json["t"].as_array().unwrap().len(), KEEP);
        assert_eq!(json["t"][0], 5, "the oldest five went");
        assert_eq!(json["rate"][KEEP - 1], (KEEP + 4) as f64);
        assert_eq!(json["lag"]["readings/0"][0], 5);
        assert_eq!(json["firing"]["critical"][3], 2);
        assert_eq!(history.rate(), Some((KEEP + 4) as f64));
    }

    #[test]
    fn a_run_is_sampled_with_its_rate_from_the_sample_before() {
        let run = Run::default();
        let mut history = History::default();
        history.sample(&run);
        assert_eq!(history.rate(), None, "no rate from one sample");
        run.metrics.records_read.inc_by(500);
        std::thread::sleep(std::time::Duration::from_millis(100));
        history.sample(&run);
        let rate = history.rate().unwrap();
        assert!(rate > 500.0 && rate < 5_001.0, "{rate}");
    }
}
