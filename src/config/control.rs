//! `[control]` (the topic of control events), `[http] token_env` (the
//! token of alarm actions over HTTP) and `[alarm_health] path` (the health
//! events as Parquet files): the parts of a pipeline file that alarm
//! management adds.

use super::*;

/// `[control]`: the source's settings, on the control topic (and brokers
/// and properties, if given).
pub(super) fn validate_control(
    raw: &Spanned<RawControl>,
    source: &KafkaSourceConfig,
    alerts: bool,
    d: &mut Diag<'_>,
) -> KafkaSourceConfig {
    let at = raw.span().start;
    let r = raw.get_ref();
    if !alerts {
        d.at(
            at,
            "control",
            "needs [sinks.alerts]: control events act on the alarms of the rules",
        );
    }
    let mut control = source.clone();
    control.topic = required_text(d, r.topic.as_ref(), at, "control.topic");
    if let Some(b) = &r.brokers {
        control.brokers = text(d, b, "control.brokers");
    }
    if r.properties.is_some() {
        control.properties = properties(d, r.properties.as_ref(), "control.properties");
    }
    if control.topic == source.topic && !control.topic.is_empty() {
        d.at(at, "control.topic", "must not be the readings' topic");
    }
    control
}

/// `[http] token_env`, if given: the name of the variable holding the
/// token of alarm actions, which write to the control topic.
pub(super) fn token_env(raw: &RawPipeline, control: bool, d: &mut Diag<'_>) -> Option<String> {
    let t = raw.http.as_ref()?.get_ref().token_env.as_ref()?;
    if !control {
        d.err(
            t.span(),
            "http.token_env",
            "needs [control]: alarm actions write control events to its topic",
        );
    }
    Some(text(d, t, "http.token_env"))
}

/// `[alarm_health] path`, if given: where the health events go as Parquet
/// files.
pub(super) fn health_parquet(
    raw: &RawPipeline,
    alerts: bool,
    base: &Path,
    d: &mut Diag<'_>,
) -> Option<ParquetSinkConfig> {
    let p = raw.alarm_health.as_ref()?.get_ref().path.as_ref()?;
    if !alerts {
        d.err(
            p.span(),
            "alarm_health.path",
            "needs [sinks.alerts]: the alarm system's health is measured on the alert events",
        );
    }
    let path = text(d, p, "alarm_health.path");
    Some(ParquetSinkConfig::new(location(
        d,
        Some(p),
        &path,
        base,
        "alarm_health.path",
    )))
}
