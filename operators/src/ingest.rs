//! What every source does with a raw record: decode it, judge its lateness
//! against its own partition's watermark, and turn partition watermarks into
//! a capability. Shared by the Kafka source and the in-memory source, so a
//! recording replays through exactly the logic the live run used.

use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, Stream};

use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::decode::Decoder;
use crate::metrics::Metrics;
use crate::reading::Reading;

/// What a source returns: the readings, and the dead letters (undecodable
/// or late records, with reason and origin).
pub type SourceStreams<'scope> = (
    Stream<'scope, u64, Vec<Reading>>,
    Stream<'scope, u64, Vec<DeadLetter>>,
);

/// One record as a source reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawRecord<'a> {
    /// Partition.
    pub(crate) partition: i32,
    /// Offset in the partition.
    pub(crate) offset: i64,
    /// Record key.
    pub(crate) key: Option<&'a [u8]>,
    /// Record payload.
    pub(crate) payload: &'a [u8],
    /// Record timestamp (ms), if any.
    pub(crate) timestamp: Option<i64>,
}

/// The read state of one partition.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub(crate) id: i32,
    /// Bounded reads: the partition is done once its position reaches this.
    pub(crate) end: Option<i64>,
    /// Largest event time accepted, in offset order.
    max_time: Option<u64>,
    pub(crate) done: bool,
    pub(crate) idle: bool,
    /// Delivered a record since the last [`Ingest::check_idle`].
    active: bool,
    last_record: Instant,
}

/// A source's watermark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Watermark {
    /// Every partition has reached its end.
    Done,
    /// Every partition that is not done is idle: nothing holds the watermark.
    Idle,
    /// The minimum watermark of the partitions that hold it back.
    At(u64),
    /// A partition that holds it back has delivered nothing yet.
    Unknown,
}

/// Decoding and per-partition watermarks of one worker's partitions.
pub(crate) struct Ingest {
    decoder: Decoder,
    topic: String,
    bound: u64,
    pub(crate) partitions: Vec<PartitionState>,
    metrics: Arc<Metrics>,
    /// Bad records logged at warning level so far, by reason.
    warned: [u32; DeadLetterReason::ALL.len()],
    /// Since when every partition has been idle, and the idle timeout.
    all_idle_since: Option<(Instant, Duration)>,
}

/// Bad records of one reason logged as warnings by a worker before the rest
/// go to the debug level (they are all counted and sent to dead letters).
const WARNINGS_PER_REASON: u32 = 2;

impl Ingest {
    /// `partitions`: (id, end offset for bounded reads, already done).
    pub(crate) fn new(
        decoder: Decoder,
        topic: &str,
        out_of_orderness_ms: u64,
        partitions: impl IntoIterator<Item = (i32, Option<i64>, bool)>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let now = Instant::now();
        Ingest {
            decoder,
            topic: topic.to_owned(),
            bound: out_of_orderness_ms,
            partitions: partitions
                .into_iter()
                .map(|(id, end, done)| PartitionState {
                    id,
                    end,
                    max_time: None,
                    done,
                    idle: false,
                    active: false,
                    last_record: now,
                })
                .collect(),
            metrics,
            warned: [0; DeadLetterReason::ALL.len()],
            all_idle_since: None,
        }
    }

