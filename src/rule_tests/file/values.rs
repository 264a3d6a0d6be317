//! Checks of single values of a test file: required strings and times.

use super::*;

/// A required, non-empty string; `span` is the table's.
pub(super) fn required(
    d: &mut Diag<'_>,
    value: Option<&Spanned<String>>,
    span: Range<usize>,
    path: &str,
) -> Option<String> {
    match value {
        Some(v) if v.get_ref().trim().is_empty() => {
            d.err(v.span(), path, "must not be empty");
            None
        }
        Some(v) => Some(v.get_ref().clone()),
        None => {
            d.err(span, path, "required field is missing");
            None
        }
    }
}

/// An RFC 3339 time (a string or a TOML offset date-time), in ms since the epoch.
pub(super) fn time_value(value: &toml::Value) -> Result<u64, String> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(t) => t.to_string(),
        other => {
            return Err(format!(
                "must be an RFC 3339 time like \"2026-01-01T00:00:00Z\", found {}",
                other.type_str()
            ))
        }
    };
    match chrono::DateTime::parse_from_rfc3339(&text) {
        Ok(t) => u64::try_from(t.timestamp_millis())
            .map_err(|_| format!("time {text:?} is before 1970")),
        Err(e) => Err(format!(
            "invalid time {text:?} ({e}): write an RFC 3339 time with an offset, like \"2026-01-01T00:00:00Z\""
        )),
    }
}
