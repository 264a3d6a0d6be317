//! The Kafka sink: writes alerts (or dead letters) to a topic as JSON, in
//! event-time order once the frontier has passed them, each exactly once
//! across restarts from checkpoints.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

use crate::alert::Alert;
use crate::checkpoint::{checkpointed_sink, Env, Participant, SinkEvent};
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
    /// Event time: records ready at once are written in its order.
    fn time(&self) -> u64;
    /// Identity, the same in every run over the same input; written in the
    /// `weir-id` header (and in the JSON) so a restarted sink can tell what
    /// was delivered before.
    fn id(&self) -> String;
    /// The source record it comes from (topic, partition, offset), for
    /// records re-made when a restarted source re-reads its input.
    fn origin(&self) -> Option<(&str, i32, i64)> {
        None
    }
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
    fn id(&self) -> String {
        Alert::id(self)
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
    fn id(&self) -> String {
        DeadLetter::id(self)
    }
    fn origin(&self) -> Option<(&str, i32, i64)> {
        Some((&self.topic, self.partition, self.offset))
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

/// The header that carries a record's [`KafkaRecord::id`].
pub const ID_HEADER: &str = "weir-id";

/// A Kafka sink's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaSinkPart {
    /// End offset of every partition of the topic once everything before
    /// the checkpoint was delivered: a restart reads back what lies after
    /// them and does not deliver it again.
    pub ends: Vec<(i32, i64)>,
    /// Per source partition, the highest source offset of a record
    /// delivered (records with an origin only): a restart re-reads its
    /// source from earlier and must not deliver those again.
    pub origins: Vec<(String, i32, i64)>,
}

/// What a restarted sink must not deliver again.
#[derive(Debug, Default)]
struct Delivered {
    /// Ids read back from the topic after the checkpoint's end offsets.
    ids: HashSet<String>,
    /// Highest delivered source offset per source partition.
    origins: BTreeMap<(String, i32), i64>,
}

impl Delivered {
    /// Whether `record` was delivered before the restart (forgetting its id:
    /// each is delivered once).
    fn contains<R: KafkaRecord>(&mut self, record: &R) -> bool {
        if let Some((topic, partition, offset)) = record.origin() {
            if self
                .origins
                .get(&(topic.to_owned(), partition))
                .is_some_and(|&max| offset <= max)
            {
                return true;
            }
        }
        !self.ids.is_empty() && self.ids.remove(&record.id())
    }

    fn note<R: KafkaRecord>(&mut self, record: &R) {
        if let Some((topic, partition, offset)) = record.origin() {
            let max = self
                .origins
                .entry((topic.to_owned(), partition))
                .or_insert(offset);
            *max = (*max).max(offset);
        }
    }
}

/// Writes records to a Kafka topic.
pub trait KafkaSink<'scope> {
    /// Writes every record to `config.topic`, keyed by [`KafkaRecord::key`],
    /// with its id in the [`ID_HEADER`] header.
    ///
    /// Records are routed to workers by [`KafkaRecord::route`] and written
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
    fn kafka_sink(self, config: KafkaSinkConfig, env: &Env<'scope>);
}

impl<'scope, R: KafkaRecord> KafkaSink<'scope> for Stream<'scope, u64, Vec<R>> {
    fn kafka_sink(self, config: KafkaSinkConfig, env: &Env<'scope>) {
        let metrics: Arc<Metrics> = env.metrics().clone();
        let (participant, markers) = env.participant("kafka");
        let mut writer = match Writer::new(&config, &participant, env) {
            Ok(writer) => Some(writer),
            Err(e) => {
                metrics.add_error(e);
                None
            }
        };
        checkpointed_sink(
            self,
            Exchange::new(|r: &R| r.route()),
            "KafkaSink",
            markers,
            move |event| {
                let Some(w) = writer.as_mut() else {
                    match event {
                        SinkEvent::Data(_, data) => data.clear(),
                        SinkEvent::Marker(m) => {
                            participant.fail(&m, format!("cannot write to `{}`", config.topic))
                        }
                        SinkEvent::Frontier(_) => {}
                    }
                    return;
                };
                match event {
                    SinkEvent::Data(time, data) => {
                        w.pending.extend(data.drain(..).map(|r| (time, r)))
                    }
                    SinkEvent::Marker(marker) => {
                        w.send_before(marker.until(), &metrics);
                        match w.checkpoint(&config) {
                            Ok(part) => participant.write(&marker, &part, Vec::new()),
                            Err(e) => participant.fail(&marker, e),
                        }
                    }
                    SinkEvent::Frontier(frontier) => {
                        w.send_before(frontier, &metrics);
                        if frontier.is_none() && !w.finished {
                            w.finished = true;
                            if let Err(e) = w.flush(&config) {
                                metrics.add_error(e);
                            }
                        }
                    }
                }
                w.count_delivered(&metrics);
            },
        );
    }
}

