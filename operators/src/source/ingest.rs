//! What every source does with a raw record: decode it, judge its lateness
//! against its own partition's watermark, and turn partition watermarks into
//! the source's watermark. The state of one worker's partitions lives here;
//! idle partitions, watermark alignment and the resume bookkeeping have
//! their own files next to this one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::decode::{DecodeError, Decoder};
use crate::recording::{RecordRef, Recorder};
use crate::run::Run;
use crate::storage::Location;

use super::item::Decode;
use super::resume::{PartitionStart, SourcePart};

/// The read state of one partition.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub(crate) id: i32,
    /// The next offset to read.
    pub(super) next: i64,
    /// Resume bookkeeping: by event-time bucket `b`, the first offset of a
    /// record that has an event time at or after `b` or was read while the
    /// source's capability was at or after `b`, with the largest event time
    /// accepted before it. A checkpoint at frontier `F` resumes from the
    /// least such offset at or after `F` minus the longest window.
    pub(super) marks: BTreeMap<u64, (i64, Option<u64>)>,
    /// The latest bucket of `marks` a reading marked (or found marked). A
    /// reading in it or before it needs no mark: the resume offset is the
    /// least of the marks at or after a bucket, and this one, with an
    /// offset no later than the reading's, is among them whenever a mark
    /// of the reading's bucket would be. So readings skip the map unless
    /// they open a later bucket.
    pub(super) marked: Option<u64>,
    /// Bounded reads: the partition is done once its position reaches this.
    pub(crate) end: Option<i64>,
    /// Largest event time accepted, in offset order.
    pub(super) max_time: Option<u64>,
    /// Idle marks (see
    /// [`PartitionResume::idle_marks`](super::resume::PartitionResume::idle_marks)):
    /// restored ones and those of this run, by offset.
    pub(super) idle_marks: Vec<(i64, u64)>,
    /// Restored idle marks reach up to this offset: until the partition is
    /// re-read past it, it is not declared idle again (the first run's
    /// decisions stand).
    pub(super) replay_until: i64,
    /// How many of `idle_marks` were restored (the first ones).
    pub(super) restored_marks: usize,
    pub(crate) done: bool,
    pub(crate) idle: bool,
    /// Held back by watermark alignment: it ran too far ahead of the
    /// readings' frontier, and its poller stopped reading it (see
    /// [`Ingest::align`]).
    pub(crate) held: bool,
    /// Records read by this run.
    pub(super) read: u64,
    /// Bytes of record values read by this run.
    pub(super) bytes: u64,
    /// Delivered a record since the last [`Ingest::check_idle`].
    pub(super) active: bool,
    pub(super) last_record: Instant,
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
pub(crate) struct Ingest<D: Decode = Decoder> {
    pub(super) decoder: D,
    pub(super) topic: String,
    pub(super) bound: u64,
    pub(crate) partitions: Vec<PartitionState>,
    pub(super) run: Run,
    /// Bad records logged at warning level so far, by reason.
    pub(super) warned: [u32; DeadLetterReason::ALL.len()],
    /// Since when every partition has been idle, and the idle timeout.
    pub(super) all_idle_since: Option<(Instant, Duration)>,
    /// The resume positions of the last checkpoint part written.
    pub(super) last_resume: Option<SourcePart>,
    /// Records what the source reads, with its idle marks (`--record`).
    pub(super) recorder: Option<Recorder>,
    /// A partition is done once its watermark reaches this event time:
    /// nothing it delivers later can count before it.
    pub(crate) done_at: Option<u64>,
    /// Watermark alignment: how far (ms of event time) a partition's
    /// watermark may run ahead of the readings' frontier before it is held
    /// back; `None`: never.
    pub(super) max_drift: Option<u64>,
    /// The readings' frontier last seen (see [`Ingest::align`]); `None`
    /// once it is empty.
    pub(super) frontier: Option<u64>,
    /// Keep the resume bookkeeping (`marks`) for checkpoints. Without
    /// checkpoints nothing ever reads or trims it, and it would grow by an
    /// entry per partition and second of event time read.
    pub(super) keep_marks: bool,
    /// Whether a window output takes a late reading (event time, the
    /// watermark it is behind) to correct its windows; `None`: none does.
    pub(super) late_taken: Option<Box<dyn Fn(u64, u64) -> bool>>,
    /// The late readings taken, each with the watermark it is behind, not
    /// sent yet.
    pub(super) late: Vec<(u64, D::Item)>,
}

/// Bad records of one reason logged as warnings by a worker before the rest
/// go to the debug level (they are all counted and sent to dead letters).
const WARNINGS_PER_REASON: u32 = 2;

