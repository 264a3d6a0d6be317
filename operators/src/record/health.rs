//! Measures of the alarm system's own health (ISA-18.2), on event time:
//! floods, stale alarms, and an hourly rate summary per area.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::Record;

/// One of the alarms that fired most often in an hour.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopAlarm {
    /// Rule name.
    pub rule: String,
    /// Device id.
    pub device: String,
    /// Sensor name.
    pub sensor: String,
    /// Activations (firing events) in the hour.
    pub activations: u64,
}

/// What a health event measures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "measure", rename_all = "snake_case")]
pub enum Health {
    /// An area's activations in one flood window went past the limit, at
    /// the activation that did it.
    FloodStarted {
        /// Start of the flood (of its first flood window), ms.
        start: u64,
    },
    /// A flood is over: the first flood window after it stayed within the
    /// limit. Emitted when that window closes.
    Flood {
        /// Start of its first flood window, ms.
        start: u64,
        /// End of its last flood window, ms.
        end: u64,
        /// Activations during the flood.
        activations: u64,
        /// The most activations in one of its flood windows.
        peak: u64,
    },
    /// An alarm active for `stale_after`, at the moment it became stale.
    Stale {
        /// Rule name.
        rule: String,
        /// Device id.
        device: String,
        /// Sensor name.
        sensor: String,
        /// Event time of its firing, ms.
        since: u64,
    },
    /// An hour of an area, when it ends: ISA-18.2's average and peak
    /// alarm rates, chattering events, and the ten most frequent alarms.
    Rate {
        /// Start of the hour, ms.
        hour_start: u64,
        /// Activations in the hour.
        activations: u64,
        /// Activations per flood window, averaged over the hour.
        average: f64,
        /// The most activations in one flood window of the hour.
        peak: u64,
        /// `chattering` events in the hour.
        chattering: u64,
        /// The alarms that fired most often (up to 10; ties by rule,
        /// device and sensor).
        top: Vec<TopAlarm>,
    },
}

/// A health event of one area, at the event time it became true.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    /// The area: `site/line`, `site`, or `all` (see the health config).
    pub area: String,
    /// When it became true (ms): a flood's start, the end of the window
    /// that ended it, the moment an alarm became stale, an hour's end.
    pub event_time: u64,
    /// What it measures.
    #[serde(flatten)]
    pub health: Health,
}

impl HealthEvent {
    /// The measure's name: `flood_started`, `flood`, `stale` or `rate`.
    pub fn measure(&self) -> &'static str {
        match self.health {
            Health::FloodStarted { .. } => "flood_started",
            Health::Flood { .. } => "flood",
            Health::Stale { .. } => "stale",
            Health::Rate { .. } => "rate",
        }
    }
}

impl Record for HealthEvent {
    fn key(&self) -> Vec<u8> {
        self.area.as_bytes().to_vec()
    }
    fn payload(&self) -> Vec<u8> {
        let mut doc = serde_json::to_value(self).expect("health events serialize");
        doc["id"] = self.id().into();
        serde_json::to_vec(&doc).expect("JSON values always serialize")
    }
    fn time(&self) -> u64 {
        self.event_time
    }
    fn in_range(&self, from: u64, to: u64) -> bool {
        (from..to).contains(&self.event_time)
    }
    /// `measure|area|event_time`, and for a stale alarm its rule, device
    /// and sensor.
    fn id(&self) -> String {
        let mut id = format!("{}|{}|{}", self.measure(), self.area, self.event_time);
        if let Health::Stale {
            rule,
            device,
            sensor,
            ..
        } = &self.health
        {
            id.push_str(&format!("|{rule}|{device}|{sensor}"));
        }
        id
    }
    fn route(&self) -> u64 {
        super::hash::route_hash(&[&self.area])
    }
    fn cmp_order(&self, other: &Self) -> Ordering {
        self.id().cmp(&other.id())
    }
}

/// A health event as one flat row, as the alarm health's Parquet files hold
/// it: the fields of every measure, each `None` where the event's measure
/// has none, and the top alarms of an hour as a JSON array.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthRow {
    /// When the measure found it (ms).
    pub event_time: u64,
    /// The area.
    pub area: String,
    /// `flood_started`, `flood`, `stale` or `rate`.
    pub measure: String,
    /// A flood's first window start (`flood_started`, `flood`).
    pub start: Option<u64>,
    /// A flood's end (`flood`).
    pub end: Option<u64>,
    /// Activations (`flood`, `rate`).
    pub activations: Option<u64>,
    /// Peak activations per flood window (`flood`, `rate`).
    pub peak: Option<u64>,
    /// Average activations per flood window (`rate`).
    pub average: Option<f64>,
    /// Chattering events (`rate`).
    pub chattering: Option<u64>,
    /// The hour summarized (`rate`).
    pub hour_start: Option<u64>,
    /// The stale alarm's rule, device and sensor (`stale`).
    pub rule: Option<String>,
    /// See `rule`.
    pub device: Option<String>,
    /// See `rule`.
    pub sensor: Option<String>,
    /// Since when the stale alarm is active (`stale`).
    pub since: Option<u64>,
    /// The hour's most frequent alarms, as JSON (`rate`).
    pub top: Option<String>,
}

impl From<&HealthEvent> for HealthRow {
    fn from(e: &HealthEvent) -> HealthRow {
        let mut row = HealthRow {
            event_time: e.event_time,
            area: e.area.clone(),
            measure: e.measure().to_owned(),
            start: None,
            end: None,
            activations: None,
            peak: None,
            average: None,
            chattering: None,
            hour_start: None,
            rule: None,
            device: None,
            sensor: None,
            since: None,
            top: None,
        };
        match &e.health {
            Health::FloodStarted { start } => row.start = Some(*start),
            Health::Flood {
                start,
                end,
                activations,
                peak,
            } => {
                (row.start, row.end) = (Some(*start), Some(*end));
                (row.activations, row.peak) = (Some(*activations), Some(*peak));
            }
            Health::Stale {
                rule,
                device,
                sensor,
                since,
            } => {
                row.rule = Some(rule.clone());
                row.device = Some(device.clone());
                row.sensor = Some(sensor.clone());
                row.since = Some(*since);
            }
            Health::Rate {
                hour_start,
                activations,
                average,
                peak,
                chattering,
                top,
            } => {
                row.hour_start = Some(*hour_start);
                (row.activations, row.peak) = (Some(*activations), Some(*peak));
                (row.average, row.chattering) = (Some(*average), Some(*chattering));
                row.top = Some(serde_json::to_string(top).expect("top alarms serialize"));
            }
        }
        row
    }
}
