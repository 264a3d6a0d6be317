//! Folding: an observation that cannot change its key's state waits in
//! its bucket marked as folded, and the frontier passes over it without
//! reading the key (see [`AlertEvaluator::folds`]).

use super::{AlertEvaluator, KeyState};
use crate::alert::state::Pending;
use crate::alert::{Observation, RuleKind};

/// The mark of a folded entry's slot in [`AlertEvaluator::pending`].
pub(super) const FOLDED: usize = 1 << (usize::BITS - 1);

/// Folded entries of a key that are applied after all: an entry that was
/// not folded arrived with an order before some of them.
pub(super) struct Revival {
    /// The order of the earliest such arrival: folded entries from it on
    /// are applied.
    pub(super) from: (u64, i32, i64),
    /// The greatest order queued for the key when it arrived: no entry was
    /// folded for the key after it while the revival lasts.
    pub(super) until: (u64, i32, i64),
}

impl KeyState {
    /// Whether the key's folded entry of `order` is applied after all.
    pub(super) fn revives(&self, order: (u64, i32, i64)) -> bool {
        (self.revived.as_ref()).is_some_and(|r| r.from <= order && order <= r.until)
    }
}

impl<O: Observation> AlertEvaluator<O> {
    /// Whether `obs` is folded for the key in `slot`: left out of the key's
    /// state, as applying it in its turn would change nothing.
    ///
    /// Folding: every rule of the key is a threshold rule at rest (not
    /// firing, no breach or breaching value held, not chattering) that
    /// `obs` does not breach, and no entry of the key that is not folded is
    /// waiting. Applied now, `obs` only resets what is already reset, and
    /// arms no duration. Applied in its turn, it finds the same state
    /// unless an entry before it that does change the state arrives later:
    /// then (see [`Revival`]) the key's folded entries from that arrival
    /// on are applied after all, in order, as if none had been folded. A
    /// folded entry still waits in its bucket, where it keeps its place in
    /// the order; the frontier passes over it without reading its key.
    pub(super) fn folds(&self, slot: usize, obs: &O::Pending) -> bool {
        let key = &self.keys[slot];
        let revived = (key.revived.as_ref()).is_some_and(|r| r.until.0 >= self.horizon);
        if key.unfolded > self.horizon || revived || key.rules.is_empty() {
            return false;
        }
        key.rules.iter().all(|(i, state)| {
            let rule = &self.table[*i];
            let breaches = obs.feeds(rule) && obs.value(rule).is_some_and(|v| rule.breaches(v));
            matches!(rule.kind, RuleKind::Threshold(_)) && state.at_rest() && !breaches
        })
    }

    /// An entry of order `order`, not folded, arrived for the key in `slot`
    /// after one of a later order: folded entries from it on are applied
    /// after all.
    pub(super) fn revive(&mut self, slot: usize, order: (u64, i32, i64)) {
        let key = &mut self.keys[slot];
        let until = key.last;
        match &mut key.revived {
            Some(r) if r.until.0 >= self.horizon => {
                r.from = r.from.min(order);
                r.until = r.until.max(until);
            }
            other => *other = Some(Box::new(Revival { from: order, until })),
        }
        self.revive_until = self.revive_until.max(Some(until.0));
    }

    /// Whether the folded `obs` of the key in `slot` is applied after all.
    pub(super) fn revived(&self, slot: usize, obs: &O::Pending) -> bool {
        self.revive_until.is_some_and(|until| obs.time() <= until)
            && self.keys[slot].revives(obs.order())
    }
}
