//! Opening a Kafka source on a worker: its share of the partitions, where
//! each starts (a checkpoint's position wins over the configured start) and
//! where it ends.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::config::SourceContext;
use super::{EndOffset, Held, KafkaPoller, KafkaSourceConfig, StartOffset};
use crate::run::Run;
use crate::source::{Decode, Ingest, PartitionResume, PartitionStart};

/// How long opening waits for each answer from the brokers.
const TIMEOUT: Duration = Duration::from_secs(30);

impl<D: Decode + Clone + Send> KafkaPoller<D> {
    /// Opens the source on `worker` of `peers`: creates the consumer, finds
    /// the worker's partitions, resolves where each starts and ends, and
    /// assigns them. A failure is a message for the pipeline's errors.
    pub(super) fn open(
        config: KafkaSourceConfig,
        decoder: D,
        worker: usize,
        peers: usize,
        resume: BTreeMap<i32, PartitionResume>,
        run: Run,
    ) -> Result<(Self, Ingest<D>), String> {
        let topic = config.topic.clone();
        let consumer = config
            .consumer()
            .map_err(|e| format!("cannot create a Kafka consumer for {}: {e}", config.brokers))?;
        let mine = partitions_of(&consumer, &config, worker, peers)?;
        let mut assignment = start_assignment(&consumer, &config, &mine)?;
        let ends_by_time = ends_by_time(&consumer, &config, &mine)?;
        // Resolve every start to an offset, so the resume bookkeeping knows
        // where reading began. A checkpoint's position wins over `start`.
        let start = Start {
            consumer: &consumer,
            config: &config,
            ends_by_time: &ends_by_time,
            run: &run,
        };
        let mut partitions = Vec::new();
        for &p in &mine {
            partitions.push(start.partition(&mut assignment, p, resume.get(&p))?);
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
                consumer: std::sync::Arc::new(consumer),
                fetcher: None,
                ahead: None,
                wake: std::sync::Arc::default(),
                paused: Vec::new(),
                held: Held::default(),
                committed: Vec::new(),
                positions: BTreeMap::new(),
            },
            ingest,
        ))
    }
}

/// The partitions of the topic that `worker` of `peers` reads: partition
/// `p` goes to worker `p % peers`.
fn partitions_of(
    consumer: &BaseConsumer<SourceContext>,
    config: &KafkaSourceConfig,
    worker: usize,
    peers: usize,
) -> Result<Vec<i32>, String> {
    let topic = config.topic.as_str();
    let metadata = consumer.fetch_metadata(Some(topic), TIMEOUT).map_err(|e| {
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
    Ok((0..count as i32)
        .filter(|p| *p as usize % peers == worker)
        .collect())
}

/// The configured start of each partition of `mine`, with timestamps and
/// committed offsets resolved to offsets.
fn start_assignment(
    consumer: &BaseConsumer<SourceContext>,
    config: &KafkaSourceConfig,
    mine: &[i32],
) -> Result<TopicPartitionList, String> {
    let topic = config.topic.as_str();
    let mut assignment = TopicPartitionList::new();
    for &p in mine {
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
            .add_partition_offset(topic, p, start)
            .map_err(|e| format!("cannot assign partition {p} of `{topic}`: {e}"))?;
    }
    match config.start {
        StartOffset::Timestamp(_) => {
            assignment = consumer
                .offsets_for_times(assignment, TIMEOUT)
                .map_err(|e| format!("cannot look up offsets by timestamp in `{topic}`: {e}"))?;
        }
        // Resolve committed offsets now, so a bounded run knows where it
        // starts (a partition committed at its end is done at once).
        StartOffset::Committed => {
            assignment = consumer
                .committed_offsets(assignment, TIMEOUT)
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
                    .set_partition_offset(topic, p, Offset::Beginning)
                    .map_err(|e| format!("cannot assign partition {p} of `{topic}`: {e}"))?;
            }
        }
        StartOffset::Earliest | StartOffset::Latest | StartOffset::Offsets(_) => {}
    }
    Ok(assignment)
}

/// With an end at a timestamp: the end offset of each partition of `mine`
/// that has a record at or after it.
fn ends_by_time(
    consumer: &BaseConsumer<SourceContext>,
    config: &KafkaSourceConfig,
    mine: &[i32],
) -> Result<BTreeMap<i32, i64>, String> {
    let topic = config.topic.as_str();
    let ts = match config.end {
        Some(EndOffset::Timestamp(ts)) if !mine.is_empty() => ts,
        _ => return Ok(BTreeMap::new()),
    };
    let mut query = TopicPartitionList::new();
    for &p in mine {
        query
            .add_partition_offset(topic, p, Offset::Offset(ts))
            .map_err(|e| format!("cannot assign partition {p} of `{topic}`: {e}"))?;
    }
    Ok(consumer
        .offsets_for_times(query, TIMEOUT)
        .map_err(|e| format!("cannot look up offsets by timestamp in `{topic}`: {e}"))?
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// What resolving the start of a partition needs.
struct Start<'a> {
    consumer: &'a BaseConsumer<SourceContext>,
    config: &'a KafkaSourceConfig,
    ends_by_time: &'a BTreeMap<i32, i64>,
    run: &'a Run,
}

impl Start<'_> {
    /// Where partition `p` starts (`restored` wins over the offset of
    /// `assignment`, which is set to it) and ends.
    fn partition(
        &self,
        assignment: &mut TopicPartitionList,
        p: i32,
        restored: Option<&PartitionResume>,
    ) -> Result<(PartitionStart, Vec<(i64, u64)>), String> {
        let config = self.config;
        let topic = config.topic.as_str();
        let (low, high) = self
            .consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .map_err(|e| format!("cannot read end offsets of `{topic}`/{p}: {e}"))?;
        let offset = match restored {
            Some(r) => r.offset,
            None => match assignment.find_partition(topic, p).map(|e| e.offset()) {
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
            .set_partition_offset(topic, p, Offset::Offset(offset))
            .map_err(|e| format!("cannot assign partition {p} of `{topic}`: {e}"))?;
        // Bounded mode: read up to the end offset seen now, or the end asked for.
        let end = match &config.end {
            Some(EndOffset::Offsets(ends)) => Some(ends.get(&p).copied().unwrap_or(high)),
            Some(EndOffset::Timestamp(_)) => {
                Some(self.ends_by_time.get(&p).copied().unwrap_or(high))
            }
            None => config.bounded.then_some(high),
        };
        if let Some(end) = end {
            // The end is known: progress can show a rate and an ETA.
            self.run
                .metrics
                .records_expected
                .inc_by((end - offset).max(0) as u64);
        }
        Ok(PartitionStart::new(p, offset, end, restored))
    }
}
