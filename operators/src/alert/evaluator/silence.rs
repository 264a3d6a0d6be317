//! Silence rules in the evaluator: how far each source partition has come,
//! and the silences that progress decides.

use std::collections::{BTreeMap, BTreeSet};

use super::AlertEvaluator;
use crate::alert::{Alert, Observation};
use crate::reading::PROGRESS_BUCKET_MS;

impl<O: Observation> AlertEvaluator<O> {
    /// Notes that source partition `partition` delivered a reading in the
    /// bucket of event time starting at `bucket` (a multiple of
    /// [`PROGRESS_BUCKET_MS`]). Silence rules fire only once the partition
    /// of a silent key has come this far, so that a stalled or idle
    /// partition never makes its keys look silent.
    pub fn note_progress(&mut self, partition: i32, bucket: u64) {
        self.progress.entry(partition).or_default().insert(bucket);
    }

    /// Fires the silences the frontier has decided (see
    /// [`noticed`]), and forgets progress no armed or later
    /// silence can need. Returns the number of suppressed firings.
    pub(super) fn fire_silences(&mut self, frontier: Option<u64>, out: &mut Vec<Alert>) -> u64 {
        let mut suppressed = 0;
        let partitions: Vec<i32> = self.silences.keys().copied().collect();
        for partition in partitions {
            while let Some(&(deadline, slot, i)) =
                self.silences.get(&partition).and_then(|s| s.first())
            {
                // A later deadline is noticed no earlier: stop at the first
                // one that is not.
                let Some(at) = noticed(&self.progress, partition, deadline, frontier) else {
                    break;
                };
                if let Some(set) = self.silences.get_mut(&partition) {
                    set.pop_first();
                }
                let key = &mut self.keys[slot];
                let (rule_idx, state) = &mut key.rules[i];
                let rule = &self.table[*rule_idx];
                state.fire_silence(rule, at, &mut self.emitter.transitions);
                suppressed += self.emitter.emit(rule, &key.key, out);
            }
        }
        // Readings not applied yet are at or after the frontier, so every
        // later deadline is too.
        if let Some(frontier) = frontier {
            for (partition, buckets) in &mut self.progress {
                let oldest = self
                    .silences
                    .get(partition)
                    .and_then(|s| s.first())
                    .map_or(frontier, |(d, _, _)| (*d).min(frontier));
                let keep = oldest - oldest % PROGRESS_BUCKET_MS;
                *buckets = buckets.split_off(&keep);
            }
        }
        suppressed
    }
}

/// When a silence with `deadline`, of a key last read from `partition`,
/// can be told from `progress` at the frontier `frontier` (`None`: no
/// frontier limit, the input ended or the key's own later reading is
/// applied): the end of the first bucket at or after the deadline in which
/// the partition delivered readings, once the frontier has passed that
/// bucket's end (every reading in it has then been seen).
pub(super) fn noticed(
    progress: &BTreeMap<i32, BTreeSet<u64>>,
    partition: i32,
    deadline: u64,
    frontier: Option<u64>,
) -> Option<u64> {
    let first = deadline.div_ceil(PROGRESS_BUCKET_MS) * PROGRESS_BUCKET_MS;
    let bucket = progress.get(&partition)?.range(first..).next()?;
    let end = bucket + PROGRESS_BUCKET_MS;
    frontier.is_none_or(|f| end < f).then_some(end)
}
