//! A source of recorded Kafka records held in memory: the same decoding,
//! lateness and watermark logic as the Kafka source, with no broker. Used by
//! tests, benchmarks and replays.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::Scope;

use super::{ingest_source, restored_positions, Ingest, PartitionStart, Poller, SourceStreams};
use crate::dead_letter::DeadLetter;
use crate::decode::Decoder;
use crate::record::cache::prefetch;
use crate::recording::RecordRef;
use crate::run::Env;
use crate::source::Decode;

/// One recorded Kafka record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryRecord {
    /// Offset in its partition.
    pub offset: i64,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record payload.
    pub payload: Vec<u8>,
    /// Record timestamp (ms).
    pub timestamp: Option<i64>,
}

/// A recorded topic: each partition's records in offset order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryTopic {
    /// Topic name, reported in dead letters.
    pub name: String,
    /// Records of partition `i` at index `i`.
    pub partitions: Vec<Vec<MemoryRecord>>,
}

impl MemoryTopic {
    /// Builds a topic from (partition, key, payload, timestamp) tuples,
    /// numbering offsets per partition in the given order.
    pub fn from_records<'a>(
        name: &str,
        partitions: usize,
        records: impl IntoIterator<Item = (usize, Option<&'a [u8]>, &'a [u8], Option<i64>)>,
    ) -> Self {
        let mut topic = MemoryTopic {
            name: name.to_owned(),
            partitions: vec![Vec::new(); partitions],
        };
        for (p, key, payload, timestamp) in records {
            let part = &mut topic.partitions[p];
            part.push(MemoryRecord {
                offset: part.len() as i64,
                key: key.map(<[u8]>::to_vec),
                payload: payload.to_vec(),
                timestamp,
            });
        }
        topic
    }

    /// Total number of records.
    pub fn len(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }

    /// Whether the topic holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a [`MemoryTopic`] into a dataflow.
pub trait MemorySource<'scope> {
    /// Reads this worker's partitions (`p % peers == worker`) of `topic` to
    /// the end, taking turns between partitions, through the same decoding,
    /// lateness and watermark logic as the Kafka source in bounded mode.
    /// Returns the readings and the dead letters.
    ///
    /// It reads without watermark alignment (see
    /// [`KafkaSourceConfig::watermark_alignment_ms`]): it takes equal turns
    /// of records, so partitions sparse in event time run ahead and what
    /// they deliver waits downstream; the topic is in memory already.
    ///
    /// [`KafkaSourceConfig::watermark_alignment_ms`]: crate::kafka::KafkaSourceConfig::watermark_alignment_ms
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use weir_operators::memory::{MemorySource, MemoryTopic};
    /// use weir_operators::{DeadLetterReason, Decoder, Env};
    ///
    /// let payloads = [
    ///     r#"{"device_id":"d","sensor":"t","value":1,"ts":10000}"#,
    ///     r#"{"device_id":"d","sensor":"t","value":2,"ts":4000}"#, // 6 s behind: late with a 5 s bound
    ///     r#"{"device_id":"d","sensor":"t","value":"x","ts":10001}"#, // bad value
    /// ];
    /// let topic = Arc::new(MemoryTopic::from_records(
    ///     "readings", 1, payloads.iter().map(|p| (0, None, p.as_bytes(), None)),
    /// ));
    /// let (readings, dead) = timely::example(move |scope| {
    ///     let env = Env::standalone(scope);
    ///     let (r, d) = scope.memory_source(topic, Decoder::default(), 5_000, &env);
    ///     (r.capture(), d.capture())
    /// });
    /// let readings: Vec<_> = readings.iter().flat_map(|e| match e { Event::Messages(_, d) => d, Event::Progress(_) => vec![] }).collect();
    /// let dead: Vec<_> = dead.iter().flat_map(|e| match e { Event::Messages(_, d) => d, Event::Progress(_) => vec![] }).map(|d| (d.reason, d.offset)).collect();
    /// assert_eq!(readings.len(), 1);
    /// assert_eq!(dead, vec![(DeadLetterReason::Late, 1), (DeadLetterReason::InvalidField, 2)]);
    /// ```
    fn memory_source(
        self,
        topic: Arc<MemoryTopic>,
        decoder: Decoder,
        out_of_orderness_ms: u64,
        env: &Env<'scope>,
    ) -> SourceStreams<'scope>;
}

/// Positions in this worker's partitions.
struct MemoryPoller {
    topic: Arc<MemoryTopic>,
    /// (partition, next index)
    positions: Vec<(usize, usize)>,
}

/// Records taken from one partition before moving to the next.
const TURN: usize = 1_024;

/// How many records ahead of its decoding a payload is asked of the cache.
const PAYLOAD_AHEAD: usize = 8;

impl<D: Decode> Poller<D> for MemoryPoller {
    fn poll(
        &mut self,
        ingest: &mut Ingest<D>,
        cap_time: u64,
        readings: &mut Vec<D::Item>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize {
        let mut read = 0;
        for (p, next) in &mut self.positions {
            let records = &self.topic.partitions[*p];
            let stop = (*next + TURN).min(records.len());
            let turn = &records[*next..stop];
            for (i, r) in turn.iter().enumerate() {
                // Each payload is an allocation of its own, in no order the
                // hardware follows: ask for one a few records ahead.
                if let Some(ahead) = turn.get(i + PAYLOAD_AHEAD) {
                    prefetch(ahead.payload.as_ptr());
                    prefetch(ahead.payload.as_ptr().wrapping_add(64));
                }
                let raw = RecordRef {
                    partition: *p as i32,
                    offset: r.offset,
                    key: r.key.as_deref(),
                    value: &r.payload,
                    timestamp: r.timestamp,
                    headers: &[],
                };
                read += usize::from(ingest.accept(raw, cap_time, readings, dead));
            }
            *next = stop;
        }
        read
    }

    fn bounded(&self) -> bool {
        true
    }
}

impl<'scope> MemorySource<'scope> for Scope<'scope, u64> {
    fn memory_source(
        self,
        topic: Arc<MemoryTopic>,
        decoder: Decoder,
        out_of_orderness_ms: u64,
        env: &Env<'scope>,
    ) -> SourceStreams<'scope> {
        let name = format!("MemorySource({})", topic.name);
        let run = env.run().clone();
        let resume = restored_positions(env, &topic.name);
        let topic_name = topic.name.clone();
        ingest_source(env, &topic_name, name, 100, move |worker, peers| {
            let mine: Vec<usize> = (0..topic.partitions.len())
                .filter(|p| p % peers == worker)
                .collect();
            let mut starts = Vec::new();
            let mut positions = Vec::new();
            for &p in &mine {
                let records = &topic.partitions[p];
                let end = records.last().map_or(0, |r| r.offset + 1);
                let restored = resume.get(&(p as i32));
                let first = records.first().map_or(0, |r| r.offset);
                let start = PartitionStart::new(p as i32, first, Some(end), restored);
                let offset = start.0.offset;
                starts.push(start);
                positions.push((p, records.partition_point(|r| r.offset < offset)));
            }
            let ingest = Ingest::new(decoder, &topic.name, out_of_orderness_ms, starts, run);
            Ok((MemoryPoller { topic, positions }, ingest))
        })
    }
}
