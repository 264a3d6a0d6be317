//! One `[[test]]`: its settings, then its series and its expected alerts.

use super::*;

/// One `[[test]]`; `label` names it in messages (`test[0] "overheat"`).
pub(super) fn validate_test(
    raw: &Spanned<RawTest>,
    label: &str,
    source: &RulesSource,
    d: &mut Diag<'_>,
) -> RuleTest {
    let t = raw.get_ref();
    let at = raw.span().start;
    let field = |name: &str| format!("{label}.{name}");
    let name = test_name(d, t.name.as_ref(), at, &field("name"));
    let interval_ms = test_interval(d, t.interval.as_ref(), &field("interval"));
    let start_ms = test_start(d, t.start.as_ref(), &field("start"));
    let out_of_orderness_ms = match &t.out_of_orderness {
        Some(o) => parse_duration_ms(o.get_ref()).unwrap_or_else(|e| {
            d.err(o.span(), &field("out_of_orderness"), e);
            0
        }),
        None => source
            .as_ref()
            .and_then(|s| s.3)
            .unwrap_or(DEFAULT_OUT_OF_ORDERNESS_MS),
    };
    let late = test_late(d, t.late.as_ref(), &field("late"));
    let tolerance = test_tolerance(d, t.tolerance.as_ref(), &field("tolerance"));

    // The series, then the readings in arrival order.
    let raw_series = t.series.as_deref().unwrap_or_default();
    if raw_series.is_empty() {
        d.at(
            at,
            &field("series"),
            "no input: add [[test.series]] tables with device, sensor and values",
        );
    }
    let clock = Clock {
        start_ms,
        interval_ms,
    };
    let (readings, keys) = validate_series(raw_series, label, clock, d);

    let raw_alerts = t.alert.as_deref().unwrap_or_default();
    let expected = validate_alerts(raw_alerts, label, start_ms, source, &keys, d);

    RuleTest {
        name,
        start_ms,
        out_of_orderness_ms,
        readings,
        expected,
        late,
        tolerance,
    }
}

/// `name`: required, not empty.
fn test_name(d: &mut Diag<'_>, value: Option<&Spanned<String>>, at: usize, path: &str) -> String {
    match value {
        Some(n) if n.get_ref().trim().is_empty() => {
            d.err(n.span(), path, "must not be empty");
            String::new()
        }
        Some(n) => n.get_ref().clone(),
        None => {
            d.at(at, path, "required field is missing");
            String::new()
        }
    }
}

/// `interval`: longer than 0; default one second.
fn test_interval(d: &mut Diag<'_>, value: Option<&Spanned<String>>, path: &str) -> u64 {
    match value {
        Some(i) => match parse_duration_ms(i.get_ref()) {
            Ok(0) => {
                d.err(i.span(), path, "must be longer than 0");
                DEFAULT_INTERVAL_MS
            }
            Ok(ms) => ms,
            Err(e) => {
                d.err(i.span(), path, e);
                DEFAULT_INTERVAL_MS
            }
        },
        None => DEFAULT_INTERVAL_MS,
    }
}

/// `start`: an RFC 3339 time; default the epoch.
fn test_start(d: &mut Diag<'_>, value: Option<&Spanned<toml::Value>>, path: &str) -> u64 {
    match value {
        Some(s) => match time_value(s.get_ref()) {
            Ok(ms) => ms,
            Err(e) => {
                d.err(s.span(), path, e);
                0
            }
        },
        None => 0,
    }
}

/// `late`: how many readings must be late, 0 or more.
fn test_late(d: &mut Diag<'_>, value: Option<&Spanned<i64>>, path: &str) -> Option<u64> {
    value.and_then(|l| match u64::try_from(*l.get_ref()) {
        Ok(n) => Some(n),
        Err(_) => {
            d.err(
                l.span(),
                path,
                format!("must be at least 0, found {}", l.get_ref()),
            );
            None
        }
    })
}

/// `tolerance`: a finite number, 0 or more; default [`DEFAULT_TOLERANCE`].
fn test_tolerance(d: &mut Diag<'_>, value: Option<&Spanned<f64>>, path: &str) -> f64 {
    match value {
        Some(tol) if tol.get_ref().is_finite() && *tol.get_ref() >= 0.0 => *tol.get_ref(),
        Some(tol) => {
            d.err(
                tol.span(),
                path,
                format!(
                    "must be a finite number, 0 or more, found {}",
                    tol.get_ref()
                ),
            );
            DEFAULT_TOLERANCE
        }
        None => DEFAULT_TOLERANCE,
    }
}
