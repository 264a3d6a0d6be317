//! Silence rules: no reading for `after`. They have no threshold and watch
//! readings, never windows.

use super::*;

/// A silence rule: no reading for `after` (required, longer than 0).
pub(super) fn silence(
    d: &mut Diag<'_>,
    r: &RawRule,
    kind_at: Range<usize>,
    field: &dyn Fn(&str) -> String,
) -> KindOf {
    let after_ms = match r.after.as_ref() {
        Some(a) => match duration_ms(d, a, &field("after")) {
            Some(0) => {
                d.err(a.span(), &field("after"), "must be longer than 0");
                None
            }
            ms => ms,
        },
        None => {
            d.err(
                kind_at,
                &field("after"),
                "a silence rule needs `after = \"...\"`: how long without a reading",
            );
            None
        }
    };
    KindOf::Silence {
        after_ms: after_ms.unwrap_or(1),
    }
}

/// Reports a threshold (`above` or `below`) given to a silence rule.
pub(super) fn reject_threshold(d: &mut Diag<'_>, r: &RawRule, field: &dyn Fn(&str) -> String) {
    if let Some(t) = r.above.as_ref().or(r.below.as_ref()) {
        d.err(
            t.span(),
            &field(if r.above.is_some() { "above" } else { "below" }),
            "a silence rule has no threshold: it fires when no reading comes for `after`",
        );
    }
}

/// Reports a `window` given to a silence rule.
pub(super) fn reject_window(d: &mut Diag<'_>, r: &RawRule, field: &dyn Fn(&str) -> String) {
    if let Some(window) = &r.window {
        d.err(
            window.span(),
            &field("window"),
            "a silence rule watches readings: remove `window`",
        );
    }
}
