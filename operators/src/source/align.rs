//! Watermark alignment: a partition whose watermark runs too far ahead of
//! the readings' frontier is held back until the frontier catches up, so
//! that a backlog waits in its broker, not in memory.

use super::ingest::{Ingest, PartitionState};

/// Which partitions to stop and to start reading again, from
/// [`Ingest::align`].
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Alignment {
    /// Partitions that ran too far ahead: stop reading them.
    pub(crate) hold: Vec<i32>,
    /// Held partitions the frontier caught up with: read them again.
    pub(crate) release: Vec<i32>,
}

impl<D: super::item::Decode> Ingest<D> {
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
    pub(super) fn ahead(&self, part: &PartitionState) -> Option<u64> {
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
            self.run
                .metrics
                .partitions_held
                .inc_by(alignment.hold.len() as u64);
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
        self.run.metrics.partitions_held.inc_by(1);
        true
    }
}
