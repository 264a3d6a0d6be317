//! The compact notation of a series' values (`80 _ 95x3 70+1x3 72@-15s`).

use crate::config::parse_duration_ms;

/// One slot of a series: what arrives in one interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Slot {
    /// No reading.
    Gap,
    /// A reading of `value`, whose event time is the interval's start plus
    /// `shift_ms` (negative: it arrives late).
    Value {
        /// The value.
        value: f64,
        /// Event time minus arrival time, in ms.
        shift_ms: i64,
    },
}

/// Expands the compact notation of a series' values into one [`Slot`] per
/// interval. Tokens are separated by white space:
///
/// | token | slots |
/// |---|---|
/// | `7.5` | one reading of 7.5 |
/// | `_` | no reading |
/// | `_xN` | N intervals without a reading |
/// | `AxN` | N readings of A |
/// | `A+BxN` | N + 1 readings: A, A+B, ..., A+N·B (as promtool) |
/// | `A-BxN` | N + 1 readings: A, A−B, ..., A−N·B |
/// | `A@-D` | one reading of A, arriving in this interval, whose event time is the duration D earlier (`A@+D`: later) |
///
/// An error gives the byte offset of the bad token in `text`.
///
/// ```
/// use weir::rule_tests::{expand_values, Slot};
/// let v = |value| Slot::Value { value, shift_ms: 0 };
/// assert_eq!(
///     expand_values("1 _ 2x2 -2+4x3 72@-15s").unwrap(),
///     vec![v(1.0), Slot::Gap, v(2.0), v(2.0), v(-2.0), v(2.0), v(6.0), v(10.0),
///          Slot::Value { value: 72.0, shift_ms: -15_000 }],
/// );
/// assert_eq!(expand_values("1 2 x").unwrap_err().0, 4);
/// ```
pub fn expand_values(text: &str) -> Result<Vec<Slot>, (usize, String)> {
    let mut slots = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        let token_len = rest[start..]
            .find(char::is_whitespace)
            .unwrap_or(rest.len() - start);
        let token = &rest[start..start + token_len];
        let offset = text.len() - rest.len() + start;
        expand_token(token, &mut slots).map_err(|e| (offset, e))?;
        rest = &rest[start + token_len..];
    }
    Ok(slots)
}

/// Appends the slots of one token.
fn expand_token(token: &str, slots: &mut Vec<Slot>) -> Result<(), String> {
    let hint = "write a number, `_` (no reading), `AxN`, `A+BxN`, `A-BxN`, `_xN` or `A@-D` (a late reading)";
    if let Some((value, shift)) = token.split_once('@') {
        let value = number(value, token)?;
        let (sign, duration) = match shift.as_bytes().first() {
            Some(b'-') => (-1, &shift[1..]),
            Some(b'+') => (1, &shift[1..]),
            _ => {
                return Err(format!(
                    "invalid token {token:?}: after `@` write how much earlier (`-15s`) or later (`+2s`) the event time is than the interval"
                ))
            }
        };
        let ms = parse_duration_ms(duration).map_err(|e| format!("in {token:?}: {e}"))?;
        let ms = i64::try_from(ms).map_err(|_| format!("in {token:?}: duration too long"))?;
        slots.push(Slot::Value {
            value,
            shift_ms: sign * ms,
        });
        return Ok(());
    }
    let Some((head, times)) = token.rsplit_once('x') else {
        if token == "_" {
            slots.push(Slot::Gap);
        } else {
            slots.push(Slot::Value {
                value: number(token, token)?,
                shift_ms: 0,
            });
        }
        return Ok(());
    };
    let n: usize = times.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
        format!("invalid token {token:?}: after `x` write how many times, 1 or more ({hint})")
    })?;
    if n > 1_000_000 {
        return Err(format!(
            "invalid token {token:?}: at most 1000000 repetitions"
        ));
    }
    if head == "_" {
        slots.extend(std::iter::repeat_n(Slot::Gap, n));
        return Ok(());
    }
    // A step is a `+` or `-` after the first character that does not
    // belong to an exponent (`1e-3`).
    let step_at = head
        .char_indices()
        .skip(1)
        .find(|&(i, c)| (c == '+' || c == '-') && !matches!(head.as_bytes()[i - 1], b'e' | b'E'))
        .map(|(i, _)| i);
    match step_at {
        None => {
            let value = number(head, token)?;
            slots.extend(std::iter::repeat_n(Slot::Value { value, shift_ms: 0 }, n));
        }
        Some(i) => {
            let start = number(&head[..i], token)?;
            let step = number(&head[i + 1..], token)?;
            let step = if head.as_bytes()[i] == b'-' {
                -step
            } else {
                step
            };
            for k in 0..=n {
                let value = start + k as f64 * step;
                if !value.is_finite() {
                    return Err(format!(
                        "invalid token {token:?}: reaches a value that is not finite"
                    ));
                }
                slots.push(Slot::Value { value, shift_ms: 0 });
            }
        }
    }
    Ok(())
}

/// A finite number, part of `token`.
fn number(text: &str, token: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "invalid token {token:?}: a reading's value must be a finite number"
        )),
        Err(_) => Err(format!(
            "invalid token {token:?}: write a number, `_` (no reading), `AxN`, `A+BxN`, `A-BxN`, `_xN` or `A@-D` (a late reading)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(value: f64) -> Slot {
        Slot::Value { value, shift_ms: 0 }
    }

    #[test]
    fn notation_expands_as_documented() {
        assert_eq!(expand_values("").unwrap(), vec![]);
        assert_eq!(
            expand_values(" 80  85\n91 ").unwrap(),
            vec![v(80.0), v(85.0), v(91.0)]
        );
        assert_eq!(expand_values("_ _x2").unwrap(), vec![Slot::Gap; 3]);
        assert_eq!(expand_values("95x3").unwrap(), vec![v(95.0); 3]);
        // promtool's examples: '-2+4x3' is '-2 2 6 10', '1-2x4' is '1 -1 -3 -5 -7'.
        assert_eq!(
            expand_values("-2+4x3").unwrap(),
            vec![v(-2.0), v(2.0), v(6.0), v(10.0)]
        );
        assert_eq!(
            expand_values("1-2x4").unwrap(),
            vec![v(1.0), v(-1.0), v(-3.0), v(-5.0), v(-7.0)]
        );
        assert_eq!(expand_values("1e-3x2").unwrap(), vec![v(0.001); 2]);
        assert_eq!(
            expand_values("1e2+1e1x1").unwrap(),
            vec![v(100.0), v(110.0)]
        );
        assert_eq!(
            expand_values("72@-15s 5@+500ms").unwrap(),
            vec![
                Slot::Value {
                    value: 72.0,
                    shift_ms: -15_000
                },
                Slot::Value {
                    value: 5.0,
                    shift_ms: 500
                }
            ]
        );
    }

    #[test]
    fn notation_errors_point_at_the_token() {
        let (at, e) = expand_values("1 2 abc").unwrap_err();
        assert_eq!(at, 4);
        assert!(e.starts_with("invalid token \"abc\""), "{e}");
        let (at, e) = expand_values("1 95x0").unwrap_err();
        assert_eq!(at, 2);
        assert!(e.contains("1 or more"), "{e}");
        let (at, e) = expand_values("  5@15s").unwrap_err();
        assert_eq!(at, 2);
        assert!(e.contains("`-15s`"), "{e}");
        assert!(expand_values("5@-15")
            .unwrap_err()
            .1
            .contains("invalid duration"));
        assert!(expand_values("inf").unwrap_err().1.contains("finite"));
        assert!(expand_values("1+x3").is_err());
    }
}
