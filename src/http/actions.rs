//! Alarm actions over HTTP: `POST /api/alarms/{action}` (`ack`, `shelve`,
//! `unshelve`, `out_of_service`, `in_service`) writes a control event to the
//! pipeline's control topic, so that the action is durable, applied on
//! event time like any control event, and replayed. The endpoints take a
//! bearer token, read at start from the environment variable `[http]
//! token_env` names; without it they are off (404), and a request without
//! the token is refused (401). Nothing else changes state over HTTP.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::AsyncRuntime;
use serde_json::{json, Value};

use super::ServerState;

/// What alarm actions need: the token they must carry, and the control
/// topic they write to.
#[derive(Clone)]
pub struct AlarmActions {
    /// The bearer token (a secret: never logged).
    pub token: String,
    /// The control topic's brokers.
    pub brokers: String,
    /// The control topic.
    pub topic: String,
    /// Extra librdkafka properties of the control topic's clients.
    pub properties: Vec<(String, String)>,
}

impl std::fmt::Debug for AlarmActions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlarmActions")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// The server's tokio runtime, for the producer's waits.
struct Tokio;

impl AsyncRuntime for Tokio {
    type Delay = tokio::time::Sleep;

    fn spawn<T>(task: T)
    where
        T: std::future::Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(task);
    }

    fn delay_for(duration: Duration) -> Self::Delay {
        tokio::time::sleep(duration)
    }
}

/// The actions a server takes: the token and a producer on the control
/// topic.
pub(super) struct Actions {
    token: String,
    topic: String,
    producer: FutureProducer<DefaultClientContext, Tokio>,
}

impl Actions {
    /// A producer for `actions`' control topic.
    pub(super) fn new(actions: AlarmActions) -> anyhow::Result<Actions> {
        let producer = weir_operators::kafka::client_config(&actions.brokers, &actions.properties)
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| anyhow::anyhow!("cannot create a producer for the control topic: {e}"))?;
        Ok(Actions {
            token: actions.token,
            topic: actions.topic,
            producer,
        })
    }

    /// Whether `headers` carry the token (`Authorization: Bearer ...`),
    /// compared in constant time.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let (a, b) = (given.as_bytes(), self.token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The control event an action request asks for, at `event_time`; an
/// error says what is wrong with the request.
fn control_event(action: &str, body: &[u8], event_time: u64) -> Result<Value, String> {
    let request: Value = match body.is_empty() {
        true => json!({}),
        false => serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?,
    };
    let text = |field: &str| request[field].as_str().filter(|s| !s.is_empty());
    let names_alarm = match action {
        "ack" | "shelve" | "unshelve" => true,
        "out_of_service" | "in_service" => false,
        other => {
            return Err(format!(
                "`{other}` is not an action: ack, shelve, unshelve, out_of_service or in_service"
            ))
        }
    };
    let fields: &[&str] = if names_alarm {
        &["rule", "device", "sensor"]
    } else {
        &["device"]
    };
    let mut event = json!({
        "event_time": event_time,
        "action": action,
        "user": text("user").unwrap_or("status-page"),
        "reason": text("reason").unwrap_or(""),
    });
    for field in fields {
        let value = text(field).ok_or_else(|| format!("`{field}` is missing"))?;
        event[*field] = value.into();
    }
    if action == "shelve" {
        match (request.get("until"), text("duration")) {
            (Some(until), _) => event["until"] = until.clone(),
            (None, Some(duration)) => event["duration"] = duration.into(),
            // A shift, unless said otherwise.
            (None, None) => event["duration"] = "8h".into(),
        }
    }
    Ok(event)
}

/// `POST /api/alarms/{action}`: writes the control event to the control
/// topic, at the event time the alarm views stand at (the time the person
/// acting saw), and answers 202 with it.
pub(super) async fn post_action(
    State(state): State<Arc<ServerState>>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(actions) = &state.actions else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": "alarm actions are off: name the variable holding their token in [http] token_env"}),
        );
    };
    if !actions.authorized(&headers) {
        let mut refused = answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "alarm actions need the bearer token"}),
        );
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("a header value"),
        );
        return refused;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let at = state.run().metrics.alarm_board().as_of.unwrap_or(now);
    let event = match control_event(&action, &body, at) {
        Ok(event) => event,
        Err(problem) => return answer(StatusCode::BAD_REQUEST, json!({"error": problem})),
    };
    let payload = event.to_string();
    let key = event["device"].as_str().unwrap_or_default().to_owned();
    let record = FutureRecord::to(&actions.topic).payload(&payload).key(&key);
    match actions.producer.send(record, Duration::from_secs(10)).await {
        Ok(_) => {
            tracing::info!(action = %action, user = %event["user"], device = %key, "Alarm action written to the control topic");
            answer(StatusCode::ACCEPTED, json!({"event": event}))
        }
        Err((e, _)) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": format!("cannot write to the control topic `{}`: {e}", actions.topic)}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_become_control_events_or_say_what_is_wrong() {
        let body = br#"{"rule":"hot","device":"d1","sensor":"temp","user":"ana"}"#;
        let ack = control_event("ack", body, 5_000).unwrap();
        assert_eq!(
            ack,
            json!({"event_time": 5_000, "action": "ack", "user": "ana", "reason": "",
                   "rule": "hot", "device": "d1", "sensor": "temp"})
        );
        // A shelve lasts a shift unless the request says otherwise.
        assert_eq!(
            control_event("shelve", body, 5_000).unwrap()["duration"],
            "8h"
        );
        let glob = control_event("out_of_service", br#"{"device":"press-*"}"#, 1).unwrap();
        assert_eq!(
            (glob["device"].as_str(), glob["user"].as_str()),
            (Some("press-*"), Some("status-page"))
        );
        assert!(control_event("ack", br#"{"rule":"hot"}"#, 1)
            .unwrap_err()
            .contains("`device`"));
        assert!(control_event("delete", body, 1)
            .unwrap_err()
            .contains("not an action"));
        assert!(control_event("ack", b"{", 1)
            .unwrap_err()
            .contains("not JSON"));
    }
}
