//! Idle partitions: a partition that delivers nothing for a while stops
//! holding the watermark back. The decision is a wall-clock one, so it is
//! kept as an idle mark: a resumed run or a replay judges the records that
//! follow against it, as the live run did.

use std::time::{Duration, Instant};

use super::ingest::{Ingest, PartitionState};

impl PartitionState {
    /// The watermark a record at `offset` is judged against: `cap_time`,
    /// the source's, or more where an idle mark at or before the record
    /// says so (the first run judged it there).
    pub(super) fn judged_against(&self, offset: i64, cap_time: u64) -> u64 {
        self.idle_marks
            .iter()
            .filter(|(from, _)| *from <= offset)
            .map(|(_, wm)| *wm)
            .fold(cap_time, u64::max)
    }
}

impl<D: super::item::Decode> Ingest<D> {
    /// Notes that the source's capability moved to `time`: whatever is read
    /// from now on may travel at `time` or later (resume bookkeeping), and
    /// a partition whose own watermark is behind it was idle (an idle mark).
    pub(crate) fn capability_moved(&mut self, time: u64) {
        self.mark_capability(time);
        for part in &mut self.partitions {
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
    pub(super) fn idle_watermark(&self) -> Option<u64> {
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

    /// The watermark of a source that follows the readings' frontier
    /// `readings` (control events) instead of holding it back: each
    /// partition not done stands at its own watermark, or at the readings'
    /// frontier where that is later, once it has read everything there is
    /// (its bounded end, or the end offset in `ends` the broker last
    /// reported; without one, once it is idle): a record waiting to be read is judged at its own time,
    /// not behind the readings. While a partition re-reads what an earlier
    /// run decided (a replay, a resume), it goes no further than the idle
    /// marks recorded up to its next offset, so that it judges each record
    /// against what the earlier run did. `own` is the source's own
    /// watermark, kept when no partition is left.
    pub(crate) fn following(
        &self,
        own: Option<u64>,
        readings: Option<u64>,
        ends: &std::collections::BTreeMap<i32, i64>,
    ) -> Option<u64> {
        let mut least: Option<u64> = None;
        for part in self.partitions.iter().filter(|p| !p.done) {
            let own = part.max_time.map(|t| t.saturating_sub(self.bound));
            let restored = &part.idle_marks[..part.restored_marks.min(part.idle_marks.len())];
            let follow = if restored.iter().any(|(from, _)| *from >= part.next) {
                restored
                    .iter()
                    .filter(|(from, _)| *from <= part.next)
                    .map(|(_, wm)| *wm)
                    .max()
            } else {
                let caught_up = match part.end {
                    Some(end) => part.next >= end,
                    // Without the broker's figures (statistics turned
                    // off), once the partition has gone idle.
                    None => ends
                        .get(&part.id)
                        .map_or(part.idle, |end| part.next >= *end),
                };
                readings.filter(|_| caught_up)
            };
            let target = own.max(follow)?;
            least = Some(least.map_or(target, |l| l.min(target)));
        }
        match least {
            Some(t) => Some(t),
            None if self.partitions.iter().all(|p| p.done) => own,
            None => None,
        }
    }
}