/// The producer of one worker's sink and what it holds.
struct Writer<R> {
    producer: BaseProducer<DeliveryContext>,
    /// Reads the topic's end offsets at checkpoints.
    offsets: BaseConsumer,
    topic: String,
    /// Records not written yet, with their timely time.
    pending: Vec<(u64, R)>,
    /// What was delivered before a restart, and since.
    delivered: Delivered,
    /// Records delivered before the restart, skipped.
    skipped: u64,
    counted: u64,
    finished: bool,
}

impl<R: KafkaRecord> Writer<R> {
    fn new(
        config: &KafkaSinkConfig,
        participant: &Participant,
        env: &Env<'_>,
    ) -> Result<Self, String> {
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
        let producer: BaseProducer<DeliveryContext> = client
            .create_with_context(DeliveryContext::default())
            .map_err(|e| format!("cannot create a Kafka producer for {}: {e}", config.brokers))?;
        let offsets = reader(config)?;
        let parts = env.restored::<KafkaSinkPart>(participant.op());
        let delivered = if parts.is_empty() {
            Delivered::default()
        } else {
            read_back(&offsets, config, &parts)?
        };
        Ok(Writer {
            producer,
            offsets,
            topic: config.topic.clone(),
            pending: Vec::new(),
            delivered,
            skipped: 0,
            counted: 0,
            finished: false,
        })
    }

    /// Sends every pending record of a time before `until` (all for `None`),
    /// by event time and identity, except those delivered before a restart.
    fn send_before(&mut self, until: Option<u64>, metrics: &Metrics) {
        let (mut ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(t, _)| until.is_none_or(|u| *t < u));
        self.pending = rest;
        ready.sort_by(|(_, a), (_, b)| a.time().cmp(&b.time()).then_with(|| a.cmp_order(b)));
        for (_, record) in ready {
            if self.delivered.contains(&record) {
                self.skipped += 1;
                continue;
            }
            self.delivered.note(&record);
            let (key, payload, id) = (record.key(), record.payload(), record.id());
            let headers = OwnedHeaders::new().insert(Header {
                key: ID_HEADER,
                value: Some(id.as_bytes()),
            });
            let mut message = BaseRecord::to(&self.topic)
                .key(&key)
                .payload(&payload)
                .headers(headers);
            loop {
                match self.producer.send(message) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        m,
                    )) => {
                        self.producer.poll(Duration::from_millis(10));
                        message = m;
                    }
                    Err((e, _)) => {
                        metrics.add_error(format!("cannot produce to `{}`: {e}", self.topic));
                        break;
                    }
                }
            }
        }
        self.producer.poll(Duration::ZERO);
    }

    /// Waits until everything sent is delivered; a record that could not
    /// be is an error.
    fn flush(&self, config: &KafkaSinkConfig) -> Result<(), String> {
        if let Err(e) = self.producer.flush(config.flush_timeout) {
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

    /// The part of a checkpoint once everything before it was sent: waits
    /// for delivery, then records the topic's end offsets.
    fn checkpoint(&self, config: &KafkaSinkConfig) -> Result<KafkaSinkPart, String> {
        self.flush(config)?;
        let timeout = config.flush_timeout;
        let ends = partitions(&self.offsets, &self.topic, timeout)?
            .into_iter()
            .map(|p| {
                self.offsets
                    .fetch_watermarks(&self.topic, p, timeout)
                    .map(|(_, high)| (p, high))
                    .map_err(|e| format!("cannot read the end offsets of `{}`: {e}", self.topic))
            })
            .collect::<Result<_, _>>()?;
        let origins = self
            .delivered
            .origins
            .iter()
            .map(|((topic, partition), offset)| (topic.clone(), *partition, *offset))
            .collect();
        Ok(KafkaSinkPart { ends, origins })
    }

    /// Counts deliveries, and reports the first failure once.
    fn count_delivered(&mut self, metrics: &Metrics) {
        let context = self.producer.context();
        let delivered = context.delivered.load(Ordering::Relaxed);
        R::count_delivered(metrics, delivered - self.counted);
        self.counted = delivered;
        if let Some(error) = context
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let failed = context.failed.load(Ordering::Relaxed);
            metrics.add_error(format!(
                "{failed} records could not be delivered to `{}`: {error}",
                self.topic
            ));
        }
        if self.finished && self.skipped > 0 {
            tracing::info!(
                topic = %self.topic,
                skipped = self.skipped,
                "Records delivered before the restart were not delivered again"
            );
            self.skipped = 0;
        }
    }
}

