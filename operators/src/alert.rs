//! Threshold alert rules: typed rules, their per-sensor state machine, and the
//! `evaluate_alerts` operator.
//!
//! Every rule is one state machine per (rule, device, sensor). A rule breaches
//! when a value crosses its threshold; it fires once it has breached for
//! `consecutive` observations in a row *and* for at least `for_ms` of event
//! time; it resolves when a value crosses its clear threshold (hysteresis; by
//! default the threshold itself). A cooldown suppresses a new `firing` event
//! (and its `resolved`) that comes too soon after the last one emitted.
//!
//! Observations are applied to a key's state in (event time, partition,
//! offset) order once the input frontier has passed them, and a `for` rule
//! fires when the frontier passes the moment its duration is reached. So the
//! alerts depend only on the input, never on timing or worker count.

use std::collections::BTreeSet;
use std::sync::Arc;

use globset::{Glob, GlobMatcher};
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use crate::checkpoint::{least_frontier, Barrier, Env};
use crate::metrics::{AlertCounts, GaugeShare, Metrics};
use crate::reading::{KeyRef, Name, Reading, SensorKey, WindowAggregate};

/// Which side of the threshold breaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Breaches when the value is strictly above the threshold.
    Above,
    /// Breaches when the value is strictly below the threshold.
    Below,
}

/// The statistic of a window aggregate a window rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    /// Arithmetic mean.
    Mean,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Sum.
    Sum,
    /// Number of readings.
    Count,
}

impl Stat {
    /// The statistic's value for one aggregate.
    pub fn of(&self, agg: &WindowAggregate) -> f64 {
        match self {
            Stat::Mean => agg.mean(),
            Stat::Min => agg.min,
            Stat::Max => agg.max,
            Stat::Sum => agg.sum,
            Stat::Count => agg.count as f64,
        }
    }
}

/// What a rule observes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RuleInput {
    /// Every reading.
    Readings,
    /// One statistic of tumbling windows of the given size.
    Window {
        /// Window size in milliseconds.
        size_ms: u64,
        /// The statistic compared with the threshold.
        stat: Stat,
    },
}

/// One validated alert rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Unique rule name, carried by every alert.
    pub name: String,
    /// Severity label carried by every alert (e.g. "warning", "critical").
    pub severity: String,
    /// Sensor names the rule applies to; empty means every sensor.
    pub sensors: Vec<String>,
    /// Device id pattern (glob: `press-*`); `None` means every device.
    pub devices: Option<GlobMatcher>,
    /// Which side of the threshold breaches.
    pub direction: Direction,
    /// The threshold.
    pub threshold: f64,
    /// The clear threshold: a firing alert resolves when a value is at or past
    /// it on the safe side. Equal to `threshold` unless hysteresis is wanted.
    pub clear: f64,
    /// Breaching observations in a row needed to fire (at least 1).
    pub consecutive: u32,
    /// Event time the breach must last before firing, in ms (0: at once).
    pub for_ms: u64,
    /// Minimum event time between two emitted `firing` events, in ms.
    pub cooldown_ms: u64,
    /// What the rule observes.
    pub input: RuleInput,
}

impl Rule {
    /// A rule on readings with defaults: no hysteresis, fires on the first
    /// breaching reading, no cooldown, every device.
    pub fn new(name: &str, sensor: &str, direction: Direction, threshold: f64) -> Self {
        Rule {
            name: name.to_owned(),
            severity: "warning".to_owned(),
            sensors: vec![sensor.to_owned()],
            devices: None,
            direction,
            threshold,
            clear: threshold,
            consecutive: 1,
            for_ms: 0,
            cooldown_ms: 0,
            input: RuleInput::Readings,
        }
    }

    /// Restricts the rule to devices matching a glob pattern.
    pub fn devices(mut self, pattern: &str) -> Result<Self, globset::Error> {
        self.devices = Some(Glob::new(pattern)?.compile_matcher());
        Ok(self)
    }

    /// Whether `value` breaches the threshold.
    pub fn breaches(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value > self.threshold,
            Direction::Below => value < self.threshold,
        }
    }

    /// Whether `value` clears a firing alert.
    pub fn clears(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value <= self.clear,
            Direction::Below => value >= self.clear,
        }
    }

    /// Whether the rule applies to this device and sensor.
    pub fn selects(&self, device: &str, sensor: &str) -> bool {
        (self.sensors.is_empty() || self.sensors.iter().any(|s| s == sensor))
            && self.devices.as_ref().is_none_or(|m| m.is_match(device))
    }
}

/// A set of rules, shared by all workers.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// Wraps a list of rules.
    pub fn new(rules: Vec<Rule>) -> Self {
        RuleSet { rules }
    }

    /// The distinct window sizes that window rules need, in ms, ascending.
    pub fn window_sizes(&self) -> Vec<u64> {
        let sizes: BTreeSet<u64> = self
            .rules
            .iter()
            .filter_map(|r| match r.input {
                RuleInput::Window { size_ms, .. } => Some(size_ms),
                RuleInput::Readings => None,
            })
            .collect();
        sizes.into_iter().collect()
    }

    /// Whether any rule observes readings directly.
    pub fn has_reading_rules(&self) -> bool {
        self.rules.iter().any(|r| r.input == RuleInput::Readings)
    }
}

/// Whether an alert event starts or ends an alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// The rule's condition became true.
    Firing,
    /// The value crossed back past the clear threshold.
    Resolved,
}

