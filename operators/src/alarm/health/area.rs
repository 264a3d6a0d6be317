//! One area's health, free of timely: activations counted per flood window
//! and per hour, the flood under way, and the active alarms' stale timers.
//! Alert events and timers are applied in event-time order; a timer at `T`
//! (a window or hour ending at `T`, an alarm stale at `T`) fires once every
//! event before `T` is applied and before any event at `T`, and its event
//! travels at `T`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::HealthConfig;
use crate::record::{Alert, AlertState, Health, HealthEvent, TopAlarm};

const HOUR_MS: u64 = 3_600_000;

/// An alarm: (rule, device, sensor).
type Key = (String, String, String);

/// A flood under way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Flood {
    start: u64,
    activations: u64,
    peak: u64,
    /// Start of its last flood window closed (over the limit).
    last: u64,
}

/// An hour not summarized yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Hour {
    activations: u64,
    chattering: u64,
    peak: u64,
    by_alarm: BTreeMap<Key, u64>,
}

/// One area's health state: its part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AreaHealth {
    /// Activations per flood window not closed yet, by window start.
    windows: BTreeMap<u64, u64>,
    flood: Option<Flood>,
    hours: BTreeMap<u64, Hour>,
    /// Active alarms: since when, and whether reported stale.
    active: BTreeMap<Key, (u64, bool)>,
}

/// A timer, in the order timers of one time fire: a flood window closes
/// before the hour it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Window(u64),
    Hour(u64),
    Stale,
}

impl AreaHealth {
    /// The next timer, and its time.
    fn next_timer(&self, config: &HealthConfig) -> Option<(u64, Timer)> {
        let w = config.flood_window_ms;
        let window = self
            .windows
            .keys()
            .next()
            .copied()
            .into_iter()
            .chain(self.flood.as_ref().map(|f| f.last + w))
            .min()
            .map(|start| (start + w, Timer::Window(start)));
        let hour = self
            .hours
            .keys()
            .next()
            .map(|start| (start + HOUR_MS, Timer::Hour(*start)));
        let stale = self
            .active
            .values()
            .filter(|(_, reported)| !reported)
            .map(|(since, _)| (since + config.stale_after_ms, Timer::Stale))
            .min();
        [window, hour, stale].into_iter().flatten().min()
    }

    /// The earliest time an event of this area may still come at.
    pub fn earliest(&self, config: &HealthConfig) -> Option<u64> {
        self.next_timer(config).map(|(t, _)| t)
    }

    /// Fires every timer before `until`.
    pub fn fire_until(
        &mut self,
        until: u64,
        config: &HealthConfig,
        area: &str,
        out: &mut Vec<HealthEvent>,
    ) {
        while let Some((at, timer)) = self.next_timer(config).filter(|(t, _)| *t < until) {
            let mut emit = |health| {
                out.push(HealthEvent {
                    area: area.to_owned(),
                    event_time: at,
                    health,
                })
            };
            match timer {
                Timer::Window(start) => {
                    let count = self.windows.remove(&start).unwrap_or(0);
                    if let Some(hour) = self.hours.get_mut(&(start / HOUR_MS * HOUR_MS)) {
                        hour.peak = hour.peak.max(count);
                    }
                    match self.flood.as_mut() {
                        Some(flood) if count > config.flood_limit => {
                            flood.activations += count;
                            flood.peak = flood.peak.max(count);
                            flood.last = start;
                        }
                        Some(flood) if flood.last + config.flood_window_ms == start => {
                            emit(Health::Flood {
                                start: flood.start,
                                end: start,
                                activations: flood.activations,
                                peak: flood.peak,
                            });
                            self.flood = None;
                        }
                        _ => {}
                    }
                }
                Timer::Hour(start) => {
                    let hour = self.hours.remove(&start).unwrap_or_default();
                    let mut top: Vec<(Key, u64)> = hour.by_alarm.into_iter().collect();
                    top.sort_by(|(a, n), (b, m)| m.cmp(n).then_with(|| a.cmp(b)));
                    top.truncate(10);
                    let windows = (HOUR_MS / config.flood_window_ms) as f64;
                    emit(Health::Rate {
                        hour_start: start,
                        activations: hour.activations,
                        average: hour.activations as f64 / windows,
                        peak: hour.peak,
                        chattering: hour.chattering,
                        top: top
                            .into_iter()
                            .map(|((rule, device, sensor), activations)| TopAlarm {
                                rule,
                                device,
                                sensor,
                                activations,
                            })
                            .collect(),
                    });
                }
                Timer::Stale => {
                    let stale = self.active.iter_mut().find(|(_, (since, reported))| {
                        !*reported && since + config.stale_after_ms == at
                    });
                    if let Some(((rule, device, sensor), (since, reported))) = stale {
                        *reported = true;
                        emit(Health::Stale {
                            rule: rule.clone(),
                            device: device.clone(),
                            sensor: sensor.clone(),
                            since: *since,
                        });
                    }
                }
            }
        }
    }

    /// Forgets the active alarms `ends` picks by rule and device, so that
    /// they are never reported stale: those of a rule a reload changed or
    /// removed (no resolve will come for them), or of a device a registry
    /// edit moved to another area (its resolve goes there). An alarm moved
    /// so is not reported stale in either area.
    pub fn forget(&mut self, ends: impl Fn(&str, &str, &str) -> bool) {
        self.active
            .retain(|(rule, device, sensor), _| !ends(rule, device, sensor));
    }

    /// Applies one alert event (every timer before it fired).
    pub fn apply(
        &mut self,
        alert: &Alert,
        config: &HealthConfig,
        area: &str,
        out: &mut Vec<HealthEvent>,
    ) {
        let t = alert.event_time;
        let key = (
            alert.rule.clone(),
            alert.device.to_string(),
            alert.sensor.to_string(),
        );
        let hour = self.hours.entry(t / HOUR_MS * HOUR_MS).or_default();
        match alert.state {
            AlertState::Firing => {
                hour.activations += 1;
                *hour.by_alarm.entry(key.clone()).or_default() += 1;
                self.active.insert(key, (t, false));
                let w = config.flood_window_ms;
                let start = t / w * w;
                let count = self.windows.entry(start).or_default();
                *count += 1;
                if *count == config.flood_limit.saturating_add(1) && self.flood.is_none() {
                    self.flood = Some(Flood {
                        start,
                        activations: 0,
                        peak: 0,
                        last: start.saturating_sub(w),
                    });
                    out.push(HealthEvent {
                        area: area.to_owned(),
                        event_time: t,
                        health: Health::FloodStarted { start },
                    });
                }
            }
            AlertState::Resolved => {
                self.active.remove(&key);
            }
            AlertState::Chattering => hour.chattering += 1,
            // Shelving changes what is delivered, not the alarm's state.
            AlertState::Escalated | AlertState::Shelved | AlertState::Unshelved => {}
        }
        if hour.activations == 0 && hour.chattering == 0 {
            self.hours.remove(&(t / HOUR_MS * HOUR_MS));
        }
    }
}
