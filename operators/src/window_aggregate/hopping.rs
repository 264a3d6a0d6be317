//! Hopping windows of `size` every `slide` (size a multiple of slide), kept
//! as slide-sized panes: a reading updates one pane, and a window is its
//! panes combined when it is emitted.

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::HashMap;

use super::acc::{add_to, Acc, Extra, Extras};
use super::late::{Lateness, Next};
use super::tumbling::{each, Kept};
use crate::reading::{Reading, SensorKey, WindowAggregate as Aggregate};
use crate::record::Stats;

/// The open panes of one worker's hopping windows.
///
/// The window ending at `E` covers `[E - size, E)`: the panes ending in
/// `(E - size, E]`. Every window that holds at least one reading is
/// emitted, once the frontier reaches its end, in order of end, then
/// device, then sensor. A pane is dropped once the last window that covers
/// it is emitted.
#[derive(Clone, Debug)]
pub struct Panes(Kept<PaneSet<()>, PaneSet<Extras>>);

/// The panes, with `X` kept per key for extra statistics.
#[derive(Clone, Debug)]
struct PaneSet<X> {
    size_ms: u64,
    slide_ms: u64,
    /// The statistics of the rows.
    stats: Stats,
    /// Whether a sketch is kept (some percentile is computed).
    sketch: bool,
    /// Panes by end time, each with its per-key aggregates.
    panes: BTreeMap<u64, HashMap<SensorKey, Acc<X>>>,
    /// Every window ending at or before this was emitted.
    emitted_through: u64,
    /// After a restart from a checkpoint at this frontier, readings only in
    /// windows that ended (and whose lateness passed) before it are ignored.
    floor: u64,
    late: Lateness,
    /// Bytes the panes' aggregates hold on the heap.
    heap: usize,
}

impl Panes {
    /// Empty panes for windows of `size_ms` every `slide_ms`, with the basic
    /// statistics.
    ///
    /// # Panics
    /// If `slide_ms` is 0 or does not divide `size_ms` (config validation
    /// rejects both first).
    ///
    /// # Examples
    /// Windows of 30 s every 10 s, over two readings 20 s apart.
    /// ```
    /// use weir_operators::window_aggregate::Panes;
    /// use weir_operators::Reading;
    ///
    /// const B: u64 = 1_000_000;
    /// let mut panes = Panes::new(30_000, 10_000);
    /// panes.insert(&Reading::new("d1", "temp", B + 5_000, 1.0, 0, 0));
    /// panes.insert(&Reading::new("d1", "temp", B + 25_000, 3.0, 0, 1));
    /// let mut out = Vec::new();
    /// panes.flush_until(None, &mut out);
    /// let rows: Vec<_> = out.iter().map(|w| (w.window_start, w.window_end, w.count, w.sum)).collect();
    /// assert_eq!(rows, vec![
    ///     (B - 20_000, B + 10_000, 1, 1.0),
    ///     (B - 10_000, B + 20_000, 1, 1.0),
    ///     (B, B + 30_000, 2, 4.0),
    ///     (B + 10_000, B + 40_000, 1, 3.0),
    ///     (B + 20_000, B + 50_000, 1, 3.0),
    /// ]);
    /// ```
    pub fn new(size_ms: u64, slide_ms: u64) -> Self {
        Panes::with_stats(size_ms, slide_ms, Stats::basic())
    }

    /// Empty panes for windows of `size_ms` every `slide_ms` whose rows
    /// carry `stats`. A window's extra statistics come from its panes'
    /// states merged, and equal those of its readings aggregated at once
    /// (percentiles and first and last values exactly).
    ///
    /// # Panics
    /// As [`Panes::new`].
    pub fn with_stats(size_ms: u64, slide_ms: u64, stats: Stats) -> Self {
        assert!(
            slide_ms > 0 && size_ms % slide_ms == 0,
            "the slide must divide the window size"
        );
        Panes(match stats.is_basic() {
            true => Kept::Basic(PaneSet::new(size_ms, slide_ms, stats)),
            false => Kept::Extended(PaneSet::new(size_ms, slide_ms, stats)),
        })
    }

