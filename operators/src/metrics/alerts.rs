//! Alert events: counts by rule and severity, the latest events, and the
//! alarm views (the alarms active now) as the dataflow last published them.

use std::collections::{BTreeMap, VecDeque};

use super::{lock, Metrics};
use crate::reading::Name;
use crate::record::{AlarmBoard, Health, HealthEvent};

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

/// The latest alert events.
#[derive(Debug, Default)]
pub(super) struct AlertFeed {
    recent: VecDeque<AlertEvent>,
}

/// The alarm system's health as its events told it.
#[derive(Debug, Default)]
pub(super) struct HealthStatus {
    recent: VecDeque<HealthEvent>,
    /// Health events by measure.
    pub(super) by_measure: BTreeMap<&'static str, u64>,
    /// Whether a flood is under way, by area (areas that had one).
    pub(super) floods: BTreeMap<String, bool>,
}

/// Alert events kept for the status page.
pub(crate) const RECENT_ALERTS: usize = 50;

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

    /// Records alert events for operations: the latest ones.
    pub fn note_alerts(&self, events: impl IntoIterator<Item = AlertEvent>) {
        let mut feed = lock(&self.alert_feed);
        for event in events {
            if feed.recent.len() == RECENT_ALERTS {
                feed.recent.pop_front();
            }
            feed.recent.push_back(event);
        }
    }

    /// The latest alert events, oldest first.
    pub fn recent_alerts(&self) -> Vec<AlertEvent> {
        lock(&self.alert_feed).recent.iter().cloned().collect()
    }

    /// Makes `board` what [`Metrics::alarm_board`] reads: the views as
    /// they stand, which the dataflow's alarm board keeps on the first
    /// worker. A snapshot is taken when asked for, not at every frontier.
    pub fn set_alarm_board(&self, board: impl Fn() -> AlarmBoard + Send + Sync + 'static) {
        *lock(&self.alarm_board) = Some(super::AlarmBoardSource(std::sync::Arc::new(board)));
    }

    /// Records health events of the alarm system: the latest ones, the
    /// count by measure, and which areas are flooded.
    pub fn note_health(&self, events: &[HealthEvent]) {
        let mut health = lock(&self.health);
        for event in events {
            *health.by_measure.entry(event.measure()).or_default() += 1;
            match event.health {
                Health::FloodStarted { .. } => {
                    health.floods.insert(event.area.clone(), true);
                }
                Health::Flood { .. } => {
                    health.floods.insert(event.area.clone(), false);
                }
                _ => {}
            }
            if health.recent.len() == RECENT_ALERTS {
                health.recent.pop_front();
            }
            health.recent.push_back(event.clone());
        }
    }

    /// The latest health events of the alarm system, oldest first.
    pub fn recent_health(&self) -> Vec<HealthEvent> {
        lock(&self.health).recent.iter().cloned().collect()
    }

    /// The alarm views as they stand: empty until the first frontier
    /// passed them.
    pub fn alarm_board(&self) -> AlarmBoard {
        // The board is read outside this lock, so a slow snapshot holds
        // no one else up.
        let board = lock(&self.alarm_board).clone();
        board.map(|board| (board.0)()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::registry::Registry;

    use crate::record::{Health, HealthEvent};
    use crate::Metrics;

    fn scrape(metrics: &std::sync::Arc<Metrics>) -> String {
        let mut registry = Registry::with_prefix("weir");
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text
    }

    fn event(area: &str, health: Health) -> HealthEvent {
        HealthEvent {
            area: area.into(),
            event_time: 0,
            health,
        }
    }

    #[test]
    fn a_flood_is_a_gauge_of_its_area_until_it_ends_and_every_measure_is_counted() {
        let metrics = std::sync::Arc::new(Metrics::default());
        assert!(scrape(&metrics).contains("weir_alarm_health_events_total{measure=\"flood\"} 0"));
        metrics.note_health(&[
            event("north/press", Health::FloodStarted { start: 0 }),
            event("south/paint", Health::FloodStarted { start: 0 }),
        ]);
        let text = scrape(&metrics);
        assert!(
            text.contains("weir_alarm_floods{area=\"north/press\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("weir_alarm_health_events_total{measure=\"flood_started\"} 2"),
            "{text}"
        );
        let over = Health::Flood {
            start: 0,
            end: 600_000,
            activations: 12,
            peak: 12,
        };
        metrics.note_health(&[event("north/press", over)]);
        let text = scrape(&metrics);
        assert!(
            text.contains("weir_alarm_floods{area=\"north/press\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("weir_alarm_floods{area=\"south/paint\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("weir_alarm_health_events_total{measure=\"flood\"} 1"),
            "{text}"
        );
    }
}
