//! The Kafka source: each worker reads its share of a topic's partitions,
//! decodes readings on the spot, and turns per-partition watermarks into
//! timely capabilities.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};

use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::decode::Decoder;
use crate::metrics::Metrics;
use crate::reading::Reading;

/// Where a source starts reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartOffset {
    /// The oldest record still in each partition.
    Earliest,
    /// Only records produced after the start.
    Latest,
    /// The consumer group's committed offsets (earliest where none).
    Committed,
    /// The first record at or after this Kafka timestamp (ms).
    Timestamp(i64),
}

/// Configuration of a Kafka source.
#[derive(Clone, Debug)]
pub struct KafkaSourceConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// Topic to read.
    pub topic: String,
    /// Consumer group id. Weir assigns partitions itself and commits no
    /// offsets; the group matters only for [`StartOffset::Committed`].
    pub group_id: String,
    /// Where to start.
    pub start: StartOffset,
    /// How far behind the largest event time seen in a partition a reading
    /// may be before it is late.
    pub out_of_orderness_ms: u64,
    /// A partition that delivers nothing for this long (wall clock) while
    /// others do stops holding the watermark back. Not used in bounded mode,
    /// where a partition stops holding it back only at its end offset.
    pub idle_timeout: Option<Duration>,
    /// Read only up to the end offsets seen at start, then finish.
    pub bounded: bool,
    /// Extra librdkafka properties, applied last.
    pub properties: Vec<(String, String)>,
    /// The capability advances in steps of this much event time, so progress
    /// tracking sees few distinct times.
    pub watermark_step_ms: u64,
    /// Most records read in one activation before yielding to other operators.
    pub max_batch: usize,
}

impl KafkaSourceConfig {
    /// A source of `topic` on `brokers`, reading from the earliest offset,
    /// unbounded, with a 5 s out-of-orderness bound.
    pub fn new(brokers: &str, topic: &str) -> Self {
        KafkaSourceConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group_id: "weir".to_owned(),
            start: StartOffset::Earliest,
            out_of_orderness_ms: 5_000,
            idle_timeout: Some(Duration::from_secs(30)),
            bounded: false,
            properties: Vec::new(),
            watermark_step_ms: 100,
            max_batch: 8_192,
        }
    }

    fn consumer(&self) -> Result<BaseConsumer, rdkafka::error::KafkaError> {
        let mut config = super::client_config(&self.brokers, &[]);
        config
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                if self.start == StartOffset::Latest {
                    "latest"
                } else {
                    "earliest"
                },
            );
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config.create()
    }
}

/// The read state of one partition.
#[derive(Debug)]
struct Partition {
    id: i32,
    /// Bounded mode: the partition is done once its position reaches this.
    end: Option<i64>,
    /// Largest event time seen, in offset order.
    max_time: Option<u64>,
    done: bool,
    idle: bool,
    last_record: Instant,
}

impl Partition {
    /// The partition's watermark: readings below it are late.
    fn watermark(&self, bound: u64) -> Option<u64> {
        self.max_time.map(|t| t.saturating_sub(bound))
    }
}

/// Everything one worker's source needs between activations.
struct SourceState {
    config: KafkaSourceConfig,
    decoder: Decoder,
    consumer: BaseConsumer,
    partitions: Vec<Partition>,
    metrics: Arc<Metrics>,
}

/// Reads readings from Kafka into a dataflow.
pub trait KafkaSource<'scope> {
    /// Reads this worker's share of `config.topic` (partition `p` goes to
    /// worker `p % peers`), decodes each record with `decoder`, and returns
    /// the readings and the dead letters (undecodable or late records, with
    /// reason and origin).
    ///
    /// Each partition's watermark is the largest event time it has delivered
    /// minus `out_of_orderness_ms`; a reading below its own partition's
    /// watermark is late. The source holds one capability at the minimum of
    /// its partitions' watermarks (rounded down to `watermark_step_ms`), so
    /// the dataflow frontier is the watermark. A partition that has reached
    /// its end (bounded mode) or is idle no longer holds it back; a reading
    /// from a woken idle partition that is below the capability is late too.
    /// In bounded mode the source reads up to the end offsets seen at start
    /// and then drops its capability, which closes every window downstream.
    ///
    /// Failing to create the consumer or to find the topic is recorded in
    /// `metrics` as a pipeline error and ends the source.
    fn kafka_source(
        self,
        config: KafkaSourceConfig,
        decoder: Decoder,
        metrics: Arc<Metrics>,
    ) -> (
        Stream<'scope, u64, Vec<Reading>>,
        Stream<'scope, u64, Vec<DeadLetter>>,
    );
}

