//! Decoding control events: JSON objects with `event_time`, `action`, the
//! alarm (`rule`, `device`, `sensor`; a device glob for `out_of_service`
//! and `in_service`), `user`, `reason`, and for a shelve its end (`until`,
//! an event time, or `duration`, such as `"8h"`).

use serde_json::{Map, Value};

use super::DecodeError;
use crate::dead_letter::DeadLetterReason;
use crate::record::{ControlAction, ControlEvent};
use crate::rules::RuleSet;

/// Decodes control events, and refuses those that name no known alarm: a
/// rule the pipeline does not have, or (with a device registry) a device
/// it does not list.
#[derive(Clone, Debug, Default)]
pub struct ControlDecoder {
    rules: Vec<String>,
    devices: Vec<String>,
}

impl ControlDecoder {
    /// A decoder for the alarms of `rules` (and of the devices of its
    /// registry, if it has one).
    pub fn new(rules: &RuleSet) -> Self {
        ControlDecoder {
            rules: rules.rules.iter().map(|r| r.name.clone()).collect(),
            devices: rules.devices.devices.keys().cloned().collect(),
        }
    }

    /// Decodes one payload from `partition` at `offset`.
    ///
    /// # Examples
    /// ```
    /// use weir_operators::alert::{Direction, Rule, RuleSet};
    /// use weir_operators::decode::ControlDecoder;
    /// use weir_operators::record::ControlAction;
    ///
    /// let rules = RuleSet::new(vec![Rule::new("hot", "temp", Direction::Above, 90.0)]);
    /// let decoder = ControlDecoder::new(&rules);
    /// let shelve = br#"{"event_time": 1000, "action": "shelve", "rule": "hot", "device": "d1",
    ///     "sensor": "temp", "user": "ana", "reason": "sensor replaced", "duration": "8h"}"#;
    /// let event = decoder.decode(shelve, 0, 7).unwrap();
    /// assert_eq!((event.action, event.until), (ControlAction::Shelve, Some(1000 + 8 * 3_600_000)));
    /// let unknown = br#"{"event_time": 1000, "action": "ack", "rule": "cold", "device": "d1",
    ///     "sensor": "temp", "user": "ana"}"#;
    /// assert_eq!(decoder.decode(unknown, 0, 8).unwrap_err().reason.as_str(), "unknown_alarm");
    /// ```
    pub fn decode(
        &self,
        payload: &[u8],
        partition: i32,
        offset: i64,
    ) -> Result<ControlEvent, DecodeError> {
        let doc: Value = serde_json::from_slice(payload).map_err(|e| {
            DecodeError::new(DeadLetterReason::MalformedJson, format!("not JSON: {e}"))
        })?;
        let Value::Object(doc) = doc else {
            return Err(DecodeError::new(
                DeadLetterReason::MalformedJson,
                "a control event must be a JSON object",
            ));
        };
        let action_text = text(&doc, "action")?;
        let action: ControlAction = action_text.parse().map_err(|_| {
            invalid(format!(
                "field `action` is {action_text:?}: one of ack, shelve, unshelve, out_of_service, in_service"
            ))
        })?;
        let event_time = time(&doc, "event_time")?;
        let mut event = ControlEvent {
            event_time,
            action,
            rule: String::new(),
            device: text(&doc, "device")?,
            sensor: "".into(),
            user: text(&doc, "user")?,
            reason: optional_text(&doc, "reason")?.unwrap_or_default(),
            until: None,
            partition,
            offset,
        };
        if action.names_alarm() {
            event.rule = text(&doc, "rule")?;
            event.sensor = text(&doc, "sensor")?.as_str().into();
            self.check_known(&event)?;
        } else {
            let glob = globset::Glob::new(&event.device)
                .map_err(|e| invalid(format!("field `device` is not a glob: {e}")))?
                .compile_matcher();
            if !self.devices.is_empty() && !self.devices.iter().any(|d| glob.is_match(d)) {
                return Err(DecodeError::new(
                    DeadLetterReason::UnknownAlarm,
                    format!(
                        "device glob {:?} matches no device of the registry",
                        event.device
                    ),
                ));
            }
        }
        if action == ControlAction::Shelve {
            event.until = Some(shelve_end(&doc, event_time)?);
        }
        Ok(event)
    }

    /// Refuses an event on an alarm of an unknown rule or device.
    fn check_known(&self, event: &ControlEvent) -> Result<(), DecodeError> {
        let unknown = |what: String| Err(DecodeError::new(DeadLetterReason::UnknownAlarm, what));
        if !self.rules.contains(&event.rule) {
            return unknown(format!("no rule is named {:?}", event.rule));
        }
        if !self.devices.is_empty() && !self.devices.contains(&event.device) {
            return unknown(format!("device {:?} is not in the registry", event.device));
        }
        Ok(())
    }
}

fn invalid(detail: String) -> DecodeError {
    DecodeError::new(DeadLetterReason::InvalidField, detail)
}

fn optional_text(doc: &Map<String, Value>, field: &str) -> Result<Option<String>, DecodeError> {
    match doc.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(format!(
            "field `{field}` must be a string, found {other}"
        ))),
    }
}

fn text(doc: &Map<String, Value>, field: &str) -> Result<String, DecodeError> {
    match optional_text(doc, field)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(DecodeError::new(
            DeadLetterReason::MissingField,
            format!("field `{field}` is missing"),
        )),
    }
}

/// An event time: ms since the epoch, or an RFC 3339 string.
fn time(doc: &Map<String, Value>, field: &str) -> Result<u64, DecodeError> {
    match doc.get(field) {
        None | Some(Value::Null) => Err(DecodeError::new(
            DeadLetterReason::MissingField,
            format!("field `{field}` is missing"),
        )),
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| invalid(format!("field `{field}` is {n}: ms since the epoch"))),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|d| u64::try_from(d.timestamp_millis()).ok())
            .ok_or_else(|| invalid(format!("field `{field}` is not an RFC 3339 time ({s:?})"))),
        Some(other) => Err(invalid(format!(
            "field `{field}` must be a time, found {other}"
        ))),
    }
}

/// The end of a shelve: `until`, or `event_time` plus `duration`.
fn shelve_end(doc: &Map<String, Value>, event_time: u64) -> Result<u64, DecodeError> {
    let until = match (doc.get("until"), optional_text(doc, "duration")?) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "a shelve has `until` or `duration`, not both".into(),
            ))
        }
        (Some(_), None) => time(doc, "until")?,
        (None, Some(d)) => {
            let d = humantime::parse_duration(&d)
                .map_err(|e| invalid(format!("field `duration` is {d:?}: {e}")))?;
            event_time.saturating_add(d.as_millis() as u64)
        }
        (None, None) => {
            return Err(DecodeError::new(
                DeadLetterReason::MissingField,
                "a shelve needs `until` (an event time) or `duration` (such as \"8h\")",
            ))
        }
    };
    if until <= event_time {
        return Err(invalid(format!(
            "the shelve ends at {until}, not after its event time {event_time}"
        )));
    }
    Ok(until)
}
