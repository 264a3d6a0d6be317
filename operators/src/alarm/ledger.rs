//! The ledger: turns alert events into changes of the active-alarm
//! collection, in event-time order, and keeps the active alarms it has
//! inserted so that a resolve retracts exactly what the firing inserted.
//! Its state is part of checkpoints; a resumed run inserts the alarms
//! active at the checkpoint again, at its frontier, so the collection a
//! resumed run builds is the one an uninterrupted run holds.

use hashbrown::HashMap;

use serde::{Deserialize, Serialize};

use super::shelf::{notice, Key, OutOfService, OutOfServiceList, Shelve, Shelves};
use crate::checkpoint::Marker;
use crate::hash::route_hash;
use crate::record::{ActiveAlarm, Alert, AlertState, ControlAction, ControlEvent};
use crate::run::{Participant, StatefulLogic};

/// A change of the active-alarm collection: an alarm, the event time it
/// changes at, and +1 (inserted) or -1 (retracted).
pub type Change = (ActiveAlarm, u64, isize);

/// What the ledger sends: changes of the active-alarm collection, and the
/// alert events, annotated (`shelved`, `acked_by`, `acked_at`), with the
/// notices of alarms shelved and unshelved while active.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A change of the collection.
    Change(Change),
    /// An alert event, for the alert sinks.
    Alert(Alert),
}

/// One worker's alarms and what control events left on them: its part of
/// a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerPart {
    /// The alarms active at the checkpoint's frontier.
    pub active: Vec<ActiveAlarm>,
    /// The last firing or escalated event of each active alarm.
    #[serde(default)]
    pub last: Vec<Alert>,
    /// The shelves in force.
    #[serde(default)]
    pub shelves: Vec<Shelve>,
    /// The devices out of service (every worker keeps them all).
    #[serde(default)]
    pub out_of_service: Vec<OutOfService>,
}

/// The worker an alarm's events go to: by rule, device and sensor.
pub fn route(rule: &str, device: &str, sensor: &str) -> u64 {
    route_hash(&[rule, device, sensor])
}

/// Whether a worker keeps an alarm.
type Owns = Box<dyn Fn(&Key) -> bool>;

/// Alert and control events waiting for the frontier, the alarms active as
/// of it, and the shelves and devices out of service.
#[derive(Default)]
pub struct Ledger {
    /// Hashed, as every alert event looks its alarm up; what goes out in
    /// their order (a checkpoint, the alarms a reload or a change of the
    /// devices out of service touches) is sorted by key first. Values
    /// boxed: an alarm or an alert event is some hundred bytes, moved on
    /// every growth of the table.
    active: HashMap<Key, Box<ActiveAlarm>>,
    last: HashMap<Key, Box<Alert>>,
    shelves: Shelves,
    out_of_service: OutOfServiceList,
    pending: Vec<Alert>,
    control: Vec<ControlEvent>,
    /// Whether this worker keeps an alarm (control events reach every
    /// worker; the alert events of an alarm reach one).
    owns: Option<Owns>,
    /// Changes made outside the events (the alarms a restored checkpoint
    /// inserts at its frontier, those a reload ends), to send.
    queued: Vec<Entry>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("active", &self.active)
            .field("shelves", &self.shelves)
            .finish_non_exhaustive()
    }
}

fn key_of(rule: &str, device: &str, sensor: &str) -> Key {
    (rule.to_owned(), device.into(), sensor.into())
}

impl Ledger {
    /// A ledger of the worker that keeps the alarms `owns` says.
    pub fn owning(owns: impl Fn(&Key) -> bool + 'static) -> Ledger {
        Ledger {
            owns: Some(Box::new(owns)),
            ..Ledger::default()
        }
    }

