//! Tumbling windows `[k·size, (k+1)·size)` per (device, sensor), with
//! corrections by late readings when the output allows lateness.

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::late::{Lateness, Next};
use super::Acc;
use crate::reading::{KeyRef, Reading, SensorKey, WindowAggregate as Aggregate};

/// The windows of one worker: open ones by end, each with its per-key
/// aggregates, and with an allowed lateness those emitted and still
/// correctable. Plain data, so it can be encoded.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WindowState {
    size_ms: u64,
    /// Open windows by end time, each with its per-key aggregates.
    open: BTreeMap<u64, HashMap<SensorKey, Acc>>,
    /// Emitted windows whose end plus the allowed lateness the frontier has
    /// not passed, by end.
    closed: BTreeMap<u64, HashMap<SensorKey, Acc>>,
    /// After a restart from a checkpoint at this frontier, readings of
    /// windows that ended (and whose lateness passed) before it are
    /// ignored.
    floor: u64,
    late: Lateness,
    /// Keys of the latest window closed: a new window's map starts with
    /// room for as many, instead of growing (and rehashing) key by key.
    #[serde(skip)]
    keys_hint: usize,
}

impl WindowState {
    /// Empty state for windows of `size_ms` milliseconds.
    ///
    /// # Panics
    /// If `size_ms` is 0 (config validation rejects it first).
    pub fn new(size_ms: u64) -> Self {
        assert!(size_ms > 0, "window size must be positive");
        WindowState {
            size_ms,
            ..WindowState::default()
        }
    }

    /// Windows that take late readings for `allowed_ms` after their end
    /// (see [`WindowState::insert_late`]).
    pub fn with_lateness(mut self, allowed_ms: u64) -> Self {
        self.late = Lateness::new(allowed_ms);
        self
    }

    /// After a restart from a checkpoint at `frontier`: what was emitted
    /// before it is rebuilt from the re-read input, not emitted again.
    pub fn resume_at(&mut self, frontier: u64) {
        self.floor = frontier;
        self.late.suppress_before = frontier;
    }

    /// Discards every open window and late reading (a stop: they are not
    /// complete) and returns how many (window, key) aggregates were dropped.
    pub fn discard(&mut self) -> usize {
        self.late.discard();
        self.closed.clear();
        std::mem::take(&mut self.open)
            .values()
            .map(HashMap::len)
            .sum()
    }

    /// The (window, key) aggregates held, and an estimate of their bytes.
    pub fn footprint(&self) -> (usize, usize) {
        let maps = || self.open.values().chain(self.closed.values());
        let entries: usize = maps().map(HashMap::len).sum();
        let capacity: usize = maps().map(HashMap::capacity).sum();
        let per_entry = std::mem::size_of::<(SensorKey, Acc)>() + 1;
        let per_window = std::mem::size_of::<(u64, HashMap<SensorKey, Acc>)>();
        let late = self.late.len() * std::mem::size_of::<(u64, SensorKey, u32)>();
        let windows = self.open.len() + self.closed.len();
        (entries, capacity * per_entry + windows * per_window + late)
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> u64 {
        self.size_ms
    }

    /// The end of the window of event time `t`.
    fn end_of(&self, t: u64) -> u64 {
        t - t % self.size_ms + self.size_ms
    }

    /// Adds a reading to its window.
    pub fn insert(&mut self, reading: &Reading) {
        let end = self.end_of(reading.time);
        if end + self.late.allowed_ms < self.floor {
            return;
        }
        let hint = self.keys_hint;
        let window = self
            .open
            .entry(end)
            .or_insert_with(|| HashMap::with_capacity(hint));
        add(window, reading);
    }

    /// Takes a late reading, judged behind watermark `wm`: it is applied
    /// when the frontier reaches `wm`, and corrects its window if that was
    /// emitted and its end plus the allowed lateness is ahead of `wm`.
    pub fn insert_late(&mut self, wm: u64, reading: Reading) {
        self.late.push(wm, reading);
    }

    /// The end of the earliest open window, or the watermark of the
    /// earliest late reading waiting.
    pub fn earliest_end(&self) -> Option<u64> {
        let open = self.open.keys().next().copied();
        open.into_iter().chain(self.late.earliest()).min()
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
        while let Some(next) = self.late.next(self.open.keys().next().copied(), frontier) {
            match next {
                Next::End(end) => self.emit(end, out),
                Next::Late(wm) => self.apply_late(wm, out),
            }
        }
        let allowed = self.late.allowed_ms;
        match frontier {
            Some(f) => self.closed.retain(|end, _| end + allowed > f),
            None => self.closed.clear(),
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
            self.late.send(end, acc.row(key, start, end, 0), out);
            self.late.emitted(end, key);
        }
        if self.late.allowed_ms > 0 {
            self.closed.insert(end, window);
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
                add(self.open.entry(end).or_default(), &reading);
            } else if self.late.open_at(end, wm) {
                add(self.closed.entry(end).or_default(), &reading);
                changed.insert((end, reading.key()));
            }
        }
        for (end, key) in changed {
            let acc = self.closed[&end][&key];
            let revision = self.late.revision(end, &key);
            self.late
                .send(wm, acc.row(&key, end - self.size_ms, end, revision), out);
        }
    }
}

/// Adds `reading` to its key's aggregate in `window`, cloning the key only
/// for a new sensor.
fn add(window: &mut HashMap<SensorKey, Acc>, reading: &Reading) {
    match window.get_mut(&KeyRef::new(&reading.device, &reading.sensor)) {
        Some(acc) => acc.add(reading.value),
        None => {
            window.insert(reading.key(), Acc::new(reading.value));
        }
    }
}
