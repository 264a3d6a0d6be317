//! The Kafka sink: writes alerts (or dead letters) to a topic as JSON, in
//! event-time order once the frontier has passed them, each exactly once
//! across restarts from checkpoints.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use timely::dataflow::Stream;

use super::{write_records, Destination, Progress, SinkRecord};
use crate::run::Env;

/// Configuration of a Kafka sink.
#[derive(Clone, Debug, PartialEq)]
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

/// Counts deliveries, keeps the first failure, and observes latencies.
/// librdkafka calls it on the producer's own polling thread, as soon as a
/// record is acknowledged.
struct DeliveryContext {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Where latencies go, if anywhere.
    latency: Option<Histogram>,
    /// A record's opaque is the microseconds from this to its input's
    /// arrival, plus one (0: none).
    base: Instant,
}

impl DeliveryContext {
    fn new(latency: Option<Histogram>) -> Self {
        DeliveryContext {
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            latency,
            // Early enough for any arrival this sink will be given.
            base: Instant::now()
                .checked_sub(Duration::from_secs(86_400))
                .unwrap_or_else(Instant::now),
        }
    }

    /// The opaque that carries `arrived`.
    fn opaque(&self, arrived: Option<Instant>) -> usize {
        match (&self.latency, arrived) {
            (Some(_), Some(at)) => at
                .checked_duration_since(self.base)
                .map_or(0, |d| d.as_micros() as usize + 1),
            _ => 0,
        }
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, arrived: usize) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                if let (Some(latency), Some(micros)) = (&self.latency, arrived.checked_sub(1)) {
                    let at = self.base + Duration::from_micros(micros as u64);
                    latency.observe(at.elapsed().as_secs_f64());
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// The header that carries a record's [`Record::id`](crate::record::Record::id).
pub const ID_HEADER: &str = "weir-id";

/// Writes records to a Kafka topic.
pub trait KafkaSink<'scope> {
    /// Writes every record to `config.topic`, keyed by
    /// [`Record::key`](crate::record::Record::key), with its id in the
    /// [`ID_HEADER`] header.
    ///
    /// Records are routed to workers by
    /// [`Record::route`](crate::record::Record::route) and written
    /// once the input frontier passes their time, sorted by event time and
    /// then by identity, so the records of one key reach their partition in
    /// the same order on every run. Delivery failures, and records still
    /// undelivered after the final flush, are recorded in `metrics` as
    /// pipeline errors. When the input ends, the producer is flushed before
    /// the operator finishes.
    ///
    /// With checkpoints, each checkpoint flushes the producer and records
    /// the topic's end offsets; after a restart the sink reads back the ids
    /// written after them and delivers none of those again, so every record
    /// reaches the topic once, without broker transactions.
    ///
    /// # Examples
    /// A dead letter to a topic of librdkafka's in-process mock cluster,
    /// read back with its id.
    /// ```
    /// use rdkafka::consumer::{BaseConsumer, Consumer};
    /// use rdkafka::message::{Headers, Message};
    /// use rdkafka::mocking::MockCluster;
    /// use rdkafka::ClientConfig;
    /// use timely::dataflow::operators::ToStream;
    /// use weir_operators::kafka::sink::ID_HEADER;
    /// use weir_operators::kafka::{KafkaSink, KafkaSinkConfig};
    /// use weir_operators::{DeadLetter, DeadLetterReason, Env};
    ///
    /// let cluster = MockCluster::new(1).unwrap();
    /// cluster.create_topic("dead", 1, 1).unwrap();
    /// let letter = DeadLetter {
    ///     reason: DeadLetterReason::MalformedJson,
    ///     detail: "not JSON".into(),
    ///     topic: "readings".into(),
    ///     partition: 0,
    ///     offset: 7,
    ///     key: Some(b"d1".to_vec()),
    ///     payload: b"{oops".to_vec(),
    /// };
    /// let config = KafkaSinkConfig::new(&cluster.bootstrap_servers(), "dead");
    /// timely::example(move |scope| {
    ///     let env = Env::standalone(scope);
    ///     vec![letter].to_stream(scope).kafka_sink(config, &env);
    /// });
    ///
    /// let consumer: BaseConsumer = ClientConfig::new()
    ///     .set("bootstrap.servers", cluster.bootstrap_servers())
    ///     .set("group.id", "check")
    ///     .set("auto.offset.reset", "earliest")
    ///     .create()
    ///     .unwrap();
    /// let mut partitions = rdkafka::TopicPartitionList::new();
    /// partitions.add_partition_offset("dead", 0, rdkafka::Offset::Beginning).unwrap();
    /// consumer.assign(&partitions).unwrap();
    /// let message = (0..300)
    ///     .find_map(|_| consumer.poll(std::time::Duration::from_millis(100)))
    ///     .unwrap()
    ///     .unwrap();
    /// assert_eq!(message.key(), Some(&b"d1"[..]));
    /// let header = message.headers().unwrap().get(0);
    /// assert_eq!((header.key, header.value), (ID_HEADER, Some(&b"readings/0/7"[..])));
    /// let doc: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
    /// assert_eq!(doc["reason"], "malformed_json");
    /// ```
    fn kafka_sink(self, config: KafkaSinkConfig, env: &Env<'scope>);
}

impl<'scope, R: SinkRecord> KafkaSink<'scope> for Stream<'scope, u64, Vec<R>> {
    fn kafka_sink(self, config: KafkaSinkConfig, env: &Env<'scope>) {
        write_records(
            self,
            move |_, latency| KafkaTopic::open(&config, latency),
            false,
            env,
        )
    }
}

/// A topic as a sink's destination: a producer, and a consumer that reads
/// end offsets at checkpoints and reads back after a restart.
struct KafkaTopic {
    producer: ThreadedProducer<DeliveryContext>,
    offsets: BaseConsumer,
    topic: String,
    flush_timeout: Duration,
}

impl KafkaTopic {
    fn open(config: &KafkaSinkConfig, latency: Option<Histogram>) -> Result<Self, String> {
        let mut client = crate::kafka::client_config(&config.brokers, &[]);
        client
            .set(
                "enable.idempotence",
                if config.idempotent { "true" } else { "false" },
            )
            .set("linger.ms", "5");
        for (k, v) in &config.properties {
            client.set(k, v);
        }
        let producer: ThreadedProducer<DeliveryContext> = client
            .create_with_context(DeliveryContext::new(latency))
            .map_err(|e| format!("cannot create a Kafka producer for {}: {e}", config.brokers))?;
        Ok(KafkaTopic {
            producer,
            offsets: reader(config)?,
            topic: config.topic.clone(),
            flush_timeout: config.flush_timeout,
        })
    }
}

impl Destination for KafkaTopic {
    fn name(&self) -> String {
        format!("topic `{}`", self.topic)
    }

