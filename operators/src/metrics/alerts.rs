//! Alert events: counts by rule and severity, the latest events, and the
//! alerts firing now.

use std::collections::{BTreeMap, VecDeque};

use super::{lock, Metrics};
use crate::reading::Name;

/// One alert event, as operations show it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertEvent {
    /// Rule name.
    pub rule: Name,
    /// Severity.
    pub severity: Name,
    /// Device.
    pub device: Name,
    /// Sensor.
    pub sensor: Name,
    /// `firing`, `escalated`, `resolved` or `chattering`.
    pub state: &'static str,
    /// Event time (ms).
    pub event_time: u64,
    /// The value that caused it.
    pub value: f64,
}

/// Firing and resolved events of one rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// `firing` events.
    pub firing: u64,
    /// `resolved` events.
    pub resolved: u64,
    /// `escalated` events.
    pub escalated: u64,
    /// `chattering` events.
    pub chattering: u64,
}

/// The latest alert events, and the alerts firing now.
#[derive(Debug, Default)]
pub(super) struct AlertFeed {
    recent: VecDeque<AlertEvent>,
    /// Firing since (event time), by (rule, device, sensor).
    /// By (rule, device, sensor); hashed, as every alert event updates it.
    pub(super) firing: hashbrown::HashMap<(Name, Name, Name), AlertEvent>,
}

/// Alert events kept for the status page.
const RECENT_ALERTS: usize = 50;

impl Metrics {
    /// Counts alert events of one rule and severity.
    pub fn add_alerts(&self, rule: &str, severity: &str, counts: AlertCounts) {
        let mut alerts = lock(&self.alerts);
        let entry = alerts
            .entry((rule.to_owned(), severity.to_owned()))
            .or_default();
        entry.firing += counts.firing;
        entry.resolved += counts.resolved;
        entry.escalated += counts.escalated;
        entry.chattering += counts.chattering;
    }

    /// Alert events so far, by rule name.
    pub fn alerts_by_rule(&self) -> BTreeMap<String, AlertCounts> {
        let mut by_rule: BTreeMap<String, AlertCounts> = BTreeMap::new();
        for ((rule, _), c) in lock(&self.alerts).iter() {
            let entry = by_rule.entry(rule.clone()).or_default();
            entry.firing += c.firing;
            entry.resolved += c.resolved;
            entry.escalated += c.escalated;
            entry.chattering += c.chattering;
        }
        by_rule
    }

    /// Records alert events for operations: the latest ones, and which
    /// alerts are firing.
    pub fn note_alerts(&self, events: impl IntoIterator<Item = AlertEvent>) {
        let mut feed = lock(&self.alert_feed);
        for event in events {
            let key = (
                event.rule.clone(),
                event.device.clone(),
                event.sensor.clone(),
            );
            match (event.state, feed.firing.get_mut(&key)) {
                ("resolved", _) => {
                    feed.firing.remove(&key);
                }
                // Firing since its firing event, now at another severity.
                ("escalated", Some(firing)) => firing.severity = event.severity.clone(),
                _ => {
                    feed.firing.insert(key, event.clone());
                }
            }
            if feed.recent.len() == RECENT_ALERTS {
                feed.recent.pop_front();
            }
            feed.recent.push_back(event);
        }
    }

    /// The latest alert events (oldest first), and the firing ones (each
    /// with the event that made it fire), by rule, device and sensor.
    pub fn alert_feed(&self) -> (Vec<AlertEvent>, Vec<AlertEvent>) {
        let feed = lock(&self.alert_feed);
        let mut firing: Vec<AlertEvent> = feed.firing.values().cloned().collect();
        firing
            .sort_by(|a, b| (&a.rule, &a.device, &a.sensor).cmp(&(&b.rule, &b.device, &b.sensor)));
        (feed.recent.iter().cloned().collect(), firing)
    }
}