impl<'scope> KafkaSource<'scope> for Scope<'scope, u64> {
    fn kafka_source(
        self,
        config: KafkaSourceConfig,
        decoder: Decoder,
        metrics: Arc<Metrics>,
    ) -> (
        Stream<'scope, u64, Vec<Reading>>,
        Stream<'scope, u64, Vec<DeadLetter>>,
    ) {
        let mut builder = OperatorBuilder::new(format!("KafkaSource({})", config.topic), self);
        let activator = self.activator_for(builder.operator_info().address);
        let (readings_out, readings) = builder.new_output::<Vec<Reading>>();
        let (dead_out, dead) = builder.new_output::<Vec<DeadLetter>>();
        let mut readings_out = OutputBuilder::from(readings_out);
        let mut dead_out = OutputBuilder::from(dead_out);
        let (worker, peers) = (self.index(), self.peers());

        builder.build(move |mut caps| {
            let mut dead_cap = caps.pop();
            let mut cap = caps.pop();
            let mut state = match SourceState::open(config, decoder, worker, peers, metrics.clone())
            {
                Ok(state) => Some(state),
                Err(error) => {
                    metrics.add_error(error);
                    None
                }
            };
            let mut readings_buf: Vec<Reading> = Vec::new();
            let mut dead_buf: Vec<DeadLetter> = Vec::new();
            move |_frontiers| {
                let (Some(state), Some(c)) = (state.as_mut(), cap.as_mut()) else {
                    cap = None;
                    dead_cap = None;
                    return;
                };
                let read = state.poll(*c.time(), &mut readings_buf, &mut dead_buf);
                send(&mut readings_out, c, &mut readings_buf);
                if let Some(dc) = dead_cap.as_mut() {
                    send(&mut dead_out, dc, &mut dead_buf);
                }
                match state.watermark() {
                    Watermark::Done => {
                        tracing::debug!(worker, "Kafka source reached the end of its partitions");
                        cap = None;
                        dead_cap = None;
                        return;
                    }
                    Watermark::At(wm) => {
                        let step = state.config.watermark_step_ms.max(1);
                        let target = wm - wm % step;
                        if target > *c.time() {
                            c.downgrade(&target);
                            if let Some(dc) = dead_cap.as_mut() {
                                dc.downgrade(&target);
                            }
                        }
                    }
                    Watermark::Unknown => {}
                }
                if read > 0 {
                    activator.activate();
                } else {
                    activator.activate_after(Duration::from_millis(5));
                }
            }
        });
        (readings, dead)
    }
}

fn send<T: Clone + 'static>(
    out: &mut OutputBuilder<u64, timely::container::CapacityContainerBuilder<Vec<T>>>,
    cap: &Capability<u64>,
    buf: &mut Vec<T>,
) where
    Vec<T>: timely::Container,
{
    if !buf.is_empty() {
        out.activate().session(cap).give_container(buf);
        buf.clear();
    }
}

/// The source's watermark after a poll.
enum Watermark {
    /// Every partition has reached its end.
    Done,
    /// The minimum watermark of the partitions that hold it back.
    At(u64),
    /// Some partition that holds it back has delivered nothing yet.
    Unknown,
}

impl SourceState {
    fn open(
        config: KafkaSourceConfig,
        decoder: Decoder,
        worker: usize,
        peers: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let topic = config.topic.clone();
        let consumer = config
            .consumer()
            .map_err(|e| format!("cannot create a Kafka consumer for {}: {e}", config.brokers))?;
        let timeout = Duration::from_secs(30);
        let metadata = consumer
            .fetch_metadata(Some(&topic), timeout)
            .map_err(|e| {
                format!(
                    "cannot read metadata of topic `{topic}` from {}: {e}",
                    config.brokers
                )
            })?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("topic `{topic}` does not exist on {}", config.brokers))?;
        let mine: Vec<i32> = (0..count as i32)
            .filter(|p| *p as usize % peers == worker)
            .collect();

