//! When records arrived at the sources, for latency figures.

use std::collections::BTreeMap;
use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;

use super::{lock, Metrics};

/// When records of each event time first arrived at a source, for latency
/// figures: event time → arrival. Bounded: the oldest entries go first.
#[derive(Debug, Default)]
pub(super) struct Arrivals(BTreeMap<u64, Instant>);

/// Arrivals remembered.
const ARRIVALS_KEPT: usize = 1 << 16;

impl Metrics {
    /// Notes that records up to event time `time` have arrived at a source
    /// now (the first arrival of each event time is kept).
    pub fn note_arrival(&self, time: u64) {
        let mut arrivals = lock(&self.arrivals);
        if arrivals.0.last_key_value().is_some_and(|(&t, _)| t >= time) {
            return;
        }
        arrivals.0.insert(time, Instant::now());
        if arrivals.0.len() > ARRIVALS_KEPT {
            arrivals.0.pop_first();
        }
    }

    /// When the first record at or after event time `time` arrived at a
    /// source, if it is still remembered.
    pub fn arrival(&self, time: u64) -> Option<Instant> {
        lock(&self.arrivals)
            .0
            .range(time..)
            .next()
            .map(|(_, &at)| at)
    }

    /// Observes in `histogram` the seconds since the arrival of each of
    /// `times` (event times), as far as arrivals are remembered.
    pub fn observe_since_arrival(
        &self,
        histogram: &Histogram,
        times: impl IntoIterator<Item = u64>,
    ) {
        let arrivals = lock(&self.arrivals);
        let now = Instant::now();
        for time in times {
            if let Some((_, &at)) = arrivals.0.range(time..).next() {
                histogram.observe(now.duration_since(at).as_secs_f64());
            }
        }
    }
}
