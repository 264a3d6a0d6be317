//! What control events leave on alarms: shelves (until an event time) and
//! devices out of service, kept by the ledger, and the notices it sends
//! when an active alarm is shelved or unshelved.

use std::collections::BTreeSet;

use hashbrown::HashMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::record::{ActiveAlarm, Alert, AlertState};

/// An alarm's key: (rule, device, sensor).
pub type Key = (String, crate::reading::Name, crate::reading::Name);

/// A shelve of one alarm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shelve {
    /// The alarm.
    pub key: Key,
    /// When it ends (event time, ms).
    pub until: u64,
    /// Who shelved it.
    pub user: String,
}

/// Devices taken out of service: those whose id matches `glob` (a glob
/// that does not compile matches only itself; the decoder refuses such
/// events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutOfService {
    /// The glob, as the control event gave it.
    pub glob: String,
    /// Who took them out of service.
    pub user: String,
    /// Since when (event time, ms).
    pub since: u64,
}

impl OutOfService {
    /// Devices matching `glob` out of service since `since`.
    pub fn new(glob: &str, user: &str, since: u64) -> Self {
        OutOfService {
            glob: glob.to_owned(),
            user: user.to_owned(),
            since,
        }
    }
}

/// The notice of an active alarm's shelving (`AlertState::Shelved`) or
/// unshelving (`AlertState::Unshelved`) at `at`: its last firing or
/// escalated event, at the new state and time.
pub fn notice(last: Option<&Alert>, alarm: &ActiveAlarm, state: AlertState, at: u64) -> Alert {
    let mut alert = last.cloned().unwrap_or_else(|| {
        let mut a = Alert::event(&alarm.rule, &alarm.device, &alarm.sensor, state, at);
        a.severity = alarm.severity.clone();
        a
    });
    alert.state = state;
    alert.event_time = at;
    alert.shelved = state == AlertState::Shelved;
    alert.acked_by = alarm.acked_by.clone();
    alert.acked_at = alarm.acked_at;
    alert
}

/// The shelves in force, by alarm, with the order in which they end: the
/// ledger asks for the next end at every event time.
#[derive(Debug, Default)]
pub(super) struct Shelves {
    /// Hashed: every alert event asks whether its alarm is shelved.
    by_key: HashMap<Key, Shelve>,
    /// (until, alarm) of every shelve.
    ends: BTreeSet<(u64, Key)>,
}

impl Shelves {
    /// Puts `shelve` in force, in place of the alarm's earlier one.
    pub(super) fn insert(&mut self, shelve: Shelve) {
        self.remove(&shelve.key);
        self.ends.insert((shelve.until, shelve.key.clone()));
        self.by_key.insert(shelve.key.clone(), shelve);
    }

    /// Ends the alarm's shelve, if it has one.
    pub(super) fn remove(&mut self, key: &Key) -> Option<Shelve> {
        let shelve = self.by_key.remove(key)?;
        self.ends.remove(&(shelve.until, shelve.key.clone()));
        Some(shelve)
    }

    pub(super) fn contains(&self, key: &Key) -> bool {
        self.by_key.contains_key(key)
    }

    /// When the next shelve ends.
    pub(super) fn next_end(&self) -> Option<u64> {
        self.ends.first().map(|(until, _)| *until)
    }

    /// Takes out the shelves that end at or before `t`, by alarm.
    pub(super) fn take_ended(&mut self, t: u64) -> Vec<Shelve> {
        let mut ended = Vec::new();
        while self.ends.first().is_some_and(|(until, _)| *until <= t) {
            let (_, key) = self.ends.pop_first().expect("a first entry");
            ended.extend(self.by_key.remove(&key));
        }
        ended.sort_by(|a, b| a.key.cmp(&b.key));
        ended
    }

    /// Every shelve, by alarm.
    pub(super) fn values(&self) -> impl Iterator<Item = &Shelve> {
        let mut shelves: Vec<&Shelve> = self.by_key.values().collect();
        shelves.sort_by(|a, b| a.key.cmp(&b.key));
        shelves.into_iter()
    }
}

/// The devices out of service, with their globs compiled into one set,
/// and whether each device seen since the list last changed is among them:
/// every alert event asks, and a change asks for every active alarm.
#[derive(Debug, Default)]
pub(super) struct OutOfServiceList {
    list: Vec<OutOfService>,
    /// The globs of `list` that compile, as one matcher (built when first
    /// needed after a change).
    set: Option<GlobSet>,
    covered: HashMap<crate::reading::Name, bool>,
}

impl OutOfServiceList {
    pub(super) fn new(list: Vec<OutOfService>) -> Self {
        OutOfServiceList {
            list,
            set: None,
            covered: HashMap::new(),
        }
    }

    /// Whether `device` is out of service.
    pub(super) fn covers(&mut self, device: &crate::reading::Name) -> bool {
        if self.list.is_empty() {
            return false;
        }
        if let Some(covered) = self.covered.get(device) {
            return *covered;
        }
        let list = &self.list;
        let set = self.set.get_or_insert_with(|| {
            let mut set = GlobSetBuilder::new();
            list.iter()
                .filter_map(|o| Glob::new(&o.glob).ok())
                .for_each(|g| {
                    set.add(g);
                });
            set.build().unwrap_or_else(|_| GlobSet::empty())
        });
        // A glob that does not compile matches only itself.
        let covered = set.is_match(device.as_str())
            || (list.iter()).any(|o| o.glob == *device && Glob::new(&o.glob).is_err());
        self.covered.insert(device.clone(), covered);
        covered
    }

    /// Takes the devices of `oos` out of service.
    pub(super) fn push(&mut self, oos: OutOfService) {
        self.list.push(oos);
        self.set = None;
        self.covered.clear();
    }

    /// Puts the devices taken out of service by `glob` back.
    pub(super) fn put_back(&mut self, glob: &str) {
        self.list.retain(|o| o.glob != glob);
        self.set = None;
        self.covered.clear();
    }

    pub(super) fn as_slice(&self) -> &[OutOfService] {
        &self.list
    }
}
