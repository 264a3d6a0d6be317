//! Tumbling windows: the open windows of one worker ([`WindowState`]),
//! each with its per-key aggregates.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::acc::{Acc, Extra, Extras};
use crate::reading::{KeyRef, Reading, SensorKey, WindowAggregate as Aggregate};
use crate::record::Stats;

/// The open windows of one worker: plain data, so a checkpoint can snapshot it.
///
/// With the basic statistics alone a key's state in a window is 40 bytes;
/// extra statistics add 104 bytes of their state (and, for percentiles, a
/// sketch) per key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowState(Kept<Tumbling<()>, Tumbling<Extras>>);

impl Default for WindowState {
    fn default() -> Self {
        WindowState(Kept::Basic(Tumbling::default()))
    }
}

/// State with the basic statistics alone, or with extra ones: chosen when
/// the state is made, from its [`Stats`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Kept<B, E> {
    /// Count, min, max, sum.
    Basic(B),
    /// And the state of extra statistics.
    Extended(E),
}

/// Runs `$body` with `$s` bound to the state, whichever it is.
macro_rules! each {
    ($kept:expr, $s:ident => $body:expr) => {
        match $kept {
            Kept::Basic($s) => $body,
            Kept::Extended($s) => $body,
        }
    };
}
pub(crate) use each;

/// The open windows, with `X` kept per key for extra statistics.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Tumbling<X> {
    size_ms: u64,
    /// The statistics of the rows.
    stats: Stats,
    /// Whether a sketch is kept (some percentile is computed).
    sketch: bool,
    /// Open windows by end time, each with its per-key aggregates.
    open: BTreeMap<u64, HashMap<SensorKey, Acc<X>>>,
    /// Windows ending before this time were emitted before a restart:
    /// their readings are ignored.
    floor: u64,
    /// Bytes the open aggregates hold on the heap.
    heap: usize,
    /// Keys of the latest window closed: a new window's map starts with
    /// room for as many, instead of growing (and rehashing) key by key.
    #[serde(skip)]
    keys_hint: usize,
}

impl WindowState {
    /// Empty state for windows of `size_ms` milliseconds, with the basic
    /// statistics.
    ///
    /// # Panics
    /// If `size_ms` is 0 (config validation rejects it first).
    pub fn new(size_ms: u64) -> Self {
        WindowState::with_stats(size_ms, Stats::basic())
    }

    /// Empty state for windows of `size_ms` milliseconds whose rows carry
    /// `stats`.
    ///
    /// # Panics
    /// If `size_ms` is 0 (config validation rejects it first).
    pub fn with_stats(size_ms: u64, stats: Stats) -> Self {
        assert!(size_ms > 0, "window size must be positive");
        WindowState(match stats.is_basic() {
            true => Kept::Basic(Tumbling::new(size_ms, stats)),
            false => Kept::Extended(Tumbling::new(size_ms, stats)),
        })
    }

    /// Ignores readings of windows that end before `frontier`: after a
    /// restart from a checkpoint at `frontier`, they were already emitted.
    pub fn resume_at(&mut self, frontier: u64) {
        each!(&mut self.0, s => s.floor = frontier)
    }

    /// Discards every open window (a stop: they are not complete) and
    /// returns how many (window, key) aggregates were dropped.
    pub fn discard(&mut self) -> usize {
        each!(&mut self.0, s => s.discard())
    }

    /// The (window, key) aggregates held, and an estimate of their bytes.
    pub fn footprint(&self) -> (usize, usize) {
        each!(&self.0, s => s.footprint())
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> u64 {
        each!(&self.0, s => s.size_ms)
    }

    /// Adds a reading to its window.
    pub fn insert(&mut self, reading: &Reading) {
        each!(&mut self.0, s => s.insert(reading))
    }

    /// The end of the earliest open window.
    pub fn earliest_end(&self) -> Option<u64> {
        each!(&self.0, s => s.open.keys().next().copied())
    }

    /// Closes every window that ends at or before `frontier` (every window
    /// when `None`: the input has ended) and appends their aggregates to
    /// `out`, by window end, then device, then sensor.
    pub fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>) {
        each!(&mut self.0, s => s.flush_until(frontier, out))
    }
}

impl<X: Extra> Tumbling<X> {
    fn new(size_ms: u64, stats: Stats) -> Self {
        Tumbling {
            size_ms,
            sketch: stats.has_percentiles(),
            stats,
            open: BTreeMap::new(),
            floor: 0,
            heap: 0,
            keys_hint: 0,
        }
    }

    fn discard(&mut self) -> usize {
        self.heap = 0;
        std::mem::take(&mut self.open)
            .values()
            .map(HashMap::len)
            .sum()
    }

    fn footprint(&self) -> (usize, usize) {
        let entries: usize = self.open.values().map(HashMap::len).sum();
        let capacity: usize = self.open.values().map(HashMap::capacity).sum();
        let per_entry = std::mem::size_of::<(SensorKey, Acc<X>)>() + 1;
        let per_window = std::mem::size_of::<(u64, HashMap<SensorKey, Acc<X>>)>();
        (
            entries,
            capacity * per_entry + self.open.len() * per_window + self.heap,
        )
    }

    fn insert(&mut self, reading: &Reading) {
        let end = reading.time - reading.time % self.size_ms + self.size_ms;
        if end < self.floor {
            return;
        }
        let hint = self.keys_hint;
        let window = self
            .open
            .entry(end)
            .or_insert_with(|| HashMap::with_capacity(hint));
        // Look up by reference first: the key is cloned only for a new sensor.
        match window.get_mut(&KeyRef::new(&reading.device, &reading.sensor)) {
            Some(acc) => {
                let before = acc.heap_bytes();
                acc.add(reading, self.sketch);
                self.heap += acc.heap_bytes() - before;
            }
            None => {
                let acc = Acc::new(reading, self.sketch);
                self.heap += acc.heap_bytes();
                window.insert(reading.key(), acc);
            }
        }
    }

    fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>) {
        while let Some(entry) = self.open.first_entry() {
            let end = *entry.key();
            if frontier.is_some_and(|f| end > f) {
                break;
            }
            let mut keys: Vec<_> = entry.remove().into_iter().collect();
            self.keys_hint = keys.len();
            keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            let start = end - self.size_ms;
            for (key, acc) in keys {
                self.heap -= acc.heap_bytes();
                out.push(acc.row(key, start, end, &self.stats));
            }
        }
    }
}