    /// A ledger resumed at checkpoint frontier `frontier` from `parts`,
    /// keeping what `owns` says is this worker's (by [`route`]); alarms
    /// of a rule `dropped` (changed since the checkpoint, so its states
    /// start afresh) are left out.
    pub fn restore(
        parts: Vec<LedgerPart>,
        frontier: u64,
        owns: impl Fn(&Key) -> bool + 'static,
        dropped: impl Fn(&str) -> bool,
    ) -> Ledger {
        let mut ledger = Ledger::owning(owns);
        let owns = |k: &Key| ledger.owns.as_ref().is_none_or(|o| o(k));
        let mut active = HashMap::new();
        let mut last = HashMap::new();
        let mut shelves = Shelves::default();
        let mut out_of_service: Vec<OutOfService> = Vec::new();
        let mut queued = Vec::new();
        for part in parts {
            for alarm in part.active {
                let key = key_of(&alarm.rule, &alarm.device, &alarm.sensor);
                if owns(&key) && !dropped(&alarm.rule) {
                    active.insert(key, Box::new(alarm.clone()));
                    queued.push(Entry::Change((alarm, frontier, 1)));
                }
            }
            for alert in part.last {
                let key = key_of(&alert.rule, &alert.device, &alert.sensor);
                if active.contains_key(&key) {
                    last.insert(key, Box::new(alert));
                }
            }
            for shelve in part.shelves {
                if owns(&shelve.key) {
                    shelves.insert(shelve);
                }
            }
            for oos in part.out_of_service {
                if !out_of_service.contains(&oos) {
                    out_of_service.push(oos);
                }
            }
        }
        ledger.active = active;
        ledger.last = last;
        ledger.shelves = shelves;
        ledger.out_of_service = OutOfServiceList::new(out_of_service);
        ledger.queued = queued;
        ledger
    }

    /// Ends, at `at`, the alarms `ends` says a reload ended (the evaluator
    /// starts their keys afresh, and no resolve will come for them).
    pub fn end_alarms(&mut self, ends: impl Fn(&Key) -> bool, at: u64) {
        let mut ended: Vec<Key> = self.active.keys().filter(|k| ends(k)).cloned().collect();
        ended.sort();
        for key in ended {
            if let Some(alarm) = self.active.remove(&key) {
                self.queued.push(Entry::Change((*alarm, at, -1)));
            }
            self.last.remove(&key);
        }
    }

    /// Takes alert events; they are applied once the frontier passes them.
    pub fn push(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        self.pending.extend(alerts);
    }

    /// Takes a control event (every worker gets each); it is applied once
    /// the frontier passes it, to the alarms of this worker.
    pub fn push_control(&mut self, event: ControlEvent) {
        self.control.push(event);
    }

    /// Applies the events before `until` (all of them at `None`) in
    /// event-time order, pushing what they change. At one time, shelves
    /// that end then end first, then control events apply in (partition,
    /// offset) order, then alert events in the order they came (the order
    /// their evaluator emitted them). A shelve that ends after the last
    /// event of an ended input does not end.
    pub fn advance(&mut self, until: Option<u64>, out: &mut Vec<Entry>) {
        out.append(&mut self.queued);
        self.pending.sort_by_key(|a| a.event_time);
        self.control.sort_by_key(ControlEvent::order_key);
        let before = |t: u64| until.is_none_or(|u| t < u);
        // Alert events are moved through; control events apply by reference.
        let mut alerts = std::mem::take(&mut self.pending).into_iter().peekable();
        let mut controls = std::mem::take(&mut self.control);
        let mut c = 0;
        loop {
            let ta = alerts.peek().map(|x| x.event_time).filter(|t| before(*t));
            let tc = controls.get(c).map(|x| x.event_time).filter(|t| before(*t));
            let te = (self.shelves.next_end()).filter(|t| match until {
                Some(u) => *t < u,
                None => ta.into_iter().chain(tc).any(|x| x >= *t),
            });
            let Some(t) = [ta, tc, te].into_iter().flatten().min() else {
                break;
            };
            self.expire(t, out);
            while let Some(event) = controls.get(c).filter(|x| x.event_time == t) {
                self.apply_control(event, out);
                c += 1;
            }
            while let Some(alert) = alerts.next_if(|x| x.event_time == t) {
                self.apply(alert, out);
            }
        }
        // What is left waits for the frontier.
        controls.drain(..c);
        self.pending = alerts.collect();
        self.control = controls;
    }

    /// Whether this worker keeps the alarm `key`.
    fn owns(&self, key: &Key) -> bool {
        self.owns.as_ref().is_none_or(|o| o(key))
    }

    /// Whether the alarm `key` is shelved or its device out of service.
    fn shelved(&mut self, key: &Key) -> bool {
        self.shelves.contains(key) || self.out_of_service.covers(&key.1)
    }

