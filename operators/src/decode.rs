//! Decoding JSON payloads into [`Reading`]s, with configurable field names.
//!
//! The common payload, a flat object of strings and plain numbers without
//! escapes, takes a fast path that scans it once and borrows every string.
//! Anything else (nested values, escapes, exponents, long numbers, invalid
//! JSON) goes through serde_json, which walks the object once, borrowing
//! keys and strings from the payload, and ignores fields it does not need.
//! Both paths give the same fields, interpreted by the same code, so a
//! payload gets the same reading or the same dead-letter reason either way.
//! Device and sensor names of up to 24 bytes are stored inline, so a
//! well-formed reading costs no heap allocation.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::dead_letter::DeadLetterReason;
use crate::reading::{Name, Reading, SensorKey};

/// How the timestamp field is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeFormat {
    /// Numbers are epoch milliseconds; strings are RFC 3339 (or digits, as ms).
    #[default]
    Auto,
    /// Epoch milliseconds.
    EpochMillis,
    /// Epoch seconds (fractions allowed).
    EpochSeconds,
    /// RFC 3339 text, e.g. `2026-11-22T10:00:00.250Z`.
    Rfc3339,
}

/// Where a reading's fields are in the payload.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeConfig {
    /// Field holding the device id (string or integer).
    pub device_field: String,
    /// Field holding the sensor name.
    pub sensor_field: String,
    /// Field holding the numeric value.
    pub value_field: String,
    /// Field holding the event time. When a payload lacks it, the Kafka
    /// record timestamp is used.
    pub time_field: String,
    /// How the event time is written.
    pub time_format: TimeFormat,
    /// A reading whose event time is more than this far ahead of its Kafka
    /// record timestamp is a dead letter: it would drag the watermark forward
    /// and make every other reading late.
    pub max_future_ms: u64,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            device_field: "device_id".into(),
            sensor_field: "sensor".into(),
            value_field: "value".into(),
            time_field: "ts".into(),
            time_format: TimeFormat::Auto,
            max_future_ms: 3_600_000,
        }
    }
}

/// Why a payload could not be decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodeError {
    /// The kind of failure.
    pub reason: DeadLetterReason,
    /// What exactly was wrong.
    pub detail: String,
}

impl DecodeError {
    fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes payloads of one pipeline's format.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    config: DecodeConfig,
}

impl Decoder {
    /// A decoder for the given field names and time format.
    pub fn new(config: DecodeConfig) -> Self {
        Decoder { config }
    }

    /// The decoder's configuration.
    pub fn config(&self) -> &DecodeConfig {
        &self.config
    }

    /// Decodes one payload. `record_time` is the Kafka record timestamp (ms),
    /// used when the payload has no time field and to reject absurd times.
    ///
    /// # Examples
    /// ```
    /// use weir_operators::{Decoder, DeadLetterReason};
    /// let decoder = Decoder::default();
    /// let r = decoder
    ///     .decode(br#"{"device_id":"d1","sensor":"temp","value":71.5,"ts":1000}"#, Some(1000), 0, 7)
    ///     .unwrap();
    /// assert_eq!((r.device.as_str(), r.sensor.as_str(), r.time, r.value, r.offset), ("d1", "temp", 1000, 71.5, 7));
    /// let bad = decoder.decode(br#"{"device_id":"d1","sensor":"temp"}"#, Some(1000), 0, 8);
    /// assert_eq!(bad.unwrap_err().reason, DeadLetterReason::MissingField);
    /// ```
    pub fn decode(
        &self,
        payload: &[u8],
        record_time: Option<i64>,
        partition: i32,
        offset: i64,
    ) -> Result<Reading, DecodeError> {
        if payload.trim_ascii_start().first() != Some(&b'{') {
            return Err(DecodeError::new(
                DeadLetterReason::MalformedJson,
                "payload is not a JSON object",
            ));
        }
        let fields = match flat_fields(payload, &self.config) {
            Some(fields) => fields,
            None => serde_fields(payload, &self.config)?,
        };
        self.reading(fields, record_time, partition, offset)
    }