impl AlertState {
    /// The name used in JSON: `firing` or `resolved`.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One alert event. The alert topic receives it as [`Alert::to_json`], keyed
/// by device.
///
/// Alerts travel between workers, which timely encodes with bincode: a
/// format that is not self-describing, so every field is always serialized
/// (no `skip_serializing_if`); fields are omitted from the JSON only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Rule name.
    pub rule: String,
    /// Device id.
    pub device: Name,
    /// Sensor name.
    pub sensor: Name,
    /// Rule severity.
    pub severity: String,
    /// `firing` or `resolved`.
    pub state: AlertState,
    /// Event time at which the state changed, ms since the epoch.
    pub event_time: u64,
    /// The value that fired or cleared the alert.
    pub value: f64,
    /// For a firing event, the breaching values that fired it (the last
    /// `consecutive` of them); for a resolved event, the clearing value.
    pub values: Vec<f64>,
    /// The rule's threshold.
    pub threshold: f64,
    /// The rule's clear threshold.
    pub clear_threshold: f64,
    /// Start of the window, for window rules.
    pub window_start: Option<u64>,
    /// End of the window, for window rules.
    pub window_end: Option<u64>,
}

impl Alert {
    /// The alert's identity, the same in every run over the same input:
    /// `rule|device|sensor|state|event_time`. Sinks use it to deliver each
    /// alert once across restarts.
    pub fn id(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.rule,
            self.device,
            self.sensor,
            self.state.as_str(),
            self.event_time
        )
    }

    /// The JSON document written to the alert topic: its [`Alert::id`] and
    /// every field, with `window_start` and `window_end` present only for
    /// window rules.
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "id": self.id(),
            "rule": self.rule,
            "device": self.device,
            "sensor": self.sensor,
            "severity": self.severity,
            "state": self.state,
            "event_time": self.event_time,
            "value": self.value,
            "values": self.values,
            "threshold": self.threshold,
            "clear_threshold": self.clear_threshold,
        });
        if let (Some(start), Some(end)) = (self.window_start, self.window_end) {
            doc["window_start"] = start.into();
            doc["window_end"] = end.into();
        }
        doc
    }

    /// The order alerts are delivered in: by event time, then by identity.
    pub fn order_key(&self) -> (u64, &str, &str, &str, AlertState) {
        (
            self.event_time,
            &self.device,
            &self.sensor,
            &self.rule,
            self.state,
        )
    }
}

/// One value a rule state machine observes: a reading or a window aggregate.
pub trait Observation: Clone + 'static {
    /// Device id.
    fn device(&self) -> &str;
    /// Sensor name.
    fn sensor(&self) -> &str;
    /// Event time of the observation.
    fn time(&self) -> u64;
    /// Total order of a key's observations: event time, then origin.
    fn order(&self) -> (u64, i32, i64);
    /// Whether `rule` looks at this kind of observation.
    fn feeds(&self, rule: &Rule) -> bool;
    /// The value `rule` compares with its threshold.
    fn value(&self, rule: &Rule) -> f64;
    /// Window bounds, for window aggregates.
    fn window(&self) -> Option<(u64, u64)>;
    /// Routing hash of the key.
    fn route(&self) -> u64;
}

impl Observation for Reading {
    fn device(&self) -> &str {
        &self.device
    }
    fn sensor(&self) -> &str {
        &self.sensor
    }
    fn time(&self) -> u64 {
        self.time
    }
    fn order(&self) -> (u64, i32, i64) {
        Reading::order(self)
    }
    fn feeds(&self, rule: &Rule) -> bool {
        rule.input == RuleInput::Readings
    }
    fn value(&self, _rule: &Rule) -> f64 {
        self.value
    }
    fn window(&self) -> Option<(u64, u64)> {
        None
    }
    fn route(&self) -> u64 {
        self.route
    }
}

impl Observation for WindowAggregate {
    fn device(&self) -> &str {
        &self.device
    }
    fn sensor(&self) -> &str {
        &self.sensor
    }
    fn time(&self) -> u64 {
        self.window_end
    }
    fn order(&self) -> (u64, i32, i64) {
        (self.window_end, 0, 0)
    }
    fn feeds(&self, rule: &Rule) -> bool {
        matches!(rule.input, RuleInput::Window { size_ms, .. } if size_ms == self.window_end - self.window_start)
    }
    fn value(&self, rule: &Rule) -> f64 {
        match rule.input {
            RuleInput::Window { stat, .. } => stat.of(self),
            RuleInput::Readings => self.mean(),
        }
    }
    fn window(&self) -> Option<(u64, u64)> {
        Some((self.window_start, self.window_end))
    }
    fn route(&self) -> u64 {
        SensorKey::route_hash(&self.device, &self.sensor)
    }
}

/// The state of one rule for one sensor. Plain data, so a checkpoint can
/// snapshot it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    /// In the firing state (whether or not the firing event was emitted).
    pub firing: bool,
    /// The current firing was emitted (not suppressed by the cooldown).
    pub emitted: bool,
    /// Breaching observations in a row.
    pub streak: u32,
    /// Event time of the first observation of the current breach.
    pub breach_since: Option<u64>,
    /// The latest breaching values, at most `consecutive` of them.
    pub recent: Vec<f64>,
    /// Event time of the last emitted firing event.
    pub last_fired: Option<u64>,
    /// Window of the latest breaching observation, for window rules.
    pub window: Option<(u64, u64)>,
}

/// A state change of one rule state machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// Firing or resolved.
    pub state: AlertState,
    /// Event time of the change.
    pub time: u64,
    /// The value that caused it.
    pub value: f64,
    /// The breaching values that fired it (firing only).
    pub values: Vec<f64>,
    /// False when the cooldown suppressed the event.
    pub emitted: bool,
    /// For window rules: the window of the observation that fired (the last
    /// breaching one) or resolved the alert.
    pub window: Option<(u64, u64)>,
}