        let mut assignment = TopicPartitionList::new();
        let mut partitions = Vec::new();
        for &p in &mine {
            let start = match config.start {
                StartOffset::Earliest => Offset::Beginning,
                StartOffset::Latest => Offset::End,
                StartOffset::Committed => Offset::Stored,
                StartOffset::Timestamp(ts) => Offset::Offset(ts),
            };
            assignment
                .add_partition_offset(&topic, p, start)
                .map_err(|e| format!("cannot assign partition {p} of `{topic}`: {e}"))?;
        }
        if let StartOffset::Timestamp(_) = config.start {
            assignment = consumer
                .offsets_for_times(assignment, timeout)
                .map_err(|e| format!("cannot look up offsets by timestamp in `{topic}`: {e}"))?;
        }
        for &p in &mine {
            // Bounded mode: read up to the end offset seen now; an empty range is done at once.
            let (end, done) = if config.bounded {
                let (low, high) = consumer
                    .fetch_watermarks(&topic, p, timeout)
                    .map_err(|e| format!("cannot read end offsets of `{topic}`/{p}: {e}"))?;
                let start = match assignment.find_partition(&topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.max(low),
                    Some(Offset::End) => high,
                    _ if config.start == StartOffset::Latest => high,
                    _ => low,
                };
                (Some(high), start >= high)
            } else {
                (None, false)
            };
            partitions.push(Partition {
                id: p,
                end,
                max_time: None,
                done,
                idle: false,
                last_record: Instant::now(),
            });
        }
        consumer
            .assign(&assignment)
            .map_err(|e| format!("cannot assign partitions of `{topic}`: {e}"))?;
        tracing::info!(worker, topic = %topic, partitions = ?mine, bounded = config.bounded, "Kafka source started");
        Ok(SourceState {
            config,
            decoder,
            consumer,
            partitions,
            metrics,
        })
    }

    /// Reads up to `max_batch` records, decoding them into `readings` and
    /// `dead`. `cap_time` is the capability's time: nothing below it may be
    /// sent as a reading. Returns how many records were read.
    fn poll(
        &mut self,
        cap_time: u64,
        readings: &mut Vec<Reading>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize {
        let bound = self.config.out_of_orderness_ms;
        let mut read = 0;
        let mut skipped = 0;
        let before = dead.len();
        while read + skipped < self.config.max_batch {
            let message = match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, topic = %self.config.topic, "Kafka consumer error");
                    break;
                }
            };
            let Some(part) = self
                .partitions
                .iter_mut()
                .find(|p| p.id == message.partition())
            else {
                skipped += 1;
                continue;
            };
            let offset = message.offset();
            if part.done || part.end.is_some_and(|end| offset >= end) {
                // Beyond the end offsets of a bounded run: left for the next run.
                skipped += 1;
                continue;
            }
            read += 1;
            part.last_record = Instant::now();
            part.idle = false;
            let payload = message.payload().unwrap_or(&[]);
            let record_time = message.timestamp().to_millis();
            let verdict = match self.decoder.decode(payload, record_time, part.id, offset) {
                Ok(reading) => match part.watermark(bound) {
                    Some(wm) if reading.time < wm => Err((
                        DeadLetterReason::Late,
                        format!("event time {} is behind partition watermark {wm}", reading.time),
                    )),
                    _ if reading.time < cap_time => Err((
                        DeadLetterReason::LateAfterIdle,
                        format!(
                            "event time {} is behind the source watermark {cap_time} (partition was idle)",
                            reading.time
                        ),
                    )),
                    _ => {
                        part.max_time = part.max_time.max(Some(reading.time));
                        readings.push(reading);
                        Ok(())
                    }
                },
                Err(e) => Err((e.reason, e.detail)),
            };
            if let Err((reason, detail)) = verdict {
                tracing::debug!(topic = %self.config.topic, partition = part.id, offset, %reason, %detail, "Dead letter");
                dead.push(DeadLetter {
                    reason,
                    detail,
                    topic: self.config.topic.clone(),
                    partition: part.id,
                    offset,
                    key: message.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                });
            }
            if part.end.is_some_and(|end| offset + 1 >= end) {
                part.done = true;
            }
        }
        if read == 0 {
            self.check_positions();
        }
        let metrics = &self.metrics;
        Metrics::add(&metrics.records_read, read as u64);
        Metrics::add(&metrics.readings, (read - (dead.len() - before)) as u64);
        for d in &dead[before..] {
            metrics.add_dead_letters(&d.reason, 1);
            if d.reason.as_str().starts_with("late") {
                tracing::debug!(partition = d.partition, offset = d.offset, "Late reading");
            } else {
                tracing::warn!(
                    topic = %d.topic, partition = d.partition, offset = d.offset, reason = %d.reason, detail = %d.detail,
                    "Bad record sent to dead letters"
                );
            }
        }
        read
    }

    /// With nothing to read: marks partitions done whose position reached
    /// their end (the last offsets may hold no record), and idle ones.
    fn check_positions(&mut self) {
        if self.config.bounded {
            if let Ok(positions) = self.consumer.position() {
                for part in self.partitions.iter_mut().filter(|p| !p.done) {
                    let pos = positions
                        .find_partition(&self.config.topic, part.id)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        });
                    if let (Some(pos), Some(end)) = (pos, part.end) {
                        part.done |= pos >= end;
                    }
                }
            }
        } else if let Some(timeout) = self.config.idle_timeout {
            for part in self.partitions.iter_mut().filter(|p| !p.idle) {
                if part.last_record.elapsed() >= timeout {
                    tracing::info!(topic = %self.config.topic, partition = part.id, "Partition is idle; it no longer holds the watermark back");
                    part.idle = true;
                }
            }
        }
    }

    fn watermark(&self) -> Watermark {
        let bound = self.config.out_of_orderness_ms;
        let active: Vec<&Partition> = self.partitions.iter().filter(|p| !p.done).collect();
        if active.is_empty() {
            return if self.config.bounded || self.partitions.is_empty() {
                Watermark::Done
            } else {
                Watermark::Unknown
            };
        }
        let holding: Vec<&&Partition> = active.iter().filter(|p| !p.idle).collect();
        let set: Vec<Option<u64>> = if holding.is_empty() {
            active
                .iter()
                .map(|p| p.watermark(bound))
                .filter(Option::is_some)
                .collect()
        } else {
            holding.iter().map(|p| p.watermark(bound)).collect()
        };
        match set.iter().copied().collect::<Option<Vec<u64>>>() {
            Some(wms) => wms
                .into_iter()
                .min()
                .map_or(Watermark::Unknown, Watermark::At),
            None => Watermark::Unknown,
        }
    }
}