    /// Interprets the fields found in a payload.
    fn reading(
        &self,
        fields: Fields<'_>,
        record_time: Option<i64>,
        partition: i32,
        offset: i64,
    ) -> Result<Reading, DecodeError> {
        let c = &self.config;
        let device = name_of(
            fields.device.ok_or_else(|| missing(&c.device_field))?,
            &c.device_field,
        )?;
        let sensor = name_of(
            fields.sensor.ok_or_else(|| missing(&c.sensor_field))?,
            &c.sensor_field,
        )?;
        let value = match fields.value.map(|v| value_of(v, &c.value_field)) {
            Some(FieldValue::Number(v)) => v,
            Some(FieldValue::Invalid(detail)) => return Err(detail),
            None => return Err(missing(&c.value_field)),
        };
        if !value.is_finite() {
            return Err(DecodeError::new(
                DeadLetterReason::NonFiniteValue,
                format!("field `{}` is {value}", c.value_field),
            ));
        }
        let time = match fields.time.map(|t| time_of(t, c)) {
            Some(Ok(t)) => t,
            Some(Err(detail)) => return Err(detail),
            None => match record_time {
                Some(t) if t >= 0 => t,
                _ => return Err(missing(&c.time_field)),
            },
        };
        if time < 0 {
            return Err(DecodeError::new(
                DeadLetterReason::AbsurdTimestamp,
                format!("event time {time} is before 1970"),
            ));
        }
        if let Some(rt) = record_time.filter(|rt| *rt >= 0) {
            if time > rt.saturating_add(c.max_future_ms as i64) {
                return Err(DecodeError::new(
                    DeadLetterReason::AbsurdTimestamp,
                    format!(
                        "event time {time} is {} ms ahead of the record timestamp {rt} (limit {} ms)",
                        time - rt,
                        c.max_future_ms
                    ),
                ));
            }
        }
        let route = SensorKey::route_hash(&device, &sensor);
        Ok(Reading {
            device,
            sensor,
            time: time as u64,
            value,
            partition,
            offset,
            route,
        })
    }
}

/// The fields of any payload, found by serde_json.
fn serde_fields<'de>(payload: &'de [u8], c: &DecodeConfig) -> Result<Fields<'de>, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(payload);
    FieldsSeed(c)
        .deserialize(&mut de)
        .and_then(|f| de.end().map(|_| f))
        .map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                DecodeError::new(DeadLetterReason::InvalidField, e.to_string())
            }
            _ => DecodeError::new(DeadLetterReason::MalformedJson, e.to_string()),
        })
}

fn missing(field: &str) -> DecodeError {
    DecodeError::new(
        DeadLetterReason::MissingField,
        format!("field `{field}` is missing"),
    )
}

enum FieldValue {
    Number(f64),
    Invalid(DecodeError),
}

/// The fields found, raw: interpreted once the whole object is parsed.
#[derive(Default)]
struct Fields<'de> {
    device: Option<Scalar<'de>>,
    sensor: Option<Scalar<'de>>,
    value: Option<Scalar<'de>>,
    time: Option<Scalar<'de>>,
}

/// Which configured field a key names.
enum FieldId {
    Device,
    Sensor,
    Value,
    Time,
    Other,
}

/// Classifies a key without allocating.
struct KeySeed<'a>(&'a DecodeConfig);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = FieldId;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<FieldId, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed<'_> {
    type Value = FieldId;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<FieldId, E> {
        Ok(FieldId::of(key.as_bytes(), self.0))
    }
}

