//! Which rules judge a key: the rule set's selection, with a device's own
//! limits as variants of a rule.

use std::borrow::Cow;

use super::AlertEvaluator;
use crate::alert::{Observation, Rule, RuleSet};
use crate::reading::SensorKey;

impl<O: Observation> AlertEvaluator<O> {
    /// The rules (indices in `table`) that judge `sensor` of `device`,
    /// among those `fed` holds for: a rule with the device's own limits is
    /// a variant, added to `table` the first time it is needed.
    pub(super) fn rules_of(
        &mut self,
        device: &str,
        sensor: &str,
        fed: impl Fn(&Rule) -> bool,
    ) -> Vec<usize> {
        let set = self.emitter.rules.clone();
        let mut found = Vec::new();
        for (i, rule) in set.rules.iter().enumerate() {
            if !fed(rule) {
                continue;
            }
            match set.judge(rule, device, sensor) {
                None => {}
                Some(Cow::Borrowed(_)) => found.push(i),
                Some(Cow::Owned(variant)) => {
                    let (threshold, clear) = variant.alert_thresholds();
                    let id = (i, threshold.to_bits(), clear.to_bits());
                    let table = &mut self.table;
                    let slot = *self.variants.entry(id).or_insert_with(|| {
                        table.push(variant);
                        table.len() - 1
                    });
                    found.push(slot);
                }
            }
        }
        found
    }
}

/// Every sensor name some rule lists, or `None` if a rule takes every sensor.
pub(super) fn sensors_of(rules: &RuleSet) -> Option<Vec<String>> {
    rules.rules.iter().try_fold(Vec::new(), |mut names, r| {
        if r.selection.sensors.is_empty() {
            return None;
        }
        for sensor in &r.selection.sensors {
            if !names.contains(sensor) {
                names.push(sensor.clone());
            }
        }
        Some(names)
    })
}

/// The keys of the combination rules of `rules`, each once.
pub(super) fn combinations_of(rules: &RuleSet) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for key in rules.rules.iter().filter_map(Rule::combination) {
        let key = key.key();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// The hash a key is indexed by: what [`Observation::route`] gives for it.
pub(super) fn route_of(key: &SensorKey) -> u64 {
    SensorKey::route_hash(&key.device, &key.sensor)
}
