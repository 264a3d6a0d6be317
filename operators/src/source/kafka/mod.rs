//! The Kafka source: each worker reads its share of a topic's partitions,
//! decodes readings on the spot, and turns per-partition watermarks into
//! timely capabilities.

mod config;
mod fetch;
mod open;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::Scope;

pub use config::{EndOffset, KafkaSourceConfig, StartOffset};

use super::{
    ingest_source, restored_positions, Alignment, Ingest, PartitionResume, Poller, SourceStreams,
};
use crate::dead_letter::DeadLetter;
use crate::decode::Decoder;
use crate::run::Env;
use crate::source::{Decode, Items};
use config::SourceContext;
use fetch::{Ahead, FetchSetup, Fetcher, Held, Wake};

/// A worker's consumer and the config it was built from; its records are
/// read and decoded on a fetch thread (see [`fetch`]).
struct KafkaPoller<D: Decode> {
    config: KafkaSourceConfig,
    consumer: Arc<BaseConsumer<SourceContext>>,
    /// The fetch thread, started at the first poll (once the source knows
    /// whether it records, and can be woken).
    fetcher: Option<Fetcher<D::Item>>,
    /// What the fetch thread knows of watermark alignment.
    ahead: Option<Arc<Ahead>>,
    /// Wakes the source operator (see [`Poller::wake_on_data`]).
    wake: Wake,
    /// Partitions paused because they reached their bounded end.
    paused: Vec<i32>,
    /// Partitions held back by watermark alignment (see [`Ingest::align`])
    /// or done (bounded ends): the fetch thread pauses them.
    held: Held,
    /// Resume offsets last committed to the consumer group.
    committed: Vec<PartitionResume>,
    /// The consumer's positions when the fetch thread last found nothing
    /// to read, for a bounded source (see [`fetch::Batch::positions`]).
    positions: BTreeMap<i32, i64>,
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
    ///
    /// # Examples
    /// On librdkafka's in-process mock cluster, bounded: two readings and a
    /// record that is not JSON.
    /// ```
    /// use rdkafka::mocking::MockCluster;
    /// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    /// use rdkafka::ClientConfig;
    /// use timely::dataflow::operators::capture::{Capture, Event};
    /// use weir_operators::kafka::{KafkaSource, KafkaSourceConfig};
    /// use weir_operators::{Decoder, Env};
    ///
    /// let cluster = MockCluster::new(1).unwrap();
    /// cluster.create_topic("readings", 1, 1).unwrap();
    /// let producer: BaseProducer = ClientConfig::new()
    ///     .set("bootstrap.servers", cluster.bootstrap_servers())
    ///     .create()
    ///     .unwrap();
    /// for payload in [
    ///     r#"{"device_id":"d1","sensor":"temp","value":20.5,"ts":1000}"#,
    ///     "not json",
    ///     r#"{"device_id":"d1","sensor":"temp","value":21.0,"ts":2000}"#,
    /// ] {
    ///     producer.send(BaseRecord::<(), _>::to("readings").payload(payload)).unwrap();
    /// }
    /// producer.flush(std::time::Duration::from_secs(5)).unwrap();
    ///
    /// let mut config = KafkaSourceConfig::new(&cluster.bootstrap_servers(), "readings");
    /// config.bounded = true;
    /// let (readings, dead) = timely::example(move |scope| {
    ///     let env = Env::standalone(scope);
    ///     let (readings, dead) = scope.kafka_source(config, Decoder::default(), &env);
    ///     (readings.capture(), dead.capture())
    /// });
    /// let data = |e: Event<u64, Vec<_>>| match e { Event::Messages(_, d) => d, Event::Progress(_) => vec![] };
    /// let values: Vec<_> = readings.iter().flat_map(data).map(|r| (r.time, r.value)).collect();
    /// assert_eq!(values, vec![(1000, 20.5), (2000, 21.0)]);
    /// let data = |e: Event<u64, Vec<_>>| match e { Event::Messages(_, d) => d, Event::Progress(_) => vec![] };
    /// let dead: Vec<_> = dead.iter().flat_map(data).map(|d: weir_operators::DeadLetter| d.offset).collect();
    /// assert_eq!(dead, vec![1]);
    /// ```
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
        kafka_items(config, decoder, env)
    }
}