impl RuleState {
    /// Applies one observation at event time `time` (of `window`, for window
    /// rules). Observations must come in event-time order. Appends the
    /// resulting state changes to `out`.
    pub fn observe(
        &mut self,
        rule: &Rule,
        time: u64,
        value: f64,
        window: Option<(u64, u64)>,
        out: &mut Vec<Transition>,
    ) {
        // A duration reached before this observation fires first, at the moment it was reached.
        self.advance(rule, time, out);
        if self.firing {
            if rule.clears(value) {
                out.push(Transition {
                    state: AlertState::Resolved,
                    time,
                    value,
                    values: vec![value],
                    emitted: self.emitted,
                    window,
                });
                self.firing = false;
                self.emitted = false;
                self.reset_breach();
            }
        } else if rule.breaches(value) {
            self.streak += 1;
            let since = *self.breach_since.get_or_insert(time);
            if self.recent.len() == rule.consecutive as usize {
                self.recent.remove(0);
            }
            self.recent.push(value);
            self.window = window;
            if self.streak >= rule.consecutive && time - since >= rule.for_ms {
                self.fire(rule, time, value, out);
            }
        } else {
            self.reset_breach();
        }
    }

    /// Tells the state that no observation earlier than `time` remains: a
    /// breach that has lasted `for_ms` by then fires, at the moment it did.
    pub fn advance(&mut self, rule: &Rule, time: u64, out: &mut Vec<Transition>) {
        if let Some(deadline) = self.deadline(rule) {
            if deadline <= time {
                let value = self.recent.last().copied().unwrap_or(f64::NAN);
                self.fire(rule, deadline, value, out);
            }
        }
    }

    /// The event time at which the current breach fires by duration, if it
    /// is waiting for one.
    pub fn deadline(&self, rule: &Rule) -> Option<u64> {
        match self.breach_since {
            Some(since) if !self.firing && rule.for_ms > 0 && self.streak >= rule.consecutive => {
                Some(since + rule.for_ms)
            }
            _ => None,
        }
    }

    fn fire(&mut self, rule: &Rule, time: u64, value: f64, out: &mut Vec<Transition>) {
        let cooled = self
            .last_fired
            .is_none_or(|last| time >= last.saturating_add(rule.cooldown_ms));
        self.firing = true;
        self.emitted = cooled;
        if cooled {
            self.last_fired = Some(time);
        }
        out.push(Transition {
            state: AlertState::Firing,
            time,
            value,
            values: std::mem::take(&mut self.recent),
            emitted: cooled,
            window: self.window,
        });
        self.streak = 0;
        self.breach_since = None;
    }

    fn reset_breach(&mut self) {
        self.streak = 0;
        self.breach_since = None;
        self.recent.clear();
    }
}

/// Per-key state of the alert operator: the rules that select the key, their
/// state machines, and the observations waiting for the frontier.
struct KeyState<O> {
    key: SensorKey,
    /// (rule index, state) for every rule that selects this key.
    rules: Vec<(usize, RuleState)>,
    pending: Vec<O>,
    /// Listed in [`AlertEvaluator::dirty`].
    dirty: bool,
}

/// The alert evaluation logic, free of timely: feed observations with
/// [`AlertEvaluator::push`], then call [`AlertEvaluator::advance_to`] as the
/// frontier moves.
pub struct AlertEvaluator<O> {
    rules: Arc<RuleSet>,
    index: HashMap<SensorKey, usize>,
    keys: Vec<KeyState<O>>,
    /// Keys with pending observations, each once.
    dirty: Vec<usize>,
    /// Earliest time among the observations left pending by `advance_to`.
    pending_min: Option<u64>,
    /// Armed duration deadlines: (deadline, key, slot).
    deadlines: BTreeSet<(u64, usize, usize)>,
    transitions: Vec<Transition>,
    /// Every sensor name some rule lists, or `None` if a rule takes every
    /// sensor: a cheap test that skips most readings before any lookup.
    sensors: Option<Vec<String>>,
    /// Observations before this time were applied before a restart.
    floor: u64,
}

/// [`AlertEvaluator::snapshot_view`]: serializes as an [`AlertPart`] (a
/// struct of one sequence of `(key, [(name, state)])`), from borrowed state.
struct PartView<'a, O>(&'a AlertEvaluator<O>);

impl<O: Observation> Serialize for PartView<'_, O> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        /// A sequence of `len` items, serialized from a clone of `items`.
        struct Seq<I> {
            items: I,
            len: usize,
        }
        impl<I: Iterator<Item = T> + Clone, T: Serialize> Serialize for Seq<I> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.len))?;
                for item in self.items.clone() {
                    seq.serialize_element(&item)?;
                }
                seq.end()
            }
        }
        let evaluator = self.0;
        let keys = evaluator.saved_keys().map(|k| {
            let states = evaluator.saved_states(k);
            let len = states.clone().count();
            (&k.key, Seq { items: states, len })
        });
        let len = evaluator.saved_keys().count();
        let mut part = serializer.serialize_struct("AlertPart", 1)?;
        part.serialize_field("keys", &Seq { items: keys, len })?;
        part.end()
    }
}

/// The rule states of an alert operator: its part of a checkpoint. States
/// are kept by rule name, so a restart with changed rules keeps the state of
/// every rule that kept its name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertPart {
    /// Per key, the states that differ from the initial state.
    pub keys: Vec<(SensorKey, Vec<(String, RuleState)>)>,
}

impl<O: Observation> AlertEvaluator<O> {
    /// An evaluator for a rule set.
    pub fn new(rules: Arc<RuleSet>) -> Self {
        let sensors = rules.rules.iter().try_fold(Vec::new(), |mut names, r| {
            if r.sensors.is_empty() {
                return None;
            }
            names.extend(
                r.sensors
                    .iter()
                    .filter(|s| !names.contains(*s))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            Some(names)
        });
        AlertEvaluator {
            sensors,
            rules,
            index: HashMap::default(),
            keys: Vec::new(),
            dirty: Vec::new(),
            pending_min: None,
            deadlines: BTreeSet::new(),
            transitions: Vec::new(),
            floor: 0,
        }
    }

    /// The rule states as of the last [`AlertEvaluator::advance_to`]:
    /// observations not yet applied are left out (after a restart they are
    /// read again).
    pub fn snapshot(&self) -> AlertPart {
        let keys = self
            .saved_keys()
            .map(|k| {
                let states = self
                    .saved_states(k)
                    .map(|(name, state)| (name.to_owned(), state.clone()))
                    .collect();
                (k.key.clone(), states)
            })
            .collect();
        AlertPart { keys }
    }

    /// The state as a checkpoint part, without copying it: it encodes
    /// exactly as [`AlertEvaluator::snapshot`] does.
    pub fn snapshot_view(&self) -> impl Serialize + '_ {
        PartView(self)
    }

