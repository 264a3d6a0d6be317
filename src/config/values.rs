//! Checks of single values: required text, finite numbers, counts,
//! choices, durations, start offsets and client properties.

use super::*;

/// A required, non-empty string; `at` is where the table that lacks it starts.
pub(super) fn required_text(
    d: &mut Diag<'_>,
    value: Option<&Spanned<String>>,
    at: usize,
    path: &str,
) -> String {
    match value {
        Some(v) => text(d, v, path),
        None => {
            d.at(at, path, "required field is missing");
            String::new()
        }
    }
}

/// A non-empty string.
pub(super) fn text(d: &mut Diag<'_>, value: &Spanned<String>, path: &str) -> String {
    if value.get_ref().trim().is_empty() {
        d.err(value.span(), path, "must not be empty");
    }
    value.get_ref().clone()
}

/// A sensor name: not empty, and without `+`, which joins the sensors of a
/// combination rule (`temperature+pressure`) in its alerts and in rule tests.
pub(super) fn sensor_name(d: &mut Diag<'_>, value: &Spanned<String>, path: &str) -> String {
    let name = text(d, value, path);
    if name.contains('+') {
        d.err(
            value.span(),
            path,
            "must not contain `+`, which joins the sensors of a combination rule",
        );
    }
    name
}

/// A finite number.
pub(super) fn finite(d: &mut Diag<'_>, value: &Spanned<f64>, path: &str) -> Option<f64> {
    let v = *value.get_ref();
    if v.is_finite() {
        Some(v)
    } else {
        d.err(
            value.span(),
            path,
            format!("must be a finite number, found {v}"),
        );
        None
    }
}

/// An integer in `min..=max`, converted to `T`.
pub(super) fn count<T: TryFrom<i64> + fmt::Display>(
    d: &mut Diag<'_>,
    value: &Spanned<i64>,
    path: &str,
    min: i64,
    max: T,
) -> Option<T> {
    let v = *value.get_ref();
    match T::try_from(v) {
        Ok(n) if v >= min => Some(n),
        Ok(_) => {
            d.err(
                value.span(),
                path,
                format!("must be at least {min}, found {v}"),
            );
            None
        }
        Err(_) => {
            let limit = if v < min {
                format!("at least {min}")
            } else {
                format!("at most {max}")
            };
            d.err(value.span(), path, format!("must be {limit}, found {v}"));
            None
        }
    }
}

/// One of a fixed list of names.
pub(super) fn choice<T: Copy>(
    d: &mut Diag<'_>,
    value: &Spanned<String>,
    path: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let found = options.iter().find(|(name, _)| *name == value.get_ref());
    if found.is_none() {
        let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
        d.err(
            value.span(),
            path,
            format!(
                "unknown value {:?}: expected one of {}",
                value.get_ref(),
                names.join(", ")
            ),
        );
    }
    found.map(|(_, v)| *v)
}

/// A human duration, in ms.
pub(super) fn duration_ms(d: &mut Diag<'_>, value: &Spanned<String>, path: &str) -> Option<u64> {
    parse_duration_ms(value.get_ref())
        .map_err(|e| d.err(value.span(), path, e))
        .ok()
}

/// Parses a human duration (`"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1h 30m"`)
/// into whole milliseconds. The error quotes the text.
pub(crate) fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let duration = humantime::parse_duration(text).map_err(|e| {
        format!(
            "invalid duration {text:?} ({e}): write a number and a unit, like \"500ms\", \"30s\", \"5m\" or \"1h\""
        )
    })?;
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "duration {text:?} is not a whole number of milliseconds"
        ));
    }
    u64::try_from(duration.as_millis()).map_err(|_| format!("duration {text:?} is too long"))
}

