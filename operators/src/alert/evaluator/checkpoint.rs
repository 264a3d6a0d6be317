//! The evaluator's part of a checkpoint: its rule states, written without
//! a copy and restored for the keys a worker owns.

use serde::{Deserialize, Serialize};

use super::{route_of, AlertEvaluator, KeyState};
use crate::alert::{Observation, RuleState};
use crate::reading::SensorKey;

/// [`AlertEvaluator::snapshot_view`]: serializes as an [`AlertPart`] (a
/// struct of one sequence of `(key, [(name, state)])`), from borrowed state.
struct PartView<'a, O: Observation>(&'a AlertEvaluator<O>);

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
/// are kept by rule name; a resumed run takes those of the rules whose
/// definition is unchanged (see [`crate::checkpoint::Manifest::rules`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertPart {
    /// Per key, the states that differ from the initial state.
    pub keys: Vec<(SensorKey, Vec<(String, RuleState)>)>,
}

impl<O: Observation> AlertEvaluator<O> {
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
    fn saved_keys(&self) -> impl Iterator<Item = &KeyState> + Clone + '_ {
        self.keys
            .iter()
            .filter(|k| k.rules.iter().any(|(_, s)| *s != RuleState::default()))
    }

    /// A key's states that differ from the initial one, by rule name.
    fn saved_states<'a>(
        &'a self,
        k: &'a KeyState,
    ) -> impl Iterator<Item = (&'a str, &'a RuleState)> + Clone + 'a {
        k.rules
            .iter()
            .filter(|(_, state)| *state != RuleState::default())
            .map(|(i, state)| (self.table[*i].name.as_str(), state))
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
                .rules_of(&key.device, &key.sensor, |_| true)
                .into_iter()
                .map(|i| {
                    let name = &self.table[i].name;
                    let state = states.iter().find(|(n, _)| n == name);
                    (i, state.map(|(_, s)| s.clone()).unwrap_or_default())
                })
                .collect();
            let slot = self.keys.len();
            for (i, (rule, state)) in rules.iter().enumerate() {
                let rule = &self.table[*rule];
                if let Some(deadline) = state.deadline(rule) {
                    self.deadlines.insert((deadline, slot, i));
                }
                if let Some((deadline, partition)) = state.silence_deadline(rule) {
                    self.silences
                        .entry(partition)
                        .or_default()
                        .insert((deadline, slot, i));
                }
            }
            self.index.insert(route_of(&key), slot);
            self.keys.push(KeyState::new(key, rules));
        }
    }
}
