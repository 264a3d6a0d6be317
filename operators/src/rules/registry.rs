//! The device registry: each device's fields, by which rules select
//! devices and label alerts, and its own limits for rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Rule, Threshold};

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
    /// `rule` with these limits (a rule without thresholds, silence or
    /// combination, is left as it is).
    pub fn apply(&self, rule: &Rule) -> Rule {
        let mut limited = rule.clone();
        if let Some(t) = limited.kind.threshold_mut() {
            *t = self.apply_to(t);
        }
        limited
    }

    /// The thresholds `t` with these limits.
    pub fn apply_to(&self, t: &Threshold) -> Threshold {
        let threshold = self.threshold.unwrap_or(t.threshold);
        Threshold {
            threshold,
            clear: self.clear.unwrap_or(threshold - (t.threshold - t.clear)),
            ..*t
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
    pub(super) fn fingerprint_of(&self, rule: &Rule) -> Vec<(&String, &Device)> {
        self.devices
            .iter()
            .filter(|(_, d)| {
                !rule.selection.fields.is_empty() || registry_limits(Some(d), &rule.name).is_some()
            })
            .collect()
    }
}

/// A registered device's limits for the rule named `rule`.
pub(super) fn registry_limits<'a>(device: Option<&'a Device>, rule: &str) -> Option<&'a Limits> {
    device?
        .limits
        .iter()
        .find(|(name, _)| name == rule)
        .map(|(_, limits)| limits)
}
