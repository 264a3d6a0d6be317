//! [`Rule`]: a header (name, severity, selection, labels), the modifiers
//! of its state machine, and its kind with the kind's own settings.

use serde::{Deserialize, Serialize};

use super::combination::Combination;
use super::kind::{Direction, RuleInput, RuleKind, Stat, Threshold};
use super::pattern::Pattern;

/// One validated alert rule. Rules travel to every worker when the rules
/// are reloaded; two rules are equal when they mean the same (the same
/// name, selection, thresholds and behaviour).
///
/// The header (`name`, `severity`, `selection`, `labels`) is what every
/// rule has; `kind` says what it judges, with that kind's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Unique rule name, carried by every alert.
    pub name: String,
    /// Severity label carried by every alert (e.g. "warning", "critical").
    pub severity: String,
    /// Which devices and sensors the rule looks at.
    pub selection: Selection,
    /// Labels every alert of the rule carries, before the device's own.
    pub labels: Vec<(String, String)>,
    /// How the state machine fires, holds and reports.
    pub modifiers: Modifiers,
    /// What the rule judges, with its settings.
    pub kind: RuleKind,
}

/// Which readings a rule looks at: its sensors on its devices.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    /// Sensor names the rule applies to; empty means every sensor. A
    /// combination rule's are its conditions' sensors.
    pub sensors: Vec<String>,
    /// Device id pattern (glob: `press-*`); `None` means every device.
    pub devices: Option<Pattern>,
    /// Device registry fields the device must match (`where`): (field,
    /// glob) pairs, all of which must match. A rule with any selects only
    /// devices in the registry.
    pub fields: Vec<(String, Pattern)>,
}

/// How a rule's state machine fires, holds and reports: the settings of
/// the threshold state machine that several kinds share. The defaults
/// ([`Modifiers::default`]) fire at the first breaching observation and
/// resolve at the first clearing one, with no cooldown, escalation or
/// chattering detection. Combination rules always have the defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Modifiers {
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
    /// Escalation: an alert still firing this long (ms of event time) after
    /// it fired is escalated to this severity.
    pub escalation: Option<(u64, String)>,
    /// Chattering detection (ISA-18.2): see [`Chattering`].
    pub chattering: Option<Chattering>,
}

impl Default for Modifiers {
    fn default() -> Self {
        Modifiers {
            consecutive: 1,
            for_ms: 0,
            cooldown_ms: 0,
            keep_firing_for_ms: 0,
            escalation: None,
            chattering: None,
        }
    }
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

impl Rule {
    /// A rule of `kind` on `sensors` with the default severity
    /// (`warning`), every device, no labels and the default modifiers.
    pub fn of_kind(name: &str, sensors: Vec<String>, kind: RuleKind) -> Self {
        Rule {
            name: name.to_owned(),
            severity: "warning".to_owned(),
            selection: Selection {
                sensors,
                ..Selection::default()
            },
            labels: Vec::new(),
            modifiers: Modifiers::default(),
            kind,
        }
    }

    /// A threshold rule on readings with defaults: no hysteresis, fires on
    /// the first breaching reading, no cooldown, every device.
    ///
    /// # Examples
    /// ```
    /// use weir_operators::alert::{Direction, Rule, Stat};
    ///
    /// let rule = Rule::new("warm", "temp", Direction::Above, 80.0)
    ///     .clear_at(75.0)
    ///     .window(60_000, Stat::Max)
    ///     .consecutive(2);
    /// assert!(rule.breaches(80.5) && rule.clears(75.0));
    /// ```
    pub fn new(name: &str, sensor: &str, direction: Direction, threshold: f64) -> Self {
        let kind = RuleKind::Threshold(Threshold::new(direction, threshold));
        Rule::of_kind(name, vec![sensor.to_owned()], kind)
    }

    /// A silence rule: no reading of `sensor` for `after_ms`.
    pub fn new_silence(name: &str, sensor: &str, after_ms: u64) -> Self {
        Rule::of_kind(
            name,
            vec![sensor.to_owned()],
            RuleKind::Silence { after_ms },
        )
    }

    /// A combination rule; its sensors are the combination's.
    pub fn new_combination(name: &str, combination: Combination) -> Self {
        let sensors = combination.sensors();
        Rule::of_kind(name, sensors, RuleKind::Combination(combination))
    }

