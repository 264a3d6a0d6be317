//! Asking the cache ahead for the keyed state the next observations will
//! read: keys come in no order the hardware can guess, and each lookup
//! would otherwise wait for memory in turn.

use super::fold::FOLDED;
use super::{AlertEvaluator, KeyState};
use crate::alert::Observation;
use crate::record::cache::prefetch;

/// How many entries ahead of its application a key's slot is asked of the
/// cache (see [`AlertEvaluator::prefetch`]).
pub(super) const PREFETCH: usize = 16;

impl<O: Observation> AlertEvaluator<O> {
    /// Asks the cache for what the lookups of the observations `ahead` will
    /// read: the index entry [`PREFETCH`] observations ahead, then, once
    /// that is in, the key's slot it likely names.
    pub(super) fn prefetch_keys(&self, ahead: &[O]) {
        if let Some(obs) = ahead.get(PREFETCH) {
            self.index.prefetch(obs.route());
        }
        if let Some(slot) = (ahead.get(PREFETCH / 2)).and_then(|obs| self.index.likely(obs.route()))
        {
            let at: *const KeyState = &self.keys[slot];
            prefetch(at);
            prefetch(at.cast::<u8>().wrapping_add(64));
        }
    }

    /// Asks the cache for what the application of the entries `ahead` will
    /// read, a few entries before it, one level of indirection at a time:
    /// the key's slot [`PREFETCH`] entries ahead, its rule states once that
    /// slot is in, then their extra fields, then the lists among those.
    /// Keys come in no order the hardware can guess, and each would
    /// otherwise wait for memory in turn.
    pub(super) fn prefetch(&self, ahead: &[(usize, O::Pending)]) {
        let unfolded = |at: usize| ahead.get(at).filter(|(slot, _)| slot & FOLDED == 0);
        let rules = |at: usize| unfolded(at).map(|(slot, _)| &self.keys[*slot].rules);
        if let Some((slot, _)) = unfolded(PREFETCH) {
            let at: *const KeyState = &self.keys[*slot];
            prefetch(at);
            prefetch(at.cast::<u8>().wrapping_add(64));
        }
        if let Some(rules) = rules(PREFETCH * 3 / 4) {
            let bytes = std::mem::size_of_val(rules.as_slice());
            let start = rules.as_ptr().cast::<u8>();
            for offset in (0..bytes).step_by(64) {
                prefetch(start.wrapping_add(offset));
            }
        }
        if let Some(rules) = rules(PREFETCH / 2) {
            rules.iter().for_each(|(_, state)| state.prefetch_extra());
        }
        if let Some(rules) = rules(PREFETCH / 4) {
            rules.iter().for_each(|(_, state)| state.prefetch_lists());
        }
    }
}
