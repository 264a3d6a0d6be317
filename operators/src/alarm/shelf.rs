//! What control events leave on alarms: shelves (until an event time) and
//! devices out of service, kept by the ledger, and the notices it sends
//! when an active alarm is shelved or unshelved.

use globset::{Glob, GlobMatcher};
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

/// Devices taken out of service: those whose id matches `glob`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutOfService {
    /// The glob, as the control event gave it.
    pub glob: String,
    /// Who took them out of service.
    pub user: String,
    /// Since when (event time, ms).
    pub since: u64,
    #[serde(skip)]
    matcher: Option<GlobMatcher>,
}

impl PartialEq for OutOfService {
    fn eq(&self, other: &Self) -> bool {
        (&self.glob, &self.user, self.since) == (&other.glob, &other.user, other.since)
    }
}

impl OutOfService {
    /// Devices matching `glob` out of service since `since`.
    pub fn new(glob: &str, user: &str, since: u64) -> Self {
        OutOfService {
            glob: glob.to_owned(),
            user: user.to_owned(),
            since,
            matcher: Glob::new(glob).ok().map(|g| g.compile_matcher()),
        }
    }

    /// Whether `device` is out of service by this entry (a glob that does
    /// not compile matches only itself; the decoder refuses such events).
    pub fn covers(&mut self, device: &str) -> bool {
        if self.matcher.is_none() {
            self.matcher = Glob::new(&self.glob).ok().map(|g| g.compile_matcher());
        }
        match &self.matcher {
            Some(m) => m.is_match(device),
            None => self.glob == device,
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