    /// The keys with a state that differs from the initial one.
    fn saved_keys(&self) -> impl Iterator<Item = &KeyState<O>> + Clone + '_ {
        self.keys
            .iter()
            .filter(|k| k.rules.iter().any(|(_, s)| *s != RuleState::default()))
    }

    /// A key's states that differ from the initial one, by rule name.
    fn saved_states<'a>(
        &'a self,
        k: &'a KeyState<O>,
    ) -> impl Iterator<Item = (&'a str, &'a RuleState)> + Clone + 'a {
        k.rules
            .iter()
            .filter(|(_, state)| *state != RuleState::default())
            .map(|(i, state)| (self.rules.rules[*i].name.as_str(), state))
    }

    /// Restores the states of `parts` for which `mine` holds (the keys this
    /// worker owns), for rules that still exist, as of a checkpoint at
    /// `frontier`: observations before it are ignored from now on.
    pub fn restore(
        &mut self,
        parts: Vec<AlertPart>,
        frontier: u64,
        mine: impl Fn(&SensorKey) -> bool,
    ) {
        self.floor = frontier;
        for (key, states) in parts.into_iter().flat_map(|p| p.keys) {
            if !mine(&key) {
                continue;
            }
            let rules: Vec<(usize, RuleState)> = self
                .rules
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.selects(&key.device, &key.sensor))
                .map(|(i, r)| {
                    let state = states.iter().find(|(name, _)| *name == r.name);
                    (i, state.map(|(_, s)| s.clone()).unwrap_or_default())
                })
                .collect();
            let slot = self.keys.len();
            for (i, (rule, state)) in rules.iter().enumerate() {
                if let Some(deadline) = state.deadline(&self.rules.rules[*rule]) {
                    self.deadlines.insert((deadline, slot, i));
                }
            }
            self.index.insert(key.clone(), slot);
            self.keys.push(KeyState {
                key,
                rules,
                pending: Vec::new(),
                dirty: false,
            });
        }
    }

    /// Drops every observation not yet applied (a stop: what comes after
    /// them is unknown).
    pub fn discard_pending(&mut self) {
        for slot in std::mem::take(&mut self.dirty) {
            let key = &mut self.keys[slot];
            key.pending.clear();
            key.dirty = false;
        }
        self.pending_min = None;
        self.deadlines.clear();
    }

    /// Keys (device, sensor) seen.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The rule states held, and an estimate of the bytes held with the
    /// observations waiting for the frontier. It walks every key.
    pub fn footprint(&self) -> (usize, usize) {
        use std::mem::size_of;
        let states: usize = self.keys.iter().map(|k| k.rules.len()).sum();
        let slots: usize = self.keys.iter().map(|k| k.rules.capacity()).sum();
        let pending: usize = self.keys.iter().map(|k| k.pending.capacity()).sum();
        let per_key = size_of::<KeyState<O>>() + size_of::<(SensorKey, usize)>() + 1;
        let bytes = self.keys.capacity() * per_key
            + slots * size_of::<(usize, RuleState)>()
            + pending * size_of::<O>();
        (states, bytes)
    }

    /// Queues one observation; returns false if no rule looks at it.
    pub fn push(&mut self, obs: O) -> bool {
        if obs.time() < self.floor {
            return false;
        }
        if let Some(sensors) = &self.sensors {
            if !sensors.iter().any(|s| s == obs.sensor()) {
                return false;
            }
        }
        let slot = match self.index.get(&KeyRef::new(obs.device(), obs.sensor())) {
            Some(slot) => *slot,
            None => {
                let rules = self
                    .rules
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| obs.feeds(r) && r.selects(obs.device(), obs.sensor()))
                    .map(|(i, _)| (i, RuleState::default()))
                    .collect();
                let key = SensorKey {
                    device: Name::new(obs.device()),
                    sensor: Name::new(obs.sensor()),
                };
                self.keys.push(KeyState {
                    key: key.clone(),
                    rules,
                    pending: Vec::new(),
                    dirty: false,
                });
                self.index.insert(key, self.keys.len() - 1);
                self.keys.len() - 1
            }
        };
        let state = &mut self.keys[slot];
        if state.rules.is_empty() {
            return false;
        }
        self.pending_min = Some(self.pending_min.map_or(obs.time(), |t| t.min(obs.time())));
        state.pending.push(obs);
        if !state.dirty {
            state.dirty = true;
            self.dirty.push(slot);
        }
        true
    }

    /// The earliest event time at which a later call of `advance_to` may
    /// still produce an alert: the earliest pending observation or armed
    /// deadline.
    pub fn earliest_pending(&self) -> Option<u64> {
        let deadline = self.deadlines.first().map(|(d, _, _)| *d);
        match (self.pending_min, deadline) {
            (Some(p), Some(d)) => Some(p.min(d)),
            (p, d) => p.or(d),
        }
    }

    /// Applies every observation earlier than `frontier` (all of them when
    /// `None`, the input has ended) in (time, partition, offset) order, fires
    /// durations reached before `frontier`, and appends emitted alerts to
    /// `out`. At the end of input, breaches still waiting for their duration
    /// are dropped: no observation shows them lasting that long. Returns the
    /// number of suppressed firings.
    pub fn advance_to(&mut self, frontier: Option<u64>, out: &mut Vec<Alert>) -> u64 {
        let limit = frontier.unwrap_or(u64::MAX);
        let mut suppressed = 0;
        let dirty = std::mem::take(&mut self.dirty);
        self.pending_min = None;
        for slot in dirty {
            let key = &mut self.keys[slot];
            key.pending.sort_by_key(|o| o.order());
            let ready = key.pending.partition_point(|o| o.time() < limit);
            for obs in key.pending.drain(..ready) {
                for (i, (rule_idx, state)) in key.rules.iter_mut().enumerate() {
                    let rule = &self.rules.rules[*rule_idx];
                    // One evaluator sees one kind of observation; guard anyway.
                    if !obs.feeds(rule) {
                        continue;
                    }
                    let before = state.deadline(rule);
                    let value = obs.value(rule);
                    state.observe(rule, obs.time(), value, obs.window(), &mut self.transitions);
                    let after = state.deadline(rule);
                    if before != after {
                        if let Some(d) = before {
                            self.deadlines.remove(&(d, slot, i));
                        }
                        if let Some(d) = after {
                            self.deadlines.insert((d, slot, i));
                        }
                    }
                    suppressed += emit(rule, &key.key, &mut self.transitions, out);
                }
            }
            key.dirty = !key.pending.is_empty();
            if key.dirty {
                self.dirty.push(slot);
                let min = key
                    .pending
                    .iter()
                    .map(|o| o.time())
                    .min()
                    .unwrap_or(u64::MAX);
                self.pending_min = Some(self.pending_min.map_or(min, |t| t.min(min)));
            }
        }
        // Durations that the frontier has reached fire now. When the input
        // has ended, no observation shows the remaining breaches lasting
        // until their deadlines: they are dropped, not fired.
        let Some(frontier) = frontier else {
            self.deadlines.clear();
            return suppressed;
        };
        while let Some(&(deadline, slot, i)) = self.deadlines.first() {
            // A deadline at the frontier itself waits: a reading at that very
            // time fires it first anyway, and a checkpoint at the frontier
            // must not hold anything at or after it.
            if deadline >= frontier {
                break;
            }
            self.deadlines.pop_first();
            let key = &mut self.keys[slot];
            let (rule_idx, state) = &mut key.rules[i];
            let rule = &self.rules.rules[*rule_idx];
            state.advance(rule, deadline, &mut self.transitions);
            suppressed += emit(rule, &key.key, &mut self.transitions, out);
        }
        suppressed
    }
}

