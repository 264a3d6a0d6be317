//! Hopping windows of `size` every `slide` (size a multiple of slide), kept
//! as slide-sized panes: a reading updates one pane, and a window is its
//! panes combined when it is emitted.

use std::collections::BTreeMap;

use hashbrown::HashMap;

use super::acc::{Acc, Extra, Extras};
use super::tumbling::{each, Kept};
use crate::reading::{KeyRef, Reading, SensorKey, WindowAggregate as Aggregate};
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
    /// Every window ending at or before this was emitted (before a restart,
    /// or here).
    emitted_through: u64,
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

    /// Ignores what windows ending before `frontier` hold: after a restart
    /// from a checkpoint at `frontier`, they were emitted already.
    pub fn resume_at(&mut self, frontier: u64) {
        each!(&mut self.0, s => s.emitted_through = frontier.saturating_sub(1) / s.slide_ms * s.slide_ms)
    }

    /// Adds a reading to its pane.
    pub fn insert(&mut self, reading: &Reading) {
        each!(&mut self.0, s => s.insert(reading))
    }

    /// The end of the next window to emit, if any holds readings.
    pub fn earliest_end(&self) -> Option<u64> {
        each!(&self.0, s => s.earliest_end())
    }

    /// Emits every window that ends at or before `frontier` (every one when
    /// `None`: the input has ended), by window end, then device, then
    /// sensor, and drops the panes no later window covers.
    pub fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>) {
        each!(&mut self.0, s => s.flush_until(frontier, out))
    }

    /// Discards every pane (a stop) and returns how many (pane, key)
    /// aggregates were dropped.
    pub fn discard(&mut self) -> usize {
        each!(&mut self.0, s => {
            s.heap = 0;
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
            heap: 0,
        }
    }

    fn insert(&mut self, reading: &Reading) {
        let pane = reading.time - reading.time % self.slide_ms + self.slide_ms;
        // The last window that covers the pane ends here.
        if pane + self.size_ms - self.slide_ms <= self.emitted_through {
            return;
        }
        let keys = self.panes.entry(pane).or_default();
        match keys.get_mut(&KeyRef::new(&reading.device, &reading.sensor)) {
            Some(acc) => {
                let before = acc.heap_bytes();
                acc.add(reading, self.sketch);
                self.heap += acc.heap_bytes() - before;
            }
            None => {
                let acc = Acc::new(reading, self.sketch);
                self.heap += acc.heap_bytes();
                keys.insert(reading.key(), acc);
            }
        }
    }

    fn earliest_end(&self) -> Option<u64> {
        let first = *self.panes.keys().next()?;
        Some(first.max(self.emitted_through + self.slide_ms))
    }

    fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>) {
        while let Some(end) = self.earliest_end() {
            if frontier.is_some_and(|f| end > f) {
                break;
            }
            self.emit(end, out);
            self.emitted_through = end;
            // A pane ending at or before `end - size + slide` is covered by
            // no window after `end`.
            let keep_from = (end + self.slide_ms).saturating_sub(self.size_ms);
            while self
                .panes
                .first_key_value()
                .is_some_and(|(p, _)| *p <= keep_from)
            {
                if let Some((_, pane)) = self.panes.pop_first() {
                    self.heap -= pane.values().map(Acc::heap_bytes).sum::<usize>();
                }
            }
        }
    }

    /// Appends the window ending at `end`: its panes combined, per key.
    fn emit(&self, end: u64, out: &mut Vec<Aggregate>) {
        let from = end.saturating_sub(self.size_ms);
        let mut keys: HashMap<&SensorKey, Acc<X>> = HashMap::new();
        for (_, pane) in self.panes.range(from + 1..=end) {
            for (key, acc) in pane {
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
        out.extend(
            keys.into_iter()
                .map(|(key, acc)| acc.row(key.clone(), from, end, &self.stats)),
        );
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
