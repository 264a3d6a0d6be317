//! `[alarm_health]`: how the alarm system's health is measured (see
//! [`weir_operators::alarm::health`]).

use super::*;
use weir_operators::alarm::health::{AreaBy, HealthConfig};

const HOUR_MS: u64 = 3_600_000;

/// The health measures of `[alarm_health]`, or their defaults (ISA-18.2's
/// 10 activations per 10 minutes, stale after 24 hours, areas by line).
pub(super) fn validate_alarm_health(
    raw: Option<&Spanned<RawAlarmHealth>>,
    d: &mut Diag<'_>,
) -> HealthConfig {
    let mut config = HealthConfig::default();
    let Some(r) = raw.map(|r| r.get_ref()) else {
        return config;
    };
    if let Some(w) = &r.flood_window {
        let path = "alarm_health.flood_window";
        match duration_ms(d, w, path) {
            Some(ms) if ms > 0 && HOUR_MS % ms == 0 => config.flood_window_ms = ms,
            Some(_) => d.err(
                w.span(),
                path,
                "must divide an hour (like 1m, 5m, 10m, 15m, 30m or 1h), so that hours \
                 summarize whole flood windows",
            ),
            None => {}
        }
    }
    if let Some(n) = &r.flood_limit {
        if let Some(n) = count(d, n, "alarm_health.flood_limit", 1, u64::MAX) {
            config.flood_limit = n;
        }
    }
    if let Some(s) = &r.stale_after {
        let path = "alarm_health.stale_after";
        match duration_ms(d, s, path) {
            Some(0) => d.err(s.span(), path, "must be longer than 0"),
            Some(ms) => config.stale_after_ms = ms,
            None => {}
        }
    }
    if let Some(area) = &r.area {
        config.area = match area.get_ref().as_str() {
            "line" => AreaBy::Line,
            "site" => AreaBy::Site,
            "all" => AreaBy::All,
            other => {
                d.err(
                    area.span(),
                    "alarm_health.area",
                    format!("`{other}` is not an area: use line (site/line), site or all"),
                );
                AreaBy::Line
            }
        };
    }
    config
}
