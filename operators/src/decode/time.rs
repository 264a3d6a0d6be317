//! Event times, as each [`TimeFormat`] writes them.

use super::fields::Scalar;
use super::{DecodeConfig, DecodeError, TimeFormat};
use crate::dead_letter::DeadLetterReason;

pub(super) fn time_of(v: Scalar<'_>, c: &DecodeConfig) -> Result<i64, DecodeError> {
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
