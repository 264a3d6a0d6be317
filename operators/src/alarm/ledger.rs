//! The ledger: turns alert events into changes of the active-alarm
//! collection, in event-time order, and keeps the active alarms it has
//! inserted so that a resolve retracts exactly what the firing inserted.
//! Its state is part of checkpoints; a resumed run inserts the alarms
//! active at the checkpoint again, at its frontier, so the collection a
//! resumed run builds is the one an uninterrupted run holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::Marker;
use crate::hash::route_hash;
use crate::reading::Name;
use crate::record::{ActiveAlarm, Alert, AlertState};
use crate::run::{Participant, StatefulLogic};

/// A change of the active-alarm collection: an alarm, the event time it
/// changes at, and +1 (inserted) or -1 (retracted).
pub type Change = (ActiveAlarm, u64, isize);

/// One worker's active alarms: its part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerPart {
    /// The alarms active at the checkpoint's frontier.
    pub active: Vec<ActiveAlarm>,
}

/// The worker an alarm's events go to: by rule, device and sensor.
pub fn route(rule: &str, device: &str, sensor: &str) -> u64 {
    route_hash(&[rule, device, sensor])
}

/// Alert events waiting for the frontier, and the alarms active as of it.
#[derive(Debug, Default)]
pub struct Ledger {
    active: BTreeMap<(String, Name, Name), ActiveAlarm>,
    pending: Vec<Alert>,
    /// Changes made outside the events (the alarms a restored checkpoint
    /// inserts at its frontier, those a reload ends), to send.
    queued: Vec<Change>,
}

impl Ledger {
    /// A ledger resumed at checkpoint frontier `frontier` with the active
    /// alarms of `parts` that `owns` (this worker's, by [`route`]); alarms
    /// of a rule `dropped` (changed since the checkpoint, so its states
    /// start afresh) are left out.
    pub fn restore(
        parts: Vec<LedgerPart>,
        frontier: u64,
        owns: impl Fn(&ActiveAlarm) -> bool,
        dropped: impl Fn(&str) -> bool,
    ) -> Ledger {
        let mut ledger = Ledger::default();
        for alarm in parts.into_iter().flat_map(|p| p.active) {
            if owns(&alarm) && !dropped(&alarm.rule) {
                let key = (
                    alarm.rule.clone(),
                    alarm.device.clone(),
                    alarm.sensor.clone(),
                );
                ledger.active.insert(key, alarm.clone());
                ledger.queued.push((alarm, frontier, 1));
            }
        }
        ledger
    }

    /// Ends, at `at`, the alarms of the rules `gone` names (a reload
    /// changed or removed them: their evaluation starts afresh, and no
    /// resolve will come for them).
    pub fn end_rules(&mut self, gone: &[String], at: u64) {
        let queued = &mut self.queued;
        self.active.retain(|(rule, _, _), alarm| {
            let ends = gone.contains(rule);
            if ends {
                queued.push((alarm.clone(), at, -1));
            }
            !ends
        });
    }

    /// Takes alert events; they are applied once the frontier passes them.
    pub fn push(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        self.pending.extend(alerts);
    }

    /// Applies the events before `until` (all of them at `None`) in
    /// event-time order, those of one time in the order they came (the
    /// order their evaluator emitted them), pushing the changes.
    pub fn advance(&mut self, until: Option<u64>, out: &mut Vec<Change>) {
        out.append(&mut self.queued);
        self.pending.sort_by_key(|a| a.event_time);
        let due = match until {
            Some(u) => self.pending.partition_point(|a| a.event_time < u),
            None => self.pending.len(),
        };
        let due: Vec<Alert> = self.pending.drain(..due).collect();
        for alert in &due {
            self.apply(alert, out);
        }
    }

    fn apply(&mut self, alert: &Alert, out: &mut Vec<Change>) {
        let key = (
            alert.rule.clone(),
            alert.device.clone(),
            alert.sensor.clone(),
        );
        let at = alert.event_time;
        match alert.state {
            AlertState::Firing => {
                let alarm = ActiveAlarm {
                    rule: alert.rule.clone(),
                    device: alert.device.clone(),
                    sensor: alert.sensor.clone(),
                    severity: alert.severity.clone(),
                    since: at,
                    escalated: false,
                };
                if let Some(old) = self.active.insert(key, alarm.clone()) {
                    out.push((old, at, -1));
                }
                out.push((alarm, at, 1));
            }
            AlertState::Escalated => {
                if let Some(alarm) = self.active.get_mut(&key) {
                    out.push((alarm.clone(), at, -1));
                    alarm.severity = alert.severity.clone();
                    alarm.escalated = true;
                    out.push((alarm.clone(), at, 1));
                }
            }
            AlertState::Resolved => {
                if let Some(old) = self.active.remove(&key) {
                    out.push((old, at, -1));
                }
            }
            AlertState::Chattering => {}
        }
    }

    /// The earliest time a change is still to come at.
    pub fn earliest(&self) -> Option<u64> {
        let queued = self.queued.iter().map(|c| c.1);
        let pending = self.pending.iter().map(|a| a.event_time);
        queued.chain(pending).min()
    }

    /// The active alarms as of the last [`Ledger::advance`]: the part of a
    /// checkpoint.
    pub fn snapshot(&self) -> LedgerPart {
        LedgerPart {
            active: self.active.values().cloned().collect(),
        }
    }
}

/// The ledger operator's logic, for the stateful frame.
pub(super) struct LedgerLogic {
    pub(super) ledger: Ledger,
    pub(super) participant: Participant,
    pub(super) rules: super::RulesInForce,
}

impl StatefulLogic<Alert, Change> for LedgerLogic {
    type Side = ();

    fn hold_from_start(&self) -> bool {
        // Restored alarms are inserted at the checkpoint's frontier, and a
        // reload may end alarms at any checkpoint's.
        true
    }

    fn take(&mut self, batch: &mut Vec<Alert>) -> bool {
        let any = !batch.is_empty();
        self.ledger.push(batch.drain(..));
        any
    }

    fn advance(&mut self, until: Option<u64>, out: &mut Vec<Change>) {
        self.ledger.advance(until, out);
    }

    fn checkpoint(&mut self, marker: Marker) {
        // The alarms of rules a reload changes end at its frontier; they
        // are sent with the next changes.
        let gone = self.rules.reloaded(&marker);
        if let (false, Some(at)) = (gone.is_empty(), marker.until()) {
            self.ledger.end_rules(&gone, at);
        }
        self.participant
            .write(&marker, &self.ledger.snapshot(), Vec::new());
    }

    fn discard(&mut self) {
        self.ledger.pending.clear();
    }

    fn earliest(&self, frontier: Option<u64>) -> Option<u64> {
        // Held at the frontier while the input runs, never later: a reload
        // ends alarms at the frontier of the next checkpoint, which may
        // come before any pending event.
        match frontier {
            Some(f) => Some(self.ledger.earliest().map_or(f, |t| t.min(f))),
            None => self.ledger.earliest(),
        }
    }

    fn time_of(change: &Change) -> u64 {
        change.1
    }
}