impl<D: Decode> Ingest<D> {
    /// A partition is done at once if it starts at its bounded end.
    pub(crate) fn new(
        decoder: D,
        topic: &str,
        out_of_orderness_ms: u64,
        partitions: impl IntoIterator<Item = (PartitionStart, Vec<(i64, u64)>)>,
        run: Run,
    ) -> Self {
        let now = Instant::now();
        Ingest {
            decoder,
            topic: topic.to_owned(),
            bound: out_of_orderness_ms,
            partitions: partitions
                .into_iter()
                .map(|(p, idle_marks)| PartitionState {
                    id: p.id,
                    next: p.offset,
                    marks: BTreeMap::new(),
                    marked: None,
                    end: p.end,
                    max_time: p.max_time,
                    replay_until: idle_marks.last().map_or(0, |m| m.0),
                    restored_marks: idle_marks.len(),
                    idle_marks,
                    done: p.end.is_some_and(|end| p.offset >= end),
                    idle: false,
                    held: false,
                    read: 0,
                    bytes: 0,
                    active: false,
                    last_record: now,
                })
                .collect(),
            run,
            warned: [0; DeadLetterReason::ALL.len()],
            all_idle_since: None,
            last_resume: None,
            recorder: None,
            done_at: None,
            max_drift: None,
            frontier: Some(0),
            keep_marks: true,
            late_taken: None,
            late: Vec::new(),
        }
    }

    /// Whether what is read is recorded (record headers then).
    pub(crate) fn recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Makes what was recorded so far durable; a failure is a pipeline error.
    pub(super) fn seal_recording(&mut self) {
        if let Some(recorder) = &mut self.recorder {
            if let Err(e) = recorder.seal() {
                self.run.control.add_error(format!("recording failed: {e}"));
                self.recorder = None;
            }
        }
    }

    /// Records what is read into the recording in `dir` (`--record`), with
    /// the idle marks; failing to open it is a pipeline error.
    pub(super) fn record_into(&mut self, dir: &Path, run: &Run) {
        let opened = Location::from_flag(dir)
            .map_err(|e| e.to_string())
            .and_then(|location| {
                Recorder::open_at(&location, &self.topic).map_err(|e| e.to_string())
            });
        match opened {
            Ok(recorder) => self.recorder = Some(recorder),
            Err(e) => run.control.add_error(format!("cannot record: {e}")),
        }
    }

    /// Adds `record` to the recording, if there is one; a failure is a
    /// pipeline error and ends the recording.
    fn record(&mut self, record: &RecordRef<'_>) {
        if let Some(recorder) = &mut self.recorder {
            if let Err(e) = recorder.push(record) {
                self.run.control.add_error(format!("recording failed: {e}"));
                self.recorder = None;
            }
        }
    }

    /// Takes one record: a reading into `readings`, or a dead letter into
    /// `dead`. `cap_time` is the source capability's time: no reading below
    /// it may be sent. Returns false for a record outside this worker's
    /// partitions or beyond a bounded partition's end (left for a later run).
    pub(crate) fn accept(
        &mut self,
        record: RecordRef<'_>,
        cap_time: u64,
        readings: &mut Vec<D::Item>,
        dead: &mut Vec<DeadLetter>,
    ) -> bool {
        self.accept_decoded(record, None, cap_time, readings, dead)
    }

    /// [`Ingest::accept`] of a record whose payload was decoded already
    /// (`decoded`, by this ingest's decoder on a fetch thread), or is
    /// decoded here (`None`): the same bookkeeping either way.
    pub(crate) fn accept_decoded(
        &mut self,
        record: RecordRef<'_>,
        decoded: Option<Result<D::Item, DecodeError>>,
        cap_time: u64,
        readings: &mut Vec<D::Item>,
        dead: &mut Vec<DeadLetter>,
    ) -> bool {
        let Some(i) = self
            .partitions
            .iter()
            .position(|p| p.id == record.partition)
        else {
            return false;
        };
        let offset = record.offset;
        let part = &self.partitions[i];
        if part.done || part.end.is_some_and(|end| offset >= end) {
            return false;
        }
        if part.read > 0 && offset < part.next {
            // Taken already in this run: a consumer may deliver a record
            // twice (a pause in the middle of a poll); once is what counts.
            tracing::debug!(topic = %self.topic, partition = part.id, offset, next = part.next, "Record delivered again; skipped");
            return false;
        }
        // The watermark this record was judged against in the first run, if
        // it is re-read after a restart, and never less than now.
        let cap_time = part.judged_against(offset, cap_time);
        self.record(&record);
        self.partitions[i].take(&self.topic, offset, record.value.len());
        let part = &self.partitions[i];
        let decoded = decoded.unwrap_or_else(|| {
            (self.decoder).decode(record.value, record.timestamp, part.id, offset)
        });
        let reading = match decoded {
            Ok(reading) => reading,
            Err(e) => {
                dead.push(self.reject(i, &record, e.reason, e.detail));
                return true;
            }
        };
        let time = D::time(&reading);
        match Self::behind(part, self.bound, time, cap_time) {
            None => {
                self.accepted(i, offset, time);
                readings.push(reading);
            }
            Some((wm, _, _)) if self.late_taken.as_ref().is_some_and(|f| f(time, wm)) => {
                self.late.push((wm, reading));
            }
            Some((wm, reason, detail)) => match D::at_watermark(reading, wm) {
                // Applied at the watermark it is behind instead.
                Some(item) => {
                    self.accepted(i, offset, wm);
                    readings.push(item);
                }
                None => dead.push(self.reject(i, &record, reason, detail)),
            },
        }
        true
    }