    /// Takes one record: a reading into `readings`, or a dead letter into
    /// `dead`. `cap_time` is the source capability's time: no reading below
    /// it may be sent. Returns false for a record outside this worker's
    /// partitions or beyond a bounded partition's end (left for a later run).
    pub(crate) fn accept(
        &mut self,
        record: RawRecord<'_>,
        cap_time: u64,
        readings: &mut Vec<Reading>,
        dead: &mut Vec<DeadLetter>,
    ) -> bool {
        let Some(part) = self
            .partitions
            .iter_mut()
            .find(|p| p.id == record.partition)
        else {
            return false;
        };
        let offset = record.offset;
        if part.done || part.end.is_some_and(|end| offset >= end) {
            return false;
        }
        part.active = true;
        part.idle = false;
        if part.end.is_some_and(|end| offset + 1 >= end) {
            part.done = true;
        }
        let verdict: Result<(), (DeadLetterReason, String)> = match self.decoder.decode(record.payload, record.timestamp, part.id, offset) {
            Ok(reading) => match part.max_time.map(|t| t.saturating_sub(self.bound)) {
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
                    return true;
                }
            },
            Err(e) => Err((e.reason, e.detail)),
        };
        if let Err((reason, detail)) = verdict {
            let warned = &mut self.warned[reason.index()];
            let late = matches!(
                reason,
                DeadLetterReason::Late | DeadLetterReason::LateAfterIdle
            );
            if late || *warned >= WARNINGS_PER_REASON {
                tracing::debug!(topic = %self.topic, partition = part.id, offset, %reason, %detail, "Record sent to dead letters");
            } else {
                *warned += 1;
                let more = if *warned == WARNINGS_PER_REASON {
                    " (further ones with this reason are logged at debug level)"
                } else {
                    ""
                };
                tracing::warn!(topic = %self.topic, partition = part.id, offset, %reason, %detail, "Bad record sent to dead letters{more}");
            }
            self.metrics.add_dead_letters(&reason, 1);
            dead.push(DeadLetter {
                reason,
                detail,
                topic: self.topic.clone(),
                partition: part.id,
                offset,
                key: record.key.map(<[u8]>::to_vec),
                payload: record.payload.to_vec(),
            });
        }
        true
    }

    /// Declares partitions idle that have delivered nothing for `timeout`
    /// (wall clock). Called once per poll, not per record.
    pub(crate) fn check_idle(&mut self, timeout: Duration) {
        let now = Instant::now();
        for part in self.partitions.iter_mut().filter(|p| !p.done) {
            if std::mem::take(&mut part.active) {
                part.last_record = now;
            } else if !part.idle && now.duration_since(part.last_record) >= timeout {
                tracing::info!(topic = %self.topic, partition = part.id, "Partition is idle; it no longer holds the watermark back");
                part.idle = true;
            }
        }
        let all_idle = self.partitions.iter().filter(|p| !p.done).all(|p| p.idle);
        self.all_idle_since = match (all_idle, self.all_idle_since) {
            (true, None) => Some((now, timeout)),
            (true, since) => since,
            (false, _) => None,
        };
    }

    /// The watermark while every partition is idle: the highest partition
    /// watermark, moved on by the wall time spent idle, so this worker does
    /// not stall the others. A worker that never saw a record has only the
    /// clock: now minus the bound and the idle timeout.
    fn idle_watermark(&self) -> Option<u64> {
        let (since, timeout) = self.all_idle_since?;
        let highest = self
            .partitions
            .iter()
            .filter_map(|p| p.max_time)
            .max()
            .map(|t| t.saturating_sub(self.bound));
        Some(match highest {
            Some(wm) => wm + since.elapsed().as_millis() as u64,
            None => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                now.saturating_sub(self.bound + timeout.as_millis() as u64)
            }
        })
    }

    /// The watermark of the partitions that are neither done nor idle. A
    /// bounded source with every partition done, or a worker without
    /// partitions, is done.
    pub(crate) fn watermark(&self, bounded: bool) -> Watermark {
        let active: Vec<&PartitionState> = self.partitions.iter().filter(|p| !p.done).collect();
        if active.is_empty() {
            return if bounded || self.partitions.is_empty() {
                Watermark::Done
            } else {
                Watermark::Unknown
            };
        }
        let wm = |p: &&PartitionState| p.max_time.map(|t| t.saturating_sub(self.bound));
        let holding: Vec<Option<u64>> = active.iter().filter(|p| !p.idle).map(wm).collect();
        if holding.is_empty() {
            return Watermark::Idle;
        }
        match holding.into_iter().collect::<Option<Vec<u64>>>() {
            Some(wms) => wms
                .into_iter()
                .min()
                .map_or(Watermark::Unknown, Watermark::At),
            None => Watermark::Unknown,
        }
    }
}

