//! What waits in the alert evaluator for the frontier: an observation
//! without the names its key's slot holds.

use super::Observation;
use crate::reading::{SensorKey, WindowAggregate};
use crate::rules::{Rule, RuleInput};

/// An observation waiting in the evaluator for the frontier, beside the
/// slot of its key: the key's names are the key's, so what waits need not
/// carry them.
pub trait Pending: 'static {
    /// Event time.
    fn time(&self) -> u64;
    /// Total order of a key's observations: event time, then origin.
    fn order(&self) -> (u64, i32, i64);
    /// Whether `rule` looks at this kind of observation.
    fn feeds(&self, rule: &Rule) -> bool;
    /// The value `rule` compares with its threshold (see
    /// [`Observation::value`]).
    fn value(&self, rule: &Rule) -> Option<f64>;
    /// Window bounds, for window aggregates.
    fn window(&self) -> Option<(u64, u64)>;
    /// The observation's own sensor, for a key of `key`'s names.
    fn sensor<'a>(&'a self, key: &'a SensorKey) -> &'a str;
}

/// A reading waiting for the frontier: 32 bytes where the reading is 88,
/// so the readings of the out-of-orderness bound take less memory and
/// cache on the way to their application.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PendingReading {
    pub(super) time: u64,
    pub(super) value: f64,
    pub(super) offset: i64,
    pub(super) partition: i32,
    /// The reading's sensor's place among a combination key's sensors, or
    /// `u8::MAX` when the key's sensor is the reading's own.
    pub(super) part: u8,
}

impl Pending for PendingReading {
    fn time(&self) -> u64 {
        self.time
    }
    fn order(&self) -> (u64, i32, i64) {
        (self.time, self.partition, self.offset)
    }
    fn feeds(&self, rule: &Rule) -> bool {
        rule.input() == RuleInput::Readings
    }
    fn value(&self, _rule: &Rule) -> Option<f64> {
        Some(self.value)
    }
    fn window(&self) -> Option<(u64, u64)> {
        None
    }
    fn sensor<'a>(&'a self, key: &'a SensorKey) -> &'a str {
        match self.part {
            u8::MAX => &key.sensor,
            part => key.sensor.split('+').nth(part.into()).unwrap_or(""),
        }
    }
}

impl Pending for WindowAggregate {
    fn time(&self) -> u64 {
        Observation::time(self)
    }
    fn order(&self) -> (u64, i32, i64) {
        Observation::order(self)
    }
    fn feeds(&self, rule: &Rule) -> bool {
        Observation::feeds(self, rule)
    }
    fn value(&self, rule: &Rule) -> Option<f64> {
        Observation::value(self, rule)
    }
    fn window(&self) -> Option<(u64, u64)> {
        Observation::window(self)
    }
    fn sensor<'a>(&'a self, _key: &'a SensorKey) -> &'a str {
        &self.sensor
    }
}
