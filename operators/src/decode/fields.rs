//! The fields a payload holds, raw, and what they mean: a device or sensor
//! name, a value. Both paths (the fast scan and serde_json) find them as
//! [`Scalar`]s; the same code interprets them.

use super::{DecodeConfig, DecodeError};
use crate::dead_letter::DeadLetterReason;
use crate::reading::Name;

pub(super) enum FieldValue {
    Number(f64),
    Invalid(DecodeError),
}

/// The fields found, raw: interpreted once the whole object is parsed.
#[derive(Default)]
pub(super) struct Fields<'de> {
    pub(super) device: Option<Scalar<'de>>,
    pub(super) sensor: Option<Scalar<'de>>,
    pub(super) value: Option<Scalar<'de>>,
    pub(super) time: Option<Scalar<'de>>,
}

/// Which configured field a key names.
pub(super) enum FieldId {
    Device,
    Sensor,
    Value,
    Time,
    Other,
}

impl FieldId {
    pub(super) fn of(key: &[u8], c: &DecodeConfig) -> FieldId {
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

/// Any JSON scalar, classified without allocating.
pub(super) enum Scalar<'de> {
    Number(f64),
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    Text(Text<'de>),
    Other(&'static str),
}

/// A string borrowed from the payload when it has no escapes.
pub(super) enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Text<'_> {
    pub(super) fn as_str(&self) -> &str {
        match self {
            Text::Borrowed(s) => s,
            Text::Owned(s) => s,
        }
    }
}

#[inline]
pub(super) fn name_of(v: Scalar<'_>, field: &str) -> Result<Name, DecodeError> {
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

#[inline]
pub(super) fn value_of(v: Scalar<'_>, field: &str) -> FieldValue {
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
