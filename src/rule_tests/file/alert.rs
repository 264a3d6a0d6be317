//! The expected alerts of a test (`[[test.alert]]`).

use super::*;

/// Validates the expected alerts of a test (`label` names it); returns them
/// in the order the run's alerts are compared in.
pub(super) fn validate_alerts(
    raw: &[Spanned<RawAlert>],
    label: &str,
    start_ms: u64,
    source: &RulesSource,
    series: &SeriesKeys,
    d: &mut Diag<'_>,
) -> Vec<Event> {
    let rules = source.as_ref().map(|s| &s.1);
    let mut expected = Vec::new();
    for (j, a) in raw.iter().enumerate() {
        let label = format!("{label}.alert[{j}]");
        if let Some(event) = validate_alert(a, &label, start_ms, rules, series, d) {
            expected.push(event);
        }
    }
    expected.sort_by(|a, b| a.key().cmp(&b.key()));
    expected
}

/// One `[[test.alert]]`: its fields, that its rule exists and watches a
/// series of the test.
fn validate_alert(
    raw: &Spanned<RawAlert>,
    label: &str,
    start_ms: u64,
    rules: Option<&RuleSet>,
    series: &SeriesKeys,
    d: &mut Diag<'_>,
) -> Option<Event> {
    let a = raw.get_ref();
    let span = raw.span();
    let field = |name: &str| format!("{label}.{name}");
    let time = alert_at(d, a.at.as_ref(), span.start, start_ms, &field("at"));
    let rule = required(d, a.rule.as_ref(), span.clone(), &field("rule"));
    let device = required(d, a.device.as_ref(), span.clone(), &field("device"));
    let sensor = required(d, a.sensor.as_ref(), span.clone(), &field("sensor"));
    let state = alert_state(d, a.state.as_ref(), span.start, &field("state"));
    let value = match &a.value {
        Some(v) if v.get_ref().is_nan() => {
            d.err(v.span(), &field("value"), "must be a number, found nan");
            None
        }
        Some(v) => Some(*v.get_ref()),
        None => None,
    };
    // The rule must exist, and watch the device and sensor of a series.
    let watched = device.as_deref().zip(sensor.as_deref());
    if let (Some(rules), Some(name)) = (rules, &rule) {
        let at = a.rule.as_ref().map_or(span.clone(), Spanned::span);
        check_rule(d, rules, name, watched, at, &field("rule"));
    }
    if let Some((device, sensor)) = watched {
        let at = a.device.as_ref().map_or(span.clone(), Spanned::span);
        check_series(d, series, device, sensor, at, &field("device"));
    }
    Some(Event {
        time: time?,
        rule: rule?,
        device: device?,
        sensor: sensor?,
        state: state?,
        value,
        labels: a
            .labels
            .as_ref()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
    })
}

/// `at` (required): when the alert happens.
fn alert_at(
    d: &mut Diag<'_>,
    value: Option<&Spanned<toml::Value>>,
    table_at: usize,
    start_ms: u64,
    path: &str,
) -> Option<u64> {
    match value {
        Some(at) => match alert_time(at.get_ref(), start_ms) {
            Ok(t) => Some(t),
            Err(e) => {
                d.err(at.span(), path, e);
                None
            }
        },
        None => {
            d.at(table_at, path, "required field is missing");
            None
        }
    }
}

/// `state` (required): as the alert's JSON writes it, every state an alert
/// can have.
fn alert_state(
    d: &mut Diag<'_>,
    value: Option<&Spanned<String>>,
    table_at: usize,
    path: &str,
) -> Option<AlertState> {
    match value {
        Some(s) => match AlertState::deserialize(StrDeserializer::<serde::de::value::Error>::new(
            s.get_ref(),
        )) {
            Ok(state) => Some(state),
            Err(e) => {
                d.err(s.span(), path, e);
                None
            }
        },
        None => {
            d.at(table_at, path, "required field is missing");
            None
        }
    }
}

/// The rule `name` must be one of `rules`, and watch `watched` (device,
/// sensor) when it is known.
fn check_rule(
    d: &mut Diag<'_>,
    rules: &RuleSet,
    name: &str,
    watched: Option<(&str, &str)>,
    at: Range<usize>,
    path: &str,
) {
    match rules.rules.iter().find(|r| r.name == *name) {
        None => {
            let known: Vec<String> = rules
                .rules
                .iter()
                .map(|r| format!("{:?}", r.name))
                .collect();
            d.err(
                at,
                path,
                format!(
                    "unknown rule {name:?}: the rules under test are {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
        Some(r) => {
            if let Some((device, sensor)) = watched {
                if rules.judge(r, device, sensor).is_none() {
                    d.err(
                        at,
                        path,
                        format!("rule {name:?} does not watch sensor {sensor:?} of device {device:?}, so it never alerts on them"),
                    );
                }
            }
        }
    }
}

/// The test must have a series of `device` and `sensor` (or, for a
/// combination rule's alert, of one of the sensors `sensor` joins with `+`).
fn check_series(
    d: &mut Diag<'_>,
    series: &SeriesKeys,
    device: &str,
    sensor: &str,
    at: Range<usize>,
    path: &str,
) {
    // A combination rule's alerts name its sensors joined by `+`.
    let named = std::iter::once(sensor).chain(sensor.split('+'));
    if !named
        .into_iter()
        .any(|s| series.contains_key(&(device.to_owned(), s.to_owned())))
    {
        d.err(
            at,
            path,
            format!("the test has no series of device {device:?} sensor {sensor:?}: add a [[test.series]] for them"),
        );
    }
}

/// When an expected alert happens: a duration after the start (`"50s"`,
/// `"1m 30s"`, `"-5s"` before it), or an RFC 3339 time.
fn alert_time(value: &toml::Value, start_ms: u64) -> Result<u64, String> {
    let toml::Value::String(text) = value else {
        return time_value(value).map_err(|_| {
            format!(
                "must be a duration after the start, like \"30s\" or \"1m 30s\", or an RFC 3339 time, found {}",
                value.type_str()
            )
        });
    };
    let (negative, duration) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    if duration.starts_with(|c: char| c.is_ascii_digit()) && !duration.contains(['T', ':']) {
        let ms = parse_duration_ms(duration)?;
        let time = if negative {
            start_ms.checked_sub(ms)
        } else {
            start_ms.checked_add(ms)
        };
        return time.ok_or_else(|| format!("{text:?} from the start is before 1970"));
    }
    time_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_times() {
        let s = |t: &str| toml::Value::String(t.into());
        assert_eq!(alert_time(&s("30s"), 1_000), Ok(31_000));
        assert_eq!(alert_time(&s("1m 30s"), 0), Ok(90_000));
        assert_eq!(alert_time(&s("-1s"), 1_000), Ok(0));
        assert_eq!(alert_time(&s("1970-01-01T00:01:00Z"), 5_000), Ok(60_000));
        assert!(alert_time(&s("-2s"), 1_000).is_err());
        assert!(alert_time(&toml::Value::Integer(30), 0)
            .unwrap_err()
            .contains("like \"30s\""));
    }
}
