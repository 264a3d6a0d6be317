//! [`RuleSet`]: the rules and the registry they use, what a reload
//! changes ([`RulesDiff`]), and the fingerprints checkpoints keep.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::registry::{registry_limits, Registry};
use super::{Rule, RuleInput};
use crate::hash::fnv1a;
use crate::record::Stats;

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
        if !rule.selection.fields.is_empty() {
            let matches = rule.selection.fields.iter().all(|(field, glob)| {
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

    /// The distinct window sizes that window rules need, in ms, ascending.
    pub fn window_sizes(&self) -> Vec<u64> {
        let sizes: BTreeSet<u64> = self
            .rules
            .iter()
            .filter_map(|r| match r.input() {
                RuleInput::Window { size_ms, .. } => Some(size_ms),
                RuleInput::Readings => None,
            })
            .collect();
        sizes.into_iter().collect()
    }

    /// The statistics the window rules on windows of `size_ms` look at.
    pub fn window_stats(&self, size_ms: u64) -> Stats {
        self.rules
            .iter()
            .filter_map(|r| match r.input() {
                RuleInput::Window { size_ms: s, stat } if s == size_ms => Some(stat),
                _ => None,
            })
            .collect()
    }

    /// Whether any rule is a combination rule: its readings must then be
    /// routed by device, so that one worker sees every sensor of a device.
    pub fn has_combination_rules(&self) -> bool {
        self.rules.iter().any(|r| r.combination().is_some())
    }

    /// Whether any rule is a silence rule.
    pub fn has_silence_rules(&self) -> bool {
        self.rules.iter().any(Rule::is_silence)
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
        self.rules.iter().any(|r| r.input() == RuleInput::Readings)
    }
}
