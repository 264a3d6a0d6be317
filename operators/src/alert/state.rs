//! What rules observe (readings or window aggregates), and the state
//! machine of one rule for one sensor.

use serde::{Deserialize, Serialize};

use super::{AlertState, Rule, RuleInput, RuleKind};
use crate::reading::{Reading, SensorKey, WindowAggregate};
use crate::record::Stats;

mod layout;
mod pending;

pub use layout::RuleState;
pub use pending::{Pending, PendingReading};

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
    /// The value `rule` compares with its threshold; `None` when the
    /// observation has none (the sample standard deviation of a window of
    /// one reading): the rule then skips it.
    fn value(&self, rule: &Rule) -> Option<f64>;
    /// Window bounds, for window aggregates.
    fn window(&self) -> Option<(u64, u64)>;
    /// Routing hash of the key.
    fn route(&self) -> u64;
    /// What waits in the evaluator for the frontier: what the rules look
    /// at once the key is known (see [`Pending`]).
    type Pending: Pending;
    /// This observation as it waits, queued for a key whose sensor is its
    /// own (`part` is `None`) or a combination key whose `part`-th sensor
    /// (in the `+`-joined key) it is.
    fn pending(self, part: Option<u8>) -> Self::Pending;
    /// Whether a stream of these observations (of windows of a size and
    /// with statistics, when known) gives a rule with `input` what it looks
    /// at.
    fn fed(input: &RuleInput, windows: Option<(u64, &Stats)>) -> bool;
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
        rule.input() == RuleInput::Readings
    }
    fn fed(input: &RuleInput, _windows: Option<(u64, &Stats)>) -> bool {
        *input == RuleInput::Readings
    }
    fn value(&self, _rule: &Rule) -> Option<f64> {
        Some(self.value)
    }
    fn window(&self) -> Option<(u64, u64)> {
        None
    }
    fn route(&self) -> u64 {
        self.route
    }
    type Pending = PendingReading;
    fn pending(self, part: Option<u8>) -> PendingReading {
        PendingReading {
            time: self.time,
            value: self.value,
            offset: self.offset,
            partition: self.partition,
            part: part.unwrap_or(u8::MAX),
        }
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
        matches!(rule.input(), RuleInput::Window { size_ms, .. } if size_ms == self.window_end - self.window_start)
    }
    fn fed(input: &RuleInput, windows: Option<(u64, &Stats)>) -> bool {
        matches!((input, windows), (RuleInput::Window { size_ms, stat }, Some((size, stats)))
            if *size_ms == size && stats.contains(*stat))
    }
    fn value(&self, rule: &Rule) -> Option<f64> {
        match rule.input() {
            RuleInput::Window { stat, .. } => WindowAggregate::value(self, stat),
            RuleInput::Readings => Some(self.mean()),
        }
    }
    fn window(&self) -> Option<(u64, u64)> {
        Some((self.window_start, self.window_end))
    }
    fn route(&self) -> u64 {
        SensorKey::route_hash(&self.device, &self.sensor)
    }
    type Pending = WindowAggregate;
    fn pending(self, _part: Option<u8>) -> WindowAggregate {
        self
    }
}

/// The first observation of a clear spell of a firing alert.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClearSpell {
    /// Its event time: the spell started then.
    pub since: u64,
    /// Its value, carried by the resolved event.
    pub value: f64,
    /// Its window, for window rules.
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
    /// For silence rules: the event time of the last reading before the
    /// silence.
    pub last_seen: Option<u64>,
    /// The alert is escalated: the event carries the escalated severity.
    pub escalated: bool,
}

