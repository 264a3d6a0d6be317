//! What a rule does with a breach, whatever its kind: `consecutive`, `for`,
//! `cooldown`, `keep_firing_for`, `severity`, escalation and chattering.

use super::*;

/// The severities an alert can have, as rules files name them.
const SEVERITIES: [(&str, &str); 3] = [
    ("info", "info"),
    ("warning", "warning"),
    ("critical", "critical"),
];

/// `consecutive`: breaching observations in a row needed to fire; default 1.
pub(super) fn rule_consecutive(
    d: &mut Diag<'_>,
    r: &RawRule,
    field: &dyn Fn(&str) -> String,
) -> u32 {
    r.consecutive
        .as_ref()
        .and_then(|c| count(d, c, &field("consecutive"), 1, u32::MAX))
        .unwrap_or(1)
}

/// An optional duration, in ms; default (and when not valid) 0.
pub(super) fn optional_duration(
    d: &mut Diag<'_>,
    value: Option<&Spanned<String>>,
    path: &str,
) -> u64 {
    value.and_then(|v| duration_ms(d, v, path)).unwrap_or(0)
}

/// `severity`; default `warning`.
pub(super) fn rule_severity(
    d: &mut Diag<'_>,
    r: &RawRule,
    field: &dyn Fn(&str) -> String,
) -> &'static str {
    r.severity
        .as_ref()
        .and_then(|s| choice(d, s, &field("severity"), &SEVERITIES))
        .unwrap_or("warning")
}

/// A rule's chattering detection, from `chatter_changes`, `chatter_within`
/// (default one minute, as ISA-18.2 suggests: 3 changes a minute) and
/// `chatter_calm` (default `chatter_within`).
pub(super) fn rule_chattering(
    d: &mut Diag<'_>,
    r: &RawRule,
    silence: bool,
    field: &dyn Fn(&str) -> String,
) -> Option<Chattering> {
    let Some(changes) = &r.chatter_changes else {
        for (name, value) in [
            ("chatter_within", &r.chatter_within),
            ("chatter_calm", &r.chatter_calm),
        ] {
            if let Some(value) = value {
                d.err(
                    value.span(),
                    &field(name),
                    format!("`{name}` needs `chatter_changes = 3` (how many state changes make the rule chattering)"),
                );
            }
        }
        return None;
    };
    if silence {
        d.err(
            changes.span(),
            &field("chatter_changes"),
            "silence rules do not chatter",
        );
        return None;
    }
    let changes = count(d, changes, &field("chatter_changes"), 2, u32::MAX);
    let positive = |d: &mut Diag<'_>, value: &Option<Spanned<String>>, name: &str| match value {
        None => Some(None),
        Some(v) => match duration_ms(d, v, &field(name)) {
            Some(0) => {
                d.err(v.span(), &field(name), "must be longer than 0");
                None
            }
            ms => ms.map(Some),
        },
    };
    let within_ms = positive(d, &r.chatter_within, "chatter_within")?.unwrap_or(60_000);
    let calm_ms = positive(d, &r.chatter_calm, "chatter_calm")?.unwrap_or(within_ms);
    Some(Chattering {
        changes: changes?,
        within_ms,
        calm_ms,
    })
}

/// A rule's escalation, from `escalate_after` and `escalate_to`.
pub(super) fn rule_escalation(
    d: &mut Diag<'_>,
    r: &RawRule,
    silence: bool,
    field: &dyn Fn(&str) -> String,
) -> Option<(u64, String)> {
    match (&r.escalate_after, &r.escalate_to) {
        (None, None) => None,
        (Some(after), _) if silence => {
            d.err(
                after.span(),
                &field("escalate_after"),
                "silence rules do not escalate",
            );
            None
        }
        (Some(after), Some(to)) => {
            let after_ms = duration_ms(d, after, &field("escalate_after"));
            let to = choice(d, to, &field("escalate_to"), &SEVERITIES);
            Some((after_ms?, to?.to_owned()))
        }
        (Some(after), None) => {
            d.err(
                after.span(),
                &field("escalate_to"),
                "`escalate_after` needs `escalate_to = \"critical\"` (the severity to escalate to)",
            );
            None
        }
        (None, Some(to)) => {
            d.err(
                to.span(),
                &field("escalate_after"),
                "`escalate_to` needs `escalate_after = \"...\"` (how long an alert fires before it escalates)",
            );
            None
        }
    }
}
