//! The configuration of a Kafka source, and the consumer it makes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

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
    /// `watermark_step_ms`. Off by default: on a backlog whose partitions
    /// are sparse in event time, each partition is held and released over
    /// and over, and the cycle (the frontier must move before a partition
    /// is read again, and librdkafka drops what it prefetched for a paused
    /// partition) caps the read rate whatever the pipeline's own speed;
    /// a larger bound raises the cap. See
    /// [`KafkaSource::kafka_source`](crate::kafka::KafkaSource::kafka_source).
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

    pub(super) fn consumer(
        &self,
    ) -> Result<BaseConsumer<SourceContext>, rdkafka::error::KafkaError> {
        let mut config = crate::kafka::client_config(&self.brokers, &[]);
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
pub(super) struct SourceContext {
    topic: String,
    pub(super) high: Mutex<BTreeMap<i32, i64>>,
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
