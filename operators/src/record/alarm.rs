//! Active alarms: what the alarm views of a run hold, and what the status
//! page and `GET /api/alarms` serve.

use serde::{Deserialize, Serialize};

use super::Name;

/// An alarm that is active (fired and not resolved), as the alarm views
/// keep it: one per (rule, device, sensor).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActiveAlarm {
    /// Rule name.
    pub rule: String,
    /// Device id.
    pub device: Name,
    /// Sensor name (empty for a combination rule, which judges a device).
    pub sensor: Name,
    /// Severity now: the rule's, or its escalated severity.
    pub severity: String,
    /// Event time of the firing event, ms since the epoch.
    pub since: u64,
    /// Whether the alarm has escalated.
    pub escalated: bool,
    /// Who acknowledged it (a control event), if anyone has since it fired.
    #[serde(default)]
    pub acked_by: Option<String>,
    /// When it was acknowledged (event time, ms).
    #[serde(default)]
    pub acked_at: Option<u64>,
    /// Whether it is shelved, or its device out of service: its events are
    /// not delivered to receivers.
    #[serde(default)]
    pub shelved: bool,
}

/// Where a device sits, from the device registry's `site` and `line`
/// fields (empty where the registry has no such field or no such device).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Place {
    /// The registry's `site` field.
    pub site: String,
    /// The registry's `line` field.
    pub line: String,
}

/// The alarm views as of an event-time frontier: every active alarm with
/// its place, and the number active by site, line, severity and rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AlarmBoard {
    /// Every input before this event time (ms) is accounted for; `None`
    /// until the views have passed a first time.
    pub as_of: Option<u64>,
    /// Whether the input ended (a bounded run, a replay): the views hold
    /// every input, past `as_of` too.
    pub complete: bool,
    /// Active alarms, ordered by rule, device and sensor.
    pub alarms: Vec<(ActiveAlarm, Place)>,
    /// Active alarms by dimension (`site`, `line`, `severity`, `rule`) and
    /// value (a line is `site/line`); dimensions with none active are left
    /// out.
    pub counts: Vec<(String, String, u64)>,
    /// The longest-standing active alarm of each place (the earliest
    /// `since`; ties by rule, device and sensor), by place.
    pub oldest: Vec<(Place, ActiveAlarm)>,
}
