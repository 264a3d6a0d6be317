//! The delivery loop: read the alert topic back from the committed
//! offsets, hand each event to the receiver until it takes it, commit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use weir_operators::kafka::client_config;
use weir_operators::{DeadLetter, DeadLetterReason, Run};

use super::{metrics, DeliveryConfig, Receiver};

/// How often the queue depth is asked of the broker (a round trip per
/// partition) while events flow.
const FIGURES_EVERY: Duration = Duration::from_secs(5);

/// An alert event as read back from the alert topic.
pub(super) struct Event {
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) key: Option<Vec<u8>>,
    pub(super) payload: Vec<u8>,
    /// When it was written to the topic (wall clock, ms).
    pub(super) written_ms: Option<i64>,
    /// The parsed document; `None` if it is not JSON.
    pub(super) json: Option<serde_json::Value>,
}

impl Event {
    /// The event's id (its `id` field).
    pub(super) fn id(&self) -> &str {
        self.json
            .as_ref()
            .and_then(|j| j["id"].as_str())
            .unwrap_or("")
    }
}

/// What a receiver does with events.
pub(super) trait Target {
    /// Whether it reads the topic from its beginning, to rebuild what it
    /// holds from the events delivered before ([`Target::replayed`]).
    fn rebuilds(&self) -> bool {
        false
    }
    /// An event delivered before the last start.
    fn replayed(&mut self, _event: &Event) {}
    /// One attempt to deliver `event`; the error says why it failed.
    fn attempt(&mut self, event: &Event) -> Result<(), String>;
    /// Called between events: what the receiver sends on its own clock.
    fn tick(&mut self) {}
}