/// What a source operator polls: it reads records and hands them to its
/// [`Ingest`].
pub(crate) trait Poller: 'static {
    /// Reads a batch; returns how many records were read (0: nothing now).
    /// A poller with nothing to read should wait a little for data (a few
    /// ms at most), since the source is rescheduled at once.
    fn poll(
        &mut self,
        ingest: &mut Ingest,
        cap_time: u64,
        readings: &mut Vec<Reading>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize;
    /// Whether the source stops at its partitions' ends.
    fn bounded(&self) -> bool;
}

/// Builds a source operator with a readings and a dead-letter output that
/// drives a [`Poller`]. `open` runs on each worker with (worker, peers); an
/// error there is recorded in `metrics` and ends the source.
pub(crate) fn ingest_source<'scope, P, F>(
    scope: Scope<'scope, u64>,
    name: String,
    watermark_step_ms: u64,
    metrics: Arc<Metrics>,
    open: F,
) -> SourceStreams<'scope>
where
    P: Poller,
    F: FnOnce(usize, usize) -> Result<(P, Ingest), String> + 'static,
{
    let mut builder = OperatorBuilder::new(name, scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let (readings_out, readings) = builder.new_output::<Vec<Reading>>();
    let (dead_out, dead) = builder.new_output::<Vec<DeadLetter>>();
    let mut readings_out = OutputBuilder::from(readings_out);
    let mut dead_out = OutputBuilder::from(dead_out);
    let (worker, peers) = (scope.index(), scope.peers());
    let step = watermark_step_ms.max(1);

    builder.build(move |mut caps| {
        let mut caps = match (caps.pop(), caps.pop()) {
            (Some(dead_cap), Some(cap)) => Some((cap, dead_cap)),
            _ => None,
        };
        let mut state = match open(worker, peers) {
            Ok(state) => Some(state),
            Err(error) => {
                metrics.add_error(error);
                None
            }
        };
        let mut readings_buf: Vec<Reading> = Vec::new();
        let mut dead_buf: Vec<DeadLetter> = Vec::new();
        move |_frontiers| {
            let (Some((poller, ingest)), Some((cap, dead_cap))) = (state.as_mut(), caps.as_mut())
            else {
                caps = None;
                return;
            };
            if metrics.stop_requested() {
                tracing::info!(worker, "Source stopping on request; the dataflow drains");
                caps = None;
                return;
            }
            let read = poller.poll(ingest, *cap.time(), &mut readings_buf, &mut dead_buf);
            Metrics::add(&metrics.records_read, read as u64);
            Metrics::add(&metrics.readings, readings_buf.len() as u64);
            send(&mut readings_out, cap, &mut readings_buf);
            send(&mut dead_out, dead_cap, &mut dead_buf);
            let watermark = match ingest.watermark(poller.bounded()) {
                Watermark::Done => {
                    tracing::debug!(worker, "Source reached the end of its partitions");
                    caps = None;
                    return;
                }
                // All partitions idle: move on with the wall clock so this
                // worker does not stall the others. Late wakers go to dead letters.
                Watermark::Idle => ingest.idle_watermark(),
                Watermark::At(wm) => Some(wm),
                Watermark::Unknown => None,
            };
            if let Some(wm) = watermark {
                let target = wm - wm % step;
                if target > *cap.time() {
                    cap.downgrade(&target);
                    dead_cap.downgrade(&target);
                }
            }
            // Pollers wait for data themselves (briefly) when starved.
            activator.activate();
        }
    });
    (readings, dead)
}

fn send<T: Clone + 'static>(
    out: &mut OutputBuilder<u64, CapacityContainerBuilder<Vec<T>>>,
    cap: &Capability<u64>,
    buf: &mut Vec<T>,
) {
    if !buf.is_empty() {
        out.activate().session(cap).give_container(buf);
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest(partitions: &[(i32, Option<i64>)]) -> Ingest {
        Ingest::new(
            Decoder::default(),
            "t",
            5_000,
            partitions.iter().map(|(p, end)| (*p, *end, false)),
            Arc::new(Metrics::default()),
        )
    }

    /// Feeds (partition, offset, event time); returns accepted offsets and dead letters.
    fn feed(
        ingest: &mut Ingest,
        cap_time: u64,
        records: &[(i32, i64, u64)],
    ) -> (Vec<i64>, Vec<(DeadLetterReason, i64)>) {
        let (mut readings, mut dead) = (Vec::new(), Vec::new());
        for (partition, offset, time) in records {
            let payload = format!(r#"{{"device_id":"d","sensor":"s","value":1,"ts":{time}}}"#);
            let record = RawRecord {
                partition: *partition,
                offset: *offset,
                key: None,
                payload: payload.as_bytes(),
                timestamp: None,
            };
            ingest.accept(record, cap_time, &mut readings, &mut dead);
        }
        (
            readings.iter().map(|r| r.offset).collect(),
            dead.iter().map(|d| (d.reason.clone(), d.offset)).collect(),
        )
    }

    #[test]
    fn lateness_is_judged_per_partition() {
        let mut ing = ingest(&[(0, None), (1, None)]);
        // Partition 0 reaches 20 s; partition 1 is still at 1 s: its old readings are not late.
        let (ok, dead) = feed(
            &mut ing,
            0,
            &[
                (0, 0, 20_000),
                (1, 0, 1_000),
                (1, 1, 2_000),
                (0, 1, 15_000),
                (0, 2, 14_999),
            ],
        );
        assert_eq!(ok, vec![0, 0, 1, 1]);
        assert_eq!(dead, vec![(DeadLetterReason::Late, 2)]);
        // The source watermark is the slower partition's: 2 s - 5 s, saturated at 0.
        assert_eq!(ing.watermark(false), Watermark::At(0));
        feed(&mut ing, 0, &[(1, 2, 30_000)]);
        assert_eq!(ing.watermark(false), Watermark::At(15_000));
    }

    #[test]
    fn a_partition_without_records_holds_the_watermark_until_idle() {
        let mut ing = ingest(&[(0, None), (1, None)]);
        feed(&mut ing, 0, &[(0, 0, 20_000)]);
        assert_eq!(ing.watermark(false), Watermark::Unknown);
        ing.check_idle(Duration::ZERO);
        // Partition 1 delivered nothing: idle, it no longer holds partition 0 back.
        assert_eq!(ing.watermark(false), Watermark::At(15_000));
        ing.check_idle(Duration::ZERO);
        // Both idle now: nothing holds the watermark; it moves on from the
        // highest partition watermark (15 s) with the time spent idle.
        assert_eq!(ing.watermark(false), Watermark::Idle);
        let idle = ing.idle_watermark().unwrap();
        assert!((15_000..20_000).contains(&idle), "{idle}");
        // Partition 1 wakes with a reading behind the capability: late after idle.
        let (ok, dead) = feed(&mut ing, 15_000, &[(1, 0, 3_000), (1, 1, 16_000)]);
        assert_eq!(ok, vec![1]);
        assert_eq!(dead, vec![(DeadLetterReason::LateAfterIdle, 0)]);
    }

    #[test]
    fn bounded_partitions_finish_at_their_end_offset() {
        let mut ing = ingest(&[(0, Some(2)), (1, Some(1))]);
        feed(&mut ing, 0, &[(0, 0, 1_000), (1, 0, 9_000)]);
        // Partition 1 is done and no longer holds the watermark back.
        assert_eq!(ing.watermark(true), Watermark::At(0));
        let (ok, _) = feed(&mut ing, 0, &[(0, 1, 7_000), (0, 2, 8_000)]);
        assert_eq!(ok, vec![1], "offset 2 is beyond the end seen at start");
        assert_eq!(ing.watermark(true), Watermark::Done);
        assert_eq!(
            ingest(&[]).watermark(false),
            Watermark::Done,
            "a worker without partitions is done"
        );
    }
}