impl FieldId {
    fn of(key: &[u8], c: &DecodeConfig) -> FieldId {
        if key == c.device_field.as_bytes() {
            FieldId::Device
        } else if key == c.sensor_field.as_bytes() {
            FieldId::Sensor
        } else if key == c.value_field.as_bytes() {
            FieldId::Value
        } else if key == c.time_field.as_bytes() {
            FieldId::Time
        } else {
            FieldId::Other
        }
    }
}

/// The fields of a payload in the common form, found without serde: a flat
/// JSON object (whitespace allowed) whose values are strings without escapes
/// or numbers that serde_json reads exactly, or `None` for anything else,
/// valid or not, which is left to serde_json. For every payload it accepts,
/// it finds exactly the fields serde_json would (the last of duplicate keys
/// wins), so the reading or the dead-letter reason does not depend on the
/// path taken. Every string is checked to be UTF-8, as serde_json checks
/// it, except keys equal to a configured field name (valid already); outside
/// strings only JSON's ASCII punctuation, digits and whitespace are taken.
fn flat_fields<'de>(payload: &'de [u8], c: &DecodeConfig) -> Option<Fields<'de>> {
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

struct FieldsSeed<'a>(&'a DecodeConfig);

impl<'de> DeserializeSeed<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Fields<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldsSeed<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields = Fields::default();
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            let slot = match key {
                FieldId::Device => &mut fields.device,
                FieldId::Sensor => &mut fields.sensor,
                FieldId::Value => &mut fields.value,
                FieldId::Time => &mut fields.time,
                FieldId::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(fields)
    }
}

fn name_of(v: Scalar<'_>, field: &str) -> Result<Name, DecodeError> {
    let invalid = |what: String| {
        DecodeError::new(
            DeadLetterReason::InvalidField,
            format!("field `{field}` {what}"),
        )
    };
    match v {
        Scalar::Text(t) if t.as_str().is_empty() => Err(invalid("is empty".into())),
        Scalar::Text(t) => Ok(Name::new(t.as_str())),
        Scalar::Int(n) => Ok(compact_str::format_compact!("{n}")),
        Scalar::UInt(n) => Ok(compact_str::format_compact!("{n}")),
        Scalar::Number(n) => Err(invalid(format!(
            "must be a string or an integer, found {n}"
        ))),
        Scalar::Other(kind) => Err(invalid(format!(
            "must be a string or an integer, found {kind}"
        ))),
    }
}

fn value_of(v: Scalar<'_>, field: &str) -> FieldValue {
    match v {
        Scalar::Number(n) => FieldValue::Number(n),
        Scalar::Int(n) => FieldValue::Number(n as f64),
        Scalar::UInt(n) => FieldValue::Number(n as f64),
        Scalar::Text(t) => match t.as_str().trim().parse::<f64>() {
            Ok(n) if !n.is_finite() => FieldValue::Invalid(DecodeError::new(
                DeadLetterReason::NonFiniteValue,
                format!("field `{field}` is {:?}", t.as_str()),
            )),
            _ => FieldValue::Invalid(DecodeError::new(
                DeadLetterReason::InvalidField,
                format!(
                    "field `{field}` must be a number, found string {:?}",
                    t.as_str()
                ),
            )),
        },
        Scalar::Other(kind) => FieldValue::Invalid(DecodeError::new(
            DeadLetterReason::InvalidField,
            format!("field `{field}` must be a number, found {kind}"),
        )),
    }
}

