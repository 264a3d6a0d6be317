//! The resume bookkeeping of a source: where each partition resumes after
//! a restart, kept as records are read, written into every checkpoint, and
//! read back when a run resumes.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::ingest::{Ingest, PartitionState};
use crate::run::{Env, SourceBook};

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
pub(super) const RESUME_BUCKET_MS: u64 = 1_000;

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

impl PartitionState {
    /// Notes an accepted reading of event time `time` at `offset`: the
    /// first reading of a later bucket than the last one marked marks it.
    pub(super) fn mark_reading(&mut self, time: u64, offset: i64) {
        let bucket = time - time % RESUME_BUCKET_MS;
        if self.marked.is_none_or(|m| bucket > m) {
            self.marks.entry(bucket).or_insert((offset, self.max_time));
            self.marked = Some(bucket);
        }
    }
}

impl<D: super::item::Decode> Ingest<D> {
    /// Drops the resume bookkeeping, for a run without checkpoints: it is
    /// read only by [`Ingest::resume_part`], which trims it.
    pub(crate) fn without_checkpoints(&mut self) {
        self.keep_marks = false;
        for part in &mut self.partitions {
            part.marks.clear();
            part.marked = None;
        }
    }

    /// The resume positions of the last checkpoint part written.
    pub(crate) fn last_resume(&self) -> Option<&SourcePart> {
        self.last_resume.as_ref()
    }

    /// Resume bookkeeping of a capability move to `time`: whatever each
    /// partition reads from now on may travel at `time` or later.
    pub(super) fn mark_capability(&mut self, time: u64) {
        if !self.keep_marks {
            return;
        }
        let bucket = time - time % RESUME_BUCKET_MS;
        for part in &mut self.partitions {
            part.marks
                .entry(bucket)
                .or_insert((part.next, part.max_time));
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
}

/// A source's [`Ingest`], shared with the checkpoint acknowledger of its
/// worker, which writes the source's resume positions.
pub(super) struct IngestBook<D: super::item::Decode> {
    op: String,
    ingest: Rc<RefCell<Option<Ingest<D>>>>,
}

impl<D: super::item::Decode> IngestBook<D> {
    /// The book of the source of `topic`, whose ingest (once open) is in
    /// `ingest`.
    pub(super) fn new(topic: &str, ingest: Rc<RefCell<Option<Ingest<D>>>>) -> Self {
        IngestBook {
            op: source_op(topic),
            ingest,
        }
    }
}

impl<D: super::item::Decode> SourceBook for IngestBook<D> {
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
