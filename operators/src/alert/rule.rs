//! Alert rules: what a rule selects, observes and compares.

use std::collections::BTreeSet;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

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
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        // Every field, so that a new one cannot be forgotten here.
        let Rule {
            name,
            severity,
            sensors,
            devices,
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
        } = self;
        let pattern = |d: &Option<GlobMatcher>| d.as_ref().map(|m| m.glob().glob().to_owned());
        *name == other.name
            && *severity == other.severity
            && *sensors == other.sensors
            && pattern(devices) == pattern(&other.devices)
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
    }
}

impl Rule {
    /// A digest of the rule's definition, the same in every run and
    /// process (FNV-1a over its encoding): checkpoints keep it, so that a
    /// resumed run keeps the state of a rule only if it is unchanged.
    pub fn fingerprint(&self) -> u64 {
        let bytes = bincode::serialize(self).expect("a rule serializes");
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
            (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
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

/// Event time is cut into buckets of this many ms to tell how far each
/// source partition's readings have come (silence rules).
pub const PROGRESS_BUCKET_MS: u64 = 1_000;

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
            keep_firing_for_ms: 0,
            input: RuleInput::Readings,
            kind: RuleKind::Threshold,
            escalation: None,
            chattering: None,
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
}

impl RulesDiff {
    /// Whether the two sets are the same.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
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
        )
    }
}

/// A set of rules, shared by all workers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
        diff
    }

    /// Whether any rule observes readings directly.
    pub fn has_reading_rules(&self) -> bool {
        self.rules.iter().any(|r| r.input == RuleInput::Readings)
    }
}
