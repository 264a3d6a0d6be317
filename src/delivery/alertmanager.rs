//! Alert events as Prometheus Alertmanager alerts (its v2 API).
//!
//! An alarm is an Alertmanager alert labelled `alertname` (the rule),
//! `device`, `sensor`, `severity` and the event's labels (the rule's, then
//! the device registry's: `site`, `line`, ...). A firing event starts it
//! (`startsAt` its event time); an escalated one ends it and starts it again
//! with the escalated severity; a resolved one ends it (`endsAt` its event
//! time). Alertmanager ends an alert it has not heard of for its
//! `resolve_timeout`, so the firing ones are sent again every
//! `resend_interval` (wall clock). Chattering events are not sent: the
//! alarm keeps the state it had until the rule is calm again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use weir_operators::Run;

use super::consume::{Event, Target};

/// `[sinks.alertmanager]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertmanagerConfig {
    /// Alertmanager's base URL (`http://alertmanager:9093`).
    pub url: String,
    /// How often firing alerts are sent again.
    pub resend_interval: Duration,
}

/// The Alertmanager alert of an alert event (`None` for a chattering
/// event, which is not sent), and whether it ends the alarm.
///
/// ```
/// let event = serde_json::json!({
///     "id": "overheat|press-7|temperature|firing|1763900000000",
///     "rule": "overheat", "device": "press-7", "sensor": "temperature",
///     "severity": "critical", "state": "firing", "event_time": 1763900000000u64,
///     "value": 97.5, "labels": {"site": "plant-1", "line": "L2"}
/// });
/// let alert = weir::delivery::alertmanager_alert(&event).unwrap();
/// assert_eq!(alert["labels"]["alertname"], "overheat");
/// assert_eq!(alert["labels"]["site"], "plant-1");
/// assert_eq!(alert["startsAt"], "2025-11-23T12:13:20.000Z");
/// assert!(alert.get("endsAt").is_none());
/// ```
pub fn alertmanager_alert(event: &Value) -> Option<Value> {
    let text = |field: &str| event[field].as_str().unwrap_or_default().to_owned();
    let mut labels = Map::new();
    if let Some(extra) = event["labels"].as_object() {
        labels.extend(extra.clone());
    }
    labels.insert("alertname".into(), text("rule").into());
    labels.insert("device".into(), text("device").into());
    labels.insert("sensor".into(), text("sensor").into());
    labels.insert("severity".into(), text("severity").into());
    let time = time(event["event_time"].as_u64()?);
    let annotations = json!({
        "summary": format!("{} on {} {}: {}", text("rule"), text("device"), text("sensor"), text("state")),
        "value": event["value"].to_string(),
        "id": text("id"),
    });
    let mut alert = json!({"labels": labels, "annotations": annotations});
    match text("state").as_str() {
        "firing" | "escalated" | "unshelved" => alert["startsAt"] = time.into(),
        "resolved" | "shelved" => alert["endsAt"] = time.into(),
        _ => return None,
    }
    Some(alert)
}

/// An event time (ms) in RFC 3339, as Alertmanager reads it.
fn time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// The alarm an event is about: (rule, device, sensor).
fn alarm(event: &Value) -> (String, String, String) {
    let text = |field: &str| event[field].as_str().unwrap_or_default().to_owned();
    (text("rule"), text("device"), text("sensor"))
}

/// Sends to one Alertmanager, and keeps the firing alarms to send again.
pub(super) struct Sender {
    config: AlertmanagerConfig,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    /// The firing alarms, as last sent.
    firing: BTreeMap<(String, String, String), Value>,
    last_resend: Instant,
    failures: prometheus_client::metrics::counter::Counter,
}

impl Sender {
    pub(super) fn new(
        config: AlertmanagerConfig,
        client: reqwest::Client,
        runtime: tokio::runtime::Runtime,
        run: &Run,
    ) -> Self {
        Sender {
            config,
            client,
            runtime,
            firing: BTreeMap::new(),
            last_resend: Instant::now(),
            failures: run.metrics.alertmanager.failures.clone(),
        }
    }

    /// Applies `event` to the firing alarms; returns the alerts to send.
    /// The events of a shelved alarm are not sent, but the notice of its
    /// shelving ends it where it was sent firing.
    fn apply(&mut self, event: &Value) -> Vec<Value> {
        let Some(alert) = alertmanager_alert(event) else {
            return Vec::new();
        };
        let key = alarm(event);
        let state = event["state"].as_str();
        let shelved = event["shelved"].as_bool() == Some(true);
        if shelved && (state != Some("shelved") || !self.firing.contains_key(&key)) {
            return Vec::new();
        }
        let mut out = Vec::new();
        match state {
            Some("resolved" | "shelved") => {
                // End the alarm as it was sent (its severity may have been
                // escalated since it fired).
                let mut ended = self.firing.remove(&key).unwrap_or(alert);
                ended["endsAt"] = time(event["event_time"].as_u64().unwrap_or(0)).into();
                out.push(ended);
            }
            _ => {
                if let Some(mut before) = self.firing.remove(&key) {
                    if before["labels"] != alert["labels"] {
                        before["endsAt"] = alert["startsAt"].clone();
                        out.push(before);
                    }
                }
                self.firing.insert(key, alert.clone());
                out.push(alert);
            }
        }
        out
    }

