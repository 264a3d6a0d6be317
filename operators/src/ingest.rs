//! What every source does with a raw record: decode it, judge its lateness
//! against its own partition's watermark, and turn partition watermarks into
//! a capability. Shared by the Kafka source and the in-memory source, so a
//! recording replays through exactly the logic the live run used.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;
use timely::progress::Antichain;

use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::decode::Decoder;
use crate::metrics::Metrics;
use crate::reading::Reading;
use crate::reading::PROGRESS_BUCKET_MS;
use crate::recording::{RecordRef, Recorder};
use crate::run::Run;
use crate::run::SourceBook;
use crate::run::{stop_on_last_marker, Env};

/// What a source returns: the readings, and the dead letters (undecodable
/// or late records, with reason and origin).
pub type SourceStreams<'scope> = (
    Stream<'scope, u64, Vec<Reading>>,
    Stream<'scope, u64, Vec<DeadLetter>>,
);

/// Where a source partition resumes after a restart: the offset to re-read
/// from, and the largest event time accepted before it, so that lateness is
/// judged exactly as in the first run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionResume {
    /// Partition.
    pub partition: i32,
    /// First offset to read.
    pub offset: i64,
    /// Largest event time accepted before `offset`.
    pub max_time: Option<u64>,
    /// Idle marks: `(offset, watermark)`, from that offset on the source's
    /// watermark was at least that far ahead of this partition (it had been
    /// declared idle, a wall-clock decision). A resumed run judges re-read
    /// records against them, so it makes the first run's decisions.
    pub idle_marks: Vec<(i64, u64)>,
}

/// A source's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePart {
    /// Topic.
    pub topic: String,
    /// One entry per partition of the worker that wrote it.
    pub partitions: Vec<PartitionResume>,
}

/// Granularity of the resume bookkeeping, in ms of event time: a restart
/// re-reads up to this much more than strictly needed.
const RESUME_BUCKET_MS: u64 = 1_000;

/// How a partition starts: where, where it ends (bounded reads), and the
/// largest event time accepted before its start (restored from a checkpoint).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PartitionStart {
    pub(crate) id: i32,
    pub(crate) offset: i64,
    pub(crate) end: Option<i64>,
    pub(crate) max_time: Option<u64>,
}

impl PartitionStart {
    /// A partition starting at `offset`, or where `restored` says.
    pub(crate) fn new(
        id: i32,
        offset: i64,
        end: Option<i64>,
        restored: Option<&PartitionResume>,
    ) -> (Self, Vec<(i64, u64)>) {
        let start = PartitionStart {
            id,
            offset: restored.map_or(offset, |r| r.offset),
            end,
            max_time: restored.and_then(|r| r.max_time),
        };
        (
            start,
            restored.map(|r| r.idle_marks.clone()).unwrap_or_default(),
        )
    }
}

/// The read state of one partition.
#[derive(Debug)]
pub(crate) struct PartitionState {
    pub(crate) id: i32,
    /// The next offset to read.
    next: i64,
    /// Resume bookkeeping: by event-time bucket `b`, the first offset of a
    /// record that has an event time at or after `b` or was read while the
    /// source's capability was at or after `b`, with the largest event time
    /// accepted before it. A checkpoint at frontier `F` resumes from the
    /// least such offset at or after `F` minus the longest window.
    marks: BTreeMap<u64, (i64, Option<u64>)>,
    /// The latest bucket of `marks` a reading marked (or found marked). A
    /// reading in it or before it needs no mark: the resume offset is the
    /// least of the marks at or after a bucket, and this one, with an
    /// offset no later than the reading's, is among them whenever a mark
    /// of the reading's bucket would be. So readings skip the map unless
    /// they open a later bucket.
    marked: Option<u64>,
    /// Bounded reads: the partition is done once its position reaches this.
    pub(crate) end: Option<i64>,
    /// Largest event time accepted, in offset order.
    max_time: Option<u64>,
    /// Idle marks (see [`PartitionResume::idle_marks`]): restored ones and
    /// those of this run, by offset.
    idle_marks: Vec<(i64, u64)>,
    /// Restored idle marks reach up to this offset: until the partition is
    /// re-read past it, it is not declared idle again (the first run's
    /// decisions stand).
    replay_until: i64,
    pub(crate) done: bool,
    pub(crate) idle: bool,
    /// Held back by watermark alignment: it ran too far ahead of the
    /// readings' frontier, and its poller stopped reading it (see
    /// [`Ingest::align`]).
    pub(crate) held: bool,
    /// Records read by this run.
    read: u64,
    /// Bytes of record values read by this run.
    bytes: u64,
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
    run: Run,
    /// Bad records logged at warning level so far, by reason.
    warned: [u32; DeadLetterReason::ALL.len()],
    /// Since when every partition has been idle, and the idle timeout.
    all_idle_since: Option<(Instant, Duration)>,
    /// The resume positions of the last checkpoint part written.
    last_resume: Option<SourcePart>,
    /// Records what the source reads, with its idle marks (`--record`).
    recorder: Option<Recorder>,
    /// A partition is done once its watermark reaches this event time:
    /// nothing it delivers later can count before it.
    pub(crate) done_at: Option<u64>,
    /// Watermark alignment: how far (ms of event time) a partition's
    /// watermark may run ahead of the readings' frontier before it is held
    /// back; `None`: never.
    max_drift: Option<u64>,
    /// The readings' frontier last seen (see [`Ingest::align`]); `None`
    /// once it is empty.
    frontier: Option<u64>,
    /// Keep the resume bookkeeping (`marks`) for checkpoints. Without
    /// checkpoints nothing ever reads or trims it, and it would grow by an
    /// entry per partition and second of event time read.
    keep_marks: bool,
}

/// Which partitions to stop and to start reading again, from
/// [`Ingest::align`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Alignment {
    /// Partitions that ran too far ahead: stop reading them.
    pub(crate) hold: Vec<i32>,
    /// Held partitions the frontier caught up with: read them again.
    pub(crate) release: Vec<i32>,
}

/// Bad records of one reason logged as warnings by a worker before the rest
/// go to the debug level (they are all counted and sent to dead letters).
const WARNINGS_PER_REASON: u32 = 2;

