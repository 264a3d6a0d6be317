//! The Kafka sink: writes alerts (or dead letters) to a topic as JSON, in
//! event-time order once the frontier has passed them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use crate::alert::Alert;
use crate::checkpoint::Env;
use crate::dead_letter::DeadLetter;
use crate::metrics::Metrics;
use crate::reading::SensorKey;

/// Configuration of a Kafka sink.
#[derive(Clone, Debug)]
pub struct KafkaSinkConfig {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic to write to.
    pub topic: String,
    /// Use the idempotent producer (no duplicates from producer retries).
    pub idempotent: bool,
    /// Extra librdkafka properties, applied last.
    pub properties: Vec<(String, String)>,
    /// How long the final flush may take before undelivered records are
    /// reported as an error.
    pub flush_timeout: Duration,
}

impl KafkaSinkConfig {
    /// An idempotent sink to `topic` on `brokers`.
    pub fn new(brokers: &str, topic: &str) -> Self {
        KafkaSinkConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            idempotent: true,
            properties: Vec::new(),
            flush_timeout: Duration::from_secs(60),
        }
    }
}

/// A record a Kafka sink can write.
pub trait KafkaRecord: timely::ExchangeData {
    /// Record key (routes the record to a partition).
    fn key(&self) -> Vec<u8>;
    /// Record payload.
    fn payload(&self) -> Vec<u8>;
    /// Event time; records are written once the frontier passes it.
    fn time(&self) -> u64;
    /// Hash routing records to the worker that writes them; records with the
    /// same key go to one worker, so their order in a partition is kept.
    fn route(&self) -> u64;
    /// Orders records of the same time, so output does not depend on arrival order.
    fn cmp_order(&self, other: &Self) -> std::cmp::Ordering;
    /// Counts a delivered batch of these records.
    fn count_delivered(metrics: &Metrics, n: u64);
}

impl KafkaRecord for Alert {
    fn key(&self) -> Vec<u8> {
        self.device.as_bytes().to_vec()
    }
    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("JSON values always serialize")
    }
    fn time(&self) -> u64 {
        self.event_time
    }
    fn route(&self) -> u64 {
        SensorKey::route_hash(&self.device, "")
    }
    fn cmp_order(&self, other: &Self) -> std::cmp::Ordering {
        self.order_key().cmp(&other.order_key())
    }
    fn count_delivered(metrics: &Metrics, n: u64) {
        Metrics::add(&metrics.alerts_delivered, n);
    }
}

impl KafkaRecord for DeadLetter {
    fn key(&self) -> Vec<u8> {
        self.key.clone().unwrap_or_default()
    }
    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("JSON values always serialize")
    }
    fn time(&self) -> u64 {
        0
    }
    fn route(&self) -> u64 {
        self.partition as u64
    }
    fn cmp_order(&self, other: &Self) -> std::cmp::Ordering {
        (&self.topic, self.partition, self.offset).cmp(&(
            &other.topic,
            other.partition,
            other.offset,
        ))
    }
    fn count_delivered(metrics: &Metrics, n: u64) {
        Metrics::add(&metrics.dead_letters_delivered, n);
    }
}

/// Counts deliveries and keeps the first failure.
#[derive(Default)]
struct DeliveryContext {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Writes records to a Kafka topic.
pub trait KafkaSink<'scope> {
    /// Writes every record to `config.topic`, keyed by [`KafkaRecord::key`].
    ///
    /// Records are routed to workers by [`KafkaRecord::route`] and written
    /// once the input frontier passes their time, sorted by time and then by
    /// identity, so the records of one key reach their partition in the same
    /// order on every run. Delivery failures, and records still undelivered
    /// after the final flush, are recorded in `metrics` as pipeline errors.
    /// When the input ends, the producer is flushed before the operator
    /// finishes.
    fn kafka_sink(self, config: KafkaSinkConfig, env: &Env<'scope>);
}

impl<'scope, R: KafkaRecord> KafkaSink<'scope> for Stream<'scope, u64, Vec<R>> {
    fn kafka_sink(self, config: KafkaSinkConfig, env: &Env<'scope>) {
        let metrics: Arc<Metrics> = env.metrics().clone();
        let mut client = super::client_config(&config.brokers, &[]);
        client
            .set(
                "enable.idempotence",
                if config.idempotent { "true" } else { "false" },
            )
            .set("linger.ms", "5");
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let producer: Option<BaseProducer<DeliveryContext>> =
            match client.create_with_context(DeliveryContext::default()) {
                Ok(p) => Some(p),
                Err(e) => {
                    metrics.add_error(format!(
                        "cannot create a Kafka producer for {}: {e}",
                        config.brokers
                    ));
                    None
                }
            };
        let topic = config.topic.clone();
        let mut pending: Vec<R> = Vec::new();
        let mut counted = 0u64;
        let mut finished = false;
        self.sink(
            Exchange::new(|r: &R| r.route()),
            "KafkaSink",
            move |(input, frontier)| {
                input.for_each(|_cap, data| pending.append(data));
                let Some(producer) = producer.as_ref() else {
                    pending.clear();
                    return;
                };
                let limit = frontier.frontier().first().copied();
                pending.sort_by(|a, b| a.time().cmp(&b.time()).then_with(|| a.cmp_order(b)));
                let ready =
                    limit.map_or(pending.len(), |f| pending.partition_point(|r| r.time() < f));
                for record in pending.drain(..ready) {
                    let (key, payload) = (record.key(), record.payload());
                    let mut message = BaseRecord::to(&topic).key(&key).payload(&payload);
                    loop {
                        match producer.send(message) {
                            Ok(()) => break,
                            Err((
                                rdkafka::error::KafkaError::MessageProduction(
                                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                                ),
                                m,
                            )) => {
                                producer.poll(Duration::from_millis(10));
                                message = m;
                            }
                            Err((e, _)) => {
                                metrics.add_error(format!("cannot produce to `{topic}`: {e}"));
                                break;
                            }
                        }
                    }
                }
                producer.poll(Duration::ZERO);
                if limit.is_none() && !finished {
                    finished = true;
                    if let Err(e) = producer.flush(config.flush_timeout) {
                        metrics.add_error(format!(
                            "flushing `{topic}` failed: {e}; {} records undelivered",
                            producer.in_flight_count()
                        ));
                    }
                }
                let context = producer.context();
                let delivered = context.delivered.load(Ordering::Relaxed);
                R::count_delivered(&metrics, delivered - counted);
                counted = delivered;
                {
                    if let Some(error) = context
                        .first_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                    {
                        let failed = context.failed.load(Ordering::Relaxed);
                        metrics.add_error(format!(
                            "{failed} records could not be delivered to `{topic}`: {error}"
                        ));
                    }
                }
            },
        );
    }
}
