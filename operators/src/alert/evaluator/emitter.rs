//! Alerts from the transitions of rule states.

use std::sync::Arc;

use super::super::{Alert, AlertState, Rule, RuleSet, Transition};
use crate::reading::SensorKey;

/// Turns the transitions of a key's rule state into alerts: apart from the
/// keys, so that it is borrowed beside the state that moved.
pub(super) struct Emitter {
    /// The rule set: alerts carry its labels.
    pub(super) rules: Arc<RuleSet>,
    /// The version of `rules`, carried by every alert.
    pub(super) version: u64,
    /// What the state just moved on emitted, not yet turned into alerts.
    pub(super) transitions: Vec<Transition>,
}

impl Emitter {
    /// Turns the transitions of `rule` on `key` into alerts; returns how
    /// many were suppressed.
    pub(super) fn emit(&mut self, rule: &Rule, key: &SensorKey, out: &mut Vec<Alert>) -> u64 {
        let (set, rules_version) = (&self.rules, self.version);
        let mut suppressed = 0;
        let thresholds = rule.threshold().map(|t| (t.threshold, t.clear));
        let (threshold, clear_threshold) = (thresholds.map(|t| t.0), thresholds.map(|t| t.1));
        for t in self.transitions.drain(..) {
            if !t.emitted {
                suppressed += u64::from(t.state == AlertState::Firing);
                continue;
            }
            out.push(Alert {
                rule: rule.name.clone(),
                device: key.device.clone(),
                sensor: key.sensor.clone(),
                severity: match (&rule.modifiers.escalation, t.escalated) {
                    (Some((_, severity)), true) => severity.clone(),
                    _ => rule.severity.clone(),
                },
                state: t.state,
                event_time: t.time,
                value: t.value,
                values: t.values,
                threshold,
                clear_threshold,
                window_start: t.window.map(|w| w.0),
                window_end: t.window.map(|w| w.1),
                last_seen: t.last_seen,
                rules_version,
                labels: set.labels(rule, &key.device),
                shelved: false,
                acked_by: None,
                acked_at: None,
            });
        }
        suppressed
    }
}
