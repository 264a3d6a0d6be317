//! The alarm system's own health (ISA-18.2 / IEC 62682), on event time, per
//! area: floods (more than `flood_limit` activations in a flood window),
//! stale alarms (active for `stale_after`), and an hourly summary of the
//! alarm rate (average and peak per flood window), chattering events and
//! the ten most frequent alarms. An activation is a `firing` event.
//!
//! Alert events are routed by area and applied with the timers in
//! event-time order once the frontier has passed them, so the health
//! events depend only on the input; the state is part of checkpoints. When
//! the input ends (a bounded run, a replay), all time passes, as it does
//! for windows and rule durations: the last hour is summarized, a flood
//! under way ends, and alarms still active are reported stale.

mod area;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

pub use area::AreaHealth;

use super::RulesInForce;
use crate::checkpoint::Marker;
use crate::hash::route_hash;
use crate::record::{Alert, HealthEvent};
use crate::rules::RuleSet;
use crate::run::{stateful, Env, Participant, Run, Side, StatefulLogic};

/// What an area is: the registry fields alerts carry as labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AreaBy {
    /// `site/line`.
    #[default]
    Line,
    /// `site`.
    Site,
    /// One area, `all`.
    All,
}

/// How the alarm system's health is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// The flood window (ms); it divides an hour. ISA-18.2: 10 minutes.
    pub flood_window_ms: u64,
    /// A flood is more activations than this in one flood window.
    /// ISA-18.2: 10.
    pub flood_limit: u64,
    /// An alarm active this long (ms of event time) is stale. 24 hours.
    pub stale_after_ms: u64,
    /// What an area is.
    pub area: AreaBy,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            flood_window_ms: 600_000,
            flood_limit: 10,
            stale_after_ms: 86_400_000,
            area: AreaBy::Line,
        }
    }
}

impl HealthConfig {
    /// The area of `alert`'s device: from its `site` and `line` labels (the
    /// rule's labels, then the registry's fields, the later winning); `-`
    /// stands for a field it lacks.
    pub fn area_of(&self, alert: &Alert) -> String {
        self.area_from(&alert.labels)
    }

    /// The area alerts of rule `rule` on `device` have under `rules` (its
    /// labels, then the device's registry fields, as alerts carry them).
    pub fn area_in(&self, rules: &RuleSet, rule: &str, device: &str) -> String {
        match rules.rules.iter().find(|r| r.name == rule) {
            Some(rule) => self.area_from(&rules.labels(rule, device)),
            None => self.area_from(&[]),
        }
    }

    fn area_from(&self, labels: &[(String, String)]) -> String {
        let field = |name: &str| {
            labels
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map_or("-", |(_, v)| v.as_str())
        };
        match self.area {
            AreaBy::All => "all".to_owned(),
            AreaBy::Site => field("site").to_owned(),
            AreaBy::Line => format!("{}/{}", field("site"), field("line")),
        }
    }
}