/// Turns transitions into alerts; returns how many were suppressed.
fn emit(
    rule: &Rule,
    key: &SensorKey,
    transitions: &mut Vec<Transition>,
    out: &mut Vec<Alert>,
) -> u64 {
    let mut suppressed = 0;
    for t in transitions.drain(..) {
        if !t.emitted {
            suppressed += u64::from(t.state == AlertState::Firing);
            continue;
        }
        out.push(Alert {
            rule: rule.name.clone(),
            device: key.device.clone(),
            sensor: key.sensor.clone(),
            severity: rule.severity.clone(),
            state: t.state,
            event_time: t.time,
            value: t.value,
            values: t.values,
            threshold: rule.threshold,
            clear_threshold: rule.clear,
            window_start: t.window.map(|w| w.0),
            window_end: t.window.map(|w| w.1),
        });
    }
    suppressed
}

/// Evaluates alert rules on a stream of readings or window aggregates.
pub trait EvaluateAlerts<'scope> {
    /// Applies every rule that selects an observation's (device, sensor) and
    /// looks at its kind (readings, or windows of the rule's size), and emits
    /// `firing` and `resolved` events.
    ///
    /// Observations are exchanged by (device, sensor), so one worker owns each
    /// key's state. They are applied in (event time, partition, offset) order
    /// once the input frontier has passed them; a `for` duration fires when
    /// the frontier passes the moment it is reached. Each alert travels at its
    /// own event time, so a downstream operator can order alerts by event time
    /// once its frontier passes them. Alerts depend only on the input.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use weir_operators::alert::{AlertState, Direction, EvaluateAlerts, Rule, RuleSet};
    /// use weir_operators::{Env, Reading};
    ///
    /// let rule = Rule { consecutive: 2, ..Rule::new("hot", "temp", Direction::Above, 90.0) };
    /// let rules = Arc::new(RuleSet::new(vec![rule]));
    /// let readings = vec![
    ///     Reading::new("d1", "temp", 1_000, 95.0, 0, 0),
    ///     Reading::new("d1", "temp", 2_000, 96.0, 0, 1), // second breach in a row: fires
    ///     Reading::new("d1", "temp", 3_000, 80.0, 0, 2), // back under: resolves
    /// ];
    /// let captured = timely::example(move |scope| {
    ///     let env = Env::standalone(scope);
    ///     readings.to_stream(scope).evaluate_alerts(rules, &env).capture()
    /// });
    /// let alerts: Vec<_> = captured.iter().flat_map(|e| match e { Event::Messages(_, d) => d, Event::Progress(_) => vec![] }).collect();
    /// let states: Vec<_> = alerts.iter().map(|a| (a.state, a.event_time)).collect();
    /// assert_eq!(states, vec![(AlertState::Firing, 2_000), (AlertState::Resolved, 3_000)]);
    /// assert_eq!(alerts[0].values, vec![95.0, 96.0]);
    /// ```
    fn evaluate_alerts(
        self,
        rules: Arc<RuleSet>,
        env: &Env<'scope>,
    ) -> Stream<'scope, u64, Vec<Alert>>;
}

impl<'scope, O> EvaluateAlerts<'scope> for Stream<'scope, u64, Vec<O>>
where
    O: Observation + timely::ExchangeData,
{
    fn evaluate_alerts(
        self,
        rules: Arc<RuleSet>,
        env: &Env<'scope>,
    ) -> Stream<'scope, u64, Vec<Alert>> {
        // With one worker, routing by key is a no-op: skip the exchange.
        if self.scope().peers() == 1 {
            alert_operator(self, Pipeline, rules, env)
        } else {
            alert_operator(self, Exchange::new(|o: &O| o.route()), rules, env)
        }
    }
}

