//! `[sinks.alertmanager]` and `[sinks.webhook]`: where alert events are
//! delivered, read back from the alert topic (see [`crate::delivery`]).

use super::*;
use crate::delivery::{AlertmanagerConfig, DeliveryConfig, Receiver, Retry, WebhookConfig};

/// The deliveries of a pipeline named `name`; each needs `[sinks.alerts]`,
/// the topic its events are read back from.
pub(super) fn validate_deliveries(
    raw: Option<&Spanned<RawSinks>>,
    name: &str,
    alerts: Option<&KafkaSinkConfig>,
    dead_letters: Option<&KafkaSinkConfig>,
    d: &mut Diag<'_>,
) -> Vec<DeliveryConfig> {
    let Some(sinks) = raw.map(|s| s.get_ref()) else {
        return Vec::new();
    };
    let mut receivers = Vec::new();
    if let Some(am) = &sinks.alertmanager {
        let r = am.get_ref();
        let path = "sinks.alertmanager";
        let url = http_url(d, r.url.as_ref(), am.span().start, path);
        let resend_interval = duration(
            d,
            r.resend_interval.as_ref(),
            path,
            "resend_interval",
            60_000,
        );
        let retry = Retry {
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            // Alertmanager is where pages go: never give up on it.
            max_attempts: 0,
            timeout: duration(d, r.timeout.as_ref(), path, "timeout", 10_000),
        };
        let receiver = Receiver::Alertmanager(AlertmanagerConfig {
            url,
            resend_interval,
        });
        receivers.push((am.span().start, receiver, retry));
    }
    if let Some(hook) = &sinks.webhook {
        let r = hook.get_ref();
        let path = "sinks.webhook";
        let url = http_url(d, r.url.as_ref(), hook.span().start, path);
        let max_attempts = r
            .max_attempts
            .as_ref()
            .and_then(|n| count(d, n, "sinks.webhook.max_attempts", 1, u32::MAX))
            .unwrap_or(10);
        let retry = Retry {
            backoff: duration(d, r.backoff.as_ref(), path, "backoff", 1_000),
            max_backoff: duration(d, r.max_backoff.as_ref(), path, "max_backoff", 60_000),
            max_attempts,
            timeout: duration(d, r.timeout.as_ref(), path, "timeout", 10_000),
        };
        let headers = properties(d, r.headers.as_ref(), "sinks.webhook.headers");
        let receiver = Receiver::Webhook(WebhookConfig { url, headers });
        receivers.push((hook.span().start, receiver, retry));
    }
    let mut out = Vec::new();
    for (at, receiver, retry) in receivers {
        let Some(alerts) = alerts else {
            d.at(
                at,
                &format!("sinks.{}", receiver.kind()),
                "needs [sinks.alerts]: events are delivered from the alert topic, read back",
            );
            continue;
        };
        out.push(DeliveryConfig {
            group: format!("weir-{name}-{}", receiver.kind()),
            receiver,
            retry,
            alerts: alerts.clone(),
            dead_letters: dead_letters.cloned(),
        });
    }
    out
}

/// A required `http://` or `https://` URL.
fn http_url(d: &mut Diag<'_>, value: Option<&Spanned<String>>, at: usize, table: &str) -> String {
    let path = format!("{table}.url");
    let url = required_text(d, value, at, &path);
    if let Some(value) = value {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            d.err(
                value.span(),
                &path,
                format!("{url:?} is not an http:// or https:// URL"),
            );
        }
    }
    url
}

/// A duration field of `table`, longer than 0, or `default_ms`.
fn duration(
    d: &mut Diag<'_>,
    value: Option<&Spanned<String>>,
    table: &str,
    field: &str,
    default_ms: u64,
) -> Duration {
    let path = format!("{table}.{field}");
    let ms = match value {
        Some(v) => match duration_ms(d, v, &path) {
            Some(0) => {
                d.err(v.span(), &path, "must be longer than 0");
                default_ms
            }
            Some(ms) => ms,
            None => default_ms,
        },
        None => default_ms,
    };
    Duration::from_millis(ms)
}