/// The thread's body: connects (retrying until asked to stop), then
/// delivers until asked to stop and the drain deadline passes or
/// everything written by then is delivered.
pub(super) fn deliver(
    config: DeliveryConfig,
    run: Run,
    stop: Arc<AtomicBool>,
    drain_until: Arc<Mutex<Option<Instant>>>,
) {
    let kind = config.receiver.kind();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a delivery runtime starts");
    let client = reqwest::Client::builder()
        .timeout(config.retry.timeout)
        .build()
        .expect("an HTTP client builds");
    let mut target: Box<dyn Target> = match &config.receiver {
        Receiver::Alertmanager(c) => Box::new(super::alertmanager::Sender::new(
            c.clone(),
            client,
            runtime,
            &run,
        )),
        Receiver::Webhook(c) => Box::new(super::webhook::Sender::new(c.clone(), client, runtime)),
    };
    let mut wait = Duration::from_secs(1);
    let mut queue = loop {
        match Queue::open(&config, target.rebuilds()) {
            Ok(queue) => break queue,
            Err(e) => {
                tracing::warn!(receiver = kind, error = %e, "Cannot read the alert topic back yet; retrying");
                if sleep_unless(&stop, wait) {
                    return;
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    };
    let dead = config.dead_letters.as_ref().and_then(|d| {
        client_config(&d.brokers, &d.properties)
            .create::<ThreadedProducer<DefaultProducerContext>>()
            .map_err(|e| tracing::error!(receiver = kind, error = %e, "Cannot create the dead-letter producer"))
            .ok()
            .map(|p| (p, d.topic.clone()))
    });
    let m = metrics(&run, &config.receiver);
    let mut last_figures = Instant::now() - Duration::from_secs(10);
    tracing::info!(receiver = kind, url = config.receiver.url(), group = %config.group, "Delivering alert events");
    loop {
        let draining = stop.load(Ordering::Relaxed);
        if draining {
            let until = *drain_until.lock().unwrap_or_else(|e| e.into_inner());
            if until.is_none_or(|t| Instant::now() >= t) {
                break;
            }
        }
        if last_figures.elapsed() >= FIGURES_EVERY {
            m.queue.set(queue.behind() as i64);
            last_figures = Instant::now();
        }
        target.tick();
        let Some(event) = queue.next() else {
            // Nothing more to read just now: done, if draining and every
            // event written so far is delivered.
            if draining && queue.caught_up() {
                break;
            }
            continue;
        };
        if !queue.is_new(&event) {
            target.replayed(&event);
            continue;
        }
        if event.json.is_none() {
            m.dead_letters.inc();
            let detail = "not a JSON alert event: nothing to deliver".to_owned();
            dead_letter(&dead, &config, &event, detail);
            queue.delivered(&event);
            continue;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                // Retrying: the receiver is the bottleneck, say how far
                // behind it is.
                m.oldest.set(age_seconds(event.written_ms));
                m.queue.set(queue.behind() as i64);
            }
            match target.attempt(&event) {
                Ok(()) => {
                    m.sent.inc();
                    break;
                }
                Err(detail) => {
                    m.failures.inc();
                    tracing::warn!(receiver = kind, id = event.id(), attempt, error = %detail, "Delivery failed");
                    if config.retry.max_attempts > 0 && attempt >= config.retry.max_attempts {
                        m.dead_letters.inc();
                        let detail = format!(
                            "{kind} {} failed {attempt} times; the last: {detail}",
                            config.receiver.url()
                        );
                        dead_letter(&dead, &config, &event, detail);
                        break;
                    }
                    let gave_up =
                        sleep_unless_drained(&stop, &drain_until, config.retry.wait(attempt));
                    if gave_up {
                        // Not committed: it goes out after the next start.
                        queue.commit(CommitMode::Sync);
                        return;
                    }
                }
            }
        }
        m.oldest.set(0);
        queue.delivered(&event);
    }
    queue.commit(CommitMode::Sync);
    let behind = queue.behind();
    m.queue.set(behind as i64);
    tracing::info!(
        receiver = kind,
        delivered_up_to = ?queue.committed,
        ends = ?queue.ends,
        left = behind,
        "Delivery stopped; what is left goes out after the next start"
    );
}

/// Sends `event` to the dead letters (or logs it, without a dead-letter
/// sink).
fn dead_letter(
    dead: &Option<(ThreadedProducer<DefaultProducerContext>, String)>,
    config: &DeliveryConfig,
    event: &Event,
    detail: String,
) {
    let letter = DeadLetter {
        reason: DeadLetterReason::Undeliverable,
        detail,
        topic: config.alerts.topic.clone(),
        partition: event.partition,
        offset: event.offset,
        key: event.key.clone(),
        payload: event.payload.clone(),
    };
    tracing::error!(id = event.id(), detail = %letter.detail, "Alert event given up on");
    let Some((producer, topic)) = dead else {
        return;
    };
    let json = letter.to_json().to_string();
    let id = letter.id();
    let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(json.as_bytes());
    if let Some(key) = &letter.key {
        record = record.key(key.as_slice());
    }
    let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
        key: "weir-id",
        value: Some(id.as_bytes()),
    });
    if let Err((e, _)) = producer.send(record.headers(headers)) {
        tracing::error!(error = %e, "Cannot send a dead letter");
    }
    if let Err(e) = producer.flush(Duration::from_secs(10)) {
        tracing::error!(error = %e, "Cannot flush a dead letter");
    }
}

/// Seconds since `written_ms` (wall clock).
fn age_seconds(written_ms: Option<i64>) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    written_ms.map_or(0, |t| ((now - t) / 1000).max(0))
}