impl RuleState {
    /// Applies one reading of `sensor` to a combination rule's device state
    /// (see [`crate::alert::combination`]), in event-time order.
    pub fn observe_combination(
        &mut self,
        rule: &Rule,
        sensor: &str,
        time: u64,
        value: f64,
        out: &mut Vec<Transition>,
    ) {
        let Some(combination) = rule.combination() else {
            return;
        };
        let mut changes = Vec::new();
        self.combination_mut()
            .observe(combination, sensor, time, value, &mut changes);
        self.tidy();
        out.extend(changes.into_iter().map(|c| Transition {
            state: c.state,
            time: c.time,
            value: c.value,
            values: c.values,
            emitted: true,
            window: None,
            last_seen: None,
            escalated: false,
        }));
    }

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
        let from = out.len();
        self.apply(rule, time, value, window, out);
        self.hold_chatter(rule, out, from);
        self.tidy();
    }

    /// [`RuleState::observe`] after the durations reached before it.
    fn apply(
        &mut self,
        rule: &Rule,
        time: u64,
        value: f64,
        window: Option<(u64, u64)>,
        out: &mut Vec<Transition>,
    ) {
        let Some(value) = self.signal(rule, time, value) else {
            return;
        };
        if self.firing {
            if !rule.clears(value) {
                // The clear spell, if any, is over.
                self.set_clear_since(None);
            } else if rule.modifiers.keep_firing_for_ms == 0 {
                self.resolve(time, value, window, out);
            } else if self.clear_since().is_none() {
                // Resolves once the clear condition has held long enough
                // (see `advance`).
                self.set_clear_since(Some(ClearSpell {
                    since: time,
                    value,
                    window,
                }));
            }
        } else if rule.breaches(value) {
            self.streak += 1;
            let since = match self.breach_since() {
                Some(since) => since,
                None => {
                    self.set_breach_since(Some(time));
                    time
                }
            };
            self.push_recent(value, rule.modifiers.consecutive as usize);
            self.set_window(window);
            if self.streak >= rule.modifiers.consecutive && time - since >= rule.modifiers.for_ms {
                self.fire(rule, time, value, out);
            }
        } else {
            self.reset_breach();
        }
    }

    /// Tells the state that no observation earlier than `time` remains: a
    /// breach that has lasted `for_ms` by then fires, and a clear spell that
    /// has lasted `keep_firing_for_ms` resolves, at the moment it did.
    pub fn advance(&mut self, rule: &Rule, time: u64, out: &mut Vec<Transition>) {
        let from = out.len();
        self.reach(rule, time, out);
        self.hold_chatter(rule, out, from);
        if let Some((calm, ..)) = self.chatter().filter(|(calm, ..)| *calm <= time) {
            self.end_chatter(calm, out);
        }
        self.tidy();
    }

    /// [`RuleState::advance`] before chattering is looked at.
    fn reach(&mut self, rule: &Rule, time: u64, out: &mut Vec<Transition>) {
        // An escalation that falls before the end of a clear spell comes first.
        if let Some(at) = self.escalation_deadline(rule).filter(|d| *d <= time) {
            let resolves_first = self
                .clear_since()
                .is_some_and(|s| s.since + rule.modifiers.keep_firing_for_ms < at);
            if !resolves_first {
                self.escalate(at, out);
            }
        }
        let Some(deadline) = self.own_deadline(rule).filter(|d| *d <= time) else {
            return;
        };
        match self.clear_since() {
            Some(spell) if self.firing => self.resolve(deadline, spell.value, spell.window, out),
            _ => {
                let value = self.recent().last().copied().unwrap_or(f64::NAN);
                self.fire(rule, deadline, value, out);
            }
        }
    }

    /// The event time at which the state changes by duration, if it waits
    /// for one: a breach firing after `for_ms`, or a clear spell resolving
    /// after `keep_firing_for_ms`.
    pub fn deadline(&self, rule: &Rule) -> Option<u64> {
        [
            self.own_deadline(rule),
            self.escalation_deadline(rule),
            self.chatter().map(|(calm, ..)| calm),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Holds back the state changes `out[from..]` of a chattering rule.
    /// The change that makes the rule chattering becomes a `chattering`
    /// event; changes after it are held back (not emitted) and put the calm
    /// moment off; a change after the calm moment first ends the chatter.
    fn hold_chatter(&mut self, rule: &Rule, out: &mut Vec<Transition>, from: usize) {
        let Some(ch) = rule.modifiers.chattering else {
            return;
        };
        let changes: Vec<Transition> = out.drain(from..).collect();
        for mut t in changes {
            if let Some((calm, ..)) = self.chatter().filter(|(calm, ..)| *calm <= t.time) {
                self.end_chatter(calm, out);
            }
            // A change suppressed by the cooldown is no change anyone saw.
            if t.emitted {
                if self.chatter().is_some() {
                    if t.state != AlertState::Escalated {
                        self.set_chatter(Some((t.time + ch.calm_ms, t.state, t.value)));
                    }
                    t.emitted = false;
                } else if t.state != AlertState::Escalated {
                    let changes = self.changes_mut();
                    changes.retain(|c| c + ch.within_ms > t.time);
                    changes.push(t.time);
                    if changes.len() >= ch.changes as usize {
                        changes.clear();
                        self.set_chatter(Some((t.time + ch.calm_ms, t.state, t.value)));
                        t.state = AlertState::Chattering;
                    }
                }
            }
            out.push(t);
        }
    }

    /// Ends a chatter at `calm`: one event gives the state the rule is in.
    fn end_chatter(&mut self, calm: u64, out: &mut Vec<Transition>) {
        let Some((_, state, value)) = self.chatter() else {
            return;
        };
        self.set_chatter(None);
        out.push(Transition {
            state,
            time: calm,
            value,
            values: vec![value],
            emitted: true,
            window: None,
            last_seen: None,
            escalated: state == AlertState::Firing && self.escalated,
        });
    }

    /// When a firing (and emitted) alert escalates, if the rule escalates
    /// and it has not yet.
    fn escalation_deadline(&self, rule: &Rule) -> Option<u64> {
        let (after_ms, _) = rule.modifiers.escalation.as_ref()?;
        match self.fired_at() {
            Some((at, _)) if self.firing && self.emitted && !self.escalated => Some(at + after_ms),
            _ => None,
        }
    }

    fn escalate(&mut self, at: u64, out: &mut Vec<Transition>) {
        self.escalated = true;
        let value = self.fired_at().map_or(f64::NAN, |(_, v)| v);
        out.push(Transition {
            state: AlertState::Escalated,
            time: at,
            value,
            values: vec![value],
            emitted: true,
            window: self.window(),
            last_seen: None,
            escalated: true,
        });
    }

    /// [`RuleState::deadline`] without escalation.
    fn own_deadline(&self, rule: &Rule) -> Option<u64> {
        if self.firing {
            return self
                .clear_since()
                .map(|spell| spell.since + rule.modifiers.keep_firing_for_ms);
        }
        match self.breach_since() {
            Some(since)
                if !self.firing
                    && rule.modifiers.for_ms > 0
                    && self.streak >= rule.modifiers.consecutive =>
            {
                Some(since + rule.modifiers.for_ms)
            }
            _ => None,
        }
    }

    /// Silence rules: where the key's silence deadline stands: (deadline,
    /// partition of its latest reading), while it is not firing.
    pub fn silence_deadline(&self, rule: &Rule) -> Option<(u64, i32)> {
        match (&rule.kind, self.seen()) {
            (RuleKind::Silence { after_ms }, Some((last, partition))) if !self.firing => {
                Some((last + after_ms, partition))
            }
            _ => None,
        }
    }

    /// Silence rules: applies the key's reading at `time` from `partition`
    /// (readings in event-time order). If the key had been silent since its
    /// deadline, the silence fires first, at `noticed` (when the pipeline
    /// could tell, see [`RuleKind::Silence`]) if that came before `time`,
    /// else at `time`; a firing silence resolves at `time`.
    pub fn observe_silence(
        &mut self,
        rule: &Rule,
        time: u64,
        value: f64,
        partition: i32,
        noticed: Option<u64>,
        out: &mut Vec<Transition>,
    ) {
        if let Some((deadline, _)) = self.silence_deadline(rule) {
            if time >= deadline {
                let at = noticed.filter(|n| *n <= time).unwrap_or(time);
                self.fire_silence(rule, at, out);
            }
        }
        if self.firing {
            self.resolve(time, value, None, out);
        }
        let last = self.seen().map_or(time, |(t, _)| t.max(time));
        self.set_seen(Some((last, partition)));
        self.tidy();
    }

    /// Silence rules: the key has been silent since its deadline, as the
    /// pipeline could tell at `at`. The event's value is the silence so
    /// far, in seconds.
    pub fn fire_silence(&mut self, rule: &Rule, at: u64, out: &mut Vec<Transition>) {
        let last_seen = self.seen().map(|(t, _)| t);
        let silent_s = last_seen.map_or(0.0, |t| at.saturating_sub(t) as f64 / 1_000.0);
        let transition = self.start_firing(rule, at, silent_s, vec![silent_s]);
        out.push(Transition {
            last_seen,
            ..transition
        });
        self.tidy();
    }

    fn fire(&mut self, rule: &Rule, time: u64, value: f64, out: &mut Vec<Transition>) {
        let values = self.take_recent();
        let transition = self.start_firing(rule, time, value, values);
        out.push(Transition {
            window: self.window(),
            ..transition
        });
        self.streak = 0;
        self.set_breach_since(None);
    }

    /// Enters the firing state at `time`, unless the cooldown suppresses
    /// the event: the firing transition.
    fn start_firing(&mut self, rule: &Rule, time: u64, value: f64, values: Vec<f64>) -> Transition {
        let cooled = self
            .last_fired()
            .is_none_or(|last| time >= last.saturating_add(rule.modifiers.cooldown_ms));
        self.firing = true;
        self.emitted = cooled;
        self.set_fired_at(Some((time, value)));
        self.escalated = false;
        if cooled {
            self.set_last_fired(Some(time));
        }
        Transition {
            state: AlertState::Firing,
            time,
            value,
            values,
            emitted: cooled,
            window: None,
            last_seen: None,
            escalated: false,
        }
    }

    /// The value a rule's thresholds apply to, for an observation of
    /// `value` at `time`; `None` when there is none yet (a rate needs an
    /// earlier observation).
    fn signal(&mut self, rule: &Rule, time: u64, value: f64) -> Option<f64> {
        match rule.kind {
            RuleKind::Threshold(_) => Some(value),
            // Applied by `observe_silence`.
            RuleKind::Silence { .. } | RuleKind::Combination(_) => None,
            RuleKind::RateOfChange { span_ms, .. } => {
                let span = self.span_mut();
                let keep_from = time.saturating_sub(span_ms);
                let stale = span.partition_point(|(t, _)| *t < keep_from);
                span.drain(..stale);
                let earliest = span.first().copied();
                // A span lives as long as its key: grow it by a quarter, not
                // double it, so it holds little more than its observations.
                if span.len() == span.capacity() {
                    span.reserve_exact(span.len() / 4 + 1);
                }
                span.push((time, value));
                let (t0, v0) = earliest.filter(|(t0, _)| *t0 < time)?;
                Some((value - v0) / ((time - t0) as f64 / 1_000.0))
            }
            RuleKind::Deviation { baseline, .. } => {
                let n = baseline as usize;
                let span = self.span_mut();
                // The baseline, and room for no more.
                span.reserve_exact(n.saturating_sub(span.len()));
                let deviation = (span.len() == n).then(|| {
                    let mean = span.iter().map(|(_, v)| v).sum::<f64>() / n as f64;
                    let variance = span
                        .iter()
                        .map(|(_, v)| (v - mean) * (v - mean))
                        .sum::<f64>()
                        / (n - 1) as f64;
                    let sigma = variance.sqrt();
                    let distance = (value - mean).abs();
                    // 0 / 0 on a flat baseline: the same value is no deviation.
                    if distance == 0.0 {
                        0.0
                    } else {
                        distance / sigma
                    }
                });
                if span.len() == n {
                    span.remove(0);
                }
                span.push((time, value));
                deviation
            }
        }
    }

    fn resolve(
        &mut self,
        time: u64,
        value: f64,
        window: Option<(u64, u64)>,
        out: &mut Vec<Transition>,
    ) {
        out.push(Transition {
            state: AlertState::Resolved,
            time,
            value,
            values: vec![value],
            emitted: self.emitted,
            window,
            last_seen: None,
            escalated: self.escalated,
        });
        self.firing = false;
        self.emitted = false;
        self.escalated = false;
        self.set_fired_at(None);
        self.set_clear_since(None);
        self.reset_breach();
    }

    fn reset_breach(&mut self) {
        self.streak = 0;
        self.set_breach_since(None);
        self.set_recent(Vec::new());
    }
}
