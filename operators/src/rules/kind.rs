//! What a rule compares: the side that breaches ([`Direction`]), what it
//! observes ([`RuleInput`], [`Stat`]), its thresholds ([`Threshold`]) and
//! the kind of rule ([`RuleKind`]), each kind with its own settings.

use serde::{Deserialize, Serialize};

use super::combination::Combination;
pub use crate::record::Stat;

/// Which side of the threshold breaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Direction {
    /// Breaches when the value is strictly above the threshold.
    Above,
    /// Breaches when the value is strictly below the threshold.
    Below,
}

impl Direction {
    /// Whether `clear` is a clear threshold for `threshold`: at or below it
    /// for [`Direction::Above`], at or above it for [`Direction::Below`]
    /// (a clear threshold on the breaching side would never resolve).
    pub fn clears_at(self, threshold: f64, clear: f64) -> bool {
        match self {
            Direction::Above => clear <= threshold,
            Direction::Below => clear >= threshold,
        }
    }

    /// Whether `value` breaches `threshold`: strictly above it for
    /// [`Direction::Above`], strictly below it for [`Direction::Below`].
    pub fn breaches(self, threshold: f64, value: f64) -> bool {
        match self {
            Direction::Above => value > threshold,
            Direction::Below => value < threshold,
        }
    }

    /// Whether `value` is at or past the clear threshold `clear` on the safe
    /// side: at or below it for [`Direction::Above`], at or above it for
    /// [`Direction::Below`].
    pub fn clears(self, clear: f64, value: f64) -> bool {
        match self {
            Direction::Above => value <= clear,
            Direction::Below => value >= clear,
        }
    }

    /// Where a clear threshold must lie, in words: "at or below" or "at or above".
    pub fn clear_side(self) -> &'static str {
        match self {
            Direction::Above => "at or below",
            Direction::Below => "at or above",
        }
    }
}

/// What a rule observes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum RuleInput {
    /// Every reading.
    Readings,
    /// One statistic of tumbling windows of the given size.
    Window {
        /// Window size in milliseconds.
        size_ms: u64,
        /// The statistic compared with the threshold.
        stat: Stat,
    },
}

impl std::fmt::Display for RuleInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleInput::Readings => write!(f, "readings"),
            RuleInput::Window { size_ms, .. } => {
                let (n, unit) = [(3_600_000, "h"), (60_000, "m"), (1_000, "s")]
                    .into_iter()
                    .find(|(unit_ms, _)| size_ms % unit_ms == 0)
                    .map_or((*size_ms, "ms"), |(unit_ms, unit)| {
                        (size_ms / unit_ms, unit)
                    });
                write!(f, "windows of {n}{unit}")
            }
        }
    }
}

/// The thresholds of a rule that compares a value with them (a threshold,
/// rate-of-change or deviation rule), and what it observes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// What the rule observes: readings, or a statistic of windows.
    pub input: RuleInput,
    /// Which side of the threshold breaches.
    pub direction: Direction,
    /// The threshold.
    pub threshold: f64,
    /// The clear threshold: a firing alert resolves when a value is at or
    /// past it on the safe side. Equal to `threshold` unless hysteresis is
    /// wanted.
    pub clear: f64,
}

impl Threshold {
    /// Thresholds on readings without hysteresis.
    pub fn new(direction: Direction, threshold: f64) -> Self {
        Threshold {
            input: RuleInput::Readings,
            direction,
            threshold,
            clear: threshold,
        }
    }

    /// Whether `value` breaches the threshold.
    pub fn breaches(&self, value: f64) -> bool {
        self.direction.breaches(self.threshold, value)
    }

    /// Whether `value` clears a firing alert.
    pub fn clears(&self, value: f64) -> bool {
        self.direction.clears(self.clear, value)
    }
}

/// The kind of a rule, with its own settings: what signal it judges, and
/// how. The threshold, rate-of-change and deviation kinds share the
/// threshold state machine (hysteresis, `consecutive`, `for`, off-delay,
/// cooldown); silence and combination rules have no thresholds of their
/// own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RuleKind {
    /// The observed value itself, compared with the thresholds.
    Threshold(Threshold),
    /// The rate of change per second of event time: the change from the
    /// earliest observation at most `span_ms` before to this one, divided
    /// by the time between them. The first observation of a key has no
    /// rate and is not judged.
    RateOfChange {
        /// How far back the rate looks, in ms.
        span_ms: u64,
        /// The thresholds the rate is compared with.
        threshold: Threshold,
    },
    /// Deviation from a baseline: how many standard deviations the value
    /// lies from the mean of the key's previous `baseline` observations
    /// (`|value - mean| / σ`), so `above = 3` fires outside mean ± 3σ. Until
    /// `baseline` observations are known there is no baseline, and the
    /// observation is not judged. A flat baseline (σ = 0) gives 0 for its
    /// own value and infinity for any other.
    Deviation {
        /// How many previous observations make the baseline (at least 2).
        baseline: u32,
        /// The thresholds the deviation is compared with.
        threshold: Threshold,
    },
    /// Silence (deadman): no reading of the key for `after_ms` of event
    /// time. It watches readings. It fires once the pipeline can tell: when
    /// the key's partition has delivered readings from a later second (so
    /// a stalled or idle partition never makes its devices look silent),
    /// or at the key's next reading; it resolves at that next reading.
    Silence {
        /// How long without a reading, in ms.
        after_ms: u64,
    },
    /// Combination: all or any of several conditions on one device within
    /// a span of event time (see [`crate::alert::combination`]). It
    /// watches readings; its thresholds are the conditions'. The rule's
    /// sensors are the conditions' ([`Combination::sensors`]), and it is
    /// judged per device under the sensor name [`Combination::key`].
    Combination(Combination),
}

impl RuleKind {
    /// The thresholds of a threshold, rate-of-change or deviation rule.
    pub fn threshold(&self) -> Option<&Threshold> {
        match self {
            RuleKind::Threshold(t)
            | RuleKind::RateOfChange { threshold: t, .. }
            | RuleKind::Deviation { threshold: t, .. } => Some(t),
            RuleKind::Silence { .. } | RuleKind::Combination(_) => None,
        }
    }

    /// The thresholds of a threshold, rate-of-change or deviation rule, to
    /// change.
    pub fn threshold_mut(&mut self) -> Option<&mut Threshold> {
        match self {
            RuleKind::Threshold(t)
            | RuleKind::RateOfChange { threshold: t, .. }
            | RuleKind::Deviation { threshold: t, .. } => Some(t),
            RuleKind::Silence { .. } | RuleKind::Combination(_) => None,
        }
    }

    /// What the rule observes: silence and combination rules watch
    /// readings.
    pub fn input(&self) -> RuleInput {
        self.threshold().map_or(RuleInput::Readings, |t| t.input)
    }
}
