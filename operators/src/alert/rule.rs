//! Alert rules: what a rule selects, observes and compares.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use super::combination::Combination;
use crate::hash::{fnv1a, FNV_OFFSET};
use crate::reading::WindowAggregate;

/// Which side of the threshold breaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Breaches when the value is strictly above the threshold.
    Above,
    /// Breaches when the value is strictly below the threshold.
    Below,
}

impl Direction {
    /// Whether `clear` is a clear threshold for `threshold`: at or below it
    /// for [`Direction::Above`], at or above it for [`Direction::Below`]
    /// (a clear threshold on the breaching side would never resolve).
    pub fn clears_at(self, threshold: f64, clear: f64) -> bool {
        match self {
            Direction::Above => clear <= threshold,
            Direction::Below => clear >= threshold,
        }
    }

    /// Whether `value` breaches `threshold`: strictly above it for
    /// [`Direction::Above`], strictly below it for [`Direction::Below`].
    pub fn breaches(self, threshold: f64, value: f64) -> bool {
        match self {
            Direction::Above => value > threshold,
            Direction::Below => value < threshold,
        }
    }

    /// Whether `value` is at or past the clear threshold `clear` on the safe
    /// side: at or below it for [`Direction::Above`], at or above it for
    /// [`Direction::Below`].
    pub fn clears(self, clear: f64, value: f64) -> bool {
        match self {
            Direction::Above => value <= clear,
            Direction::Below => value >= clear,
        }
    }

    /// Where a clear threshold must lie, in words: "at or below" or "at or above".
    pub fn clear_side(self) -> &'static str {
        match self {
            Direction::Above => "at or below",
            Direction::Below => "at or above",
        }
    }
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
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
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

impl std::fmt::Display for RuleInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleInput::Readings => write!(f, "readings"),
            RuleInput::Window { size_ms, .. } => {
                let (n, unit) = [(3_600_000, "h"), (60_000, "m"), (1_000, "s")]
                    .into_iter()
                    .find(|(unit_ms, _)| size_ms % unit_ms == 0)
                    .map_or((*size_ms, "ms"), |(unit_ms, unit)| {
                        (size_ms / unit_ms, unit)
                    });
                write!(f, "windows of {n}{unit}")
            }
        }
    }
}

/// One validated alert rule. Rules travel to every worker when the rules
/// are reloaded; two rules are equal when they mean the same (the same
/// name, selection, thresholds and behaviour).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rule {
    /// Unique rule name, carried by every alert.
    pub name: String,
    /// Severity label carried by every alert (e.g. "warning", "critical").
    pub severity: String,
    /// Sensor names the rule applies to; empty means every sensor.
    pub sensors: Vec<String>,
    /// Device id pattern (glob: `press-*`); `None` means every device.
    #[serde(with = "glob_pattern")]
    pub devices: Option<GlobMatcher>,
    /// Device registry fields the device must match (`where`): (field,
    /// glob) pairs, all of which must match. A rule with any selects only
    /// devices in the registry.
    #[serde(with = "field_patterns")]
    pub fields: Vec<(String, GlobMatcher)>,
    /// Labels every alert of the rule carries, before the device's own.
    pub labels: Vec<(String, String)>,
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
    /// Off-delay (`keep_firing_for`), in ms: a firing alert resolves only
    /// once its clear condition has held this long (0: at the first
    /// clearing observation).
    pub keep_firing_for_ms: u64,
    /// What the rule observes.
    pub input: RuleInput,
    /// What it compares with its thresholds: the observed values, or a
    /// signal derived from them.
    pub kind: RuleKind,
    /// Escalation: an alert still firing this long (ms of event time) after
    /// it fired is escalated to this severity.
    pub escalation: Option<(u64, String)>,
    /// Chattering detection (ISA-18.2): see [`Chattering`].
    pub chattering: Option<Chattering>,
    /// For [`RuleKind::Combination`]: its conditions. `sensors` then lists
    /// their sensors, and the rule is judged per device under the sensor
    /// name [`Combination::key`].
    pub combination: Option<Combination>,
}

