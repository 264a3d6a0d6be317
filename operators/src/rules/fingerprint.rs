//! [`Rule::fingerprint`]: a digest of a rule's meaning that checkpoints
//! keep, computed from the rule's first ("v1") layout so that it does not
//! change with the shape of [`Rule`].
//!
//! Until rules were split into a header and a kind, `Rule` was one flat
//! struct, and its fingerprint was FNV-1a over `bincode::serialize` of it.
//! Checkpoints written then hold those numbers, and a resumed run keeps a
//! rule's state only if its fingerprint is unchanged. So the fingerprint
//! is still computed over that flat record, field for field in its order,
//! built here from the new `Rule` ([`V1`]): bincode writes no field names,
//! and a `&str` encodes as a `String` does, so the bytes are the old ones.
//! Do not reorder, add or remove fields of [`V1`]: a new setting of a rule
//! goes into a v2 view.

use serde::Serialize;

use super::combination::Combination;
use super::kind::{Direction, RuleInput, RuleKind};
use super::rule::{Chattering, Rule};
use crate::hash::{fnv1a, FNV_OFFSET};

/// The flat rule as it was serialized in v1, borrowing from a [`Rule`].
#[derive(Serialize)]
struct V1<'a> {
    name: &'a str,
    severity: &'a str,
    sensors: &'a [String],
    /// The device pattern's text.
    devices: Option<&'a str>,
    /// (field, pattern text) pairs.
    fields: Vec<(&'a str, &'a str)>,
    labels: &'a [(String, String)],
    direction: Direction,
    threshold: f64,
    clear: f64,
    consecutive: u32,
    for_ms: u64,
    cooldown_ms: u64,
    keep_firing_for_ms: u64,
    input: RuleInput,
    kind: V1Kind,
    escalation: &'a Option<(u64, String)>,
    chattering: &'a Option<Chattering>,
    combination: Option<&'a Combination>,
}

/// The v1 kind: the signal the thresholds apply to, without settings of
/// other kinds. Variant order is the format.
#[derive(Serialize)]
#[serde(rename = "RuleKind")]
enum V1Kind {
    Threshold,
    RateOfChange { span_ms: u64 },
    Deviation { baseline: u32 },
    Silence { after_ms: u64 },
    Combination,
}

impl<'a> V1<'a> {
    /// The v1 record of `rule`. A silence or combination rule had no
    /// thresholds of its own: the rules file gave it `above`-side
    /// thresholds of 0.
    fn of(rule: &'a Rule) -> Self {
        let sel = &rule.selection;
        let m = &rule.modifiers;
        let (t, kind) = match &rule.kind {
            RuleKind::Threshold(t) => (Some(t), V1Kind::Threshold),
            RuleKind::RateOfChange { span_ms, threshold } => {
                (Some(threshold), V1Kind::RateOfChange { span_ms: *span_ms })
            }
            RuleKind::Deviation {
                baseline,
                threshold,
            } => (
                Some(threshold),
                V1Kind::Deviation {
                    baseline: *baseline,
                },
            ),
            RuleKind::Silence { after_ms } => (
                None,
                V1Kind::Silence {
                    after_ms: *after_ms,
                },
            ),
            RuleKind::Combination(_) => (None, V1Kind::Combination),
        };
        V1 {
            name: &rule.name,
            severity: &rule.severity,
            sensors: &sel.sensors,
            devices: sel.devices.as_ref().map(|p| p.as_str()),
            fields: sel
                .fields
                .iter()
                .map(|(f, p)| (f.as_str(), p.as_str()))
                .collect(),
            labels: &rule.labels,
            direction: t.map_or(Direction::Above, |t| t.direction),
            threshold: t.map_or(0.0, |t| t.threshold),
            clear: t.map_or(0.0, |t| t.clear),
            consecutive: m.consecutive,
            for_ms: m.for_ms,
            cooldown_ms: m.cooldown_ms,
            keep_firing_for_ms: m.keep_firing_for_ms,
            input: rule.input(),
            kind,
            escalation: &m.escalation,
            chattering: &m.chattering,
            combination: rule.combination(),
        }
    }
}

impl Rule {
    /// A digest of the rule's definition, the same in every run and
    /// process (FNV-1a over the bincode encoding of its v1 record, see
    /// the `rules::fingerprint` module and [`crate::hash`]): checkpoints keep it,
    /// so that a resumed run keeps the state of a rule only if it is
    /// unchanged.
    pub fn fingerprint(&self) -> u64 {
        let bytes = bincode::serialize(&V1::of(self)).expect("a rule serializes");
        fnv1a(FNV_OFFSET, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::combination::{Combination, Condition, Mode};
    use super::super::{Chattering, Direction, Pattern, Rule, RuleSet, Stat};

    /// The rules whose fingerprints are pinned.
    fn rules() -> Vec<Rule> {
        let mut drop = Rule::new("drop", "vibration", Direction::Below, -1.5)
            .devices("press-*")
            .unwrap()
            .severity("critical")
            .clear_at(-2.5)
            .window(60_000, Stat::Max)
            .rate_of_change(5_000)
            .with(|m| {
                m.consecutive = 3;
                m.for_ms = 30_000;
                m.cooldown_ms = 300_000;
                m.keep_firing_for_ms = 60_000;
                m.escalation = Some((3_600_000, "page".into()));
                m.chattering = Some(Chattering {
                    changes: 4,
                    within_ms: 600_000,
                    calm_ms: 900_000,
                });
            });
        drop.selection.sensors.push("pressure".into());
        drop.selection.fields = vec![("site".into(), Pattern::new("north*").unwrap())];
        drop.labels = vec![("team".into(), "maintenance".into())];
        let combination = Combination {
            mode: Mode::All,
            conditions: vec![
                Condition::new("temperature", Direction::Above, 90.0).clear_at(80.0),
                Condition::new("vibration", Direction::Above, 7.0),
            ],
            within_ms: 10_000,
        };
        vec![
            Rule::new("hot", "temperature", Direction::Above, 90.0),
            drop,
            Rule::new_silence("quiet", "speed", 300_000).with(|m| m.cooldown_ms = 60_000),
            Rule::new_combination("hot-and-shaking", combination),
            Rule::new("odd", "vibration", Direction::Above, 3.0).deviation(20),
        ]
    }

    /// Fingerprints printed by the flat `Rule` (bincode of the struct
    /// itself) before rules became a header and a kind, with the same
    /// rules built field by field: a throwaway test on that code printed
    /// them. Checkpoints written then hold these numbers, so an unchanged
    /// rule must keep them.
    #[test]
    fn fingerprints_are_those_of_the_flat_rule() {
        let want: [(&str, u64); 5] = [
            ("hot", 0x07e5_9009_f721_0835),
            ("drop", 0x8d63_c6a7_ec8c_ca4d),
            ("quiet", 0x8400_7edf_0ba9_7a4f),
            ("hot-and-shaking", 0x0222_fbdf_cf51_a4c1),
            ("odd", 0xb448_969e_5fd6_3f6b),
        ];
        let got = RuleSet::new(rules()).fingerprints();
        let got: Vec<(&str, u64)> = got.iter().map(|(n, f)| (n.as_str(), *f)).collect();
        assert_eq!(got, want);
    }
}