    /// Sets whether the active alarm `key` is shelved, at `at`: a change of
    /// the collection and a notice, if that changes it.
    fn set_shelved(&mut self, key: &Key, at: u64, out: &mut Vec<Entry>) {
        let shelved = self.shelved(key);
        let Some(alarm) = self.active.get_mut(key) else {
            return;
        };
        if alarm.shelved == shelved {
            return;
        }
        out.push(Entry::Change(((**alarm).clone(), at, -1)));
        alarm.shelved = shelved;
        out.push(Entry::Change(((**alarm).clone(), at, 1)));
        let state = match shelved {
            true => AlertState::Shelved,
            false => AlertState::Unshelved,
        };
        let last = self.last.get(key).map(|a| &**a);
        out.push(Entry::Alert(notice(last, alarm, state, at)));
    }

    /// Ends the shelves that end at or before `t`.
    fn expire(&mut self, t: u64, out: &mut Vec<Entry>) {
        if self.shelves.next_end().is_some_and(|end| end <= t) {
            for shelve in self.shelves.take_ended(t) {
                self.set_shelved(&shelve.key, shelve.until, out);
            }
        }
    }

    fn apply_control(&mut self, event: &ControlEvent, out: &mut Vec<Entry>) {
        let at = event.event_time;
        let key = key_of(&event.rule, &event.device, &event.sensor);
        match event.action {
            ControlAction::Ack if self.owns(&key) => match self.active.get_mut(&key) {
                Some(alarm) => {
                    out.push(Entry::Change(((**alarm).clone(), at, -1)));
                    alarm.acked_by = Some(event.user.clone());
                    alarm.acked_at = Some(at);
                    out.push(Entry::Change(((**alarm).clone(), at, 1)));
                }
                None => {
                    tracing::info!(rule = %event.rule, device = %event.device, sensor = %event.sensor, "Acknowledgement of an alarm that is not active: nothing to acknowledge")
                }
            },
            ControlAction::Shelve if self.owns(&key) => {
                let until = event.until.unwrap_or(at);
                let user = event.user.clone();
                let shelve = Shelve {
                    key: key.clone(),
                    until,
                    user,
                };
                self.shelves.insert(shelve);
                self.set_shelved(&key, at, out);
            }
            ControlAction::Unshelve if self.owns(&key) => {
                self.shelves.remove(&key);
                self.set_shelved(&key, at, out);
            }
            ControlAction::OutOfService => {
                (self.out_of_service).push(OutOfService::new(&event.device, &event.user, at));
                self.reshelve(at, out);
            }
            ControlAction::InService => {
                self.out_of_service.put_back(&event.device);
                self.reshelve(at, out);
            }
            ControlAction::Ack | ControlAction::Shelve | ControlAction::Unshelve => {}
        }
    }

    /// Brings whether each active alarm is shelved up to date, at `at`.
    fn reshelve(&mut self, at: u64, out: &mut Vec<Entry>) {
        let mut keys: Vec<Key> = self.active.keys().cloned().collect();
        keys.sort();
        for key in keys {
            self.set_shelved(&key, at, out);
        }
    }

    fn apply(&mut self, mut alert: Alert, out: &mut Vec<Entry>) {
        let key = key_of(&alert.rule, &alert.device, &alert.sensor);
        let at = alert.event_time;
        alert.shelved = self.shelved(&key);
        match alert.state {
            AlertState::Firing => {
                let alarm = ActiveAlarm {
                    rule: alert.rule.clone(),
                    device: alert.device.clone(),
                    sensor: alert.sensor.clone(),
                    severity: alert.severity.clone(),
                    since: at,
                    escalated: false,
                    acked_by: None,
                    acked_at: None,
                    shelved: alert.shelved,
                };
                if let Some(old) = self.active.insert(key.clone(), Box::new(alarm.clone())) {
                    out.push(Entry::Change((*old, at, -1)));
                }
                out.push(Entry::Change((alarm, at, 1)));
                self.last.insert(key, Box::new(alert.clone()));
            }
            AlertState::Escalated => {
                if let Some(alarm) = self.active.get_mut(&key) {
                    out.push(Entry::Change(((**alarm).clone(), at, -1)));
                    alarm.severity = alert.severity.clone();
                    alarm.escalated = true;
                    out.push(Entry::Change(((**alarm).clone(), at, 1)));
                    alert.acked_by = alarm.acked_by.clone();
                    alert.acked_at = alarm.acked_at;
                    self.last.insert(key, Box::new(alert.clone()));
                }
            }
            AlertState::Resolved => {
                if let Some(old) = self.active.remove(&key) {
                    alert.acked_by = old.acked_by.clone();
                    alert.acked_at = old.acked_at;
                    out.push(Entry::Change((*old, at, -1)));
                }
                self.last.remove(&key);
            }
            AlertState::Chattering | AlertState::Shelved | AlertState::Unshelved => {
                if let Some(alarm) = self.active.get(&key) {
                    alert.acked_by = alarm.acked_by.clone();
                    alert.acked_at = alarm.acked_at;
                }
            }
        }
        out.push(Entry::Alert(alert));
    }