impl Ingest {
    /// A partition is done at once if it starts at its bounded end.
    pub(crate) fn new(
        decoder: Decoder,
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
        }
    }

    /// Drops the resume bookkeeping, for a run without checkpoints: it is
    /// read only by [`Ingest::resume_part`], which trims it.
    pub(crate) fn without_checkpoints(&mut self) {
        self.keep_marks = false;
        for part in &mut self.partitions {
            part.marks.clear();
            part.marked = None;
        }
    }

    /// This ingest with watermark alignment: a partition whose watermark
    /// runs more than `max_drift_ms` ahead of the readings' frontier is held
    /// back (see [`Ingest::align`]); `None` turns alignment off.
    pub(crate) fn with_alignment(mut self, max_drift_ms: Option<u64>) -> Self {
        self.max_drift = max_drift_ms;
        self
    }

    /// Makes the alignment bound at least twice `step_ms`, the step of the
    /// source's capability: the partitions that hold the frontier back are
    /// then never held back themselves (see [`Ingest::align`]).
    pub(crate) fn align_at_least(&mut self, step_ms: u64) {
        if let Some(drift) = &mut self.max_drift {
            *drift = (*drift).max(2 * step_ms);
        }
    }

    /// How far `part`'s watermark is ahead of the frontier last seen, if
    /// both are known; everything is ahead of a frontier that is empty.
    fn ahead(&self, part: &PartitionState) -> Option<u64> {
        let own = part.max_time?.saturating_sub(self.bound);
        Some(own.saturating_sub(self.frontier?))
    }

    /// Watermark alignment, once per activation of the source: notes the
    /// readings' `frontier` (the least time any source of the dataflow, on
    /// any worker, may still send readings at; `None` once every source is
    /// done) and says which partitions to hold back and which to release.
    ///
    /// A partition is held back once its own watermark (its largest event
    /// time minus the out-of-orderness bound) is more than the alignment
    /// bound ahead of the frontier: everything it delivers would wait
    /// downstream (in open windows and in the alert evaluator) until the
    /// frontier catches up. It is released once it is no more than half the
    /// bound ahead, so a released partition reads at least half the bound
    /// of event time before it is held back again. Done partitions are
    /// never held, and neither are partitions without a watermark yet.
    ///
    /// This cannot stall the dataflow: the frontier is at most one
    /// watermark step behind the least watermark of the partitions that
    /// hold it back, and the bound is at least two steps
    /// ([`Ingest::align_at_least`]), so those partitions are released as
    /// soon as the frontier reflects their watermark. Idle partitions keep
    /// their own logic ([`Ingest::check_idle`] skips held ones: a held
    /// partition is quiet because it is held, not because it is idle).
    ///
    /// Only when records are read changes, never what they mean: lateness
    /// is judged against each partition's own watermark, in offset order.
    pub(crate) fn align(&mut self, frontier: Option<u64>) -> Alignment {
        self.frontier = frontier;
        let mut alignment = Alignment::default();
        let Some(drift) = self.max_drift else {
            return alignment;
        };
        for i in 0..self.partitions.len() {
            let ahead = self.ahead(&self.partitions[i]);
            let part = &mut self.partitions[i];
            if part.done {
                // A done partition is not read again: no release.
                part.held = false;
                continue;
            }
            match ahead {
                Some(ahead) if !part.held && ahead > drift => {
                    part.held = true;
                    alignment.hold.push(part.id);
                }
                Some(ahead) if part.held && ahead > drift / 2 => {}
                _ if part.held => {
                    part.held = false;
                    alignment.release.push(part.id);
                }
                _ => {}
            }
        }
        if !alignment.hold.is_empty() {
            Metrics::add(
                &self.run.metrics.partitions_held,
                alignment.hold.len() as u64,
            );
        }
        alignment
    }

    /// After a record of `partition` was taken: whether that partition now
    /// runs more than the alignment bound ahead of the frontier last seen
    /// (see [`Ingest::align`]). If so it is held from now on, and the
    /// poller should stop reading it at once.
    pub(crate) fn runs_ahead(&mut self, partition: i32) -> bool {
        let Some(drift) = self.max_drift else {
            return false;
        };
        let Some(i) = self.partitions.iter().position(|p| p.id == partition) else {
            return false;
        };
        let part = &self.partitions[i];
        if part.held || part.done || self.ahead(part).is_none_or(|a| a <= drift) {
            return false;
        }
        self.partitions[i].held = true;
        Metrics::add(&self.run.metrics.partitions_held, 1);
        true
    }

    /// Whether what is read is recorded (record headers then).
    pub(crate) fn recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Makes what was recorded so far durable; a failure is a pipeline error.
    fn seal_recording(&mut self) {
        if let Some(recorder) = &mut self.recorder {
            if let Err(e) = recorder.seal() {
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
        // The watermark this record was judged against in the first run, if
        // it is re-read after a restart, and never less than now.
        let cap_time = part
            .idle_marks
            .iter()
            .filter(|(from, _)| *from <= offset)
            .map(|(_, wm)| *wm)
            .fold(cap_time, u64::max);
        if let Some(recorder) = &mut self.recorder {
            if let Err(e) = recorder.push(&record) {
                self.run.control.add_error(format!("recording failed: {e}"));
                self.recorder = None;
            }
        }
        if offset > part.next {
            // Kafka leaves gaps only for compacted topics and transaction
            // markers; anything else means the broker skipped records.
            tracing::warn!(topic = %self.topic, partition = part.id, expected = part.next, got = offset, "Offsets skipped: the broker delivered a later record than the next one");
        }
        part.active = true;
        part.idle = false;
        part.next = offset + 1;
        part.read += 1;
        part.bytes += record.value.len() as u64;
        if part.end.is_some_and(|end| offset + 1 >= end) {
            part.done = true;
        }
        let verdict: Result<(), (DeadLetterReason, String)> = match self.decoder.decode(record.value, record.timestamp, part.id, offset) {
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
                    let bucket = reading.time - reading.time % RESUME_BUCKET_MS;
                    if self.keep_marks && part.marked.is_none_or(|m| bucket > m) {
                        part.marks.entry(bucket).or_insert((offset, part.max_time));
                        part.marked = Some(bucket);
                    }
                    part.max_time = part.max_time.max(Some(reading.time));
                    if let (Some(done_at), Some(t)) = (self.done_at, part.max_time) {
                        part.done |= t.saturating_sub(self.bound) >= done_at;
                    }
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
            self.run.metrics.add_dead_letters(&reason, 1);
            dead.push(DeadLetter {
                reason,
                detail,
                topic: self.topic.clone(),
                partition: part.id,
                offset,
                key: record.key.map(<[u8]>::to_vec),
                payload: record.value.to_vec(),
            });
        }
        true
    }

    /// Publishes where each partition stands to the metrics, with the end
    /// offsets the broker reported.
    fn publish_status(&self, ends: &BTreeMap<i32, i64>) {
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

    /// The resume positions of the last checkpoint part written.
    pub(crate) fn last_resume(&self) -> Option<&SourcePart> {
        self.last_resume.as_ref()
    }

    /// Notes that the source's capability moved to `time`: whatever is read
    /// from now on may travel at `time` or later.
    pub(crate) fn capability_moved(&mut self, time: u64) {
        let bucket = time - time % RESUME_BUCKET_MS;
        for part in &mut self.partitions {
            if self.keep_marks {
                part.marks
                    .entry(bucket)
                    .or_insert((part.next, part.max_time));
            }
            // Ahead of the partition's own watermark: it was idle. What it
            // reads from now on is judged against `time`; keep that decision.
            let own = part.max_time.map(|t| t.saturating_sub(self.bound));
            let known = part.idle_marks.last().map_or(0, |m| m.1);
            if own.is_none_or(|wm| time > wm) && time > known && !part.done {
                // Records are judged against the greatest watermark of the
                // marks at or before them: at the same offset, the later
                // mark supersedes the earlier one (an idle partition would
                // otherwise gain a mark at every capability move).
                match part.idle_marks.last_mut() {
                    Some(last) if last.0 == part.next => last.1 = time,
                    _ => part.idle_marks.push((part.next, time)),
                }
                if let Some(recorder) = &mut self.recorder {
                    if let Err(e) = recorder.mark(part.id, part.next, time) {
                        self.run.control.add_error(format!("recording failed: {e}"));
                        self.recorder = None;
                    }
                }
            }
        }
    }

    /// This worker's part of a checkpoint at a frontier whose windows need
    /// re-reading from event time `restart_from`; forgets bookkeeping no
    /// later checkpoint needs.
    pub(crate) fn resume_part(&mut self, restart_from: u64) -> SourcePart {
        let from = restart_from - restart_from % RESUME_BUCKET_MS;
        let partitions = self
            .partitions
            .iter_mut()
            .map(|part| {
                part.marks = part.marks.split_off(&from);
                part.marked = part.marked.filter(|m| *m >= from);
                let (offset, max_time) = part
                    .marks
                    .values()
                    .min_by_key(|(offset, _)| *offset)
                    .copied()
                    .unwrap_or((part.next, part.max_time));
                // Marks before the resume offset fold into one at it.
                let folded = part
                    .idle_marks
                    .iter()
                    .filter(|(from, _)| *from < offset)
                    .map(|m| m.1)
                    .max()
                    .map(|wm| (offset, wm));
                let mut idle_marks: Vec<(i64, u64)> = folded
                    .into_iter()
                    .chain(
                        part.idle_marks
                            .iter()
                            .copied()
                            .filter(|(from, _)| *from >= offset),
                    )
                    .collect();
                idle_marks.dedup_by(|b, a| a.0 == b.0 && a.1 >= b.1);
                part.idle_marks = idle_marks.clone();
                PartitionResume {
                    partition: part.id,
                    offset,
                    max_time,
                    idle_marks,
                }
            })
            .collect();
        let part = SourcePart {
            topic: self.topic.clone(),
            partitions,
        };
        self.last_resume = Some(part.clone());
        // A resumed run re-reads from these positions: what was read before
        // them must be in the recording already.
        self.seal_recording();
        part
    }

    /// Declares partitions idle that have delivered nothing for `timeout`
    /// (wall clock). Called once per poll, not per record.
    pub(crate) fn check_idle(&mut self, timeout: Duration) {
        let now = Instant::now();
        for part in self.partitions.iter_mut().filter(|p| !p.done) {
            if part.next < part.replay_until || part.held {
                // Re-reading what the first run decided: its marks stand.
                // Or held back by alignment: quiet, but not idle.
                part.active = false;
                part.last_record = now;
                continue;
            }
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
    /// ms at most), since the source is rescheduled at once, unless it
    /// wakes the source itself ([`Poller::wake_on_data`]).
    fn poll(
        &mut self,
        ingest: &mut Ingest,
        cap_time: u64,
        readings: &mut Vec<Reading>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize;
    /// Whether the source stops at its partitions' ends.
    fn bounded(&self) -> bool;
    /// Has the poller call `wake` (from any thread) when data arrives. If
    /// it does (true), a poll that finds nothing returns at once and the
    /// source sleeps until woken, or [`STARVED_RECHECK`] at most, for the
    /// wall-clock duties (idleness, status); the worker runs its other
    /// operators or parks meanwhile.
    fn wake_on_data(&mut self, _wake: Box<dyn Fn() + Send + Sync>) -> bool {
        false
    }
    /// Stops reading the partitions of `alignment.hold` and reads those of
    /// `alignment.release` again (watermark alignment, see
    /// [`Ingest::align`]). A poller whose [`Ingest`] has no alignment bound
    /// is never asked to.
    fn align(&mut self, _alignment: &Alignment) {}
    /// The latest known end offset of each partition (Kafka's high
    /// watermark), for the lag metrics.
    fn end_offsets(&self) -> BTreeMap<i32, i64> {
        BTreeMap::new()
    }
}

/// A source's [`Ingest`], shared with the checkpoint acknowledger of its
/// worker, which writes the source's resume positions.
struct IngestBook {
    op: String,
    ingest: Rc<RefCell<Option<Ingest>>>,
}

impl SourceBook for IngestBook {
    fn op(&self) -> String {
        self.op.clone()
    }
    fn part(&self, restart_from: u64, _frontier: u64) -> Vec<u8> {
        let part = self
            .ingest
            .borrow_mut()
            .as_mut()
            .map(|i| i.resume_part(restart_from))
            .unwrap_or_default();
        bincode::serialize(&part).expect("a source part serializes")
    }
}

/// The restored resume positions of a source's partitions, by partition.
pub(crate) fn restored_positions(env: &Env<'_>, topic: &str) -> BTreeMap<i32, PartitionResume> {
    env.restored::<SourcePart>(&source_op(topic))
        .into_iter()
        .flat_map(|part| part.partitions)
        .map(|p| (p.partition, p))
        .collect()
}

fn source_op(topic: &str) -> String {
    format!("source.{topic}")
}

/// How often a source publishes where its partitions stand.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// How long a source that found nothing sleeps at most when its poller
/// wakes it on data: the pace of its wall-clock duties (idle partitions and
/// the idle watermark) while no data arrives.
const STARVED_RECHECK: Duration = Duration::from_millis(10);

/// Builds a source operator with a readings and a dead-letter output that
/// drives a [`Poller`]. `open` runs on each worker with (worker, peers); an
/// error there is recorded in the metrics and ends the source.
pub(crate) fn ingest_source<'scope, P, F>(
    env: &Env<'scope>,
    topic: &str,
    name: String,
    watermark_step_ms: u64,
    open: F,
) -> SourceStreams<'scope>
where
    P: Poller,
    F: FnOnce(usize, usize) -> Result<(P, Ingest), String> + 'static,
{
    let scope = env.scope();
    let run = env.run().clone();
    let shared_ingest: Rc<RefCell<Option<Ingest>>> = Rc::new(RefCell::new(None));
    let ingest_cell = shared_ingest.clone();
    let mut builder = OperatorBuilder::new(name, scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let sync_activator = scope
        .worker()
        .sync_activator_for(builder.operator_info().address.to_vec());
    let (readings_out, readings) = builder.new_output::<Vec<Reading>>();
    let (dead_out, dead) = builder.new_output::<Vec<DeadLetter>>();
    // (partition, bucket) for each bucket of event time in which a partition
    // delivered readings: how far each partition has come, for silence rules.
    let (progress_out, progress) = builder.new_output::<Vec<(i32, u64)>>();
    let mut readings_out = OutputBuilder::from(readings_out);
    let mut dead_out = OutputBuilder::from(dead_out);
    let mut progress_out = OutputBuilder::from(progress_out);
    // The checkpoint markers, connected to no output: on a stop the source
    // keeps its capabilities until the trigger has taken its last
    // checkpoint. Dropping them at once would let the frontier jump to
    // other workers' watermarks, past records this source never read, and
    // the last checkpoint would count them as processed.
    let no_connection: Vec<(usize, Antichain<u64>)> = Vec::new();
    let mut markers = builder.new_input_connection(env.markers(), Pipeline, no_connection);
    let (worker, peers) = (scope.index(), scope.peers());
    let step = watermark_step_ms.max(1);
    let record_dir = crate::connect::RunIo::of(env).record.clone();
    let sinks_reached = env.sinks_reached();
    let sources_frontier = env.sources_frontier();
    let checkpointing = env.checkpointing();
    Metrics::add(&run.metrics.sources_wired, 1);

    builder.build(move |mut caps| {
        let mut caps = match (caps.pop(), caps.pop(), caps.pop()) {
            (Some(progress_cap), Some(dead_cap), Some(cap)) => Some((cap, dead_cap, progress_cap)),
            _ => None,
        };
        let mut woken = false;
        let mut poller = match open(worker, peers) {
            Ok((mut poller, mut ingest)) => {
                woken = poller.wake_on_data(Box::new(move || {
                    // Fails only once the worker is gone.
                    let _ = sync_activator.activate();
                }));
                if let Some(dir) = &record_dir {
                    match Recorder::open(dir, &ingest.topic) {
                        Ok(recorder) => ingest.recorder = Some(recorder),
                        Err(e) => run.control.add_error(format!("cannot record: {e}")),
                    }
                }
                Metrics::add(&run.metrics.sources_open, 1);
                ingest.align_at_least(step);
                if !checkpointing {
                    ingest.without_checkpoints();
                }
                ingest.publish_status(&BTreeMap::new());
                *ingest_cell.borrow_mut() = Some(ingest);
                Some(poller)
            }
            Err(error) => {
                run.control.add_error(error);
                None
            }
        };
        let mut readings_buf: Vec<Reading> = Vec::new();
        let mut dead_buf: Vec<DeadLetter> = Vec::new();
        let mut last_status = Instant::now();
        move |frontiers| {
            markers.for_each(|_, data| {
                if data.drain(..).any(|m| m.last) {
                    stop_on_last_marker(&run);
                }
            });
            let mut ingest = ingest_cell.borrow_mut();
            let (Some(poller), Some(ingest), Some((cap, dead_cap, progress_cap))) =
                (poller.as_mut(), ingest.as_mut(), caps.as_mut())
            else {
                caps = None;
                return;
            };
            if run.control.stop_requested() {
                if !frontiers[0].frontier().is_empty() {
                    // Stopped reading; the last checkpoint is not taken yet.
                    activator.activate_after(Duration::from_millis(5));
                    return;
                }
                tracing::info!(
                    worker,
                    capability = *cap.time(),
                    "Source stopping on request; the dataflow drains"
                );
                ingest.seal_recording();
                caps = None;
                return;
            }
            let alignment = ingest.align(sources_frontier());
            if alignment != Alignment::default() {
                poller.align(&alignment);
            }
            let read = poller.poll(ingest, *cap.time(), &mut readings_buf, &mut dead_buf);
            if last_status.elapsed() >= STATUS_EVERY {
                ingest.publish_status(&poller.end_offsets());
                last_status = Instant::now();
            }
            let m = &run.metrics;
            Metrics::add(&m.records_read, read as u64);
            Metrics::add(&m.readings, readings_buf.len() as u64);
            if let Some(latest) = readings_buf.iter().map(|r| r.time).max() {
                m.note_arrival(latest);
            }
            let mut progress_buf = progress_of(&readings_buf);
            send(&mut progress_out, progress_cap, &mut progress_buf);
            send(&mut readings_out, cap, &mut readings_buf);
            send(&mut dead_out, dead_cap, &mut dead_buf);
            let watermark = match ingest.watermark(poller.bounded()) {
                // Stopped at an event time `to`: first move on to it, and
                // hold it until every sink's input has reached it, so that
                // what comes before it completes as in a full run (a rule's
                // duration that ends before it fires) even where timely
                // would let the frontier jump from below `to` to the end.
                Watermark::Done if ingest.done_at.is_some_and(|to| !sinks_reached(to)) => {
                    let to = ingest.done_at.unwrap_or_default();
                    if *cap.time() < to {
                        cap.downgrade(&to);
                        dead_cap.downgrade(&to);
                        progress_cap.downgrade(&to);
                    }
                    activator.activate_after(Duration::from_millis(1));
                    return;
                }
                Watermark::Done => {
                    tracing::debug!(worker, "Source reached the end of its partitions");
                    ingest.seal_recording();
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
                    progress_cap.downgrade(&target);
                    ingest.capability_moved(target);
                }
            }
            if woken && read == 0 {
                activator.activate_after(STARVED_RECHECK);
            } else {
                // Others wait for data themselves (briefly) when starved.
                activator.activate();
            }
        }
    });
    env.register_source(
        readings.clone(),
        Rc::new(IngestBook {
            op: source_op(topic),
            ingest: shared_ingest,
        }),
    );
    env.register_progress(progress);
    (readings, dead)
}

/// The distinct (partition, bucket) pairs of a batch of readings, where a
/// bucket is the start of a [`PROGRESS_BUCKET_MS`] of event time.
fn progress_of(readings: &[Reading]) -> Vec<(i32, u64)> {
    let mut pairs: Vec<(i32, u64)> = Vec::new();
    for r in readings {
        let pair = (r.partition, r.time - r.time % PROGRESS_BUCKET_MS);
        // Readings of a batch mostly come in runs of one partition and
        // bucket; a batch of many partitions has many runs, so the rest of
        // the duplicates go in one sort, not a search per reading.
        if pairs.last() != Some(&pair) {
            pairs.push(pair);
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
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
            partitions
                .iter()
                .map(|(p, end)| PartitionStart::new(*p, 0, *end, None)),
            Run::default(),
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
            let record = RecordRef {
                partition: *partition,
                offset: *offset,
                key: None,
                value: payload.as_bytes(),
                timestamp: None,
                headers: &[],
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

    /// A checkpoint resumes a partition at its first record that has an
    /// event time in the restart bucket or later, or was read while the
    /// source's capability was there, with the largest event time accepted
    /// before it. Checked against a plain scan of what happened, with
    /// readings out of order across buckets, undecodable records (read,
    /// never accepted), capability moves and checkpoints between them.
    #[test]
    fn resume_positions_are_the_first_record_at_or_after_the_restart_bucket() {
        for seed in 1..=40u64 {
            let mut next = crate::seeded(seed);
            // Out of order by up to 4 s (the bound is 5 s): nothing is late.
            // A gap of 10 s every 50 records lets the capability move past
            // the buckets read so far.
            let times: Vec<u64> = (0..400u64)
                .map(|i| 100_000 + i * 137 + i / 50 * 10_000 + next(4_000))
                .collect();
            let bucket = |t: u64| t - t % RESUME_BUCKET_MS;
            let mut ingest = ingest(&[(0, None)]);
            // What a mark may come from: (bucket, offset) of every accepted
            // reading and of the next offset at every capability move.
            let mut candidates: Vec<(u64, i64)> = Vec::new();
            let mut accepted: Vec<(i64, u64)> = Vec::new();
            let (mut fed, mut cap, mut restart) = (0, 0, 100_000);
            while fed < times.len() {
                if next(2) == 0 {
                    // The capability never passes a reading still to come.
                    let earliest = times[fed..].iter().min().copied().unwrap_or(u64::MAX);
                    cap = cap.max(earliest.saturating_sub(next(1_000)));
                    ingest.capability_moved(cap);
                    candidates.push((bucket(cap), fed as i64));
                }
                // Steps end at the gaps, so the capability can move into one.
                let upto = (fed + 1 + next(60) as usize)
                    .min(times.len())
                    .min((fed / 50 + 1) * 50);
                for (i, &time) in times.iter().enumerate().take(upto).skip(fed) {
                    let undecodable = next(4) == 0;
                    let payload = match undecodable {
                        true => "not json".to_owned(),
                        false => {
                            format!(r#"{{"device_id":"d","sensor":"s","value":1,"ts":{time}}}"#)
                        }
                    };
                    let record = RecordRef {
                        partition: 0,
                        offset: i as i64,
                        key: None,
                        value: payload.as_bytes(),
                        timestamp: None,
                        headers: &[],
                    };
                    let (mut readings, mut dead) = (Vec::new(), Vec::new());
                    ingest.accept(record, cap, &mut readings, &mut dead);
                    assert_eq!(
                        (readings.len(), dead.len()),
                        if undecodable { (0, 1) } else { (1, 0) },
                        "seed {seed}, offset {i}"
                    );
                    if !undecodable {
                        candidates.push((bucket(time), i as i64));
                        accepted.push((i as i64, time));
                    }
                }
                fed = upto;
                // Checkpoints restart near the capability, as a frontier
                // minus a window would.
                restart = restart.max(cap.saturating_sub(next(2_000)));
                // The reference: a plain scan of what happened so far.
                let first = (candidates.iter())
                    .filter(|(b, _)| *b >= bucket(restart))
                    .map(|(_, offset)| *offset)
                    .min()
                    .unwrap_or(fed as i64);
                let max_before = (accepted.iter())
                    .filter(|(offset, _)| *offset < first)
                    .map(|(_, t)| *t)
                    .max();
                let part = ingest.resume_part(restart);
                let got = &part.partitions[0];
                assert_eq!(
                    (got.offset, got.max_time),
                    (first, max_before),
                    "seed {seed}, restart at {restart}, {fed} records fed"
                );
            }
        }
    }

    /// An idle partition keeps one idle mark however often the capability
    /// moves while it waits, and judges what it reads next against the
    /// latest: before, it gained a mark at every move, and every record it
    /// read went through all of them.
    #[test]
    fn an_idle_partition_keeps_one_mark_at_its_offset() {
        let mut ingest = ingest(&[(0, None), (1, None)]);
        feed(&mut ingest, 0, &[(0, 0, 1_000), (1, 0, 2_000)]);
        // Partition 0 moves on; partition 1 has nothing more to read.
        let mut cap = 0;
        for i in 0..10_000u64 {
            let time = 10_000 + i * 100;
            feed(&mut ingest, cap, &[(0, 1 + i as i64, time)]);
            cap = time - 5_000;
            ingest.capability_moved(cap);
        }
        let marks = &ingest.partitions[1].idle_marks;
        assert_eq!(marks.len(), 1, "idle marks after 10,000 moves");
        assert_eq!(marks[0], (1, cap));
        // Partition 1 wakes: a reading below the latest capability is late,
        // one at it is taken.
        let (ok, dead) = feed(&mut ingest, cap, &[(1, 1, cap - 1), (1, 2, cap)]);
        assert_eq!(ok, vec![2]);
        assert_eq!(dead, vec![(DeadLetterReason::LateAfterIdle, 1)]);
        let part = ingest.resume_part(cap);
        let idle: Vec<_> = part.partitions.iter().map(|p| p.idle_marks.len()).collect();
        assert!(
            idle.iter().all(|n| *n <= 1),
            "idle marks in the checkpoint: {idle:?}"
        );
    }

    /// A partition declared idle (a wall-clock decision) makes its
    /// late-waking records dead letters; a run resumed from a checkpoint
    /// taken before them, re-reading them with a lower watermark and
    /// without that decision, judges them exactly as the first run did.
    #[test]
    fn a_resumed_source_keeps_the_idle_decisions_of_the_first_run() {
        let early = [(0, 0, 20_000), (1, 0, 10_000)];
        let late = [(1, 1, 9_000), (1, 2, 16_000), (0, 1, 21_000)];
        let mut first = ingest(&[(0, None), (1, None)]);
        let (mut ok, mut dead) = feed(&mut first, 0, &early);
        // Partition 1 goes quiet and is declared idle; the watermark moves
        // on to 15 s, past what it will deliver next.
        first.check_idle(Duration::ZERO);
        first.check_idle(Duration::ZERO);
        assert_eq!(first.watermark(false), Watermark::Idle);
        first.capability_moved(15_000);
        // A checkpoint whose windows need re-reading from 15 s.
        let part = first.resume_part(15_000);
        let (more_ok, more_dead) = feed(&mut first, 15_000, &late);
        assert_eq!(more_dead, vec![(DeadLetterReason::LateAfterIdle, 1)]);
        ok.extend(more_ok);
        dead.extend(more_dead);

        let restored: BTreeMap<i32, PartitionResume> = part
            .partitions
            .into_iter()
            .map(|p| (p.partition, p))
            .collect();
        let from = |p: i32| restored[&p].offset;
        let mut resumed = Ingest::new(
            Decoder::default(),
            "t",
            5_000,
            [0, 1].map(|p| PartitionStart::new(p, 0, None, restored.get(&p))),
            Run::default(),
        );
        // The resumed run re-reads from the checkpoint's offsets, at a lower
        // watermark, and is not told again that partition 1 was idle.
        resumed.check_idle(Duration::ZERO);
        let reread: Vec<(i32, i64, u64)> = early
            .iter()
            .chain(&late)
            .filter(|(p, offset, _)| *offset >= from(*p))
            .copied()
            .collect();
        assert!(reread.contains(&(1, 1, 9_000)));
        // The first run accepted every re-read record but one.
        assert_eq!(ok.len(), early.len() + late.len() - 1);
        let (again_ok, again_dead) = feed(&mut resumed, 0, &reread);
        assert_eq!(
            again_dead, dead,
            "the same dead letter, for the same reason"
        );
        assert_eq!(again_ok.len(), reread.len() - 1);
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

/// A stop reaches the workers of a run one at a time; the checkpoint taken
/// on a stop must not count records that a source stopped before reading.
#[cfg(test)]
mod stop_tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::{Inspect, Probe};
    use timely::dataflow::ProbeHandle;

    use super::*;
    use crate::checkpoint::{CheckpointConfig, Session};
    use crate::WindowAggregateOp;

    /// Delivers its readings (one per second of event time up to `until`)
    /// on the first poll, then nothing. The worker that `stops_first`
    /// requests its run's stop after a few polls; the other one `then`
    /// after that, unless its run was stopped already.
    struct Scripted {
        partition: i32,
        until_s: u64,
        sent: bool,
        polls: u32,
        stops_first: bool,
        then: Duration,
        run: Run,
        first_stop: Arc<Mutex<Option<Instant>>>,
        /// Set when the second stop came from this script.
        second_scripted: Arc<AtomicBool>,
    }

    impl Poller for Scripted {
        fn poll(
            &mut self,
            ingest: &mut Ingest,
            cap_time: u64,
            readings: &mut Vec<Reading>,
            dead: &mut Vec<DeadLetter>,
        ) -> usize {
            if !self.sent {
                self.sent = true;
                for s in 1..=self.until_s {
                    let payload = format!(
                        r#"{{"device_id":"d","sensor":"s","value":1,"ts":{}}}"#,
                        s * 1_000
                    );
                    let record = RecordRef {
                        partition: self.partition,
                        offset: s as i64,
                        key: None,
                        value: payload.as_bytes(),
                        timestamp: None,
                        headers: &[],
                    };
                    ingest.accept(record, cap_time, readings, dead);
                }
                return self.until_s as usize;
            }
            self.polls += 1;
            std::thread::sleep(Duration::from_millis(1));
            let mut first = self.first_stop.lock().unwrap();
            if self.stops_first && self.polls == 50 {
                self.run.control.request_stop();
                *first = Some(Instant::now());
            }
            if !self.stops_first
                && !self.run.control.stop_requested()
                && first.is_some_and(|at| at.elapsed() >= self.then)
            {
                self.second_scripted.store(true, Ordering::SeqCst);
                self.run.control.request_stop();
            }
            0
        }

        fn bounded(&self) -> bool {
            false
        }
    }

    /// Runs two workers, each with its own stop flag as the processes of a
    /// cluster have: worker 0 reads readings up to 40 s, worker 1 (which
    /// lags, its watermark at 5 s) up to 10 s. Worker 1 is asked to stop
    /// first, worker 0 `then` later unless the run stopped it before.
    /// Returns the checkpoints' frontiers, the ends of the 10 s windows
    /// written, and whether worker 0's stop had to come from its script.
    fn stop_one_worker(checkpoints: bool, then: Duration) -> (Vec<u64>, Vec<u64>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let config = CheckpointConfig {
            dir: dir.path().to_owned(),
            interval: Duration::ZERO,
            keep: 10_000,
        };
        let session = checkpoints.then(|| Arc::new(Session::open(config, "t", false).unwrap()));
        let runs: Vec<Run> = (0..2).map(|_| Run::default()).collect();
        let first_stop = Arc::new(Mutex::new(None));
        let second_scripted = Arc::new(AtomicBool::new(false));
        let windows = Arc::new(Mutex::new(Vec::new()));
        let (m, scripted, w_out) = (runs.clone(), second_scripted.clone(), windows.clone());
        timely::execute(timely::Config::process(2), move |worker| {
            let index = worker.index();
            let run = m[index].clone();
            let (first_stop, scripted) = (first_stop.clone(), scripted.clone());
            let (session, windows) = (session.clone(), w_out.clone());
            let probe = ProbeHandle::new();
            worker.dataflow::<u64, _, _>(|scope| {
                let env = Env::new(scope, run.clone(), "t", session);
                let (readings, _) =
                    ingest_source(&env, "t", "Scripted".into(), 100, move |w, _| {
                        let poller = Scripted {
                            partition: w as i32,
                            until_s: if w == 0 { 40 } else { 10 },
                            sent: false,
                            polls: 0,
                            stops_first: w == 1,
                            then,
                            run: run.clone(),
                            first_stop,
                            second_scripted: scripted,
                        };
                        let start = PartitionStart::new(w as i32, 1, None, None);
                        let ingest = Ingest::new(Decoder::default(), "t", 5_000, [start], run);
                        Ok((poller, ingest))
                    });
                readings
                    .window_aggregate(10_000, &env)
                    .stream
                    .inspect(move |w| windows.lock().unwrap().push(w.window_end))
                    .probe_with(&probe);
                env.finish();
            });
        })
        .unwrap()
        .join();
        let frontiers = crate::checkpoint::list(dir.path())
            .unwrap()
            .into_iter()
            .filter_map(|c| c.manifest.map(|m| m.frontier))
            .collect();
        let windows = windows.lock().unwrap().clone();
        (frontiers, windows, second_scripted.load(Ordering::SeqCst))
    }

    #[test]
    fn the_stop_checkpoint_waits_for_the_source_that_stopped_first() {
        let (frontiers, _, _) = stop_one_worker(true, Duration::from_millis(200));
        assert!(!frontiers.is_empty(), "checkpoints were taken");
        assert!(
            frontiers.iter().all(|&f| f <= 5_000),
            "a checkpoint passed the lagging source's watermark (5 s): {frontiers:?}"
        );
    }

    /// A stop asked of one process of a cluster stops the whole run at one
    /// frontier, with or without checkpoints; no worker takes the stopped
    /// source's capabilities letting go for progress. Worker 0 would be
    /// stopped by its script only after 5 s, long after the run should
    /// have stopped it.
    #[test]
    fn a_stop_asked_of_one_worker_stops_the_run_without_closing_windows() {
        for checkpoints in [false, true] {
            let (frontiers, windows, scripted) =
                stop_one_worker(checkpoints, Duration::from_secs(5));
            assert!(
                !scripted,
                "the stop of worker 1 did not reach worker 0 (checkpoints: {checkpoints})"
            );
            // Worker 1's watermark was at 5 s: no 10 s window was complete.
            assert_eq!(windows, Vec::<u64>::new(), "checkpoints: {checkpoints}");
            assert!(
                frontiers.iter().all(|&f| f <= 5_000),
                "a checkpoint passed the lagging source's watermark (5 s): {frontiers:?}"
            );
        }
    }
}

/// Watermark alignment: a partition that runs ahead of the readings'
/// frontier is held back and released, and holding changes only when
/// records are read, never the results.
#[cfg(test)]
mod alignment_tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::{Concatenate, Inspect};

    use super::*;
    use crate::alert::{Direction, Rule, RuleSet};
    use crate::{EvaluateAlerts, WindowAggregateOp};

    /// Two partitions, out-of-orderness 5 s, alignment bound 10 s.
    fn ingest() -> Ingest {
        Ingest::new(
            Decoder::default(),
            "t",
            5_000,
            [0, 1].map(|p| PartitionStart::new(p, 0, None, None)),
            Run::default(),
        )
        .with_alignment(Some(10_000))
    }

    /// Takes the reading of `partition` at event time `time` (offsets in order).
    fn take(ingest: &mut Ingest, partition: i32, time: u64) {
        let offset = ingest.partitions[partition as usize].next;
        let payload = format!(r#"{{"device_id":"d","sensor":"s","value":1,"ts":{time}}}"#);
        let record = RecordRef {
            partition,
            offset,
            key: None,
            value: payload.as_bytes(),
            timestamp: None,
            headers: &[],
        };
        assert!(ingest.accept(record, 0, &mut Vec::new(), &mut Vec::new()));
    }

    fn held(ingest: &Ingest) -> Vec<i32> {
        ingest
            .partitions
            .iter()
            .filter(|p| p.held)
            .map(|p| p.id)
            .collect()
    }

    /// Worked by hand: partition 0 reads up to 31 s (its watermark 26 s),
    /// partition 1 to 12 s (7 s); the frontier is the slower one's, 7 s.
    #[test]
    fn a_partition_running_ahead_is_held_until_the_frontier_catches_up() {
        let mut ing = ingest();
        assert_eq!(ing.align(Some(7_000)), Alignment::default());
        for t in [12_000, 16_000, 17_000] {
            take(&mut ing, 0, t);
            // Watermarks 7, 11, 12 s: at most 5 s ahead of 7 s.
            assert!(!ing.runs_ahead(0), "{t}");
        }
        take(&mut ing, 1, 12_000);
        assert!(!ing.runs_ahead(1));
        take(&mut ing, 0, 23_000);
        // Watermark 18 s: 11 s ahead of 7 s, more than the 10 s bound.
        assert!(ing.runs_ahead(0), "held at once, mid-batch");
        assert!(!ing.runs_ahead(0), "held once");
        assert_eq!(held(&ing), vec![0]);
        take(&mut ing, 0, 31_000); // what librdkafka had delivered already
                                   // The frontier moves to 10 s, then 13 s: 8 s, then 13 s ahead. It
                                   // is released only within half the bound (5 s), at 21 s.
        for f in [10_000, 13_000, 20_999] {
            assert_eq!(ing.align(Some(f)), Alignment::default(), "{f}");
        }
        assert_eq!(
            ing.align(Some(21_000)),
            Alignment {
                hold: vec![],
                release: vec![0]
            }
        );
        // Partition 1, which holds the frontier back, was never held; at a
        // frontier of 0 it is no more than 2 s ahead.
        assert_eq!(held(&ing), Vec::<i32>::new());
        // A frontier far behind holds both, once, in one step.
        assert_eq!(
            ing.align(Some(0)),
            Alignment {
                hold: vec![0],
                release: vec![]
            }
        );
        take(&mut ing, 1, 40_000);
        assert!(ing.runs_ahead(1));
        assert_eq!(held(&ing), vec![0, 1]);
        assert_eq!(Metrics::get(&ing.run.metrics.partitions_held), 3);
        // A held partition is quiet, not idle.
        ing.check_idle(Duration::ZERO);
        ing.check_idle(Duration::ZERO);
        assert!(ing.partitions.iter().all(|p| !p.idle));
        // Once every source is done, nothing is held.
        assert_eq!(
            ing.align(None),
            Alignment {
                hold: vec![],
                release: vec![0, 1]
            }
        );
    }

    #[test]
    fn partitions_without_a_watermark_or_alignment_are_never_held() {
        let mut ing = ingest();
        assert_eq!(ing.align(Some(0)), Alignment::default());
        take(&mut ing, 0, 100_000);
        assert!(ing.runs_ahead(0));
        // Partition 1 has delivered nothing: it is not held, so it can read
        // and move the frontier.
        assert_eq!(ing.align(Some(0)), Alignment::default());
        assert_eq!(held(&ing), vec![0]);
        let mut off = ingest().with_alignment(None);
        take(&mut off, 0, 100_000);
        assert!(!off.runs_ahead(0));
        assert_eq!(off.align(Some(0)), Alignment::default());
        // The bound is at least two watermark steps.
        let mut small = ingest().with_alignment(Some(1));
        small.align_at_least(100);
        assert_eq!(small.max_drift, Some(200));
    }

    /// Reads in-memory partitions in turns of `TURN` records, as the memory
    /// source does, and stops reading a partition as soon as it is held,
    /// as the Kafka source does.
    struct Turns {
        /// Event times of each partition of this worker, in offset order.
        partitions: Vec<(i32, Vec<u64>)>,
        next: Vec<usize>,
        held: BTreeSet<i32>,
    }

    const TURN: usize = 50;

    impl Poller for Turns {
        fn poll(
            &mut self,
            ingest: &mut Ingest,
            cap_time: u64,
            readings: &mut Vec<Reading>,
            dead: &mut Vec<DeadLetter>,
        ) -> usize {
            let mut read = 0;
            for ((p, times), next) in self.partitions.iter().zip(&mut self.next) {
                for _ in 0..TURN {
                    if self.held.contains(p) || *next == times.len() {
                        break;
                    }
                    let time = times[*next];
                    // Two devices, so that alerts and windows are keyed.
                    let value = (time / 1_000) % 97;
                    let payload = format!(
                        r#"{{"device_id":"d{}","sensor":"s","value":{value},"ts":{time}}}"#,
                        time % 2
                    );
                    let record = RecordRef {
                        partition: *p,
                        offset: *next as i64,
                        key: None,
                        value: payload.as_bytes(),
                        timestamp: None,
                        headers: &[],
                    };
                    read += usize::from(ingest.accept(record, cap_time, readings, dead));
                    *next += 1;
                    if ingest.runs_ahead(*p) {
                        self.held.insert(*p);
                    }
                }
            }
            read
        }

        fn bounded(&self) -> bool {
            true
        }

        fn align(&mut self, alignment: &Alignment) {
            self.held.extend(&alignment.hold);
            for p in &alignment.release {
                self.held.remove(p);
            }
        }
    }

    /// Four partitions whose readings are 0.1, 1, 5 and 20 s apart in
    /// event time (a few out of order, some late), read in equal turns of
    /// records: the sparse ones run far ahead in event time.
    fn skewed() -> Vec<Vec<u64>> {
        [100u64, 1_000, 5_000, 20_000]
            .iter()
            .map(|gap| {
                (0..400u64)
                    .map(|i| {
                        let t = 1_000_000 + i * gap;
                        // Every 7th reading 8 s behind: late where the gap is wide.
                        if i % 7 == 3 {
                            t.saturating_sub(8_000)
                        } else {
                            t
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Runs the skewed partitions through 10 s windows and a rule on
    /// `workers` workers, read by one source or by `sources` sources that
    /// share them out (the dense ones in the first); returns the windows,
    /// alerts and dead letters (sorted, as text) and how often partitions
    /// were held.
    fn run(workers: usize, alignment: Option<u64>, sources: usize) -> (Vec<String>, u64) {
        let out = Arc::new(Mutex::new(Vec::new()));
        let run = Run::default();
        let (o, r) = (out.clone(), run.clone());
        timely::execute(timely::Config::process(workers), move |worker| {
            let (out, run) = (o.clone(), r.clone());
            worker.dataflow::<u64, _, _>(|scope| {
                let env = Env::new(scope, run.clone(), "t", None);
                let (mut all_readings, mut all_dead) = (Vec::new(), Vec::new());
                for source in 0..sources {
                    let run = run.clone();
                    let name = format!("Turns{source}");
                    let (readings, dead) = ingest_source(&env, "t", name, 100, move |w, peers| {
                        let mine: Vec<(i32, Vec<u64>)> = skewed()
                            .into_iter()
                            .enumerate()
                            .filter(|(p, _)| p % peers == w && p * sources / 4 == source)
                            .map(|(p, times)| (p as i32, times))
                            .collect();
                        let starts: Vec<_> = mine
                            .iter()
                            .map(|(p, times)| {
                                PartitionStart::new(*p, 0, Some(times.len() as i64), None)
                            })
                            .collect();
                        let ingest = Ingest::new(Decoder::default(), "t", 5_000, starts, run)
                            .with_alignment(alignment);
                        let next = vec![0; mine.len()];
                        let poller = Turns {
                            partitions: mine,
                            next,
                            held: BTreeSet::new(),
                        };
                        Ok((poller, ingest))
                    });
                    all_readings.push(readings);
                    all_dead.push(dead);
                }
                let readings = scope.concatenate(all_readings);
                let dead = scope.concatenate(all_dead);
                let rules = Arc::new(RuleSet::new(vec![Rule {
                    clear: 40.0,
                    for_ms: 3_000,
                    ..Rule::new("high", "s", Direction::Above, 60.0)
                }]));
                let o = out.clone();
                readings
                    .clone()
                    .window_aggregate(10_000, &env)
                    .stream
                    .inspect(move |w| o.lock().unwrap().push(format!("{w:?}")));
                let o = out.clone();
                readings
                    .evaluate_alerts(rules, &env)
                    .inspect(move |a| o.lock().unwrap().push(format!("{a:?}")));
                let o = out.clone();
                dead.inspect(move |d| {
                    o.lock()
                        .unwrap()
                        .push(format!("{} {} {}", d.reason, d.partition, d.offset))
                });
                env.finish();
            });
        })
        .unwrap()
        .join();
        let mut out = out.lock().unwrap().clone();
        out.sort();
        (out, Metrics::get(&run.metrics.partitions_held))
    }

    /// The same windows, alerts and dead letters with and without
    /// alignment, on 1 and 2 workers, with the partitions read by one
    /// source or shared out between two (the frontier is that of both);
    /// with it, the sparse partitions were held back many times.
    #[test]
    fn alignment_changes_when_records_are_read_not_the_results() {
        let (reference, never) = run(1, None, 1);
        assert_eq!(never, 0);
        assert!(
            reference.iter().any(|o| o.starts_with("late ")),
            "late readings"
        );
        assert!(
            reference.iter().any(|o| o.contains("Firing")),
            "alerts fired"
        );
        assert!(reference.len() > 200, "{}", reference.len());
        for (workers, sources) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
            let (aligned, held) = run(workers, Some(1_000), sources);
            let case = format!("{workers} worker(s), {sources} source(s)");
            assert!(held > 20, "held {held} times on {case}");
            assert_eq!(aligned, reference, "{case}");
        }
    }
}
