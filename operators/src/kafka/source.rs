//! The Kafka source: each worker reads its share of a topic's partitions,
//! decodes readings on the spot, and turns per-partition watermarks into
//! timely capabilities.

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Mutex;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::Scope;

use crate::dead_letter::DeadLetter;
use crate::decode::Decoder;
use crate::ingest::{
    ingest_source, restored_positions, Alignment, Ingest, PartitionResume, PartitionStart, Poller,
    SourceStreams,
};
use crate::reading::Reading;
use crate::recording::{RecordRef, RecordingSource};
use crate::run::Env;
use crate::run::Run;

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
    /// These offsets, by partition (unlisted partitions: the oldest record).
    Offsets(BTreeMap<i32, i64>),
}

/// Where a source stops reading: each partition's end, resolved when the
/// source starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOffset {
    /// Before the first record at or after this Kafka timestamp (ms); a
    /// partition without one ends at its end when the source starts.
    Timestamp(i64),
    /// Before these offsets, by partition (unlisted partitions: at their end
    /// when the source starts). An end beyond the records produced so far is
    /// awaited.
    Offsets(BTreeMap<i32, i64>),
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
    /// others do stops holding the watermark back; when all of a worker's
    /// partitions are idle, its watermark moves on from their highest by the
    /// wall time spent idle. Not used in bounded mode, where a partition
    /// stops holding the watermark back only at its end offset.
    pub idle_timeout: Option<Duration>,
    /// Read only up to the end offsets seen at start (or `end`), then
    /// finish; no partition is ever declared idle, so the results depend
    /// only on the records read.
    pub bounded: bool,
    /// Stop at these ends and finish, as a bounded run does. Without
    /// `bounded` this is a live run that ends: records up to the ends are
    /// awaited, and partitions that deliver nothing are declared idle.
    pub end: Option<EndOffset>,
    /// Extra librdkafka properties, applied last.
    pub properties: Vec<(String, String)>,
    /// The capability advances in steps of this much event time, so progress
    /// tracking sees few distinct times.
    pub watermark_step_ms: u64,
    /// Most records read in one activation before yielding to other operators.
    pub max_batch: usize,
    /// Watermark alignment: a partition whose watermark runs more than this
    /// far (ms of event time) ahead of the frontier of the dataflow's
    /// readings is paused until the frontier catches up to within half of
    /// it, so that a backlog read faster than it is processed waits in
    /// Kafka, not in memory. `None` turns it off. At least two
    /// `watermark_step_ms`. Off by default: librdkafka drops what it
    /// prefetched for a paused partition, so each pause costs a fetch round
    /// trip, which slows reads of partitions sparse in event time. See
    /// [`KafkaSource::kafka_source`].
    pub watermark_alignment_ms: Option<u64>,
}

impl KafkaSourceConfig {
    /// A source of `topic` on `brokers`, reading from the earliest offset,
    /// unbounded, with a 5 s out-of-orderness bound, without watermark
    /// alignment.
    pub fn new(brokers: &str, topic: &str) -> Self {
        KafkaSourceConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group_id: "weir".to_owned(),
            start: StartOffset::Earliest,
            out_of_orderness_ms: 5_000,
            idle_timeout: Some(Duration::from_secs(30)),
            bounded: false,
            end: None,
            properties: Vec::new(),
            watermark_step_ms: 100,
            max_batch: 8_192,
            watermark_alignment_ms: None,
        }
    }

    fn consumer(&self) -> Result<BaseConsumer<SourceContext>, rdkafka::error::KafkaError> {
        let mut config = super::client_config(&self.brokers, &[]);
        config
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            // librdkafka pauses a partition's fetching for this long once its
            // local queue is full (default 1 s); a fast consumer then starves.
            .set("fetch.queue.backoff.ms", "20")
            // What librdkafka prefetches is memory the pipeline does not
            // see: at most 16 MB (default 64 MB) and 10,000 records per
            // partition (default 100,000), so that a backlog waits in Kafka.
            .set("queued.max.messages.kbytes", "16384")
            .set("queued.min.messages", "10000")
            // Partition end offsets, for the lag metrics.
            .set("statistics.interval.ms", "1000")
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
        config.create_with_context(SourceContext {
            topic: self.topic.clone(),
            high: Mutex::default(),
        })
    }
}

/// Keeps each partition's end offset from librdkafka's statistics (every
/// second), for the lag metrics.
struct SourceContext {
    topic: String,
    high: Mutex<BTreeMap<i32, i64>>,
}

