//! Tumbling windows `[k·size, (k+1)·size)` per (device, sensor): the open
//! windows of one worker ([`WindowState`]), each with its per-key
//! aggregates, and with an allowed lateness the emitted windows late
//! readings still correct (see [`super::late`]).

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::acc::{add_to, Acc, Extra, Extras};
use super::late::{Lateness, Next};
use crate::reading::{Reading, SensorKey, WindowAggregate as Aggregate};
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
    /// Emitted windows whose end plus the allowed lateness the frontier has
    /// not passed, by end.
    closed: BTreeMap<u64, HashMap<SensorKey, Acc<X>>>,
    /// After a restart from a checkpoint at this frontier, readings of
    /// windows that ended (and whose lateness passed) before it are
    /// ignored.
    floor: u64,
    late: Lateness,
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

    /// Windows that take late readings for `allowed_ms` after their end
    /// (see [`WindowState::insert_late`]).
    pub fn with_lateness(mut self, allowed_ms: u64) -> Self {
        each!(&mut self.0, s => s.late = Lateness::new(allowed_ms));
        self
    }

    /// After a restart from a checkpoint at `frontier`: what was emitted
    /// before it is rebuilt from the re-read input, not emitted again.
    pub fn resume_at(&mut self, frontier: u64) {
        each!(&mut self.0, s => {
            s.floor = frontier;
            s.late.suppress_before = frontier;
        })
    }

    /// Takes a late reading, judged behind watermark `wm`: it is applied
    /// when the frontier reaches `wm`, and corrects its window if that was
    /// emitted and its end plus the allowed lateness is ahead of `wm`.
    pub fn insert_late(&mut self, wm: u64, reading: Reading) {
        each!(&mut self.0, s => s.late.push(wm, reading))
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

    /// The end of the earliest open window, or the watermark of the
    /// earliest late reading waiting.
    pub fn earliest_end(&self) -> Option<u64> {
        each!(&self.0, s => s.open.keys().next().copied().into_iter().chain(s.late.earliest()).min())
    }

    /// Closes every window that ends at or before `frontier` (every window
    /// when `None`: the input has ended) and appends their aggregates to
    /// `out`, by window end, then device, then sensor; applies the late
    /// readings judged behind a watermark up to `frontier`, appending the
    /// corrections they make.
    pub fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>) {
        let mut timed = Vec::new();
        self.flush_timed(frontier, &mut timed);
        out.extend(timed.into_iter().map(|(_, row)| row));
    }

    /// [`WindowState::flush_until`], each row with the time it was made
    /// at: its window's end, or the watermark of the late readings that
    /// made it.
    pub(crate) fn flush_timed(&mut self, frontier: Option<u64>, out: &mut Vec<(u64, Aggregate)>) {
        each!(&mut self.0, s => s.flush_timed(frontier, out))
    }
}

impl<X: Extra> Tumbling<X> {
    fn new(size_ms: u64, stats: Stats) -> Self {
        Tumbling {
            size_ms,
            sketch: stats.has_percentiles(),
            stats,
            open: BTreeMap::new(),
            closed: BTreeMap::new(),
            floor: 0,
            late: Lateness::default(),
            heap: 0,
            keys_hint: 0,
        }
    }

    /// The end of the window of event time `t`.
    fn end_of(&self, t: u64) -> u64 {
        t - t % self.size_ms + self.size_ms
    }

    fn discard(&mut self) -> usize {
        self.heap = 0;
        self.late.discard();
        self.closed.clear();
        std::mem::take(&mut self.open)
            .values()
            .map(HashMap::len)
            .sum()
    }

    fn footprint(&self) -> (usize, usize) {
        let maps = || self.open.values().chain(self.closed.values());
        let entries: usize = maps().map(HashMap::len).sum();
        let capacity: usize = maps().map(HashMap::capacity).sum();
        let per_entry = std::mem::size_of::<(SensorKey, Acc<X>)>() + 1;
        let per_window = std::mem::size_of::<(u64, HashMap<SensorKey, Acc<X>>)>();
        let windows = self.open.len() + self.closed.len();
        let late = self.late.len() * std::mem::size_of::<(u64, SensorKey, u32)>();
        (
            entries,
            capacity * per_entry + windows * per_window + self.heap + late,
        )
    }

    fn insert(&mut self, reading: &Reading) {
        let end = self.end_of(reading.time);
        if end + self.late.allowed_ms < self.floor {
            return;
        }
        let hint = self.keys_hint;
        let window = self
            .open
            .entry(end)
            .or_insert_with(|| HashMap::with_capacity(hint));
        self.heap += add_to(window, reading, self.sketch);
    }

    fn flush_timed(&mut self, frontier: Option<u64>, out: &mut Vec<(u64, Aggregate)>) {
        while let Some(next) = self.late.next(self.open.keys().next().copied(), frontier) {
            match next {
                Next::End(end) => self.emit(end, out),
                Next::Late(wm) => self.apply_late(wm, out),
            }
        }
        let allowed = self.late.allowed_ms;
        let expired = |end: &u64| frontier.is_none_or(|f| end + allowed <= f);
        while let Some(entry) = self.closed.first_entry().filter(|e| expired(e.key())) {
            self.heap -= entry.remove().values().map(Acc::heap_bytes).sum::<usize>();
        }
        self.late.prune(frontier);
    }

    /// Emits the windows ending at `end`, by device and sensor.
    fn emit(&mut self, end: u64, out: &mut Vec<(u64, Aggregate)>) {
        let window = self.open.remove(&end).expect("the first open window");
        self.keys_hint = window.len();
        let mut keys: Vec<_> = window.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let start = end - self.size_ms;
        for (key, acc) in keys {
            self.late
                .send(end, acc.row(key.clone(), start, end, &self.stats), out);
            self.late.emitted(end, key);
        }
        match self.late.allowed_ms {
            0 => self.heap -= window.values().map(Acc::heap_bytes).sum::<usize>(),
            _ => {
                self.closed.insert(end, window);
            }
        }
    }

    /// Applies the late readings judged behind `wm`, and emits a
    /// correction of each window they changed.
    fn apply_late(&mut self, wm: u64, out: &mut Vec<(u64, Aggregate)>) {
        let mut changed = BTreeSet::new();
        for reading in self.late.take(wm) {
            let end = self.end_of(reading.time);
            if end > wm {
                // Not emitted yet: the reading is in its first emission.
                self.heap += add_to(self.open.entry(end).or_default(), &reading, self.sketch);
            } else if self.late.open_at(end, wm) {
                self.heap += add_to(self.closed.entry(end).or_default(), &reading, self.sketch);
                changed.insert((end, reading.key()));
            }
        }
        for (end, key) in changed {
            let mut row =
                self.closed[&end][&key].row(key.clone(), end - self.size_ms, end, &self.stats);
            row.revision = self.late.revision(end, &key);
            self.late.send(wm, row, out);
        }
    }
}