/// Parses where a source starts: `earliest`, `latest`, `committed`, or an
/// RFC 3339 time (the first record at or after it).
pub(super) fn parse_start(text: &str) -> Result<StartOffset, String> {
    match text {
        "earliest" => Ok(StartOffset::Earliest),
        "latest" => Ok(StartOffset::Latest),
        "committed" => Ok(StartOffset::Committed),
        _ => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) if t.timestamp_millis() >= 0 => Ok(StartOffset::Timestamp(t.timestamp_millis())),
            Ok(_) => Err(format!("start time {text:?} is before 1970")),
            Err(e) => Err(format!(
                "invalid start {text:?} ({e}): expected \"earliest\", \"latest\", \"committed\" or an \
                 RFC 3339 time with an offset, like \"2026-11-22T10:00:00Z\""
            )),
        },
    }
}

/// Extra librdkafka properties: strings, numbers or booleans, as strings;
/// `"${NAME}"` takes the value of environment variable `NAME` (a secret: see
/// [`crate::secrets`]).
pub(super) fn properties(
    d: &mut Diag<'_>,
    raw: Option<&BTreeMap<String, Spanned<toml::Value>>>,
    path: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, value) in raw.into_iter().flatten() {
        let text = match value.get_ref() {
            toml::Value::String(s) => match crate::secrets::reference(s) {
                None => s.clone(),
                Some(name) => match crate::secrets::from_env(name) {
                    Some(secret) => secret,
                    None => {
                        d.err(
                            value.span(),
                            &field_path(path, key),
                            format!("environment variable {name} is not set"),
                        );
                        continue;
                    }
                },
            },
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                d.err(
                    value.span(),
                    &field_path(path, key),
                    format!(
                        "must be a string, number or boolean, found {}",
                        other.type_str()
                    ),
                );
                continue;
            }
        };
        out.push((key.clone(), text));
    }
    out
}

/// Where files are kept, from the text of a location field: a plain path or
/// a `file://` URL, resolved against `base`, or an object-store URL, built
/// with the options of `[storage]`. Another `scheme://` is an error at the
/// field, with a local stand-in so that validation goes on.
pub(super) fn location(
    d: &mut Diag<'_>,
    value: Option<&Spanned<String>>,
    text: &str,
    base: &Path,
    path: &str,
) -> Location {
    match Location::parse(text, base, &d.storage) {
        Ok(location) => location,
        Err(problem) => {
            if let Some(value) = value {
                d.err(value.span(), path, problem);
            }
            Location::Local(base.join(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_milliseconds() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("1h 30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        for bad in ["5", "fast", "", "-1s"] {
            let e = parse_duration_ms(bad).unwrap_err();
            assert!(e.contains(&format!("invalid duration {bad:?}")), "{e}");
        }
        let e = parse_duration_ms("1500us").unwrap_err();
        assert!(
            e.contains("\"1500us\" is not a whole number of milliseconds"),
            "{e}"
        );
    }

    #[test]
    fn start_offsets() {
        assert_eq!(parse_start("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(parse_start("latest"), Ok(StartOffset::Latest));
        assert_eq!(parse_start("committed"), Ok(StartOffset::Committed));
        assert_eq!(
            parse_start("1970-01-01T00:00:01.5Z"),
            Ok(StartOffset::Timestamp(1_500))
        );
        // Midnight of 2 January at UTC+1 is 23:00 on 1 January UTC.
        assert_eq!(
            parse_start("1970-01-02T00:00:00+01:00"),
            Ok(StartOffset::Timestamp(23 * 3_600_000))
        );
        // 2026-01-01 is 20 454 days after 1970-01-01 (56 years, 14 of them
        // leap years); 22 November is 325 days later.
        assert_eq!(
            parse_start("2026-11-22T10:00:00Z"),
            Ok(StartOffset::Timestamp(
                ((20_454 + 325) * 86_400 + 10 * 3_600) * 1_000
            ))
        );
        for bad in ["Earliest", "yesterday", "2026-11-22T10:00:00", "2026-11-22"] {
            let e = parse_start(bad).unwrap_err();
            assert!(e.contains(&format!("invalid start {bad:?}")), "{e}");
        }
        assert!(parse_start("1969-12-31T23:59:59Z")
            .unwrap_err()
            .contains("before 1970"));
    }
}