    fn post(&self, alerts: &[Value]) -> Result<(), String> {
        let url = format!("{}/api/v2/alerts", self.config.url.trim_end_matches('/'));
        let body = serde_json::to_vec(alerts).expect("alerts serialize");
        let request = self
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body);
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let text = response.text().await.unwrap_or_default();
            Err(format!("{url}: HTTP {status}: {}", text.trim()))
        })
    }
}

impl Target for Sender {
    fn rebuilds(&self) -> bool {
        true
    }

    fn replayed(&mut self, event: &Event) {
        if let Some(json) = &event.json {
            self.apply(json);
        }
    }

    fn attempt(&mut self, event: &Event) -> Result<(), String> {
        let Some(json) = &event.json else {
            return Err("not a JSON alert event".into());
        };
        // Applied once, however many attempts it takes.
        let firing_before = self.firing.clone();
        let alerts = self.apply(json);
        if alerts.is_empty() {
            return Ok(());
        }
        let sent = self.post(&alerts);
        if sent.is_err() {
            self.firing = firing_before;
        }
        sent
    }

    fn tick(&mut self) {
        if self.last_resend.elapsed() < self.config.resend_interval {
            return;
        }
        self.last_resend = Instant::now();
        if self.firing.is_empty() {
            return;
        }
        let alerts: Vec<Value> = self.firing.values().cloned().collect();
        if let Err(e) = self.post(&alerts) {
            self.failures.inc();
            tracing::warn!(error = %e, "Sending the firing alarms to Alertmanager again failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(state: &str, severity: &str, time: u64) -> Value {
        json!({
            "id": format!("overheat|press-7|temperature|{state}|{time}"),
            "rule": "overheat", "device": "press-7", "sensor": "temperature",
            "severity": severity, "state": state, "event_time": time, "value": 97.5,
            "labels": {"site": "plant-1"}
        })
    }

    fn sender() -> Sender {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let config = AlertmanagerConfig {
            url: "http://127.0.0.1:9".into(),
            resend_interval: Duration::from_secs(60),
        };
        Sender::new(config, reqwest::Client::new(), runtime, &Run::default())
    }

    #[test]
    fn an_alarm_fires_escalates_and_resolves_as_alertmanager_alerts() {
        let mut s = sender();
        let fired = s.apply(&event("firing", "warning", 60_000));
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0]["startsAt"], "1970-01-01T00:01:00.000Z");
        assert_eq!(s.firing.len(), 1);

        // Escalation: the warning ends, the critical one starts.
        let escalated = s.apply(&event("escalated", "critical", 120_000));
        assert_eq!(escalated.len(), 2);
        assert_eq!(escalated[0]["labels"]["severity"], "warning");
        assert_eq!(escalated[0]["endsAt"], "1970-01-01T00:02:00.000Z");
        assert_eq!(escalated[1]["labels"]["severity"], "critical");
        assert!(escalated[1].get("endsAt").is_none());

        // The resolved event names the rule's own severity; the alarm that
        // ends is the escalated one Alertmanager holds.
        let resolved = s.apply(&event("resolved", "warning", 180_000));
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0]["labels"]["severity"], "critical");
        assert_eq!(resolved[0]["endsAt"], "1970-01-01T00:03:00.000Z");
        assert!(s.firing.is_empty());

        assert!(s.apply(&event("chattering", "warning", 240_000)).is_empty());
    }

    fn shelved(mut event: Value) -> Value {
        event["shelved"] = true.into();
        event
    }

    #[test]
    fn a_shelved_alarm_is_ended_and_not_sent_until_it_is_unshelved() {
        let mut s = sender();
        assert_eq!(s.apply(&event("firing", "warning", 60_000)).len(), 1);
        // Shelved while firing: Alertmanager's alert ends.
        let ended = s.apply(&shelved(event("shelved", "warning", 90_000)));
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0]["endsAt"], "1970-01-01T00:01:30.000Z");
        assert!(s.firing.is_empty());
        // Nothing of it is sent while shelved, not even a second notice.
        assert!(s
            .apply(&shelved(event("resolved", "warning", 120_000)))
            .is_empty());
        assert!(s
            .apply(&shelved(event("firing", "warning", 150_000)))
            .is_empty());
        assert!(s
            .apply(&shelved(event("shelved", "warning", 160_000)))
            .is_empty());
        // Unshelved while still firing: it arrives again.
        let back = s.apply(&event("unshelved", "warning", 180_000));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0]["startsAt"], "1970-01-01T00:03:00.000Z");
        assert_eq!(s.firing.len(), 1);
    }
}
