//! Decoding JSON payloads into [`Reading`]s, with configurable field names.
//!
//! The decoder walks the JSON object once with serde_json, borrowing keys and
//! strings from the payload, and ignores fields it does not need. Device and
//! sensor names of up to 24 bytes are stored inline, so a well-formed
//! reading costs no heap allocation.

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
        let mut de = serde_json::Deserializer::from_slice(payload);
        let fields = FieldsSeed(&self.config)
            .deserialize(&mut de)
            .and_then(|f| de.end().map(|_| f))
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => {
                    DecodeError::new(DeadLetterReason::InvalidField, e.to_string())
                }
                _ => DecodeError::new(DeadLetterReason::MalformedJson, e.to_string()),
            })?;
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
        let c = self.0;
        Ok(if key == c.device_field {
            FieldId::Device
        } else if key == c.sensor_field {
            FieldId::Sensor
        } else if key == c.value_field {
            FieldId::Value
        } else if key == c.time_field {
            FieldId::Time
        } else {
            FieldId::Other
        })
    }
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