impl ClientContext for SourceContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut high = self.high.lock().unwrap_or_else(|e| e.into_inner());
        for (&p, partition) in &topic.partitions {
            if p >= 0 && partition.hi_offset >= 0 {
                high.insert(p, partition.hi_offset);
            }
        }
    }
}

impl ConsumerContext for SourceContext {}

/// A worker's consumer and the config it was built from.
struct KafkaPoller {
    config: KafkaSourceConfig,
    consumer: BaseConsumer<SourceContext>,
    /// Wakes the source operator (see [`Poller::wake_on_data`]).
    wake: Option<std::sync::Arc<dyn Fn() + Send + Sync>>,
    /// Partitions paused because they reached their bounded end.
    paused: Vec<i32>,
    /// Partitions paused by watermark alignment (see [`Ingest::align`]).
    held: Vec<i32>,
    /// Resume offsets last committed to the consumer group.
    committed: Vec<PartitionResume>,
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
    /// With `watermark_alignment_ms`, a partition whose watermark runs more
    /// than that far ahead of the frontier of the dataflow's readings is
    /// paused (`Consumer::pause`; librdkafka drops what it prefetched for it
    /// and fetches it again from the next offset on resume), and resumed
    /// once the frontier is within half of it. The frontier is that of
    /// every source's readings, on every worker and process (timely's
    /// progress tracking, through a probe), so a backlog read faster than it
    /// is processed stays in Kafka instead of waiting downstream for the
    /// slowest partition. The partitions that hold the frontier back are
    /// never paused, so alignment cannot stall a run; it changes only when
    /// records are read, never the results.
    ///
    /// With checkpoints, a run that resumes starts each partition at the
    /// checkpoint's resume offset with its restored watermark, instead of
    /// `start`; after each checkpoint the resume offsets are committed to the
    /// consumer group `group_id`, so that standard tools show the lag (Weir
    /// itself never reads them back).
    ///
    /// Failing to create the consumer or to find the topic is recorded in
    /// the metrics as a pipeline error and ends the source.
    fn kafka_source(
        self,
        config: KafkaSourceConfig,
        decoder: Decoder,
        env: &Env<'scope>,
    ) -> SourceStreams<'scope>;
}

impl<'scope> KafkaSource<'scope> for Scope<'scope, u64> {
    fn kafka_source(
        self,
        config: KafkaSourceConfig,
        decoder: Decoder,
        env: &Env<'scope>,
    ) -> SourceStreams<'scope> {
        let io = crate::connect::RunIo::of(env);
        if let Some(recording) = io.replay.clone() {
            return self.recording_source(recording, decoder, config.out_of_orderness_ms, env);
        }
        let mut config = config;
        if let Some(start) = &io.start {
            config.start = start.clone();
        }
        if let Some(end) = &io.end {
            config.end = Some(end.clone());
        }
        let name = format!("KafkaSource({})", config.topic);
        let step = config.watermark_step_ms;
        let run = env.run().clone();
        let resume = restored_positions(env, &config.topic);
        let topic = config.topic.clone();
        ingest_source(env, &topic, name, step, move |worker, peers| {
            KafkaPoller::open(config, decoder, worker, peers, resume, run)
        })
    }
}

