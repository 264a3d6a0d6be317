//! Threshold alert rules: typed rules, their per-sensor state machine, and the
//! `evaluate_alerts` operator.
//!
//! Every rule is one state machine per (rule, device, sensor). A rule breaches
//! when a value crosses its threshold; it fires once it has breached for
//! `consecutive` observations in a row *and* for at least `for_ms` of event
//! time; it resolves when a value crosses its clear threshold (hysteresis; by
//! default the threshold itself). A cooldown suppresses a new `firing` event
//! (and its `resolved`) that comes too soon after the last one emitted.
//!
//! Observations are applied to a key's state in (event time, partition,
//! offset) order once the input frontier has passed them, and a `for` rule
//! fires when the frontier passes the moment its duration is reached. So the
//! alerts depend only on the input, never on timing or worker count.
//!
//! The rules themselves are data, in [`crate::rules`] (re-exported here).
//! This module holds the per-key state machines and
//! what they observe ([`state`]), the evaluation logic free of timely
//! ([`evaluator`]) and the operator ([`operator`]).

pub mod combination;
pub mod evaluator;
pub mod operator;
mod reload;
pub mod state;
#[cfg(test)]
mod stats_tests;
#[cfg(test)]
mod tests;
mod wiring;
pub use crate::record::{Alert, AlertState};
pub use crate::rules::{
    Chattering, Device, Direction, Limits, Modifiers, Pattern, Registry, Rule, RuleInput, RuleKind,
    RuleSet, RulesDiff, Selection, Stat, Threshold,
};
pub use evaluator::{AlertEvaluator, AlertPart};
pub use operator::{alerts, EvaluateAlerts};
pub use state::{Observation, RuleState, Transition};