    /// Restricts the rule to devices matching a glob pattern.
    pub fn devices(mut self, pattern: &str) -> Result<Self, globset::Error> {
        self.selection.devices = Some(Pattern::new(pattern)?);
        Ok(self)
    }

    /// This rule on every sensor.
    pub fn every_sensor(mut self) -> Self {
        self.selection.sensors.clear();
        self
    }

    /// This rule with another severity.
    pub fn severity(mut self, severity: &str) -> Self {
        self.severity = severity.to_owned();
        self
    }

    /// This rule with these modifiers changed by `change`.
    pub fn with(mut self, change: impl FnOnce(&mut Modifiers)) -> Self {
        change(&mut self.modifiers);
        self
    }

    /// This rule with another kind (and the kind's settings).
    pub fn with_kind(mut self, kind: RuleKind) -> Self {
        self.kind = kind;
        self
    }

    /// This rule, firing only after `n` breaching observations in a row.
    pub fn consecutive(self, n: u32) -> Self {
        self.with(|m| m.consecutive = n)
    }

    /// The thresholds of this threshold, rate-of-change or deviation rule,
    /// changed by `change`.
    ///
    /// # Panics
    /// If the rule is a silence or combination rule.
    pub fn with_threshold(mut self, change: impl FnOnce(&mut Threshold)) -> Self {
        let t = self.kind.threshold_mut();
        change(t.expect("a rule with thresholds"));
        self
    }

    /// This rule with a clear threshold (hysteresis). Panics as
    /// [`Rule::with_threshold`].
    pub fn clear_at(self, clear: f64) -> Self {
        self.with_threshold(|t| t.clear = clear)
    }

    /// This rule on a statistic of tumbling windows of `size_ms`. Panics
    /// as [`Rule::with_threshold`].
    pub fn window(self, size_ms: u64, stat: Stat) -> Self {
        self.with_threshold(|t| t.input = RuleInput::Window { size_ms, stat })
    }

    /// This rule's thresholds applied to the rate of change over `span_ms`.
    /// Panics as [`Rule::with_threshold`].
    pub fn rate_of_change(mut self, span_ms: u64) -> Self {
        let threshold = *self.kind.threshold().expect("a rule with thresholds");
        self.kind = RuleKind::RateOfChange { span_ms, threshold };
        self
    }

    /// This rule's thresholds applied to the deviation from a baseline of
    /// `baseline` observations. Panics as [`Rule::with_threshold`].
    pub fn deviation(mut self, baseline: u32) -> Self {
        let threshold = *self.kind.threshold().expect("a rule with thresholds");
        self.kind = RuleKind::Deviation {
            baseline,
            threshold,
        };
        self
    }

    /// What the rule observes (readings for silence and combination
    /// rules).
    pub fn input(&self) -> RuleInput {
        self.kind.input()
    }

    /// The rule's thresholds, if its kind has them.
    pub fn threshold(&self) -> Option<&Threshold> {
        self.kind.threshold()
    }

    /// The threshold and clear threshold its alerts carry: a silence or
    /// combination rule's are 0.
    pub fn alert_thresholds(&self) -> (f64, f64) {
        self.threshold()
            .map_or((0.0, 0.0), |t| (t.threshold, t.clear))
    }

    /// The combination of a combination rule.
    pub fn combination(&self) -> Option<&Combination> {
        match &self.kind {
            RuleKind::Combination(c) => Some(c),
            _ => None,
        }
    }

    /// Whether it is a silence rule.
    pub fn is_silence(&self) -> bool {
        matches!(self.kind, RuleKind::Silence { .. })
    }

    /// Whether `value` breaches the threshold (never for a rule without
    /// one).
    pub fn breaches(&self, value: f64) -> bool {
        self.threshold().is_some_and(|t| t.breaches(value))
    }

    /// Whether `value` clears a firing alert (never for a rule without a
    /// threshold).
    pub fn clears(&self, value: f64) -> bool {
        self.threshold().is_some_and(|t| t.clears(value))
    }

    /// Whether the rule applies to this device and sensor.
    /// A combination rule selects the sensor name of its key
    /// ([`Combination::key`]), under which its device state is kept.
    pub fn selects(&self, device: &str, sensor: &str) -> bool {
        let sel = &self.selection;
        let sensor_ok = match self.combination() {
            Some(c) => c.key() == sensor,
            None => sel.sensors.is_empty() || sel.sensors.iter().any(|s| s == sensor),
        };
        sensor_ok && sel.devices.as_ref().is_none_or(|m| m.is_match(device))
    }
}
