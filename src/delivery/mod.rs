//! Delivery of alert events to where people get paged: Prometheus
//! Alertmanager (`[sinks.alertmanager]`) and webhooks (`[sinks.webhook]`).
//!
//! A receiver never holds up the pipeline: each one is served by a thread
//! of its own that reads the events back from the pipeline's alert topic,
//! with a consumer group of its own (`weir-<pipeline>-<receiver>`), and
//! commits an event's offset once the receiver took it (or, after too many
//! failures, once it went to the dead letters). The alert topic is the
//! queue: a receiver that is down for hours only lets its group fall
//! behind, events go out in order (per partition: per device) when it
//! returns, and a restart goes on from the committed offsets. Delivery is
//! at least once; every event carries its id (the webhook's
//! `Idempotency-Key`; Alertmanager identifies an alert by its labels), so
//! a receiver that deduplicates by it sees each exactly once.
//!
//! Only the delivery path looks at the wall clock: back-off between
//! attempts, and Alertmanager's resend interval.

mod alertmanager;
mod consume;
mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use weir_operators::kafka::KafkaSinkConfig;
use weir_operators::metrics::ReceiverMetrics;
use weir_operators::Run;

pub use alertmanager::{alertmanager_alert, AlertmanagerConfig};
pub use webhook::WebhookConfig;

/// Where alert events are delivered.
#[derive(Clone, Debug, PartialEq)]
pub enum Receiver {
    /// Prometheus Alertmanager's v2 API.
    Alertmanager(AlertmanagerConfig),
    /// One JSON POST per event.
    Webhook(WebhookConfig),
}

impl Receiver {
    /// `alertmanager` or `webhook`: names the consumer group and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Receiver::Alertmanager(_) => "alertmanager",
            Receiver::Webhook(_) => "webhook",
        }
    }

    /// The receiver's URL.
    pub fn url(&self) -> &str {
        match self {
            Receiver::Alertmanager(c) => &c.url,
            Receiver::Webhook(c) => &c.url,
        }
    }
}

/// How failed attempts are retried.
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// The wait after the first failure; it doubles after each.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// Attempts after which an event goes to the dead letters; 0: never
    /// give up.
    pub max_attempts: u32,
    /// How long one attempt may take.
    pub timeout: Duration,
}

impl Retry {
    /// The wait before attempt `attempt + 1` (`attempt` >= 1 failed).
    pub fn wait(&self, attempt: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        doubled.min(self.max_backoff)
    }
}

/// A delivery: alert events read back from `alerts`, sent to `receiver`.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryConfig {
    /// Where the events go.
    pub receiver: Receiver,
    /// How failures are retried.
    pub retry: Retry,
    /// The alert topic the events are read back from (the pipeline's alert
    /// sink).
    pub alerts: KafkaSinkConfig,
    /// Where events given up on go, if anywhere.
    pub dead_letters: Option<KafkaSinkConfig>,
    /// The consumer group that keeps the delivered position.
    pub group: String,
}

/// A delivery running on its thread.
pub struct Delivery {
    stop: Arc<AtomicBool>,
    drain_until: Arc<std::sync::Mutex<Option<Instant>>>,
    thread: JoinHandle<()>,
    what: String,
}

impl Delivery {
    /// Starts delivering on a thread of its own; failures are logged and
    /// retried there, never passed to the pipeline.
    pub fn start(config: DeliveryConfig, run: Run) -> Delivery {
        let stop = Arc::new(AtomicBool::new(false));
        let drain_until = Arc::new(std::sync::Mutex::new(None));
        let what = format!("{} {}", config.receiver.kind(), config.receiver.url());
        let thread = {
            let (stop, drain_until) = (stop.clone(), drain_until.clone());
            std::thread::Builder::new()
                .name(format!("weir-{}", config.receiver.kind()))
                .spawn(move || consume::deliver(config, run, stop, drain_until))
                .expect("a delivery thread starts")
        };
        Delivery {
            stop,
            drain_until,
            thread,
            what,
        }
    }

    /// Stops: delivers what is on the alert topic now for at most `drain`
    /// (a bounded run's last events), then returns. What is left stays on
    /// the topic and goes out after the next start.
    pub fn finish(self, drain: Duration) {
        *self.drain_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + drain);
        self.stop.store(true, Ordering::Relaxed);
        if self.thread.join().is_err() {
            tracing::error!(receiver = %self.what, "The delivery thread panicked");
        }
    }
}

/// The metrics of `receiver`'s kind.
fn metrics<'r>(run: &'r Run, receiver: &Receiver) -> &'r ReceiverMetrics {
    match receiver {
        Receiver::Alertmanager(_) => &run.metrics.alertmanager,
        Receiver::Webhook(_) => &run.metrics.webhook,
    }
}

#[cfg(test)]
mod tests;