/// When a rule chatters, and when it is calm again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chattering {
    /// State changes (firing or resolved events) that make the rule
    /// chattering...
    pub changes: u32,
    /// ...when they fall within this much event time (ms).
    pub within_ms: u64,
    /// Event time without a change after which a chattering rule is calm
    /// again (ms).
    pub calm_ms: u64,
}

/// The kind of a rule: the signal its thresholds apply to. Every kind shares
/// the threshold state machine (hysteresis, `consecutive`, `for`,
/// off-delay, cooldown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleKind {
    /// The observed value itself.
    #[default]
    Threshold,
    /// The rate of change per second of event time: the change from the
    /// earliest observation at most `span_ms` before to this one, divided
    /// by the time between them. The first observation of a key has no
    /// rate and is not judged.
    RateOfChange {
        /// How far back the rate looks, in ms.
        span_ms: u64,
    },
    /// Deviation from a baseline: how many standard deviations the value
    /// lies from the mean of the key's previous `baseline` observations
    /// (`|value - mean| / σ`), so `above = 3` fires outside mean ± 3σ. Until
    /// `baseline` observations are known there is no baseline, and the
    /// observation is not judged. A flat baseline (σ = 0) gives 0 for its
    /// own value and infinity for any other.
    Deviation {
        /// How many previous observations make the baseline (at least 2).
        baseline: u32,
    },
    /// Silence (deadman): no reading of the key for `after_ms` of event
    /// time. It fires once the pipeline can tell: when the key's partition
    /// has delivered readings from a later second (so a stalled or idle
    /// partition never makes its devices look silent), or at the key's
    /// next reading; it resolves at that next reading. Thresholds do not
    /// apply.
    Silence {
        /// How long without a reading, in ms.
        after_ms: u64,
    },
    /// Combination: all or any of several conditions on one device within
    /// a span of event time (see [`crate::alert::combination`]). Its
    /// thresholds are the conditions'; the rule's own do not apply.
    Combination,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        // Every field, so that a new one cannot be forgotten here.
        let Rule {
            name,
            severity,
            sensors,
            devices,
            fields,
            labels,
            direction,
            threshold,
            clear,
            consecutive,
            for_ms,
            cooldown_ms,
            keep_firing_for_ms,
            input,
            kind,
            escalation,
            chattering,
            combination,
        } = self;
        let pattern = |d: &Option<GlobMatcher>| d.as_ref().map(|m| m.glob().glob().to_owned());
        *name == other.name
            && *severity == other.severity
            && *sensors == other.sensors
            && pattern(devices) == pattern(&other.devices)
            && field_patterns::globs(fields) == field_patterns::globs(&other.fields)
            && *labels == other.labels
            && *direction == other.direction
            && threshold.to_bits() == other.threshold.to_bits()
            && clear.to_bits() == other.clear.to_bits()
            && *consecutive == other.consecutive
            && *for_ms == other.for_ms
            && *cooldown_ms == other.cooldown_ms
            && *keep_firing_for_ms == other.keep_firing_for_ms
            && *input == other.input
            && *kind == other.kind
            && *escalation == other.escalation
            && *chattering == other.chattering
            && *combination == other.combination
    }
}

impl Rule {
    /// A digest of the rule's definition, the same in every run and
    /// process (FNV-1a over its bincode encoding, see [`crate::hash`]): checkpoints keep it, so that a
    /// resumed run keeps the state of a rule only if it is unchanged.
    pub fn fingerprint(&self) -> u64 {
        let bytes = bincode::serialize(self).expect("a rule serializes");
        fnv1a(FNV_OFFSET, &bytes)
    }
}

