//! A rule's threshold: `above` or `below`, and its hysteresis, `clear`.

use super::*;

/// The direction, threshold and clear value of a rule; a threshold or
/// clear value that is not valid is `None` (its problem is recorded).
/// With `no_threshold` (silence and combination rules) the threshold is 0
/// and `above` and `below` are not read.
pub(super) fn rule_threshold(
    d: &mut Diag<'_>,
    r: &RawRule,
    at: usize,
    label: &str,
    no_threshold: bool,
    field: &dyn Fn(&str) -> String,
) -> (Direction, Option<f64>, Option<f64>) {
    let (direction, threshold) = match (&r.above, &r.below) {
        _ if no_threshold => (Direction::Above, Some(0.0)),
        (Some(above), None) => (Direction::Above, finite(d, above, &field("above"))),
        (None, Some(below)) => (Direction::Below, finite(d, below, &field("below"))),
        (Some(_), Some(below)) => {
            d.err(
                below.span(),
                &field("below"),
                "give either `above` or `below`, not both",
            );
            (Direction::Above, None)
        }
        (None, None) => {
            d.at(
                at,
                label,
                "no threshold: give `above = <number>` or `below = <number>`",
            );
            (Direction::Above, None)
        }
    };
    let clear = rule_clear(d, r, direction, threshold, field);
    (direction, threshold, clear)
}

/// `clear`, which must be on the safe side of the threshold; default the
/// threshold.
fn rule_clear(
    d: &mut Diag<'_>,
    r: &RawRule,
    direction: Direction,
    threshold: Option<f64>,
    field: &dyn Fn(&str) -> String,
) -> Option<f64> {
    match (&r.clear, threshold) {
        (Some(c), threshold) => {
            let clear = finite(d, c, &field("clear"));
            if let (Some(clear), Some(threshold)) = (clear, threshold) {
                let side = direction.clear_side();
                let (key, resolves) = match direction {
                    Direction::Above => ("above", "falls"),
                    Direction::Below => ("below", "rises"),
                };
                if !direction.clears_at(threshold, clear) {
                    d.err(
                        c.span(),
                        &field("clear"),
                        format!(
                            "{clear} must be {side} the threshold ({key} = {threshold}): a firing \
                             alert resolves when the value {resolves} back to `clear`"
                        ),
                    );
                }
            }
            clear
        }
        (None, threshold) => threshold,
    }
}