fn time_of(v: Scalar<'_>, c: &DecodeConfig) -> Result<i64, DecodeError> {
    let invalid = |what: String| {
        DecodeError::new(
            DeadLetterReason::InvalidField,
            format!("field `{}` {what}", c.time_field),
        )
    };
    match (v, c.time_format) {
        (Scalar::Int(n), TimeFormat::EpochSeconds) => Ok(n.saturating_mul(1000)),
        (Scalar::Number(n), TimeFormat::EpochSeconds) if n.is_finite() => {
            Ok((n * 1000.0).round() as i64)
        }
        (Scalar::Int(n), TimeFormat::Auto | TimeFormat::EpochMillis) => Ok(n),
        (Scalar::Number(n), TimeFormat::Auto | TimeFormat::EpochMillis) if n.is_finite() => {
            Ok(n.round() as i64)
        }
        (Scalar::Text(t), TimeFormat::Auto | TimeFormat::Rfc3339) => {
            let t = t.as_str();
            if c.time_format == TimeFormat::Auto {
                if let Ok(ms) = t.parse::<i64>() {
                    return Ok(ms);
                }
            }
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| invalid(format!("is not an RFC 3339 time ({t:?}: {e})")))
        }
        (Scalar::Text(t), _) => Err(invalid(format!(
            "must be a number, found string {:?}",
            t.as_str()
        ))),
        (Scalar::Other(kind), _) => Err(invalid(format!("must be a time, found {kind}"))),
        (_, TimeFormat::Rfc3339) => Err(invalid("must be an RFC 3339 string".into())),
        (Scalar::Number(n), _) => Err(invalid(format!("is {n}"))),
        (Scalar::UInt(n), _) => Err(DecodeError::new(
            DeadLetterReason::AbsurdTimestamp,
            format!("event time {n} is out of range"),
        )),
    }
}