    // rdkafka's `send` hands the record back with its error: a large `Err`.
    #[allow(clippy::result_large_err)]
    fn send(
        &mut self,
        key: &[u8],
        payload: &[u8],
        id: &str,
        arrived: Option<Instant>,
    ) -> Result<(), String> {
        let headers = OwnedHeaders::new().insert(Header {
            key: ID_HEADER,
            value: Some(id.as_bytes()),
        });
        let message =
            BaseRecord::with_opaque_to(&self.topic, self.producer.context().opaque(arrived))
                .key(key)
                .payload(payload)
                .headers(headers);
        // The producer's thread delivers while the queue is full.
        crate::kafka::send_retrying(
            message,
            |m| self.producer.send(m),
            || std::thread::sleep(Duration::from_millis(1)),
        )
        .map_err(|e| format!("cannot produce to `{}`: {e}", self.topic))
    }

    /// Waits until everything sent is delivered; a record that could not
    /// be is an error.
    fn flush(&mut self) -> Result<(), String> {
        if let Err(e) = self.producer.flush(self.flush_timeout) {
            return Err(format!(
                "flushing `{}` failed: {e}; {} records undelivered",
                self.topic,
                self.producer.in_flight_count()
            ));
        }
        let context = self.producer.context();
        let failed = context.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let error = context
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            return Err(format!(
                "{failed} records could not be delivered to `{}`: {}",
                self.topic,
                error.unwrap_or_default()
            ));
        }
        Ok(())
    }

    fn progress(&mut self) -> Progress {
        let context = self.producer.context();
        let delivered = context.delivered.load(Ordering::Relaxed);
        let failed = context.failed.load(Ordering::Relaxed);
        let error = context
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .map(|error| {
                format!(
                    "{failed} records could not be delivered to `{}`: {error}",
                    self.topic
                )
            });
        Progress {
            delivered,
            failed,
            in_flight: u64::try_from(self.producer.in_flight_count()).unwrap_or(0),
            error,
        }
    }

