//! Combination rules as data: all or any of several conditions on one
//! device within a span of event time. What they mean, and the state
//! machine that judges them, are in [`crate::alert::combination`].

use serde::{Deserialize, Serialize};

use super::Direction;

/// Whether a combination needs all of its conditions or any one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Mode {
    /// Every condition must hold within the span.
    All,
    /// At least one condition must hold within the span.
    Any,
}

/// One condition of a combination: a threshold on one sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// The sensor it looks at.
    pub sensor: String,
    /// Which side of the threshold breaches.
    pub direction: Direction,
    /// A reading strictly past it makes the condition hold.
    pub threshold: f64,
    /// A reading at or past it on the safe side makes a holding condition
    /// stop holding.
    pub clear: f64,
}

impl Condition {
    /// A condition without hysteresis: its clear threshold is its threshold.
    pub fn new(sensor: &str, direction: Direction, threshold: f64) -> Self {
        Condition {
            sensor: sensor.to_owned(),
            direction,
            threshold,
            clear: threshold,
        }
    }

    /// The same condition with another clear threshold.
    pub fn clear_at(mut self, clear: f64) -> Self {
        self.clear = clear;
        self
    }

    /// Whether `value` makes the condition hold.
    pub fn breaches(&self, value: f64) -> bool {
        self.direction.breaches(self.threshold, value)
    }

    /// Whether `value` makes a holding condition stop holding.
    pub fn clears(&self, value: f64) -> bool {
        self.direction.clears(self.clear, value)
    }
}

/// A combination rule: all or any of its conditions within a span of event
/// time (see [`crate::alert::combination`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Combination {
    /// All or any.
    pub mode: Mode,
    /// The conditions, in the order of the firing event's `values`.
    pub conditions: Vec<Condition>,
    /// The span, ms: a condition counts at time `t` only if its latest
    /// breaching reading is at most this old.
    pub within_ms: u64,
}

impl Combination {
    /// The sensors its conditions name, each once, in condition order.
    pub fn sensors(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for c in &self.conditions {
            if !names.contains(&c.sensor) {
                names.push(c.sensor.clone());
            }
        }
        names
    }

    /// The sensor name its alerts carry, and its state is kept under for
    /// each device: its sensors joined by `+` (`temperature+vibration`).
    pub fn key(&self) -> String {
        self.sensors().join("+")
    }
}
