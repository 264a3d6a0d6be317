//! Alarm management on event time: the set of active alarms as a
//! collection that alert events insert into and retract from, placed by
//! the device registry and counted by site, line, severity and rule on a
//! board the status page reads, and as differential-dataflow collections
//! for pipelines that compose with them.
//!
//! A firing event inserts its alarm, keyed by (rule, device, sensor); an
//! escalation retracts it and inserts it at its new severity; a resolve
//! retracts it. The [`ledger`] does this in event-time order, once the
//! frontier has passed the events, and keeps what it inserted, so the
//! collection at any event time holds exactly the alarms fired and not
//! resolved before it, whatever the worker count. Its state is part of
//! checkpoints: a resumed run inserts the alarms active at the checkpoint
//! again at its frontier, so the views stay exact across a restart, at any
//! worker count.

mod board;
#[cfg(test)]
mod board_tests;
#[cfg(test)]
mod control_tests;
pub mod health;
pub mod ledger;
pub mod shelf;
#[cfg(test)]
mod tests;
mod views;

use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

use crate::record::Alert;
use crate::rules::RuleSet;
use crate::run::{stateful, Env, Side};
pub use ledger::{Change, Entry, Ledger, LedgerPart};
pub use views::{AlarmCollections, AlarmViews};

/// Whether the alarms of a rule restored from a checkpoint ended with the
/// restart: the rule changed since (the evaluator starts it afresh) or is
/// gone from `rules`.
pub(crate) fn ended_since_restore(env: &Env<'_>, rules: &RuleSet) -> impl Fn(&str) -> bool {
    let changed = env.changed_since_restore(&rules.fingerprints());
    let names: Vec<String> = rules.rules.iter().map(|r| r.name.clone()).collect();
    move |rule| changed.iter().any(|c| c == rule) || !names.iter().any(|n| n == rule)
}

/// The rules in force, as alarms follow them across reloads.
pub(crate) struct RulesInForce(RuleSet);

/// What a reload ends: the rules and registry before it and after.
pub(crate) struct Reloaded {
    old: RuleSet,
    new: RuleSet,
}

impl Reloaded {
    /// Whether the reload ends the alarm of `rule` on (`device`,
    /// `sensor`): the evaluator starts the key afresh (no resolve comes
    /// for it) when the rule as it judges that key changes: the rule is
    /// changed or removed, the registry no longer selects the device for
    /// it, or gives it other limits.
    pub(crate) fn ends(&self, rule: &str, device: &str, sensor: &str) -> bool {
        let judged = |set: &RuleSet| {
            let r = set.rules.iter().find(|r| r.name == rule)?;
            set.judge(r, device, sensor)
                .map(|judged| judged.into_owned())
        };
        judged(&self.old) != judged(&self.new)
    }
}

impl RulesInForce {
    /// The rules (and registry) of `rules`.
    pub(crate) fn of(rules: &RuleSet) -> RulesInForce {
        RulesInForce(rules.clone())
    }

    /// The reload `marker` carries, if any, taking its rules into force.
    pub(crate) fn reloaded(&mut self, marker: &crate::checkpoint::Marker) -> Option<Reloaded> {
        let Some(Ok(rules)) = marker.reload.as_ref().map(RuleSet::from_reload) else {
            return None;
        };
        Some(self.replaced(rules))
    }

    /// The rules (and registry) in force.
    pub(crate) fn rules(&self) -> &RuleSet {
        &self.0
    }

    /// Takes `rules` into force.
    pub(crate) fn replaced(&mut self, rules: RuleSet) -> Reloaded {
        let old = std::mem::replace(&mut self.0, rules);
        Reloaded {
            old,
            new: self.0.clone(),
        }
    }
}

/// The alarm views of `alerts`: the events annotated by control events,
/// and the changes of the active-alarm collection, to publish on the board
/// ([`AlarmViews::publish`]) or to join with the device registry of `rules`
/// and count as differential collections ([`AlarmViews::collections`]).
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use timely::dataflow::operators::{Capture, ToStream};
/// use timely::dataflow::operators::capture::Event;
/// use weir_operators::alarm::alarm_views;
/// use weir_operators::alert::{Direction, EvaluateAlerts, Rule, RuleSet};
/// use weir_operators::{Env, Reading};
///
/// let rules = Arc::new(RuleSet::new(vec![Rule::new("hot", "temp", Direction::Above, 90.0)]));
/// let readings = vec![
///     Reading::new("d1", "temp", 1_000, 95.0, 0, 0), // fires
///     Reading::new("d2", "temp", 1_000, 97.0, 0, 1), // fires
///     Reading::new("d1", "temp", 2_000, 80.0, 0, 2), // resolves
/// ];
/// let captured = timely::example(move |scope| {
///     let env = Env::standalone(scope);
///     let alerts = readings.to_stream(scope).evaluate_alerts(rules.clone(), &env);
///     alarm_views(&alerts, &rules, &env).collections().active.inner.capture()
/// });
/// // The changes of the collection: (alarm, place), event time, diff.
/// let changes: Vec<_> = captured.iter().flat_map(|e| match e { Event::Messages(_, d) => d.clone(), Event::Progress(_) => vec![] })
///     .map(|((alarm, _), t, d)| (alarm.device.to_string(), t, d)).collect();
/// let mut changes = changes;
/// changes.sort();
/// assert_eq!(changes, vec![("d1".into(), 1_000, 1), ("d1".into(), 2_000, -1), ("d2".into(), 1_000, 1)]);
/// ```
pub fn alarm_views<'scope>(
    alerts: &Stream<'scope, u64, Vec<Alert>>,
    rules: &Arc<RuleSet>,
    env: &Env<'scope>,
) -> AlarmViews<'scope> {
    use timely::dataflow::operators::vec::Map;
    let run = env.run().clone();
    let (participant, markers) = env.participant("alarms");
    let scope = alerts.scope();
    let (worker, peers) = (scope.index() as u64, scope.peers() as u64);
    let owns = move |k: &shelf::Key| ledger::route(&k.0, &k.1, &k.2) % peers == worker;
    let ledger = match env.restored_frontier() {
        Some(frontier) => {
            let ended = ended_since_restore(env, rules);
            Ledger::restore(
                env.restored::<LedgerPart>(participant.op()),
                frontier,
                owns,
                |rule| ended(rule),
            )
        }
        None => Ledger::owning(owns),
    };
    let logic = ledger::LedgerLogic {
        ledger,
        participant,
        rules: RulesInForce::of(rules),
    };
    let pact = Exchange::new(|a: &Alert| ledger::route(&a.rule, &a.device, &a.sensor));
    let side = {
        use timely::dataflow::operators::Concat;
        let control = env.control().map(Side::Other);
        markers.clone().map(Side::Marker).concat(control)
    };
    let entries = stateful("AlarmLedger", alerts.clone(), pact, side, run, logic);
    let changes = entries.clone().flat_map(|e| match e {
        Entry::Change(c) => Some(c),
        Entry::Alert(_) => None,
    });
    let annotated = entries.flat_map(|e| match e {
        Entry::Alert(a) => Some(a),
        Entry::Change(_) => None,
    });
    AlarmViews::new(changes, annotated, markers, &rules.devices)
}