    fn ends(&mut self) -> Result<Vec<(i32, i64)>, String> {
        let timeout = self.flush_timeout;
        partitions(&self.offsets, &self.topic, timeout)?
            .into_iter()
            .map(|p| {
                self.offsets
                    .fetch_watermarks(&self.topic, p, timeout)
                    .map(|(_, high)| (p, high))
                    .map_err(|e| format!("cannot read the end offsets of `{}`: {e}", self.topic))
            })
            .collect()
    }

    fn read_back(&mut self, from: &BTreeMap<i32, i64>) -> Result<HashSet<String>, String> {
        read_back(&self.offsets, &self.topic, self.flush_timeout, from)
    }
}

/// A consumer of the sink's topic, for its end offsets and reading back.
fn reader(config: &KafkaSinkConfig) -> Result<BaseConsumer, String> {
    let mut client = crate::kafka::client_config(&config.brokers, &config.properties);
    client
        .set("group.id", "weir-sink-read-back")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    client
        .create()
        .map_err(|e| format!("cannot create a Kafka consumer for {}: {e}", config.brokers))
}

/// The partitions of `topic`.
fn partitions(consumer: &BaseConsumer, topic: &str, timeout: Duration) -> Result<Vec<i32>, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("cannot read the metadata of `{topic}`: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(format!("topic `{topic}` has no partitions"));
    }
    Ok(partitions)
}

/// Reads the ids of every record written to `topic` after the offsets
/// `from`, up to the current end.
/// How long the ends of a topic must stay put before it is read back.
const SETTLE: Duration = Duration::from_millis(500);

/// The low and high watermarks of every partition of `topic`, once they
/// stayed put for [`SETTLE`] (at most `timeout`): a write the run before
/// sent just before it died (a batch in flight at a SIGKILL, or from a
/// cluster member still stopping) may be applied by the broker a moment
/// later, and reading back before it would deliver its records again.
fn settled_watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<BTreeMap<i32, (i64, i64)>, String> {
    let error = |e: rdkafka::error::KafkaError| format!("cannot read back `{topic}`: {e}");
    let read = || -> Result<BTreeMap<i32, (i64, i64)>, String> {
        partitions(consumer, topic, timeout)?
            .into_iter()
            .map(|p| {
                Ok((
                    p,
                    consumer
                        .fetch_watermarks(topic, p, timeout)
                        .map_err(error)?,
                ))
            })
            .collect()
    };
    let deadline = Instant::now() + timeout;
    let mut ends = read()?;
    loop {
        std::thread::sleep(SETTLE);
        let now = read()?;
        if now == ends || Instant::now() > deadline {
            return Ok(now);
        }
        ends = now;
    }
}

fn read_back(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
    from: &BTreeMap<i32, i64>,
) -> Result<HashSet<String>, String> {
    let mut ids = HashSet::new();
    let error = |e: rdkafka::error::KafkaError| format!("cannot read back `{topic}`: {e}");
    let mut assignment = TopicPartitionList::new();
    let mut remaining: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, (low, high)) in settled_watermarks(consumer, topic, timeout)? {
        // A partition the checkpoint does not know was added since: all of it.
        let start = from.get(&p).copied().unwrap_or(low).max(low);
        if start < high {
            assignment
                .add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(error)?;
            remaining.insert(p, high);
        }
    }
    if remaining.is_empty() {
        return Ok(ids);
    }
    consumer.assign(&assignment).map_err(error)?;
    let deadline = Instant::now() + timeout;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(format!(
                "cannot read back `{topic}` within {timeout:?}: partitions {:?} not read to their end",
                remaining.keys().collect::<Vec<_>>()
            ));
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.map_err(error)?;
        if let Some(headers) = message.headers() {
            for header in headers.iter().filter(|h| h.key == ID_HEADER) {
                if let Some(id) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                    ids.insert(id.to_owned());
                }
            }
        }
        let p = message.partition();
        if remaining
            .get(&p)
            .is_some_and(|&high| message.offset() + 1 >= high)
        {
            remaining.remove(&p);
        }
    }
    consumer.unassign().map_err(error)?;
    Ok(ids)
}
