//! Alert events: what the alert operators emit and the alert sinks write.

use serde::{Deserialize, Serialize};

use super::reading::Name;

/// Whether an alert event starts or ends an alert.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AlertState {
    /// The rule's condition became true.
    Firing,
    /// The alert was still firing after the rule's `escalate_after`: it
    /// carries the escalated severity from now on.
    Escalated,
    /// The value crossed back past the clear threshold.
    Resolved,
    /// The rule changed state `chatter_changes` times within
    /// `chatter_within`: its events are held back until it has been calm
    /// (no change) for `chatter_calm`, when one event gives the state it
    /// is in then.
    Chattering,
    /// The alarm was shelved (or its device taken out of service) while
    /// active: receivers end it, and get none of its events until it is
    /// unshelved.
    Shelved,
    /// The alarm was unshelved (by a control event, at the end of its
    /// shelve, or with its device back in service) while still active:
    /// receivers get it as firing from now on.
    Unshelved,
}

impl AlertState {
    /// The name used in JSON: `firing`, `escalated`, `resolved`,
    /// `chattering`, `shelved` or `unshelved`.
    pub fn as_str(&self) -> &'static str {
        self.into()
    }
}

/// One alert event. The alert topic receives it as [`Alert::to_json`], keyed
/// by device.
///
/// Alerts travel between workers, which timely encodes with bincode: a
/// format that is not self-describing, so every field is always serialized
/// (no `skip_serializing_if`); fields are omitted from the JSON only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Rule name.
    pub rule: String,
    /// Device id.
    pub device: Name,
    /// Sensor name.
    pub sensor: Name,
    /// Rule severity.
    pub severity: String,
    /// `firing` or `resolved`.
    pub state: AlertState,
    /// Event time at which the state changed, ms since the epoch.
    pub event_time: u64,
    /// The value that fired or cleared the alert.
    pub value: f64,
    /// For a firing event, the breaching values that fired it (the last
    /// `consecutive` of them); for a resolved event, the clearing value.
    pub values: Vec<f64>,
    /// The rule's threshold; `None` for silence and combination rules,
    /// which have none (a combination's conditions each have their own).
    pub threshold: Option<f64>,
    /// The rule's clear threshold; `None` where `threshold` is.
    pub clear_threshold: Option<f64>,
    /// Start of the window, for window rules.
    pub window_start: Option<u64>,
    /// End of the window, for window rules.
    pub window_end: Option<u64>,
    /// For silence rules: the event time of the key's last reading before
    /// the silence.
    pub last_seen: Option<u64>,
    /// The version of the rule set that judged it: 1 at the start of a run,
    /// one more at each reload of the rules.
    pub rules_version: u64,
    /// The rule's labels, then the device's registry fields.
    pub labels: Vec<(String, String)>,
    /// Whether the alarm is shelved or its device out of service: the
    /// event is not delivered to receivers (Alertmanager, webhooks).
    pub shelved: bool,
    /// Who acknowledged the alarm, if anyone has since it fired.
    pub acked_by: Option<String>,
    /// When it was acknowledged (event time, ms).
    pub acked_at: Option<u64>,
}

impl Alert {
    /// An event of `rule` on (`device`, `sensor`) at `event_time`, severity
    /// `warning`, with no values, thresholds, window or labels: for tests
    /// and examples.
    pub fn event(
        rule: &str,
        device: &str,
        sensor: &str,
        state: AlertState,
        event_time: u64,
    ) -> Alert {
        Alert {
            rule: rule.into(),
            device: device.into(),
            sensor: sensor.into(),
            severity: "warning".into(),
            state,
            event_time,
            value: 0.0,
            values: Vec::new(),
            threshold: None,
            clear_threshold: None,
            window_start: None,
            window_end: None,
            last_seen: None,
            rules_version: 1,
            labels: Vec::new(),
            shelved: false,
            acked_by: None,
            acked_at: None,
        }
    }

    /// The alert's identity, the same in every run over the same input:
    /// `rule|device|sensor|state|event_time`. Sinks use it to deliver each
    /// alert once across restarts.
    pub fn id(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.rule,
            self.device,
            self.sensor,
            self.state.as_str(),
            self.event_time
        )
    }

    /// The JSON document written to the alert topic: its [`Alert::id`] and
    /// every field, with `threshold` and `clear_threshold` present only for
    /// rules that have them (not silence and combination rules),
    /// `window_start` and `window_end` only for window rules, and `labels`
    /// (an object) only when there are some.
    pub fn to_json(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "id": self.id(),
            "rule": self.rule,
            "device": self.device,
            "sensor": self.sensor,
            "severity": self.severity,
            "state": self.state,
            "event_time": self.event_time,
            "value": self.value,
            "values": self.values,
            "rules_version": self.rules_version,
        });
        if let (Some(threshold), Some(clear)) = (self.threshold, self.clear_threshold) {
            doc["threshold"] = threshold.into();
            doc["clear_threshold"] = clear.into();
        }
        if let (Some(start), Some(end)) = (self.window_start, self.window_end) {
            doc["window_start"] = start.into();
            doc["window_end"] = end.into();
        }
        if let Some(last_seen) = self.last_seen {
            doc["last_seen"] = last_seen.into();
        }
        if self.shelved {
            doc["shelved"] = true.into();
        }
        if let (Some(by), Some(at)) = (&self.acked_by, self.acked_at) {
            doc["acked_by"] = by.clone().into();
            doc["acked_at"] = at.into();
        }
        if !self.labels.is_empty() {
            let labels: serde_json::Map<_, _> = self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            doc["labels"] = labels.into();
        }
        doc
    }

    /// The order alerts are delivered in: by event time, then by identity.
    pub fn order_key(&self) -> (u64, &str, &str, &str, AlertState) {
        (
            self.event_time,
            &self.device,
            &self.sensor,
            &self.rule,
            self.state,
        )
    }
}
