//! Combination rules: conditions on several sensors (`all` or `any`) whose
//! latest breaches fall `within` a span of event time.

use super::*;

/// The conditions of a combination rule (`all` or `any`, and `within`).
/// The rule's own thresholds and modifiers do not apply to it: each one
/// given is an error.
pub(super) fn rule_combination(
    d: &mut Diag<'_>,
    r: &RawRule,
    at: usize,
    field: &dyn Fn(&str) -> String,
) -> Combination {
    reject_single_sensor_fields(d, r, field);
    let (mode, list, key) = combination_mode(d, r, at, field);
    let conditions = list.map_or_else(Vec::new, |list| {
        combination_conditions(d, mode, list, key, field)
    });
    let within_ms = match &r.within {
        Some(w) => duration_ms(d, w, &field("within")).unwrap_or(0),
        None => {
            d.at(
                at,
                &field("within"),
                "a combination rule needs `within = \"...\"`: the span its conditions' breaches must fall in",
            );
            0
        }
    };
    Combination {
        mode,
        conditions,
        within_ms,
    }
}

/// Reports each field of a single-sensor rule given to a combination rule.
fn reject_single_sensor_fields(d: &mut Diag<'_>, r: &RawRule, field: &dyn Fn(&str) -> String) {
    let single = [
        ("sensor", r.sensor.as_ref().map(Spanned::span)),
        ("sensors", r.sensors.as_ref().map(Spanned::span)),
        ("above", r.above.as_ref().map(Spanned::span)),
        ("below", r.below.as_ref().map(Spanned::span)),
        ("clear", r.clear.as_ref().map(Spanned::span)),
        ("consecutive", r.consecutive.as_ref().map(Spanned::span)),
        ("for", r.for_.as_ref().map(Spanned::span)),
        ("cooldown", r.cooldown.as_ref().map(Spanned::span)),
        (
            "keep_firing_for",
            r.keep_firing_for.as_ref().map(Spanned::span),
        ),
        ("window", r.window.as_ref().map(Spanned::span)),
    ];
    for (name, span) in single {
        if let Some(span) = span {
            d.err(
                span,
                &field(name),
                format!("a combination rule takes its sensors and thresholds from its conditions (`all` or `any`): remove `{name}`"),
            );
        }
    }
    // Escalation and chattering follow one key's state; a combination's
    // state is its device's, and does not take them.
    let modifiers = [
        (
            "escalate_after",
            r.escalate_after.as_ref().map(Spanned::span),
        ),
        (
            "chatter_changes",
            r.chatter_changes.as_ref().map(Spanned::span),
        ),
    ];
    for (name, span) in modifiers {
        if let Some(span) = span {
            d.err(
                span,
                &field(name),
                format!("combination rules take no escalation or chattering detection (see README \"Alert rules\"): remove `{name}`"),
            );
        }
    }
}

/// The conditions of a combination rule, as written.
type RawConditions = Spanned<Vec<Spanned<RawCondition>>>;

/// `all` or `any` (exactly one): the mode, the conditions if given, and
/// the key that holds them.
fn combination_mode<'r>(
    d: &mut Diag<'_>,
    r: &'r RawRule,
    at: usize,
    field: &dyn Fn(&str) -> String,
) -> (Mode, Option<&'r RawConditions>, &'static str) {
    match (&r.all, &r.any) {
        (Some(all), None) => (Mode::All, Some(all), "all"),
        (None, Some(any)) => (Mode::Any, Some(any), "any"),
        (Some(_), Some(any)) => {
            d.err(
                any.span(),
                &field("any"),
                "give either `all` or `any`, not both",
            );
            (Mode::Any, None, "any")
        }
        (None, None) => {
            d.at(
                at,
                &field("all"),
                "a combination rule needs `all = [...]` or `any = [...]`: its conditions, like { sensor = \"temperature\", above = 90.0 }",
            );
            (Mode::All, None, "all")
        }
    }
}

/// The conditions under `key`: at least two for `all`, at least one for `any`.
fn combination_conditions(
    d: &mut Diag<'_>,
    mode: Mode,
    list: &RawConditions,
    key: &str,
    field: &dyn Fn(&str) -> String,
) -> Vec<Condition> {
    if list.get_ref().len() < 2 && mode == Mode::All {
        d.err(
            list.span(),
            &field(key),
            "`all` needs at least two conditions",
        );
    }
    if list.get_ref().is_empty() {
        d.err(list.span(), &field(key), "needs at least one condition");
    }
    list.get_ref()
        .iter()
        .enumerate()
        .map(|(i, c)| condition(d, c, &format!("{}[{i}]", field(key))))
        .collect()
}

/// One condition; `path` names it in messages (`rule[0] "hot".all[1]`).
fn condition(d: &mut Diag<'_>, c: &Spanned<RawCondition>, path: &str) -> Condition {
    let raw = c.get_ref();
    let sensor = match raw.sensor.as_ref() {
        Some(s) => sensor_name(d, s, &format!("{path}.sensor")),
        None => required_text(d, None, c.span().start, &format!("{path}.sensor")),
    };
    let (direction, threshold) = match (&raw.above, &raw.below) {
        (Some(a), None) => (Direction::Above, finite(d, a, &format!("{path}.above"))),
        (None, Some(b)) => (Direction::Below, finite(d, b, &format!("{path}.below"))),
        _ => {
            d.err(
                c.span(),
                path,
                "give exactly one of `above = <number>` or `below = <number>`",
            );
            (Direction::Above, None)
        }
    };
    let threshold = threshold.unwrap_or(0.0);
    let clear = match &raw.clear {
        None => threshold,
        Some(v) => {
            let clear = finite(d, v, &format!("{path}.clear")).unwrap_or(threshold);
            if !direction.clears_at(threshold, clear) {
                d.err(
                    v.span(),
                    &format!("{path}.clear"),
                    format!("{clear} is on the breaching side of the threshold {threshold}"),
                );
            }
            clear
        }
    };
    Condition::new(&sensor, direction, threshold).clear_at(clear)
}