    /// Whether a reading of `part` at event time `t` is late: behind the
    /// partition's own watermark, or (late after idle) behind `cap_time`;
    /// then the watermark it is applied behind (see
    /// [`Env::take_late`](crate::run::Env)), the reason and its detail.
    fn behind(
        part: &PartitionState,
        bound: u64,
        t: u64,
        cap_time: u64,
    ) -> Option<(u64, DeadLetterReason, String)> {
        match part.max_time.map(|max| max.saturating_sub(bound)) {
            // The windows have come as far as the source watermark too (it
            // passes an idle partition's own): a late reading is applied
            // behind the later of the two.
            Some(wm) if t < wm => Some((
                wm.max(cap_time),
                DeadLetterReason::Late,
                format!("event time {t} is behind partition watermark {wm}"),
            )),
            _ if t < cap_time => Some((
                cap_time,
                DeadLetterReason::LateAfterIdle,
                format!(
                    "event time {t} is behind the source watermark {cap_time} (partition was idle)"
                ),
            )),
            _ => None,
        }
    }

    /// Notes an accepted reading of partition `i` at `offset` with event
    /// time `time`: its resume mark, the partition's largest event time,
    /// and whether that ends the partition (a stop at an event time).
    fn accepted(&mut self, i: usize, offset: i64, time: u64) {
        let part = &mut self.partitions[i];
        if self.keep_marks {
            part.mark_reading(time, offset);
        }
        part.max_time = part.max_time.max(Some(time));
        if let (Some(done_at), Some(t)) = (self.done_at, part.max_time) {
            part.done |= t.saturating_sub(self.bound) >= done_at;
        }
    }

    /// The dead letter of `record` of partition `i`, counted and logged:
    /// the first few bad records of each reason as warnings, the rest and
    /// late ones at debug level.
    fn reject(
        &mut self,
        i: usize,
        record: &RecordRef<'_>,
        reason: DeadLetterReason,
        detail: String,
    ) -> DeadLetter {
        let (partition, offset) = (self.partitions[i].id, record.offset);
        let warned = &mut self.warned[reason.index()];
        let late = matches!(
            reason,
            DeadLetterReason::Late | DeadLetterReason::LateAfterIdle
        );
        if late || *warned >= WARNINGS_PER_REASON {
            tracing::debug!(topic = %self.topic, partition, offset, %reason, %detail, "Record sent to dead letters");
        } else {
            *warned += 1;
            let more = if *warned == WARNINGS_PER_REASON {
                " (further ones with this reason are logged at debug level)"
            } else {
                ""
            };
            tracing::warn!(topic = %self.topic, partition, offset, %reason, %detail, "Bad record sent to dead letters{more}");
        }
        self.run.metrics.add_dead_letters(&reason, 1);
        DeadLetter {
            reason,
            detail,
            topic: self.topic.clone(),
            partition,
            offset,
            key: record.key.map(<[u8]>::to_vec),
            payload: record.value.to_vec(),
        }
    }

    /// Publishes where each partition stands to the metrics, with the end
    /// offsets the broker reported.
    pub(super) fn publish_status(&self, ends: &BTreeMap<i32, i64>) {
        self.run.metrics.set_partitions(
            &self.topic,
            self.partitions.iter().map(|p| {
                let status = crate::metrics::PartitionStatus {
                    records: p.read,
                    bytes: p.bytes,
                    position: p.next,
                    end: p.end,
                    high_watermark: ends.get(&p.id).copied(),
                    watermark: p.max_time.map(|t| t.saturating_sub(self.bound)),
                    idle: p.idle,
                    held: p.held,
                };
                (p.id, status)
            }),
        );
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

impl PartitionState {
    /// Notes that the record at `offset`, with a value of `bytes`, was
    /// read, whatever becomes of it.
    fn take(&mut self, topic: &str, offset: i64, bytes: usize) {
        if offset > self.next {
            // Kafka leaves gaps only for compacted topics and transaction
            // markers; anything else means the broker skipped records.
            tracing::warn!(topic = %topic, partition = self.id, expected = self.next, got = offset, "Offsets skipped: the broker delivered a later record than the next one");
        }
        self.active = true;
        self.idle = false;
        self.next = offset + 1;
        self.read += 1;
        self.bytes += bytes as u64;
        if self.end.is_some_and(|end| offset + 1 >= end) {
            self.done = true;
        }
    }
}