/// The health events of the alarm system that `alerts` are the events of
/// (judged by `rules`), measured as `config` says.
///
/// # Examples
/// ```
/// use timely::dataflow::operators::{Capture, ToStream};
/// use timely::dataflow::operators::capture::Event;
/// use weir_operators::alarm::health::{alarm_health, HealthConfig};
/// use weir_operators::alert::{Alert, AlertState, RuleSet};
/// use weir_operators::record::Health;
/// use weir_operators::Env;
///
/// // Three activations in a minute, with a limit of 2 per minute: a flood.
/// let config = HealthConfig { flood_window_ms: 60_000, flood_limit: 2, ..HealthConfig::default() };
/// let fire = |device: &str, t: u64| Alert::event("hot", device, "temp", AlertState::Firing, t);
/// let alerts = vec![fire("d1", 1_000), fire("d2", 2_000), fire("d3", 3_000), fire("d4", 200_000)];
/// let captured = timely::example(move |scope| {
///     let env = Env::standalone(scope);
///     alarm_health(&alerts.to_stream(scope), &RuleSet::new(vec![]), config, &env).capture()
/// });
/// let events: Vec<_> = captured.iter().flat_map(|e| match e { Event::Messages(_, d) => d.clone(), Event::Progress(_) => vec![] }).collect();
/// assert_eq!(events[0].health, Health::FloodStarted { start: 0 });
/// assert_eq!(events[0].event_time, 3_000);
/// // The next minute stays within the limit: the flood ends with it.
/// assert_eq!(events[1].health, Health::Flood { start: 0, end: 60_000, activations: 3, peak: 3 });
/// assert_eq!(events[1].event_time, 120_000);
/// ```
pub fn alarm_health<'scope>(
    alerts: &Stream<'scope, u64, Vec<Alert>>,
    rules: &RuleSet,
    config: HealthConfig,
    env: &Env<'scope>,
) -> Stream<'scope, u64, Vec<HealthEvent>> {
    use timely::dataflow::operators::vec::Map;
    let (participant, markers) = env.participant("alarm_health");
    let mut areas = BTreeMap::new();
    if env.restored_frontier().is_some() {
        let scope = alerts.scope();
        let (worker, peers) = (scope.index() as u64, scope.peers() as u64);
        for part in env.restored::<HealthPart>(participant.op()) {
            for (area, health) in part.areas {
                if route_hash(&[&area]) % peers == worker {
                    areas.insert(area, health);
                }
            }
        }
        // A rule changed since the checkpoint, or gone, starts afresh; an
        // alarm whose device moved to another area is forgotten (see
        // `AreaHealth::forget_moved`).
        let ended = super::ended_since_restore(env, rules);
        for (area, health) in areas.iter_mut() {
            health.forget(|rule, _, _| ended(rule));
            health.forget(|rule, device, _| config.area_in(rules, rule, device) != *area);
        }
    }
    let logic = HealthLogic {
        config: config.clone(),
        areas,
        pending: Vec::new(),
        participant,
        run: env.run().clone(),
        rules: RulesInForce::of(rules),
    };
    let pact = Exchange::new(move |a: &Alert| route_hash(&[&config.area_of(a)]));
    let side = markers.map(Side::<()>::Marker);
    stateful(
        "AlarmHealth",
        alerts.clone(),
        pact,
        side,
        env.run().clone(),
        logic,
    )
}

/// One worker's areas: its part of a checkpoint.
#[derive(Debug, Default, Serialize, Deserialize)]
struct HealthPart {
    areas: Vec<(String, AreaHealth)>,
}

struct HealthLogic {
    config: HealthConfig,
    areas: BTreeMap<String, AreaHealth>,
    pending: Vec<Alert>,
    participant: Participant,
    run: Run,
    rules: RulesInForce,
}

impl StatefulLogic<Alert, HealthEvent> for HealthLogic {
    type Side = ();

    fn hold_from_start(&self) -> bool {
        // Restored areas may have timers.
        !self.areas.is_empty()
    }

    fn take(&mut self, batch: &mut Vec<Alert>) -> bool {
        let any = !batch.is_empty();
        self.pending.append(batch);
        any
    }

    fn advance(&mut self, until: Option<u64>, out: &mut Vec<HealthEvent>) {
        self.pending.sort_by_key(|a| a.event_time);
        let due = match until {
            Some(until) => self.pending.partition_point(|a| a.event_time < until),
            None => self.pending.len(),
        };
        let config = &self.config;
        for alert in self.pending.drain(..due) {
            let area = config.area_of(&alert);
            let health = self.areas.entry(area.clone()).or_default();
            health.fire_until(alert.event_time + 1, config, &area, out);
            health.apply(&alert, config, &area, out);
        }
        // The end of the input (a bounded run, a replay) lets all time
        // pass, as it does for windows and rule durations: whatever the
        // frontiers before it were, the same measures are taken.
        let until = until.unwrap_or(u64::MAX);
        for (area, health) in self.areas.iter_mut() {
            health.fire_until(until, config, area, out);
        }
        self.run.metrics.note_health(out);
    }

    fn checkpoint(&mut self, marker: Marker) {
        if let Some(reload) = self.rules.reloaded(&marker) {
            let rules = self.rules.rules();
            for (area, health) in self.areas.iter_mut() {
                // The alarms the reload starts afresh end without a
                // resolve; a registry edit may move a device to another
                // area, where its resolve will go: forget those here.
                health.forget(|rule, device, sensor| {
                    reload.ends(rule, device, sensor)
                        || self.config.area_in(rules, rule, device) != *area
                });
            }
        }
        let part = HealthPart {
            areas: self
                .areas
                .iter()
                .map(|(a, h)| (a.clone(), h.clone()))
                .collect(),
        };
        self.participant.write(&marker, &part, Vec::new());
    }

    fn discard(&mut self) {
        self.pending.clear();
    }

    fn earliest(&self, frontier: Option<u64>) -> Option<u64> {
        frontier?;
        let timers = self.areas.values().filter_map(|h| h.earliest(&self.config));
        let pending = self.pending.iter().map(|a| a.event_time);
        timers.chain(pending).min()
    }

    fn time_of(&self, event: &HealthEvent) -> u64 {
        event.event_time
    }
}