    /// Windows that take late readings for `allowed_ms` after their end
    /// (see [`Panes::insert_late`]).
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
    /// when the frontier reaches `wm`, and corrects each of its windows
    /// that was emitted and whose end plus the allowed lateness is ahead
    /// of `wm`.
    pub fn insert_late(&mut self, wm: u64, reading: Reading) {
        each!(&mut self.0, s => s.late.push(wm, reading))
    }

    /// Adds a reading to its pane.
    pub fn insert(&mut self, reading: &Reading) {
        each!(&mut self.0, s => s.insert(reading))
    }

    /// The end of the next window to emit, or the watermark of the earliest
    /// late reading waiting.
    pub fn earliest_end(&self) -> Option<u64> {
        each!(&self.0, s => s.next_end().into_iter().chain(s.late.earliest()).min())
    }

    /// Emits every window that ends at or before `frontier` (every one when
    /// `None`: the input has ended), by window end, then device, then
    /// sensor; applies the late readings judged behind a watermark up to
    /// `frontier`, appending the corrections they make; and drops the panes
    /// no later window or correction needs.
    pub fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>) {
        let mut timed = Vec::new();
        self.flush_timed(frontier, &mut timed);
        out.extend(timed.into_iter().map(|(_, row)| row));
    }

    /// [`Panes::flush_until`], each row with the time it was made at: its
    /// window's end, or the watermark of the late readings that made it.
    pub(crate) fn flush_timed(&mut self, frontier: Option<u64>, out: &mut Vec<(u64, Aggregate)>) {
        each!(&mut self.0, s => s.flush_timed(frontier, out))
    }

    /// Discards every pane (a stop) and returns how many (pane, key)
    /// aggregates were dropped.
    pub fn discard(&mut self) -> usize {
        each!(&mut self.0, s => {
            s.heap = 0;
            s.late.discard();
            std::mem::take(&mut s.panes).values().map(HashMap::len).sum()
        })
    }

    /// The (pane, key) aggregates held, and an estimate of their bytes.
    pub fn footprint(&self) -> (usize, usize) {
        each!(&self.0, s => s.footprint())
    }
}

impl<X: Extra> PaneSet<X> {
    fn new(size_ms: u64, slide_ms: u64, stats: Stats) -> Self {
        PaneSet {
            size_ms,
            slide_ms,
            sketch: stats.has_percentiles(),
            stats,
            panes: BTreeMap::new(),
            emitted_through: 0,
            floor: 0,
            late: Lateness::default(),
            heap: 0,
        }
    }

    /// The end of the pane of event time `t`.
    fn pane_of(&self, t: u64) -> u64 {
        t - t % self.slide_ms + self.slide_ms
    }

    fn insert(&mut self, reading: &Reading) {
        let pane = self.pane_of(reading.time);
        // The last window that covers the pane ends here.
        if pane + self.size_ms - self.slide_ms + self.late.allowed_ms < self.floor {
            return;
        }
        self.heap += add_to(self.panes.entry(pane).or_default(), reading, self.sketch);
    }

    /// The end of the next window to emit, if any holds readings: the
    /// first pane a window after the last one emitted covers (panes kept
    /// for corrections only are covered by none).
    fn next_end(&self) -> Option<u64> {
        let next = self.emitted_through + self.slide_ms;
        let covered = next.saturating_sub(self.size_ms) + 1;
        let first = *self.panes.range(covered..).next()?.0;
        Some(first.max(next))
    }