/// A consumer of the sink's topic, for its end offsets and reading back.
fn reader(config: &KafkaSinkConfig) -> Result<BaseConsumer, String> {
    let mut client = super::client_config(&config.brokers, &config.properties);
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

/// Reads the ids of every record written to the topic after the restored
/// checkpoint's end offsets (the least over the workers that recorded them),
/// up to the current end.
fn read_back(
    consumer: &BaseConsumer,
    config: &KafkaSinkConfig,
    parts: &[KafkaSinkPart],
) -> Result<Delivered, String> {
    let topic = &config.topic;
    let mut from: BTreeMap<i32, i64> = BTreeMap::new();
    let mut delivered = Delivered::default();
    for part in parts {
        for &(p, end) in &part.ends {
            let e = from.entry(p).or_insert(end);
            *e = (*e).min(end);
        }
        for (t, p, offset) in &part.origins {
            let max = delivered.origins.entry((t.clone(), *p)).or_insert(*offset);
            *max = (*max).max(*offset);
        }
    }
    let timeout = config.flush_timeout;
    let error = |e: rdkafka::error::KafkaError| format!("cannot read back `{topic}`: {e}");
    let mut assignment = TopicPartitionList::new();
    let mut remaining: BTreeMap<i32, i64> = BTreeMap::new();
    for p in partitions(consumer, topic, timeout)? {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(error)?;
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
        return Ok(delivered);
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
                    delivered.ids.insert(id.to_owned());
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
    tracing::info!(topic = %topic, records = delivered.ids.len(), "Read back what was delivered after the checkpoint");
    Ok(delivered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterReason;

    fn letter(partition: i32, offset: i64) -> DeadLetter {
        DeadLetter {
            reason: DeadLetterReason::MalformedJson,
            detail: String::new(),
            topic: "readings".into(),
            partition,
            offset,
            key: None,
            payload: b"{".to_vec(),
        }
    }

    /// After a restart, a dead letter is not delivered again if its source
    /// offset is at or below the highest one delivered before the
    /// checkpoint, or if its id was read back from the topic; each id read
    /// back suppresses one record only.
    #[test]
    fn a_restarted_sink_skips_what_was_delivered() {
        let mut delivered = Delivered::default();
        delivered.origins.insert(("readings".into(), 0), 10);
        delivered.ids.insert(letter(0, 12).id());
        let skipped: Vec<(i32, i64)> = [(0, 3), (0, 10), (0, 11), (0, 12), (0, 12), (1, 5)]
            .into_iter()
            .filter(|&(p, o)| delivered.contains(&letter(p, o)))
            .collect();
        assert_eq!(skipped, vec![(0, 3), (0, 10), (0, 12)]);
    }

    /// What a sink notes as delivered goes into the next checkpoint.
    #[test]
    fn noted_origins_keep_the_highest_offset() {
        let mut delivered = Delivered::default();
        for offset in [4, 9, 7] {
            delivered.note(&letter(2, offset));
        }
        assert_eq!(delivered.origins.get(&("readings".into(), 2)), Some(&9));
    }
}
