//! The metrics of delivering alert events to a receiver (Alertmanager, a
//! webhook): how far behind it is, and what failed.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Unit;

use super::register::Maker;
use super::IntGauge;

/// Delivery of alert events to one kind of receiver.
#[derive(Debug)]
pub struct ReceiverMetrics {
    /// Events on the alert topic not delivered yet.
    pub queue: IntGauge,
    /// Wall-clock age of the oldest event not delivered yet, seconds (0
    /// when none waits).
    pub oldest: IntGauge,
    /// Events delivered.
    pub sent: Counter,
    /// Failed attempts (each is retried).
    pub failures: Counter,
    /// Events given up on and sent to the dead letters.
    pub dead_letters: Counter,
}

impl ReceiverMetrics {
    /// Alertmanager's.
    pub(super) fn alertmanager(m: &mut Maker) -> Self {
        ReceiverMetrics {
            queue: m.gauge(
                "alertmanager_queue_events",
                "Alert events on the alert topic not yet delivered to Alertmanager",
                None,
            ),
            oldest: m.gauge(
                "alertmanager_oldest_undelivered",
                "Age of the oldest alert event not yet delivered to Alertmanager",
                Some(Unit::Seconds),
            ),
            sent: m.counter(
                "alertmanager_sent",
                "Alert events delivered to Alertmanager",
            ),
            failures: m.counter(
                "alertmanager_failures",
                "Failed attempts to deliver to Alertmanager (each retried)",
            ),
            dead_letters: m.counter(
                "alertmanager_dead_letters",
                "Alert events Alertmanager refused, sent to the dead letters",
            ),
        }
    }

    /// The webhook's.
    pub(super) fn webhook(m: &mut Maker) -> Self {
        ReceiverMetrics {
            queue: m.gauge(
                "webhook_queue_events",
                "Alert events on the alert topic not yet delivered to the webhook",
                None,
            ),
            oldest: m.gauge(
                "webhook_oldest_undelivered",
                "Age of the oldest alert event not yet delivered to the webhook",
                Some(Unit::Seconds),
            ),
            sent: m.counter("webhook_sent", "Alert events delivered to the webhook"),
            failures: m.counter(
                "webhook_failures",
                "Failed attempts to deliver to the webhook (each retried)",
            ),
            dead_letters: m.counter(
                "webhook_dead_letters",
                "Alert events the webhook failed too often, sent to the dead letters",
            ),
        }
    }
}