/// A registered device's limits for the rule named `rule`.
fn registry_limits<'a>(device: Option<&'a Device>, rule: &str) -> Option<&'a Limits> {
    device?
        .limits
        .iter()
        .find(|(name, _)| name == rule)
        .map(|(_, limits)| limits)
}

/// A rule's device pattern, serialized as its glob.
mod glob_pattern {
    use globset::{Glob, GlobMatcher};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(m: &Option<GlobMatcher>, s: S) -> Result<S::Ok, S::Error> {
        m.as_ref().map(|m| m.glob().glob()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<GlobMatcher>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|p| {
                Glob::new(&p)
                    .map(|g| g.compile_matcher())
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

/// Registry field patterns, serialized as (field, glob) pairs.
mod field_patterns {
    use globset::{Glob, GlobMatcher};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// The (field, glob) pairs of `fields`.
    pub fn globs(fields: &[(String, GlobMatcher)]) -> Vec<(&str, &str)> {
        fields
            .iter()
            .map(|(f, m)| (f.as_str(), m.glob().glob()))
            .collect()
    }

    pub fn serialize<S: Serializer>(
        fields: &[(String, GlobMatcher)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        globs(fields).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, GlobMatcher)>, D::Error> {
        Vec::<(String, String)>::deserialize(d)?
            .into_iter()
            .map(|(field, p)| {
                Glob::new(&p)
                    .map(|g| (field, g.compile_matcher()))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

pub use crate::reading::PROGRESS_BUCKET_MS;

impl Rule {
    /// A rule on readings with defaults: no hysteresis, fires on the first
    /// breaching reading, no cooldown, every device.
    pub fn new(name: &str, sensor: &str, direction: Direction, threshold: f64) -> Self {
        Rule {
            name: name.to_owned(),
            severity: "warning".to_owned(),
            sensors: vec![sensor.to_owned()],
            devices: None,
            fields: Vec::new(),
            labels: Vec::new(),
            direction,
            threshold,
            clear: threshold,
            consecutive: 1,
            for_ms: 0,
            cooldown_ms: 0,
            keep_firing_for_ms: 0,
            input: RuleInput::Readings,
            kind: RuleKind::Threshold,
            escalation: None,
            chattering: None,
            combination: None,
        }
    }

    /// Restricts the rule to devices matching a glob pattern.
    pub fn devices(mut self, pattern: &str) -> Result<Self, globset::Error> {
        self.devices = Some(Glob::new(pattern)?.compile_matcher());
        Ok(self)
    }

    /// Whether `value` breaches the threshold.
    pub fn breaches(&self, value: f64) -> bool {
        self.direction.breaches(self.threshold, value)
    }

    /// Whether `value` clears a firing alert.
    pub fn clears(&self, value: f64) -> bool {
        self.direction.clears(self.clear, value)
    }

    /// Whether the rule applies to this device and sensor.
    /// A combination rule selects the sensor name of its key
    /// ([`Combination::key`]), under which its device state is kept.
    pub fn selects(&self, device: &str, sensor: &str) -> bool {
        let sensor_ok = match &self.combination {
            Some(c) => c.key() == sensor,
            None => self.sensors.is_empty() || self.sensors.iter().any(|s| s == sensor),
        };
        sensor_ok && self.devices.as_ref().is_none_or(|m| m.is_match(device))
    }
}

/// What a reload changes: see [`RuleSet::diff`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesDiff {
    /// Rules only in the new set.
    pub added: Vec<String>,
    /// Rules only in the old set.
    pub removed: Vec<String>,
    /// Rules in both whose meaning changed.
    pub changed: Vec<String>,
    /// Rules in both, unchanged.
    pub unchanged: usize,
    /// Devices of the registry added, removed, and changed (fields or
    /// limits): a changed device's rules with changed limits start afresh
    /// for it.
    pub devices: (usize, usize, usize),
}

impl RulesDiff {
    /// Whether the two sets are the same.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.devices == (0, 0, 0)
    }
}

impl std::fmt::Display for RulesDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |names: &[String]| match names {
            [] => "none".to_owned(),
            _ => names.join(", "),
        };
        write!(
            f,
            "added: {}; removed: {}; changed (state starts afresh): {}; unchanged (state kept): {}",
            list(&self.added),
            list(&self.removed),
            list(&self.changed),
            self.unchanged
        )?;
        if self.devices != (0, 0, 0) {
            let (added, removed, changed) = self.devices;
            write!(
                f,
                "; devices: {added} added, {removed} removed, {changed} changed"
            )?;
        }
        Ok(())
    }
}

/// A set of rules and the device registry they use, shared by all workers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleSet {
    /// The rules, in file order.
    pub rules: Vec<Rule>,
    /// What is known of each device: rules select devices by its fields,
    /// take per-device limits from it, and label alerts with its fields.
    pub devices: Registry,
}

/// The device registry: each device's fields (site, line, type, ...) and
/// per-device limits of rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// Devices by id.
    pub devices: BTreeMap<String, Device>,
    /// The file it was read from, if any: a run reloads the rules when it
    /// changes. Not sent to other workers.
    #[serde(skip)]
    pub file: Option<std::path::PathBuf>,
}

/// One device of the registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Its fields by name, in the registry's column order. Alerts on the
    /// device carry them as labels.
    pub fields: Vec<(String, String)>,
    /// Limits of rules (by rule name) that replace the rule's own for this
    /// device.
    pub limits: Vec<(String, Limits)>,
}

/// A device's own limits for one rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Replaces the rule's threshold.
    pub threshold: Option<f64>,
    /// Replaces the rule's clear threshold. Without it, the clear threshold
    /// keeps the rule's distance from the threshold.
    pub clear: Option<f64>,
}

impl Limits {
    /// `rule` with these limits.
    pub fn apply(&self, rule: &Rule) -> Rule {
        let threshold = self.threshold.unwrap_or(rule.threshold);
        let clear = self
            .clear
            .unwrap_or(threshold - (rule.threshold - rule.clear));
        Rule {
            threshold,
            clear,
            ..rule.clone()
        }
    }
}

impl Registry {
    /// The device's fields by name, if it is registered.
    pub fn field(&self, device: &str, field: &str) -> Option<&str> {
        let device = self.devices.get(device)?;
        device
            .fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value.as_str())
    }

