//! A gauge summed over workers, each operator instance reporting its share.

use std::time::Instant;

use super::IntGauge;

/// One operator instance's share of a gauge that sums over workers (open
/// windows, state sizes): it reports changes as they come, and takes its
/// share back when dropped.
#[derive(Debug)]
pub struct GaugeShare {
    gauge: IntGauge,
    reported: i64,
    /// When it was last set, to set it at most about once a second.
    last: Option<Instant>,
}

impl GaugeShare {
    /// A share of `gauge`, at 0.
    pub fn new(gauge: &IntGauge) -> Self {
        GaugeShare {
            gauge: gauge.clone(),
            reported: 0,
            last: None,
        }
    }

    /// Whether a second passed since the last [`GaugeShare::set`]: measuring
    /// some figures costs a walk over the state, done at that pace.
    pub fn due(&self) -> bool {
        self.last
            .is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1))
    }

    /// Sets this share to `value`.
    pub fn set(&mut self, value: usize) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.gauge.inc_by(value - self.reported);
        self.reported = value;
        self.last = Some(Instant::now());
    }
}

impl Drop for GaugeShare {
    fn drop(&mut self) {
        self.gauge.dec_by(self.reported);
    }
}