    /// The earliest time output is still to come at; once the input
    /// `ended`, shelves no longer end.
    pub fn earliest(&self, ended: bool) -> Option<u64> {
        let queued = self.queued.iter().map(time_of);
        let pending = self.pending.iter().map(|a| a.event_time);
        let control = self.control.iter().map(|c| c.event_time);
        let shelves = self.shelves.next_end().filter(|_| !ended);
        queued.chain(pending).chain(control).chain(shelves).min()
    }

    /// The state as of the last [`Ledger::advance`]: the part of a
    /// checkpoint.
    pub fn snapshot(&self) -> LedgerPart {
        LedgerPart {
            active: sorted(&self.active),
            last: sorted(&self.last),
            shelves: self.shelves.values().cloned().collect(),
            out_of_service: self.out_of_service.as_slice().to_vec(),
        }
    }
}

/// The values of `map`, cloned, in the order of their keys.
fn sorted<V: Clone>(map: &HashMap<Key, Box<V>>) -> Vec<V> {
    let mut entries: Vec<(&Key, &Box<V>)> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries.into_iter().map(|(_, v)| (**v).clone()).collect()
}

/// The event time of an entry: a change's, or an alert event's. (Alert
/// events leave the ledger at it; changes leave together, each carrying
/// it.)
pub fn time_of(entry: &Entry) -> u64 {
    match entry {
        Entry::Change(c) => c.1,
        Entry::Alert(a) => a.event_time,
    }
}

/// The ledger operator's logic, for the stateful frame.
pub(super) struct LedgerLogic {
    pub(super) ledger: Ledger,
    pub(super) participant: Participant,
    pub(super) rules: super::RulesInForce,
}

impl StatefulLogic<Alert, Entry> for LedgerLogic {
    type Side = ControlEvent;

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

    fn side(&mut self, event: ControlEvent) -> bool {
        self.ledger.push_control(event);
        true
    }

    fn advance(&mut self, until: Option<u64>, out: &mut Vec<Entry>) {
        self.ledger.advance(until, out);
    }

    fn checkpoint(&mut self, marker: Marker) {
        // The alarms a reload starts afresh end at its frontier; they are
        // sent with the next changes.
        if let (Some(reload), Some(at)) = (self.rules.reloaded(&marker), marker.until()) {
            self.ledger.end_alarms(
                |(rule, device, sensor)| reload.ends(rule, device, sensor),
                at,
            );
        }
        self.participant
            .write(&marker, &self.ledger.snapshot(), Vec::new());
    }

    fn discard(&mut self) {
        self.ledger.pending.clear();
        self.ledger.control.clear();
    }

    fn earliest(&self, frontier: Option<u64>) -> Option<u64> {
        // Held at the frontier while the input runs, never later: a reload
        // ends alarms at the frontier of the next checkpoint, which may
        // come before any pending event.
        match frontier {
            Some(f) => Some(self.ledger.earliest(false).map_or(f, |t| t.min(f))),
            None => self.ledger.earliest(true),
        }
    }

    /// An alert travels at its event time, for the sinks. The changes of
    /// one step travel together, at the earliest time the operator may
    /// send at: each carries its time, which is where the board and the
    /// collection read it, and one message per event time cost more than
    /// the board itself.
    fn time_of(&self, entry: &Entry) -> u64 {
        match entry {
            Entry::Change(_) => 0,
            Entry::Alert(_) => time_of(entry),
        }
    }
}