    /// What is known of the devices of `rule`'s registry selection and
    /// overrides: part of the rule's meaning.
    fn fingerprint_of(&self, rule: &Rule) -> Vec<(&String, &Device)> {
        self.devices
            .iter()
            .filter(|(_, d)| {
                !rule.fields.is_empty() || registry_limits(Some(d), &rule.name).is_some()
            })
            .collect()
    }
}

impl RuleSet {
    /// Wraps a list of rules, with an empty device registry.
    pub fn new(rules: Vec<Rule>) -> Self {
        RuleSet {
            rules,
            devices: Registry::default(),
        }
    }

    /// This rule set, with a device registry.
    pub fn with_devices(mut self, devices: Registry) -> Self {
        self.devices = devices;
        self
    }

    /// How `rule` judges `sensor` of `device`: `None` if it does not select
    /// them, else the rule with the device's own limits, if it has any.
    pub fn judge<'a>(&self, rule: &'a Rule, device: &str, sensor: &str) -> Option<Cow<'a, Rule>> {
        if !rule.selects(device, sensor) {
            return None;
        }
        if !rule.fields.is_empty() {
            let matches = rule.fields.iter().all(|(field, glob)| {
                self.devices
                    .field(device, field)
                    .is_some_and(|value| glob.is_match(value))
            });
            if !matches {
                return None;
            }
        }
        let limits = registry_limits(self.devices.devices.get(device), &rule.name);
        Some(match limits {
            Some(limits) => Cow::Owned(limits.apply(rule)),
            None => Cow::Borrowed(rule),
        })
    }

    /// The labels of `rule`'s alerts on `device`: the rule's own, then the
    /// device's registry fields.
    pub fn labels(&self, rule: &Rule, device: &str) -> Vec<(String, String)> {
        let fields = self.devices.devices.get(device).map(|d| &d.fields);
        rule.labels
            .iter()
            .chain(fields.into_iter().flatten())
            .cloned()
            .collect()
    }

    /// A digest of each rule's meaning, by name (see
    /// [`Rule::fingerprint`]), including what the registry holds for it: a
    /// rule that selects by registry fields, or that devices have limits
    /// for, changes when those devices do.
    pub fn fingerprints(&self) -> Vec<(String, u64)> {
        self.rules
            .iter()
            .map(|r| {
                let devices = self.devices.fingerprint_of(r);
                let print = match devices.is_empty() {
                    true => r.fingerprint(),
                    false => fnv1a(
                        r.fingerprint(),
                        &bincode::serialize(&devices).expect("a registry serializes"),
                    ),
                };
                (r.name.clone(), print)
            })
            .collect()
    }

    /// This rule set as a reload of a running pipeline (see
    /// [`RunControl::request_reload`](crate::RunControl::request_reload)).
    ///
    /// # Examples
    /// ```
    /// use weir_operators::alert::{Direction, Rule, RuleSet};
    ///
    /// let rules = RuleSet::new(vec![Rule::new("hot", "temp", Direction::Above, 90.0)]);
    /// assert_eq!(RuleSet::from_reload(&rules.to_reload()).unwrap(), rules);
    /// ```
    pub fn to_reload(&self) -> crate::Reload {
        crate::Reload {
            payload: bincode::serialize(self).expect("a rule set serializes"),
        }
    }

    /// The rule set a reload made by [`RuleSet::to_reload`] carries.
    pub fn from_reload(reload: &crate::Reload) -> Result<RuleSet, String> {
        bincode::deserialize(&reload.payload)
            .map_err(|e| format!("a reload does not hold rules of this version of Weir: {e}"))
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

    /// Whether any rule is a combination rule: its readings must then be
    /// routed by device, so that one worker sees every sensor of a device.
    pub fn has_combination_rules(&self) -> bool {
        self.rules.iter().any(|r| r.combination.is_some())
    }

    /// Whether any rule is a silence rule.
    pub fn has_silence_rules(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.kind, RuleKind::Silence { .. }))
    }

    /// What changes from this rule set to `new`, by rule name: rules added,
    /// removed, changed (same name, another meaning: their state starts
    /// afresh), and how many are unchanged (they keep their state).
    pub fn diff(&self, new: &RuleSet) -> RulesDiff {
        let find = |set: &RuleSet, name: &str| set.rules.iter().find(|r| r.name == name).cloned();
        let mut diff = RulesDiff::default();
        for rule in &new.rules {
            match find(self, &rule.name) {
                None => diff.added.push(rule.name.clone()),
                Some(old) if old != *rule => diff.changed.push(rule.name.clone()),
                Some(_) => diff.unchanged += 1,
            }
        }
        diff.removed = self
            .rules
            .iter()
            .filter(|r| find(new, &r.name).is_none())
            .map(|r| r.name.clone())
            .collect();
        let (old, now) = (&self.devices.devices, &new.devices.devices);
        diff.devices = (
            now.keys().filter(|id| !old.contains_key(*id)).count(),
            old.keys().filter(|id| !now.contains_key(*id)).count(),
            now.iter()
                .filter(|(id, d)| old.get(*id).is_some_and(|o| o != *d))
                .count(),
        );
        diff
    }

    /// Whether any rule observes readings directly.
    pub fn has_reading_rules(&self) -> bool {
        self.rules.iter().any(|r| r.input == RuleInput::Readings)
    }
}
