//! The Kafka source: each worker reads its share of a topic's partitions,
//! decodes readings on the spot, and turns per-partition watermarks into
//! timely capabilities.

mod config;
mod open;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use timely::dataflow::Scope;

pub use config::{EndOffset, KafkaSourceConfig, StartOffset};

use super::{
    ingest_source, restored_positions, Alignment, Ingest, PartitionResume, Poller, SourceStreams,
};
use crate::dead_letter::DeadLetter;
use crate::decode::Decoder;
use crate::recording::RecordRef;
use crate::run::Env;
use crate::source::{Decode, Items};
use config::SourceContext;

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
pub(crate) fn kafka_items<'scope, D: Decode>(
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

impl KafkaPoller {
    /// Stops fetching partitions that reached their bounded end.
    fn pause_done<D: Decode>(&mut self, ingest: &Ingest<D>) {
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
    fn commit_resume_offsets<D: Decode>(&mut self, ingest: &Ingest<D>) {
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
    fn check_positions<D: Decode>(&self, ingest: &mut Ingest<D>) {
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
    fn poll<D: Decode>(
        &mut self,
        ingest: &mut Ingest<D>,
        cap_time: u64,
        readings: &mut Vec<D::Item>,
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