    fn flush_timed(&mut self, frontier: Option<u64>, out: &mut Vec<(u64, Aggregate)>) {
        while let Some(next) = self.late.next(self.next_end(), frontier) {
            match next {
                Next::End(end) => {
                    for (key, row) in self.window(end, None) {
                        self.late.send(end, row, out);
                        self.late.emitted(end, &key);
                    }
                    self.emitted_through = end;
                }
                Next::Late(wm) => self.apply_late(wm, out),
            }
        }
        // A pane's last window ends `size - slide` after it.
        let keep = self.size_ms - self.slide_ms + self.late.allowed_ms;
        let done = |p: &u64| frontier.is_none_or(|f| p + keep <= f);
        while let Some(entry) = self.panes.first_entry().filter(|e| done(e.key())) {
            self.heap -= entry.remove().values().map(Acc::heap_bytes).sum::<usize>();
        }
        self.late.prune(frontier);
    }

    /// Applies the late readings judged behind `wm` to their panes, and
    /// emits a correction of each emitted window they changed.
    fn apply_late(&mut self, wm: u64, out: &mut Vec<(u64, Aggregate)>) {
        let mut changed = BTreeSet::new();
        for reading in self.late.take(wm) {
            let pane = self.pane_of(reading.time);
            self.heap += add_to(self.panes.entry(pane).or_default(), &reading, self.sketch);
            let last = pane + self.size_ms - self.slide_ms;
            for end in (pane..=last.min(self.emitted_through)).step_by(self.slide_ms as usize) {
                if self.late.open_at(end, wm) {
                    changed.insert((end, reading.key()));
                }
            }
        }
        for (end, key) in changed {
            for (key, mut row) in self.window(end, Some(&key)) {
                row.revision = self.late.revision(end, &key);
                self.late.send(wm, row, out);
            }
        }
    }

    /// The rows of the window ending at `end` (of `only` that key if
    /// given), by device and sensor: its panes combined, per key.
    fn window(&self, end: u64, only: Option<&SensorKey>) -> Vec<(SensorKey, Aggregate)> {
        let from = end.saturating_sub(self.size_ms);
        let mut keys: HashMap<&SensorKey, Acc<X>> = HashMap::new();
        for (_, pane) in self.panes.range(from + 1..=end) {
            for (key, acc) in pane {
                if only.is_some_and(|k| k != key) {
                    continue;
                }
                match keys.get_mut(key) {
                    Some(sum) => sum.merge(acc),
                    None => {
                        keys.insert(key, acc.clone());
                    }
                }
            }
        }
        let mut keys: Vec<_> = keys.into_iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        keys.into_iter()
            .map(|(key, acc)| (key.clone(), acc.row(key.clone(), from, end, &self.stats)))
            .collect()
    }