/// A Kafka source of what `decoder` makes of the records of `config`'s
/// topic (readings, control events), with its dead letters.
pub(crate) fn kafka_items<'scope, D: Decode + Clone + Send>(
    config: KafkaSourceConfig,
    decoder: D,
    env: &Env<'scope>,
) -> Items<'scope, D::Item> {
    let name = format!("KafkaSource({})", config.topic);
    let step = config.watermark_step_ms;
    let run = env.run().clone();
    let resume = restored_positions(env, &config.topic);
    let topic = config.topic.clone();
    ingest_source(env, &topic, name, step, move |worker, peers| {
        KafkaPoller::open(config, decoder, worker, peers, resume, run)
    })
}

impl<D: Decode + Clone + Send> KafkaPoller<D> {
    /// Stops fetching partitions that reached their bounded end.
    fn pause_done(&mut self, ingest: &Ingest<D>) {
        let done: Vec<i32> = (ingest.partitions.iter())
            .filter(|p| p.done && !self.paused.contains(&p.id))
            .map(|p| p.id)
            .collect();
        // Held for good: nothing releases a done partition.
        self.hold(&done, true);
        self.paused.extend(done);
    }

    /// Holds back (`hold`) or releases partitions; the fetch thread pauses
    /// or resumes them.
    fn hold(&mut self, partitions: &[i32], hold: bool) {
        if partitions.is_empty() {
            return;
        }
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for &p in partitions {
            if hold && !held.contains(&p) {
                held.push(p);
            } else if !hold {
                held.retain(|h| *h != p);
            }
        }
    }

    /// Commits the resume offsets of the last checkpoint to the consumer
    /// group, for monitoring tools; failures are logged only.
    fn commit_resume_offsets(&mut self, ingest: &Ingest<D>) {
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
    fn check_positions(&self, ingest: &mut Ingest<D>) {
        if self.bounded() {
            for part in ingest.partitions.iter_mut().filter(|p| !p.done) {
                if let (Some(pos), Some(end)) = (self.positions.get(&part.id), part.end) {
                    part.done |= *pos >= end;
                }
            }
        }
    }

    /// Tells the fetch thread the readings' frontier the worker saw last.
    fn publish_frontier(&self, ingest: &Ingest<D>) {
        if let Some(ahead) = &self.ahead {
            let now = ingest.frontier.unwrap_or(u64::MAX);
            ahead.frontier.store(now, Ordering::Relaxed);
        }
    }

    /// The fetch thread, started on first use.
    fn fetcher(&mut self, ingest: &Ingest<D>) -> &Fetcher<D::Item> {
        if self.fetcher.is_none() {
            self.ahead = ingest.max_drift.map(|drift| {
                Arc::new(Ahead {
                    frontier: u64::MAX.into(),
                    reach: drift.saturating_add(ingest.bound),
                    drift,
                })
            });
        }
        self.fetcher.get_or_insert_with(|| {
            Fetcher::start(FetchSetup {
                consumer: self.consumer.clone(),
                decoder: ingest.decoder.clone(),
                topic: self.config.topic.clone(),
                max_batch: self.config.max_batch,
                headers: ingest.recording(),
                positions: self.config.bounded || self.config.end.is_some(),
                wake: self.wake.clone(),
                held: self.held.clone(),
                ahead: self.ahead.clone(),
            })
        })
    }
}

impl<D: Decode + Clone + Send> Poller<D> for KafkaPoller<D> {
    fn poll(
        &mut self,
        ingest: &mut Ingest<D>,
        cap_time: u64,
        readings: &mut Vec<D::Item>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize {
        let (mut read, mut taken, mut ahead) = (0, 0, Vec::new());
        self.publish_frontier(ingest);
        // Never blocks: the fetch thread wakes the source when it hands
        // over a batch, and the worker runs its other operators meanwhile.
        while taken < self.config.max_batch {
            let Some(mut batch) = self.fetcher(ingest).next() else {
                break;
            };
            taken += batch.len().max(1);
            batch.drain(|record, decoded| {
                let partition = record.partition;
                let took = ingest.accept_decoded(record, Some(decoded), cap_time, readings, dead);
                read += usize::from(took);
                if ingest.runs_ahead(partition) && !ahead.contains(&partition) {
                    ahead.push(partition);
                }
            });
            if let Some(positions) = batch.positions.take() {
                self.positions = positions;
            }
        }
        // The fetch thread paused these as it read them, unless the
        // frontier moved since; it keeps them paused until released.
        self.hold(&ahead, true);
        if taken >= self.config.max_batch {
            // Batches may be left: come back at once.
            if let Some(wake) = self.wake.get() {
                wake();
            }
        }
        self.pause_done(ingest);
        self.commit_resume_offsets(ingest);
        if taken == 0 {
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
        // The fetch thread calls it each time it hands over a batch.
        self.wake.set(wake).is_ok()
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

#[cfg(test)]
mod tests;
