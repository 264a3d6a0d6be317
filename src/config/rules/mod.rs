//! Stage two of rule tables: every rule kind, its modifiers and its
//! combination conditions, validated into the operators' [`Rule`]s.
//!
//! [`validate_rule`] goes through a rule's fields in a fixed order, so
//! problems at the same position are always reported in the same order:
//! the kind (`kind`, and the fields of a rate, deviation or silence rule),
//! a combination's conditions, the readings watched (sensors and devices),
//! the threshold and its hysteresis, the modifiers (`consecutive`, `for`,
//! `cooldown`, `keep_firing_for`, `severity`, escalation, chattering), the
//! input (readings or window aggregates), and registry fields and labels.

use super::*;

mod combination;
mod kind;
mod modifiers;
mod registry;
mod select;
mod silence;
mod threshold;
mod window;

use combination::rule_combination;
use kind::{rule_kind, KindOf};
use modifiers::{
    optional_duration, rule_chattering, rule_consecutive, rule_escalation, rule_severity,
};
pub(super) use registry::rules_with_devices;
use select::{rule_devices, rule_fields, rule_labels, rule_sensors};
use threshold::rule_threshold;
use window::rule_input;

/// Validates rules in file order: each rule, then that names are unique.
pub(super) fn validate_rules(raw: &[Spanned<RawRule>], d: &mut Diag<'_>) -> Vec<Rule> {
    let mut first_use: HashMap<String, (usize, usize)> = HashMap::new();
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let name = r.get_ref().name.as_ref();
        let label = element_path("rule", i, name.map(|n| n.get_ref().as_str()));
        let rule = validate_rule(r, &label, d);
        if let Some(name) = name.filter(|n| !n.get_ref().is_empty()) {
            match first_use.get(name.get_ref()) {
                Some(&(j, offset)) => {
                    let first = d.position(offset);
                    d.err(
                        name.span(),
                        &format!("{label}.name"),
                        format!(
                            "duplicate rule name {:?}: rule[{j}] at {first} has it too",
                            name.get_ref()
                        ),
                    );
                }
                None => {
                    first_use.insert(name.get_ref().clone(), (i, name.span().start));
                }
            }
        }
        rules.push(rule);
    }
    rules
}

/// One `[[rule]]`; `label` names it in messages (`rule[2] "overheat"`).
pub(super) fn validate_rule(raw: &Spanned<RawRule>, label: &str, d: &mut Diag<'_>) -> Rule {
    let at = raw.span().start;
    let r = raw.get_ref();
    let field = |name: &str| format!("{label}.{name}");

    let name = required_text(d, r.name.as_ref(), at, &field("name"));
    let kind = rule_kind(d, r, &field);
    let combination = (kind == KindOf::Combination).then(|| rule_combination(d, r, at, &field));
    let sensors = rule_sensors(d, r, at, combination.as_ref(), &field);
    let devices = rule_devices(d, r, &field);

    let silence = matches!(kind, KindOf::Silence { .. });
    if silence {
        silence::reject_threshold(d, r, &field);
    }
    let no_threshold = silence || combination.is_some();
    let (direction, threshold, clear) = rule_threshold(d, r, at, label, no_threshold, &field);

    let consecutive = rule_consecutive(d, r, &field);
    let for_ms = optional_duration(d, r.for_.as_ref(), &field("for"));
    let cooldown_ms = optional_duration(d, r.cooldown.as_ref(), &field("cooldown"));
    let keep_firing_for_ms =
        optional_duration(d, r.keep_firing_for.as_ref(), &field("keep_firing_for"));
    let severity = rule_severity(d, r, &field);

    if silence {
        silence::reject_window(d, r, &field);
    }
    let escalation = rule_escalation(d, r, silence, &field);
    let chattering = rule_chattering(d, r, silence, &field);
    let input = rule_input(d, r, silence, &field);

    let fields = rule_fields(d, r, &field);
    let labels = rule_labels(d, r, &field);

    let threshold = Threshold {
        input,
        direction,
        threshold: threshold.unwrap_or(0.0),
        clear: clear.unwrap_or(0.0),
    };
    Rule {
        name,
        severity: severity.to_owned(),
        selection: Selection {
            sensors,
            devices,
            fields,
        },
        labels,
        modifiers: Modifiers {
            consecutive,
            for_ms,
            cooldown_ms,
            keep_firing_for_ms,
            escalation,
            chattering,
        },
        kind: kind.with(threshold, combination),
    }
}