fn alert_operator<'scope, O, P>(
    stream: Stream<'scope, u64, Vec<O>>,
    pact: P,
    rules: Arc<RuleSet>,
    env: &Env<'scope>,
) -> Stream<'scope, u64, Vec<Alert>>
where
    O: Observation + timely::ExchangeData,
    P: ParallelizationContract<u64, Vec<O>>,
{
    let run = env.run().clone();
    let (participant, markers) = env.participant("alerts");
    let mut evaluator = AlertEvaluator::new(rules);
    if let Some(frontier) = env.restored_frontier() {
        let (worker, peers) = (stream.scope().index() as u64, stream.scope().peers() as u64);
        let parts = env.restored::<AlertPart>(participant.op());
        evaluator.restore(parts, frontier, |k| {
            SensorKey::route_hash(&k.device, &k.sensor) % peers == worker
        });
    }
    stream.binary_frontier(
        markers,
        pact,
        Pipeline,
        "EvaluateAlerts",
        move |_cap, _info| {
            let mut held: Option<Capability<u64>> = None;
            let mut alerts = Vec::new();
            let mut barrier = Barrier::default();
            let mut states = GaugeShare::new(&run.metrics.rule_states);
            let mut bytes = GaugeShare::new(&run.metrics.rule_state_bytes);
            let mut keys_seen = 0;
            move |(input, frontier), (marker_input, marker_frontier), output| {
                input.for_each_stamp(|cap, data| {
                    let mut any = false;
                    for batch in data {
                        for obs in batch.drain(..) {
                            any |= evaluator.push(obs);
                        }
                    }
                    if any
                        && held
                            .as_ref()
                            .is_none_or(|h| cap.least().is_some_and(|t| t < h.time()))
                    {
                        held = cap.retain_least(output.output_index());
                    }
                });
                marker_input.for_each(|_, markers| barrier.receive(markers));
                let frontier = least_frontier(
                    frontier.frontier().first().copied(),
                    marker_frontier.frontier().first().copied(),
                );
                let stopped = frontier.is_none() && run.control.stop_requested();
                // Each checkpoint sees the state exactly at its frontier.
                let mut steps = Vec::new();
                while let Some(marker) = barrier.next_due(frontier) {
                    steps.push((marker.until(), Some(marker)));
                }
                steps.push((frontier, None));
                for (until, marker) in steps {
                    if stopped && marker.is_none() {
                        // A stop: what the pending observations would lead to
                        // depends on input not read yet.
                        evaluator.discard_pending();
                        held = None;
                        continue;
                    }
                    let suppressed = evaluator.advance_to(until, &mut alerts);
                    Metrics::add(&run.metrics.alerts_suppressed, suppressed);
                    if let Some(cap) = held.as_mut() {
                        emit_alerts(&mut alerts, cap, output, &run.metrics);
                    }
                    if let Some(marker) = marker {
                        participant.write(&marker, &evaluator.snapshot_view(), Vec::new());
                    }
                }
                // The walk over every key is done at most once a second,
                // unless keys were added.
                if states.due() || frontier.is_none() || evaluator.key_count() != keys_seen {
                    keys_seen = evaluator.key_count();
                    let (n, b) = evaluator.footprint();
                    states.set(n);
                    bytes.set(b);
                }
                if let Some(cap) = held.as_mut() {
                    match evaluator.earliest_pending() {
                        Some(t) => cap.downgrade(&t.max(*cap.time())),
                        None => held = None,
                    }
                }
            }
        },
    )
}

