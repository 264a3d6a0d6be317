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

mod control;
mod fields;
mod flat;
mod json;
mod time;

use std::fmt;

use crate::dead_letter::DeadLetterReason;
use crate::reading::{Reading, SensorKey};

pub use control::ControlDecoder;
use fields::{name_of, value_of, FieldValue, Fields};
use flat::flat_fields;
use json::serde_fields;
use time::time_of;

/// How the timestamp field is written.
///
/// Its name ([`TimeFormat::as_str`]) is the one pipeline files use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum TimeFormat {
    /// Numbers are epoch milliseconds; strings are RFC 3339 (or digits, as ms).
    #[default]
    Auto,
    /// Epoch milliseconds.
    #[strum(serialize = "epoch_ms")]
    EpochMillis,
    /// Epoch seconds (fractions allowed).
    #[strum(serialize = "epoch_s")]
    EpochSeconds,
    /// RFC 3339 text, e.g. `2026-11-22T10:00:00.250Z`.
    Rfc3339,
}

impl TimeFormat {
    /// The name pipeline files give the format: `auto`, `epoch_ms`,
    /// `epoch_s` or `rfc3339`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
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
    pub(crate) fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
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

fn missing(field: &str) -> DecodeError {
    DecodeError::new(
        DeadLetterReason::MissingField,
        format!("field `{field}` is missing"),
    )
}

#[cfg(test)]
mod tests;
