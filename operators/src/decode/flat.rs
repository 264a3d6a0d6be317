//! The fast path: a flat JSON object of strings and plain numbers without
//! escapes, scanned once, every string borrowed from the payload.

use super::fields::{FieldId, Fields, Scalar, Text};
use super::DecodeConfig;

/// The fields of a payload in the common form, found without serde: a flat
/// JSON object (whitespace allowed) whose values are strings without escapes
/// or numbers that serde_json reads exactly, or `None` for anything else,
/// valid or not, which is left to serde_json. For every payload it accepts,
/// it finds exactly the fields serde_json would (the last of duplicate keys
/// wins), so the reading or the dead-letter reason does not depend on the
/// path taken. Every string is checked to be UTF-8, as serde_json checks
/// it, except keys equal to a configured field name (valid already); outside
/// strings only JSON's ASCII punctuation, digits and whitespace are taken.
#[inline]
pub(super) fn flat_fields<'de>(payload: &'de [u8], c: &DecodeConfig) -> Option<Fields<'de>> {
    let b = payload;
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut fields = Fields::default();
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let (key, next) = flat_str(b, i + 1)?;
            i = skip_ws(b, next);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let (value, next) = flat_scalar(b, i)?;
            i = skip_ws(b, next);
            match FieldId::of(key, c) {
                FieldId::Device => fields.device = Some(value),
                FieldId::Sensor => fields.sensor = Some(value),
                FieldId::Value => fields.value = Some(value),
                FieldId::Time => fields.time = Some(value),
                // serde_json rejects a key that is not UTF-8 (a configured
                // field name is).
                FieldId::Other => {
                    std::str::from_utf8(key).ok()?;
                }
            }
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, i) == b.len()).then_some(fields)
}

/// The index of the first byte at or after `i` that is not JSON whitespace.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The string that starts at `start` (just after its opening quote) and the
/// index after its closing quote; `None` if it holds an escape or a control
/// character (an escape needs unescaping, a control character is an error),
/// or is not closed. The bytes are not checked to be UTF-8.
fn flat_str(b: &[u8], start: usize) -> Option<(&[u8], usize)> {
    let len = b[start..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    let end = start + len;
    (b[end] == b'"').then(|| (&b[start..end], end + 1))
}

/// Powers of ten that are exact in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The string or number that starts at `i`, and the index after it; `None`
/// for other values and for numbers serde_json would not read exactly as
/// here (exponents, more than 19 integer digits, more than 15 significant
/// digits with a fraction) or would reject.
fn flat_scalar(b: &[u8], mut i: usize) -> Option<(Scalar<'_>, usize)> {
    if b.get(i) == Some(&b'"') {
        let (s, next) = flat_str(b, i + 1)?;
        let s = std::str::from_utf8(s).ok()?;
        return Some((Scalar::Text(Text::Borrowed(s)), next));
    }
    let negative = b.get(i) == Some(&b'-');
    i += usize::from(negative);
    let start = i;
    match b.get(i) {
        // A leading zero stands alone.
        Some(b'0') => {
            i += 1;
            if b.get(i).is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
        Some(b'1'..=b'9') => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return None,
    }
    let int_digits = i - start;
    // 19 digits always fit in a u64.
    if int_digits > 19 {
        return None;
    }
    let mut significand = digits(&b[start..i]);
    match b.get(i) {
        Some(b'.') => {
            let frac_start = i + 1;
            i = frac_start;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let frac_digits = i - frac_start;
            // Up to 15 digits the significand is below 2^53, exact in an
            // f64, and one division by an exact power of ten rounds
            // correctly: serde_json's result.
            if frac_digits == 0
                || int_digits + frac_digits > 15
                || matches!(b.get(i), Some(b'e' | b'E'))
            {
                return None;
            }
            significand = significand * 10u64.pow(frac_digits as u32) + digits(&b[frac_start..i]);
            let f = significand as f64 / POW10[frac_digits];
            Some((Scalar::Number(if negative { -f } else { f }), i))
        }
        Some(b'e' | b'E') => None,
        _ if negative => {
            // As serde_json: `-0` and integers below i64::MIN are floats.
            let n = (significand as i64).wrapping_neg();
            let scalar = if n >= 0 {
                Scalar::Number(-(significand as f64))
            } else {
                Scalar::Int(n)
            };
            Some((scalar, i))
        }
        _ => Some((
            i64::try_from(significand).map_or(Scalar::UInt(significand), Scalar::Int),
            i,
        )),
    }
}

/// The value of a run of at most 19 ASCII digits.
fn digits(b: &[u8]) -> u64 {
    b.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'))
}