/// Sleeps `wait` in short steps; true if asked to stop meanwhile.
fn sleep_unless(stop: &AtomicBool, wait: Duration) -> bool {
    let end = Instant::now() + wait;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Sleeps `wait` in short steps; true if asked to stop and the drain
/// deadline passed meanwhile.
fn sleep_unless_drained(stop: &AtomicBool, drain: &Mutex<Option<Instant>>, wait: Duration) -> bool {
    let end = Instant::now() + wait;
    loop {
        if stop.load(Ordering::Relaxed) {
            let until = *drain.lock().unwrap_or_else(|e| e.into_inner());
            if until.is_none_or(|t| Instant::now() >= t) {
                return true;
            }
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The alert topic, read back with the delivery's consumer group.
struct Queue {
    consumer: BaseConsumer,
    topic: String,
    /// Per partition, the offset after the last event delivered.
    committed: BTreeMap<i32, i64>,
    /// Per partition, the end offset when last asked.
    ends: BTreeMap<i32, i64>,
    ends_at: Instant,
    /// Whether `committed` moved since the last commit, and when that was.
    uncommitted: bool,
    committed_at: Instant,
}

impl Queue {
    /// Assigns every partition of the alert topic, from the committed
    /// offsets, or from the beginning to rebuild.
    fn open(config: &DeliveryConfig, rebuild: bool) -> Result<Queue, String> {
        let alerts = &config.alerts;
        let consumer: BaseConsumer = client_config(&alerts.brokers, &alerts.properties)
            .set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .map_err(|e| e.to_string())?;
        let timeout = Duration::from_secs(10);
        let metadata = consumer
            .fetch_metadata(Some(&alerts.topic), timeout)
            .map_err(|e| e.to_string())?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(format!("topic {} has no partitions", alerts.topic));
        }
        let mut list = TopicPartitionList::new();
        for &p in &partitions {
            list.add_partition(&alerts.topic, p);
        }
        let found = consumer
            .committed_offsets(list, timeout)
            .map_err(|e| e.to_string())?;
        let mut committed = BTreeMap::new();
        let mut assign = TopicPartitionList::new();
        for element in found.elements() {
            let next = match element.offset() {
                Offset::Offset(n) => n,
                _ => 0,
            };
            committed.insert(element.partition(), next);
            let from = match rebuild {
                true => Offset::Beginning,
                false => Offset::Offset(next),
            };
            assign
                .add_partition_offset(&alerts.topic, element.partition(), from)
                .map_err(|e| e.to_string())?;
        }
        consumer.assign(&assign).map_err(|e| e.to_string())?;
        Ok(Queue {
            consumer,
            topic: alerts.topic.clone(),
            committed,
            ends: BTreeMap::new(),
            ends_at: Instant::now() - Duration::from_secs(60),
            uncommitted: false,
            committed_at: Instant::now(),
        })
    }

    /// The next record, if one comes within a short wait.
    fn next(&mut self) -> Option<Event> {
        match self.consumer.poll(Duration::from_millis(100))? {
            Ok(m) => {
                tracing::trace!(
                    partition = m.partition(),
                    offset = m.offset(),
                    "Alert event read back"
                );
                let payload = m.payload().unwrap_or_default().to_vec();
                Some(Event {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    json: serde_json::from_slice(&payload).ok(),
                    payload,
                    written_ms: m.timestamp().to_millis(),
                })
            }
            Err(e) => {
                tracing::debug!(error = %e, "Reading the alert topic back");
                None
            }
        }
    }

    /// Whether `event` comes after what was delivered before.
    fn is_new(&self, event: &Event) -> bool {
        event.offset >= self.committed.get(&event.partition).copied().unwrap_or(0)
    }

    /// Notes `event` as delivered; the position is committed at most a
    /// second later (a crash before sends it again: at least once).
    fn delivered(&mut self, event: &Event) {
        self.committed.insert(event.partition, event.offset + 1);
        self.uncommitted = true;
        if self.committed_at.elapsed() >= Duration::from_secs(1) {
            self.commit(CommitMode::Async);
        }
    }

    /// Commits the delivered positions.
    fn commit(&mut self, mode: CommitMode) {
        if !self.uncommitted {
            return;
        }
        let mut list = TopicPartitionList::new();
        for (&p, &next) in &self.committed {
            let _ = list.add_partition_offset(&self.topic, p, Offset::Offset(next));
        }
        match self.consumer.commit(&list, mode) {
            Ok(()) => self.uncommitted = false,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot commit the delivered position; it may be delivered again")
            }
        }
        self.committed_at = Instant::now();
    }

    /// Events on the topic not delivered yet (end offsets asked at most
    /// once a second).
    fn behind(&mut self) -> u64 {
        if self.ends_at.elapsed() >= Duration::from_secs(1) {
            for &p in self.committed.keys() {
                if let Ok((_, high)) =
                    self.consumer
                        .fetch_watermarks(&self.topic, p, Duration::from_secs(2))
                {
                    self.ends.insert(p, high);
                }
            }
            self.ends_at = Instant::now();
        }
        self.committed
            .iter()
            .map(|(p, next)| (self.ends.get(p).copied().unwrap_or(*next) - next).max(0) as u64)
            .sum()
    }

    /// Whether every event written so far is delivered.
    fn caught_up(&mut self) -> bool {
        self.ends_at = Instant::now() - Duration::from_secs(60);
        self.behind() == 0
    }
}
