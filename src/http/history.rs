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

    /// The samples taken after `after` (ms; all of them with `None`), for
    /// the page, which keeps the series itself: a page gets the whole 15
    /// minutes once, then each new second.
    pub(super) fn samples_after(&self, after: Option<u64>) -> Vec<Value> {
        self.samples
            .iter()
            .filter(|s| after.is_none_or(|a| s.at_ms > a))
            .map(|s| {
                json!({
                    "t": s.at_ms, "rate": s.rate, "trail_s": s.trail_s,
                    "lag": s.lag, "firing": s.firing,
                })
            })
            .collect()
    }

    /// When the latest sample was taken (ms).
    pub(super) fn latest(&self) -> Option<u64> {
        self.samples.back().map(|s| s.at_ms)
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
    fn fifteen_minutes_are_kept_and_a_page_gets_only_what_is_new() {
        let mut history = History::default();
        for i in 0..(KEEP as u64 + 5) {
            history.push(sample(i, i as f64));
        }
        let all = history.samples_after(None);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0]["t"], 5, "the oldest five went");
        assert_eq!(all[KEEP - 1]["rate"], (KEEP + 4) as f64);
        assert_eq!(all[0]["lag"]["readings/0"], 5);
        assert_eq!(all[3]["firing"]["critical"], 2);
        assert_eq!(history.rate(), Some((KEEP + 4) as f64));
        // A page that has everything up to the latest gets nothing; one
        // more sample, and it gets that one.
        let latest = history.latest();
        assert!(history.samples_after(latest).is_empty());
        history.push(sample(KEEP as u64 + 5, 1.0));
        let new = history.samples_after(latest);
        assert_eq!(new.len(), 1);
        assert_eq!(new[0]["t"], KEEP as u64 + 5);
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