/// Sends alerts, each at its event time, and counts them by rule.
fn emit_alerts(
    alerts: &mut Vec<Alert>,
    cap: &Capability<u64>,
    output: &mut timely::dataflow::operators::generic::OutputBuilderSession<
        '_,
        u64,
        timely::container::CapacityContainerBuilder<Vec<Alert>>,
    >,
    metrics: &Metrics,
) {
    let mut counts: Vec<(String, String, AlertCounts)> = Vec::new();
    metrics.note_alerts(alerts.iter().map(|a| crate::metrics::AlertEvent {
        rule: a.rule.clone(),
        severity: a.severity.clone(),
        device: a.device.to_string(),
        sensor: a.sensor.to_string(),
        state: a.state.as_str().to_owned(),
        event_time: a.event_time,
        value: a.value,
    }));
    for alert in alerts.drain(..) {
        let c = match counts
            .iter_mut()
            .find(|(r, s, _)| *r == alert.rule && *s == alert.severity)
        {
            Some((_, _, c)) => c,
            None => {
                counts.push((
                    alert.rule.clone(),
                    alert.severity.clone(),
                    AlertCounts::default(),
                ));
                &mut counts.last_mut().expect("just pushed").2
            }
        };
        match alert.state {
            AlertState::Firing => c.firing += 1,
            AlertState::Resolved => c.resolved += 1,
        }
        let at = cap.delayed(&alert.event_time.max(*cap.time()));
        output.session(&at).give(alert);
    }
    for (rule, severity, c) in counts {
        metrics.add_alerts(&rule, &severity, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rule: &Rule, obs: &[(u64, f64)], end: Option<u64>) -> Vec<(AlertState, u64, f64)> {
        let rules = Arc::new(RuleSet::new(vec![rule.clone()]));
        let mut eval = AlertEvaluator::new(rules);
        for (i, (t, v)) in obs.iter().enumerate() {
            eval.push(Reading::new("d1", "temp", *t, *v, 0, i as i64));
        }
        let mut out = Vec::new();
        eval.advance_to(end, &mut out);
        out.into_iter()
            .map(|a| (a.state, a.event_time, a.value))
            .collect()
    }

    fn hot() -> Rule {
        Rule::new("hot", "temp", Direction::Above, 90.0)
    }

    #[test]
    fn threshold_fires_and_resolves_once_per_episode() {
        let got = run(
            &hot(),
            &[(1, 80.0), (2, 91.0), (3, 95.0), (4, 90.0), (5, 92.0)],
            None,
        );
        assert_eq!(
            got,
            vec![
                (AlertState::Firing, 2, 91.0),
                (AlertState::Resolved, 4, 90.0),
                (AlertState::Firing, 5, 92.0)
            ]
        );
    }

    #[test]
    fn below_direction() {
        let rule = Rule::new("low", "temp", Direction::Below, 10.0);
        let got = run(&rule, &[(1, 12.0), (2, 9.0), (3, 10.0)], None);
        assert_eq!(
            got,
            vec![
                (AlertState::Firing, 2, 9.0),
                (AlertState::Resolved, 3, 10.0)
            ]
        );
    }

    #[test]
    fn hysteresis_keeps_firing_until_clear_threshold() {
        let rule = Rule {
            clear: 85.0,
            ..hot()
        };
        // 88 is under the threshold but above the clear threshold: still firing.
        let got = run(
            &rule,
            &[(1, 95.0), (2, 88.0), (3, 91.0), (4, 85.0), (5, 88.0)],
            None,
        );
        assert_eq!(
            got,
            vec![
                (AlertState::Firing, 1, 95.0),
                (AlertState::Resolved, 4, 85.0)
            ]
        );
    }

    #[test]
    fn consecutive_needs_an_unbroken_run() {
        let rule = Rule {
            consecutive: 3,
            ..hot()
        };
        let got = run(
            &rule,
            &[
                (1, 95.0),
                (2, 95.0),
                (3, 80.0),
                (4, 91.0),
                (5, 92.0),
                (6, 93.0),
            ],
            None,
        );
        assert_eq!(got, vec![(AlertState::Firing, 6, 93.0)]);
    }

    #[test]
    fn for_duration_fires_when_frontier_passes_the_deadline() {
        let rule = Rule {
            for_ms: 30_000,
            ..hot()
        };
        // Breach from t=10s; the readings stop at 20s but the frontier moves
        // past 40s. At frontier 40s a reading at 40s may still come (it would
        // fire the deadline first, at 40s, itself): nothing fires yet.
        let obs = [(10_000, 95.0), (20_000, 96.0)];
        assert_eq!(run(&rule, &obs, Some(40_000)), vec![]);
        assert_eq!(
            run(&rule, &obs, Some(40_001)),
            vec![(AlertState::Firing, 40_000, 96.0)]
        );
    }

    #[test]
    fn for_duration_is_cancelled_by_a_clear_reading_before_the_deadline() {
        let rule = Rule {
            for_ms: 30_000,
            ..hot()
        };
        let obs = [(10_000, 95.0), (39_999, 80.0), (45_000, 95.0)];
        // The second breach starts at 45s, so it may fire at 75s at the
        // earliest, once the frontier has passed 75s.
        assert_eq!(run(&rule, &obs, Some(75_000)), vec![]);
        assert_eq!(
            run(&rule, &obs, Some(75_001)),
            vec![(AlertState::Firing, 75_000, 95.0)]
        );
    }

    #[test]
    fn for_duration_fires_at_deadline_before_a_later_reading() {
        let rule = Rule {
            for_ms: 30_000,
            ..hot()
        };
        // The clearing reading at 50s comes after the deadline at 40s: fire at 40s, resolve at 50s.
        let got = run(&rule, &[(10_000, 95.0), (50_000, 80.0)], None);
        assert_eq!(
            got,
            vec![
                (AlertState::Firing, 40_000, 95.0),
                (AlertState::Resolved, 50_000, 80.0)
            ]
        );
    }

    #[test]
    fn end_of_input_drops_breaches_short_of_their_duration() {
        let rule = Rule {
            for_ms: 30_000,
            ..hot()
        };
        // The data stop 10 s into the breach: nothing shows it lasting 30 s.
        assert_eq!(run(&rule, &[(10_000, 95.0), (20_000, 96.0)], None), vec![]);
    }

    #[test]
    fn window_rules_carry_the_bounds_of_the_window_that_fired() {
        let rule = Rule {
            input: RuleInput::Window {
                size_ms: 60_000,
                stat: Stat::Mean,
            },
            consecutive: 2,
            ..hot()
        };
        let mut eval = AlertEvaluator::new(Arc::new(RuleSet::new(vec![rule])));
        let window = |start: u64, sum: f64| WindowAggregate {
            device: "d1".into(),
            sensor: "temp".into(),
            window_start: start,
            window_end: start + 60_000,
            count: 2,
            min: 0.0,
            max: 0.0,
            sum,
        };
        // Means 95, 96, 80: fires on the second window, resolves on the third.
        for w in [
            window(0, 190.0),
            window(60_000, 192.0),
            window(120_000, 160.0),
        ] {
            eval.push(w);
        }
        // A 5-minute window is not this rule's size: ignored.
        eval.push(WindowAggregate {
            window_end: 300_000,
            ..window(0, 1000.0)
        });
        let mut out = Vec::new();
        eval.advance_to(None, &mut out);
        let got: Vec<_> = out
            .iter()
            .map(|a| (a.state, a.event_time, a.window_start, a.window_end, a.value))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    AlertState::Firing,
                    120_000,
                    Some(60_000),
                    Some(120_000),
                    96.0
                ),
                (
                    AlertState::Resolved,
                    180_000,
                    Some(120_000),
                    Some(180_000),
                    80.0
                )
            ]
        );
    }

    #[test]
    fn cooldown_suppresses_flapping() {
        let rule = Rule {
            cooldown_ms: 60_000,
            ..hot()
        };
        let obs = [
            (0, 95.0),
            (10_000, 80.0),
            (20_000, 95.0),
            (30_000, 80.0),
            (70_000, 95.0),
        ];
        // The episode at 20s is inside the 60s cooldown of the firing at 0s: neither
        // its firing nor its resolved event is emitted. The one at 70s is.
        assert_eq!(
            run(&rule, &obs, None),
            vec![
                (AlertState::Firing, 0, 95.0),
                (AlertState::Resolved, 10_000, 80.0),
                (AlertState::Firing, 70_000, 95.0)
            ]
        );
    }

    #[test]
    fn out_of_order_arrival_is_applied_in_event_time_order() {
        let rule = Rule {
            consecutive: 2,
            ..hot()
        };
        // Arrival order 3, 1, 2: in event time the breaches at 1 and 2 are consecutive.
        let got = run(&rule, &[(3, 80.0), (1, 95.0), (2, 96.0)], None);
        assert_eq!(
            got,
            vec![
                (AlertState::Firing, 2, 96.0),
                (AlertState::Resolved, 3, 80.0)
            ]
        );
    }

    #[test]
    fn observations_at_or_after_the_frontier_wait() {
        let got = run(&hot(), &[(5, 95.0)], Some(5));
        assert_eq!(got, vec![]);
    }

    #[test]
    fn only_listed_sensors_reach_a_rule_and_an_empty_list_takes_all() {
        let listed = Arc::new(RuleSet::new(vec![hot()]));
        let mut eval = AlertEvaluator::new(listed);
        assert!(!eval.push(Reading::new("d1", "pressure", 1, 95.0, 0, 0)));
        assert!(eval.push(Reading::new("d1", "temp", 1, 95.0, 0, 1)));
        let any = Arc::new(RuleSet::new(vec![Rule {
            sensors: vec![],
            ..hot()
        }]));
        let mut eval = AlertEvaluator::new(any);
        assert!(eval.push(Reading::new("d1", "pressure", 1, 95.0, 0, 0)));
    }

    #[test]
    fn device_pattern_and_sensor_select() {
        let rule = hot().devices("press-*").unwrap();
        assert!(rule.selects("press-001", "temp"));
        assert!(!rule.selects("lathe-001", "temp"));
        assert!(!rule.selects("press-001", "vibration"));
    }

    /// Restoring a snapshot taken at a frontier and feeding the same input
    /// gives exactly the alerts of an uninterrupted run after that frontier,
    /// for seeded inputs and several cut points (hysteresis, consecutive,
    /// for-duration and cooldown state all cross the cut).
    /// The borrowed view a checkpoint writes decodes as the snapshot.
    #[test]
    fn the_snapshot_view_encodes_as_the_snapshot() {
        let rules = Arc::new(RuleSet::new(vec![Rule {
            clear: 85.0,
            consecutive: 2,
            ..hot()
        }]));
        let mut eval = AlertEvaluator::new(rules);
        for (i, (device, value)) in [("a", 95.0), ("b", 80.0), ("a", 96.0), ("c", 91.0)]
            .into_iter()
            .enumerate()
        {
            eval.push(Reading::new(
                device,
                "temp",
                i as u64 * 1_000,
                value,
                0,
                i as i64,
            ));
        }
        eval.advance_to(Some(10_000), &mut Vec::new());
        let snapshot = eval.snapshot();
        assert!(snapshot.keys.len() >= 2, "{snapshot:?}");
        let view = bincode::serialize(&eval.snapshot_view()).unwrap();
        assert_eq!(view, bincode::serialize(&snapshot).unwrap());
    }

    #[test]
    fn restore_then_continue_equals_an_uninterrupted_run() {
        let rule = Rule {
            clear: 85.0,
            consecutive: 2,
            for_ms: 3_000,
            cooldown_ms: 5_000,
            ..hot()
        };
        let rules = Arc::new(RuleSet::new(vec![rule]));
        for seed in 0..15u64 {
            // A small LCG: readings of 3 devices, values around the threshold.
            let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let mut next = || {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                x >> 33
            };
            let obs: Vec<Reading> = (0..300)
                .map(|i| {
                    let device = format!("d{}", next() % 3);
                    let time = i * 500 + next() % 400;
                    Reading::new(
                        &device,
                        "temp",
                        time,
                        80.0 + (next() % 200) as f64 / 10.0,
                        0,
                        i as i64,
                    )
                })
                .collect();
            let steps: Vec<u64> = (1..=16).map(|k| k * 10_000).collect();
            let run_steps = |eval: &mut AlertEvaluator<Reading>, steps: &[u64]| {
                let mut out = Vec::new();
                for &f in steps {
                    eval.advance_to(Some(f), &mut out);
                }
                eval.advance_to(None, &mut out);
                out
            };
            let mut whole = AlertEvaluator::new(rules.clone());
            obs.iter().for_each(|o| {
                whole.push(o.clone());
            });
            let expected = run_steps(&mut whole, &steps);
            for cut in [10_000, 40_000, 70_000, 120_000] {
                let mut first = AlertEvaluator::new(rules.clone());
                obs.iter().for_each(|o| {
                    first.push(o.clone());
                });
                let mut got = Vec::new();
                for &f in steps.iter().filter(|f| **f <= cut) {
                    first.advance_to(Some(f), &mut got);
                }
                let snapshot = first.snapshot();
                let mut resumed = AlertEvaluator::new(rules.clone());
                resumed.restore(vec![snapshot], cut, |_| true);
                obs.iter().for_each(|o| {
                    resumed.push(o.clone());
                });
                let after: Vec<u64> = steps.iter().copied().filter(|f| *f > cut).collect();
                got.extend(run_steps(&mut resumed, &after));
                // Alerts of different keys in one step come in no set order.
                let sorted = |mut a: Vec<Alert>| {
                    a.sort_by(|x, y| x.order_key().cmp(&y.order_key()));
                    a
                };
                assert_eq!(
                    sorted(got),
                    sorted(expected.clone()),
                    "seed {seed}, cut at {cut}"
                );
            }
            assert!(
                !expected.is_empty(),
                "seed {seed}: the input must fire alerts"
            );
        }
    }
}