impl KafkaPoller {
    fn open(
        config: KafkaSourceConfig,
        decoder: Decoder,
        worker: usize,
        peers: usize,
        resume: BTreeMap<i32, PartitionResume>,
        run: Run,
    ) -> Result<(Self, Ingest), String> {
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
        for &p in &mine {
            let start = match config.start {
                StartOffset::Earliest => Offset::Beginning,
                StartOffset::Latest => Offset::End,
                StartOffset::Committed => Offset::Stored,
                StartOffset::Timestamp(ts) => Offset::Offset(ts),
                StartOffset::Offsets(ref offsets) => offsets
                    .get(&p)
                    .map_or(Offset::Beginning, |o| Offset::Offset(*o)),
            };
            assignment
                .add_partition_offset(&topic, p, start)
                .map_err(|e| format!("cannot assign partition {p} of `{topic}`: {e}"))?;
        }
        match config.start {
            StartOffset::Timestamp(_) => {
                assignment = consumer
                    .offsets_for_times(assignment, timeout)
                    .map_err(|e| {
                        format!("cannot look up offsets by timestamp in `{topic}`: {e}")
                    })?;
            }
            // Resolve committed offsets now, so a bounded run knows where it
            // starts (a partition committed at its end is done at once).
            StartOffset::Committed => {
                assignment = consumer
                    .committed_offsets(assignment, timeout)
                    .map_err(|e| format!("cannot read committed offsets of `{topic}`: {e}"))?;
                let uncommitted: Vec<i32> = assignment
                    .elements()
                    .iter()
                    .filter(|e| !matches!(e.offset(), Offset::Offset(_)))
                    .map(|e| e.partition())
                    .collect();
                // No commit: start from the beginning.
                for p in uncommitted {
                    assignment
                        .set_partition_offset(&topic, p, Offset::Beginning)
                        .map_err(|e| format!("cannot assign partition {p} of `{topic}`: {e}"))?;
                }
            }
            StartOffset::Earliest | StartOffset::Latest | StartOffset::Offsets(_) => {}
        }
        let ends_by_time: BTreeMap<i32, i64> = match config.end {
            Some(EndOffset::Timestamp(ts)) if !mine.is_empty() => {
                let mut query = TopicPartitionList::new();
                for &p in &mine {
                    query
                        .add_partition_offset(&topic, p, Offset::Offset(ts))
                        .map_err(|e| format!("cannot assign partition {p} of `{topic}`: {e}"))?;
                }
                consumer
                    .offsets_for_times(query, timeout)
                    .map_err(|e| format!("cannot look up offsets by timestamp in `{topic}`: {e}"))?
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect()
            }
            _ => BTreeMap::new(),
        };
        // Resolve every start to an offset, so the resume bookkeeping knows
        // where reading began. A checkpoint's position wins over `start`.
        let mut partitions = Vec::new();
        for &p in &mine {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p, timeout)
                .map_err(|e| format!("cannot read end offsets of `{topic}`/{p}: {e}"))?;
            let restored = resume.get(&p);
            let offset = match restored {
                Some(r) => r.offset,
                None => match assignment.find_partition(&topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.max(low),
                    Some(Offset::End) => high,
                    _ if config.start == StartOffset::Latest => high,
                    _ => low,
                },
            };
            if restored.is_some_and(|r| r.offset < low) {
                return Err(format!(
                    "partition {p} of `{topic}` no longer holds offset {offset}, where the checkpoint resumes (the oldest offset is {low}); records were deleted by retention"
                ));
            }
            assignment
                .set_partition_offset(&topic, p, Offset::Offset(offset))
                .map_err(|e| format!("cannot assign partition {p} of `{topic}`: {e}"))?;
            // Bounded mode: read up to the end offset seen now, or the end asked for.
            let end = match &config.end {
                Some(EndOffset::Offsets(ends)) => Some(ends.get(&p).copied().unwrap_or(high)),
                Some(EndOffset::Timestamp(_)) => {
                    Some(ends_by_time.get(&p).copied().unwrap_or(high))
                }
                None => config.bounded.then_some(high),
            };
            if let Some(end) = end {
                // The end is known: progress can show a rate and an ETA.
                crate::metrics::Metrics::add(
                    &run.metrics.records_expected,
                    (end - offset).max(0) as u64,
                );
            }
            partitions.push(PartitionStart::new(p, offset, end, restored));
        }
        consumer
            .assign(&assignment)
            .map_err(|e| format!("cannot assign partitions of `{topic}`: {e}"))?;
        tracing::info!(worker, topic = %topic, partitions = ?mine, bounded = config.bounded, "Kafka source started");
        let ingest = Ingest::new(decoder, &topic, config.out_of_orderness_ms, partitions, run)
            .with_alignment(config.watermark_alignment_ms);
        Ok((
            KafkaPoller {
                config,
                consumer,
                wake: None,
                paused: Vec::new(),
                held: Vec::new(),
                committed: Vec::new(),
            },
            ingest,
        ))
    }

    /// Stops fetching partitions that reached their bounded end.
    fn pause_done(&mut self, ingest: &Ingest) {
        let mut done = TopicPartitionList::new();
        for part in &ingest.partitions {
            if part.done && !self.paused.contains(&part.id) {
                done.add_partition(&self.config.topic, part.id);
                self.paused.push(part.id);
            }
        }
        if done.count() > 0 {
            if let Err(e) = self.consumer.pause(&done) {
                tracing::debug!(error = %e, "Cannot pause finished partitions");
            }
        }
    }

    /// Pauses (`pause`) or resumes partitions for watermark alignment.
    /// Partitions paused at their bounded end stay paused.
    fn hold(&mut self, partitions: &[i32], pause: bool) {
        let mut list = TopicPartitionList::new();
        for &p in partitions {
            if pause && !self.held.contains(&p) {
                self.held.push(p);
                list.add_partition(&self.config.topic, p);
            } else if !pause && self.held.contains(&p) {
                self.held.retain(|h| *h != p);
                if !self.paused.contains(&p) {
                    list.add_partition(&self.config.topic, p);
                }
            }
        }
        if list.count() == 0 {
            return;
        }
        let result = if pause {
            self.consumer.pause(&list)
        } else {
            self.consumer.resume(&list)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, pause, partitions = ?partitions, "Cannot pause or resume partitions for watermark alignment");
        }
    }

    /// Commits the resume offsets of the last checkpoint to the consumer
    /// group, for monitoring tools; failures are logged only.
    fn commit_resume_offsets(&mut self, ingest: &Ingest) {
        let Some(part) = ingest.last_resume() else {
            return;
        };
        if part.partitions == self.committed {
            return;
        }
        let mut offsets = TopicPartitionList::new();
        for p in &part.partitions {
            let _ = offsets.add_partition_offset(
                &self.config.topic,
                p.partition,
                Offset::Offset(p.offset),
            );
        }
        if let Err(e) = self.consumer.commit(&offsets, CommitMode::Async) {
            tracing::debug!(error = %e, "Cannot commit resume offsets to the consumer group");
        }
        self.committed = part.partitions.clone();
    }

    /// With nothing to read: marks partitions done whose position reached
    /// their end (the last offsets may hold no record), or idle ones.
    fn check_positions(&self, ingest: &mut Ingest) {
        if self.bounded() {
            let Ok(positions) = self.consumer.position() else {
                return;
            };
            for part in ingest.partitions.iter_mut().filter(|p| !p.done) {
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
    }
}

impl Poller for KafkaPoller {
    fn poll(
        &mut self,
        ingest: &mut Ingest,
        cap_time: u64,
        readings: &mut Vec<Reading>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize {
        let mut read = 0;
        // The batch ran to `max_batch`: records may be left.
        let mut full = true;
        // Never blocks: the worker runs its other operators while the
        // consumer waits, and `wake_on_data` reschedules the source.
        for _ in 0..self.config.max_batch {
            let message = match self.consumer.poll(Duration::ZERO) {
                None => {
                    full = false;
                    break;
                }
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    full = false;
                    tracing::warn!(error = %e, topic = %self.config.topic, "Kafka consumer error");
                    break;
                }
            };
            let headers = if ingest.recording() {
                record_headers(&message)
            } else {
                Vec::new()
            };
            let partition = message.partition();
            let record = RecordRef {
                partition,
                offset: message.offset(),
                key: message.key(),
                value: message.payload().unwrap_or(&[]),
                timestamp: message.timestamp().to_millis(),
                headers: &headers,
            };
            read += usize::from(ingest.accept(record, cap_time, readings, dead));
            if ingest.runs_ahead(partition) {
                // At once: librdkafka drops the records of a paused
                // partition that are still queued, so none run further ahead.
                drop(message);
                self.hold(&[partition], true);
            }
        }
        if full && read == 0 {
            // Records are left (beyond a bounded end): librdkafka wakes only
            // on an empty queue becoming non-empty, so come back at once.
            if let Some(wake) = &self.wake {
                wake();
            }
        }
        self.pause_done(ingest);
        self.commit_resume_offsets(ingest);
        if read == 0 {
            self.check_positions(ingest);
        }
        if let Some(timeout) = self.config.idle_timeout.filter(|_| !self.config.bounded) {
            ingest.check_idle(timeout);
        }
        read
    }

    fn bounded(&self) -> bool {
        self.config.bounded || self.config.end.is_some()
    }

    fn align(&mut self, alignment: &Alignment) {
        self.hold(&alignment.hold, true);
        self.hold(&alignment.release, false);
    }

    fn wake_on_data(&mut self, wake: Box<dyn Fn() + Send + Sync>) -> bool {
        // librdkafka calls it from its own thread when the consumer queue
        // (records, and events such as statistics) goes from empty to not.
        let wake: std::sync::Arc<dyn Fn() + Send + Sync> = wake.into();
        self.wake = Some(wake.clone());
        self.consumer.set_nonempty_callback(move || wake());
        true
    }

    fn end_offsets(&self) -> BTreeMap<i32, i64> {
        self.consumer
            .context()
            .high
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A message's headers, owned, for a recording.
fn record_headers(
    message: &rdkafka::message::BorrowedMessage<'_>,
) -> Vec<(String, Option<Vec<u8>>)> {
    use rdkafka::message::Headers;
    message.headers().map_or_else(Vec::new, |headers| {
        headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect()
    })
}