    fn footprint(&self) -> (usize, usize) {
        let entries: usize = self.panes.values().map(HashMap::len).sum();
        let capacity: usize = self.panes.values().map(HashMap::capacity).sum();
        let per_entry = std::mem::size_of::<(SensorKey, Acc<X>)>() + 1;
        let per_pane = std::mem::size_of::<(u64, HashMap<SensorKey, Acc<X>>)>();
        (
            entries,
            capacity * per_entry + self.panes.len() * per_pane + self.heap,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The README's definition, looped: the window ending at `E` (a multiple
    /// of the slide) holds the readings with `E - size <= t < E`; every
    /// window with a reading is emitted.
    fn reference(
        readings: &[Reading],
        size: u64,
        slide: u64,
    ) -> BTreeMap<(u64, String), (u64, f64, f64, f64)> {
        let mut windows = BTreeMap::new();
        for r in readings {
            let first_end = r.time - r.time % slide + slide;
            for end in (first_end..first_end + size).step_by(slide as usize) {
                let w = windows.entry((end, r.sensor.to_string())).or_insert((
                    0,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    0.0,
                ));
                w.0 += 1;
                w.1 = w.1.min(r.value);
                w.2 = w.2.max(r.value);
                w.3 += r.value;
            }
        }
        windows
    }

    #[test]
    fn hopping_windows_equal_the_definition_under_disorder_and_any_frontier_steps() {
        for seed in 1..20u64 {
            let mut next = crate::seeded(seed);
            let (size, slide) =
                [(30_000, 10_000), (60_000, 60_000), (60_000, 5_000)][seed as usize % 3];
            let base = 1_000_000_000;
            let mut readings: Vec<Reading> = (0..400)
                .map(|i| {
                    let sensor = ["a", "b", "c"][next(3) as usize];
                    let time = base + next(600_000);
                    Reading::new("d", sensor, time, next(1_000) as f64 / 10.0, 0, i)
                })
                .collect();
            let want = reference(&readings, size, slide);
            // Arrival order shuffled; the frontier advances in random steps
            // that never pass a reading not yet inserted.
            readings.sort_by_key(|r| r.time);
            let mut panes = Panes::new(size, slide);
            let mut out = Vec::new();
            let mut i = 0;
            while i < readings.len() {
                let n = 1 + next(40) as usize;
                let batch = &readings[i..(i + n).min(readings.len())];
                let mut shuffled: Vec<&Reading> = batch.iter().collect();
                shuffled.reverse();
                for r in shuffled {
                    panes.insert(r);
                }
                i += n;
                let frontier = readings.get(i).map(|r| r.time);
                panes.flush_until(frontier, &mut out);
            }
            panes.flush_until(None, &mut out);
            let got: BTreeMap<_, _> = out
                .iter()
                .map(|w| {
                    assert_eq!(w.window_end - w.window_start, size);
                    (
                        (w.window_end, w.sensor.to_string()),
                        (w.count, w.min, w.max, w.sum),
                    )
                })
                .collect();
            assert_eq!(got.len(), out.len(), "each window once (seed {seed})");
            assert_eq!(
                got.keys().collect::<Vec<_>>(),
                want.keys().collect::<Vec<_>>(),
                "seed {seed}"
            );
            for (key, w) in &want {
                let g = got[key];
                assert_eq!((g.0, g.1, g.2), (w.0, w.1, w.2), "seed {seed} {key:?}");
                assert!(
                    (g.3 - w.3).abs() <= 1e-9 * w.3.abs().max(1.0),
                    "seed {seed} {key:?}"
                );
            }
            // Emitted in order of window end.
            assert!(out.windows(2).all(|p| p[0].window_end <= p[1].window_end));
        }
    }

    /// A restart from a checkpoint at `F`: windows ending before `F` came
    /// from the first run; the resumed run re-reads from one window before
    /// `F` with `resume_at(F)`. Together they equal an uninterrupted run.
    #[test]
    fn resume_at_a_cut_equals_an_uninterrupted_run() {
        let (size, slide) = (30_000, 10_000);
        let base = 1_000_000_000;
        let mut next = crate::seeded(7);
        let readings: Vec<Reading> = (0..300)
            .map(|i| Reading::new("d", "s", base + next(300_000), next(100) as f64, 0, i))
            .collect();
        let run = |panes: &mut Panes, readings: &[&Reading]| {
            let mut out = Vec::new();
            for r in readings {
                panes.insert(r);
            }
            panes.flush_until(None, &mut out);
            out.into_iter()
                .map(|w| (w.window_end, w.count))
                .collect::<Vec<_>>()
        };
        let all: Vec<&Reading> = readings.iter().collect();
        let whole = run(&mut Panes::new(size, slide), &all);
        for cut in [base + 95_000, base + 100_000, base + 150_001] {
            let first: Vec<_> = whole
                .iter()
                .copied()
                .filter(|(end, _)| *end < cut)
                .collect();
            let mut resumed = Panes::new(size, slide);
            resumed.resume_at(cut);
            let reread: Vec<&Reading> = all
                .iter()
                .copied()
                .filter(|r| r.time + size >= cut)
                .collect();
            let second = run(&mut resumed, &reread);
            let joined: Vec<_> = first.into_iter().chain(second).collect();
            assert_eq!(joined, whole, "cut at {cut}");
        }
    }
}
