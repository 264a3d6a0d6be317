//! Alert events as webhook calls: one JSON POST per event, its body the
//! event as on the alert topic, with an `Idempotency-Key` header holding
//! the event's id, so that a receiver that deduplicates by it sees each
//! event once however often it is sent.

use super::consume::{Event, Target};

/// `[sinks.webhook]`.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    /// Where events are POSTed.
    pub url: String,
    /// Extra headers (an `Authorization` token, ...); `"${NAME}"` values
    /// in a pipeline file are secrets.
    pub headers: Vec<(String, String)>,
}

/// POSTs events to one URL.
pub(super) struct Sender {
    config: WebhookConfig,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Sender {
    pub(super) fn new(
        config: WebhookConfig,
        client: reqwest::Client,
        runtime: tokio::runtime::Runtime,
    ) -> Self {
        Sender {
            config,
            client,
            runtime,
        }
    }
}

impl Target for Sender {
    fn attempt(&mut self, event: &Event) -> Result<(), String> {
        // A shelved alarm's events are not delivered; the notice that it
        // was shelved is.
        let json = event.json.as_ref();
        let shelved = json.is_some_and(|j| j["shelved"].as_bool() == Some(true));
        if shelved && json.is_some_and(|j| j["state"] != "shelved") {
            return Ok(());
        }
        let url = &self.config.url;
        let mut request = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header("Idempotency-Key", event.id())
            .body(event.payload.clone());
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            if status.is_success() {
                return Ok(());
            }
            let text = response.text().await.unwrap_or_default();
            let text: String = text.trim().chars().take(200).collect();
            Err(format!("{url}: HTTP {status}: {text}"))
        })
    }
}