/// A string borrowed from the payload when it has no escapes.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Text<'_> {
    fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Owned(s) => s,
        }
    }
}

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text::Owned(v.to_owned()))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON scalar, classified without allocating.
enum Scalar<'de> {
    Number(f64),
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    Text(Text<'de>),
    Other(&'static str),
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(i64::try_from(v).map_or(Scalar::UInt(v), Scalar::Int))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Text::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Text(Text::Owned(v.to_owned())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other("a boolean"))
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Other("null"))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(payload: &str) -> Result<Reading, DecodeError> {
        Decoder::default().decode(payload.as_bytes(), Some(1_700_000_000_000), 2, 42)
    }

    fn reason(payload: &str) -> DeadLetterReason {
        decode(payload).unwrap_err().reason
    }

    #[test]
    fn decodes_a_reading_with_origin() {
        let r = decode(r#"{"ts":1700000000500,"value":-3,"extra":[1,{"a":2}],"sensor":"vib","device_id":"press-1"}"#)
            .unwrap();
        assert_eq!(
            r,
            Reading::new("press-1", "vib", 1_700_000_000_500, -3.0, 2, 42)
        );
    }

    #[test]
    fn rfc3339_and_numeric_device_ids() {
        let r =
            decode(r#"{"device_id":17,"sensor":"t","value":1.5,"ts":"2023-11-14T22:13:20.250Z"}"#)
                .unwrap();
        assert_eq!(r.device.as_str(), "17");
        let serial =
            decode(r#"{"device_id":18446744073709551615,"sensor":"t","value":1,"ts":1}"#).unwrap();
        assert_eq!(serial.device.as_str(), "18446744073709551615");
        assert_eq!(r.time, 1_700_000_000_250);
    }

    #[test]
    fn escaped_names_are_unescaped() {
        let r = decode(r#"{"device_id":"a\"b","sensor":"t","value":1,"ts":1}"#).unwrap();
        assert_eq!(r.device.as_str(), "a\"b");
    }

    #[test]
    fn falls_back_to_the_record_timestamp() {
        let r = decode(r#"{"device_id":"d","sensor":"t","value":1}"#).unwrap();
        assert_eq!(r.time, 1_700_000_000_000);
        let none =
            Decoder::default().decode(br#"{"device_id":"d","sensor":"t","value":1}"#, None, 0, 0);
        assert_eq!(none.unwrap_err().reason, DeadLetterReason::MissingField);
    }

    #[test]
    fn epoch_seconds_format() {
        let config = DecodeConfig {
            time_format: TimeFormat::EpochSeconds,
            time_field: "time".into(),
            ..DecodeConfig::default()
        };
        let r = Decoder::new(config)
            .decode(
                br#"{"device_id":"d","sensor":"t","value":1,"time":1700000000.25}"#,
                None,
                0,
                0,
            )
            .unwrap();
        assert_eq!(r.time, 1_700_000_000_250);
    }

    /// Both paths on one payload: the fast path's result (`None` if it
    /// leaves the payload to serde_json) and serde_json's.
    fn both_paths(
        payload: &[u8],
    ) -> (
        Option<Result<Reading, DecodeError>>,
        Result<Reading, DecodeError>,
    ) {
        let decoder = Decoder::default();
        let time = Some(1_700_000_000_000);
        let flat = flat_fields(payload, decoder.config()).map(|f| decoder.reading(f, time, 2, 42));
        let general =
            serde_fields(payload, decoder.config()).and_then(|f| decoder.reading(f, time, 2, 42));
        (flat, general)
    }

    /// Reason and value bits, so that `-0.0` and `0.0` differ.
    fn outcome(r: &Result<Reading, DecodeError>) -> Result<(Reading, u64), DeadLetterReason> {
        match r {
            Ok(r) => Ok((r.clone(), r.value.to_bits())),
            Err(e) => Err(e.reason.clone()),
        }
    }

    #[test]
    fn the_fast_path_agrees_with_serde_json() {
        // (payload, whether the fast path takes it)
        let cases: &[(&[u8], bool)] = &[
            (br#"{"device_id":"dev-00042","sensor":"temperature","ts":1700000000000,"value":61.23}"#, true),
            (b" {\t\"device_id\" : \"d\" ,\n\"sensor\":\"t\",\"value\":1,\"ts\":5}\r\n ", true),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":5,"value":2}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":-0,"ts":5}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":-0.0,"ts":5}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":0.5,"ts":5}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":-12.000000000001,"ts":5}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":123456789012345.6,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1e3,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1.5E-3,"ts":5}"#, false),
            (br#"{"device_id":-9223372036854775808,"sensor":"t","value":1,"ts":5}"#, true),
            (br#"{"device_id":-9223372036854775809,"sensor":"t","value":1,"ts":5}"#, true),
            (br#"{"device_id":9999999999999999999,"sensor":"t","value":1,"ts":5}"#, true),
            (br#"{"device_id":99999999999999999999,"sensor":"t","value":1,"ts":5}"#, false),
            (br#"{"device_id":"","sensor":"t","value":1,"ts":5}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":"1.5","ts":5}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":"inf","ts":5}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":"2023-11-14T22:13:20.250Z"}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":1700000000000.4}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":18446744073709551615}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":-5}"#, true),
            (br#"{"device_id":"d","sensor":"t","value":1}"#, true),
            (br#"{"device_id":"d","sensor":"t"}"#, true),
            (b"{}", true),
            (b" { } ", true),
            ("{\"device_id\":\"f\u{f6}rde\",\"sensor\":\"\u{b0}C\",\"value\":1,\"ts\":5}".as_bytes(), true),
            (br#"{"device_id":"a\"b","sensor":"t","value":1,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":5,"extra":[1,{"a":2}]}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":null,"ts":5}"#, false),
            (br#"{"device_id":true,"sensor":"t","value":1,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":NaN,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":01,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1.,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":-,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":+1,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1x,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":5,}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":5} x"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":5"#, false),
            (br#"{"device_id":"d","sensor" "t","value":1,"ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1 "ts":5}"#, false),
            (br#"{"device_id":"d","sensor":"t","value":1,"ts":5}{}"#, false),
            (b"{\"device_id\":\"a\tb\",\"sensor\":\"t\",\"value\":1,\"ts\":5}", false),
            (b"{\"device_id\":\"\xff\",\"sensor\":\"t\",\"value\":1,\"ts\":5}", false),
            (b"{\"x\xff\":1,\"device_id\":\"d\",\"sensor\":\"t\",\"value\":1,\"ts\":5}", false),
            (b"{\"device_id\":\"d\",\"sensor\":\"t\",\"value\":1,\"ts\":5}\x0c", false),
            (b"{\"device_id\":\"d\",\"sensor\":\"t\",\"value\":1,\"ts\":5,\"x\":\"\xc3\"}", false),
            (b"{\"device_id\":\"d\",\"sensor\":\"t\",\"value\":1,\"ts\":5\xc2\xa0}", false),
        ];
        for (payload, fast) in cases {
            let text = String::from_utf8_lossy(payload);
            let (flat, general) = both_paths(payload);
            assert_eq!(flat.is_some(), *fast, "fast path taken: {text}");
            if let Some(flat) = flat {
                assert_eq!(outcome(&flat), outcome(&general), "{text}");
            }
        }
    }

    /// Seeded numbers of every shape: the fast path reads each exactly as
    /// serde_json does (the same bits), or leaves it to serde_json.
    #[test]
    fn the_fast_path_reads_numbers_as_serde_json_does() {
        for seed in 1..=20u64 {
            let mut next = crate::seeded(seed);
            let (mut fast, mut total) = (0, 0);
            for _ in 0..2_000 {
                let sign = if next(3) == 0 { "-" } else { "" };
                let int: String = (0..1 + next(20))
                    .map(|_| char::from(b'0' + next(10) as u8))
                    .collect();
                let int = int.trim_start_matches('0');
                let int = if int.is_empty() { "0" } else { int };
                let frac: String = match next(3) {
                    0 => String::new(),
                    _ => std::iter::once('.')
                        .chain((0..1 + next(18)).map(|_| char::from(b'0' + next(10) as u8)))
                        .collect(),
                };
                let number = format!("{sign}{int}{frac}");
                let payload =
                    format!(r#"{{"device_id":"d","sensor":"t","value":{number},"ts":5}}"#);
                let (flat, general) = both_paths(payload.as_bytes());
                total += 1;
                if let Some(flat) = flat {
                    fast += 1;
                    assert_eq!(outcome(&flat), outcome(&general), "seed {seed}: {number}");
                }
            }
            assert!(
                fast * 3 > total,
                "seed {seed}: the fast path took {fast} of {total}"
            );
        }
    }

    #[test]
    fn bad_records_get_their_reason() {
        use DeadLetterReason::*;
        let cases = [
            (r#"{"device_id":"d","sensor":"t","value":1"#, MalformedJson),
            (
                r#"{"device_id":"d","sensor":"t","value":NaN,"ts":1}"#,
                MalformedJson,
            ),
            ("[1,2]", MalformedJson),
            (r#"{"device_id":"d","value":1,"ts":1}"#, MissingField),
            (
                r#"{"device_id":"d","sensor":"t","value":"abc","ts":1}"#,
                InvalidField,
            ),
            (
                r#"{"device_id":"d","sensor":"t","value":"NaN","ts":1}"#,
                NonFiniteValue,
            ),
            (
                r#"{"device_id":"d","sensor":"t","value":null,"ts":1}"#,
                InvalidField,
            ),
            (
                r#"{"device_id":true,"sensor":"t","value":1,"ts":1}"#,
                InvalidField,
            ),
            (
                r#"{"device_id":"d","sensor":"t","value":1,"ts":"yesterday"}"#,
                InvalidField,
            ),
            (
                r#"{"device_id":"d","sensor":"t","value":1,"ts":-5}"#,
                AbsurdTimestamp,
            ),
            // Year 2100, far ahead of the record timestamp (2023).
            (
                r#"{"device_id":"d","sensor":"t","value":1,"ts":4102444800000}"#,
                AbsurdTimestamp,
            ),
            ("\u{1}garbage", MalformedJson),
        ];
        for (payload, want) in cases {
            assert_eq!(reason(payload), want, "{payload}");
        }
    }
}
