//! The evaluator's index of key slots by route hash: open addressing with
//! linear probing, so where a lookup starts follows from the hash alone and
//! can be asked of the cache entries ahead (see [`KeyIndex::prefetch`]).

use crate::record::cache::prefetch;

/// Slots of keys by their route hash ([`crate::reading::SensorKey::route_hash`]).
///
/// Each entry packs a 32-bit tag of the hash and the slot plus one (0 is an
/// empty entry) into 8 bytes; the table is at most half full, so a lookup
/// mostly reads one entry. A tag match is a candidate only: the caller
/// compares the key itself.
pub(super) struct KeyIndex {
    entries: Vec<u64>,
    /// `entries.len()` is `1 << bits`.
    bits: u32,
    len: usize,
}

impl KeyIndex {
    pub(super) fn new() -> Self {
        KeyIndex {
            entries: vec![0; 16],
            bits: 4,
            len: 0,
        }
    }

    /// The tag of a route hash: its high half, mixed, so that routes that
    /// differ only in the bits the workers are chosen by spread out.
    fn tag(route: u64) -> u32 {
        (route.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
    }

    /// Where the probe for `tag` starts.
    fn home(&self, tag: u32) -> usize {
        (tag >> (32 - self.bits)) as usize
    }

    /// The slots whose tag is `route`'s, in probe order, until an empty
    /// entry.
    fn candidates(&self, route: u64) -> impl Iterator<Item = usize> + '_ {
        let tag = Self::tag(route);
        let mask = self.entries.len() - 1;
        let start = self.home(tag);
        (0..self.entries.len())
            .map(move |i| self.entries[(start + i) & mask])
            .take_while(|&e| e != 0)
            .filter(move |&e| (e >> 32) as u32 == tag)
            .map(|e| (e as u32 - 1) as usize)
    }

    /// The slot of the key with hash `route` for which `is` holds.
    pub(super) fn find(&self, route: u64, is: impl Fn(usize) -> bool) -> Option<usize> {
        self.candidates(route).find(|&slot| is(slot))
    }

    /// The first slot whose tag is `route`'s, without comparing keys: what
    /// a lookup of `route` will most likely read next.
    pub(super) fn likely(&self, route: u64) -> Option<usize> {
        self.candidates(route).next()
    }

    /// Asks the cache for the entry a lookup of `route` starts at.
    pub(super) fn prefetch(&self, route: u64) {
        prefetch(&self.entries[self.home(Self::tag(route))]);
    }

    /// Adds `slot` under `route` (a key not in the index).
    pub(super) fn insert(&mut self, route: u64, slot: usize) {
        if (self.len + 1) * 2 > self.entries.len() {
            self.grow();
        }
        let slot = u32::try_from(slot).expect("fewer than 2^32 keys");
        self.put((u64::from(Self::tag(route)) << 32) | u64::from(slot + 1));
        self.len += 1;
    }

    /// Puts a packed entry at the first empty place of its probe.
    fn put(&mut self, entry: u64) {
        let mask = self.entries.len() - 1;
        let mut at = self.home((entry >> 32) as u32);
        while self.entries[at] != 0 {
            at = (at + 1) & mask;
        }
        self.entries[at] = entry;
    }

    /// Doubles the table.
    fn grow(&mut self) {
        let doubled = vec![0; self.entries.len() * 2];
        let old = std::mem::replace(&mut self.entries, doubled);
        self.bits += 1;
        for entry in old.into_iter().filter(|&e| e != 0) {
            self.put(entry);
        }
    }

    /// Bytes the index holds.
    pub(super) fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::KeyIndex;
    use crate::reading::SensorKey;

    /// Every key is found at its own slot, including keys whose hashes
    /// share a tag or a probe start, and absent keys are not found.
    #[test]
    fn every_key_is_found_at_its_slot_through_growth_and_collisions() {
        let mut keys: Vec<(String, u64)> = (0..5_000)
            .map(|i| {
                let device = format!("d{i}");
                let route = SensorKey::route_hash(&device, "s");
                (device, route)
            })
            .collect();
        // Two keys with the same hash (a forced collision).
        keys.push(("twin".into(), keys[7].1));
        let mut index = KeyIndex::new();
        for (slot, (_, route)) in keys.iter().enumerate() {
            assert_eq!(index.find(*route, |s| keys[s].0 == keys[slot].0), None);
            index.insert(*route, slot);
        }
        for (slot, (device, route)) in keys.iter().enumerate() {
            assert_eq!(index.find(*route, |s| keys[s].0 == *device), Some(slot));
        }
        assert_eq!(index.likely(keys[7].1), Some(7));
        let absent = SensorKey::route_hash("nobody", "s");
        assert_eq!(index.find(absent, |s| keys[s].0 == "nobody"), None);
        assert!(index.bytes() >= 2 * keys.len() * 8);
    }
}
