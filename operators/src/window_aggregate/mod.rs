//! Tumbling event-time windows per (device, sensor): count, min, max, sum, mean.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::Stream;

use crate::checkpoint::Marker;
use crate::metrics::GaugeShare;
use crate::reading::{KeyRef, Reading, SensorKey, WindowAggregate as Aggregate};
use crate::run::{stateful, Env, Participant, Run, Side, StatefulLogic};

mod hopping;
mod session;

pub use hopping::Panes;
pub use session::{SessionPart, Sessions};

/// Running aggregate of one open window. The sum is compensated (Neumaier),
/// so it barely depends on the order values arrive in.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Acc {
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    compensation: f64,
}

impl Acc {
    pub(crate) fn new(value: f64) -> Self {
        Acc {
            count: 1,
            min: value,
            max: value,
            sum: value,
            compensation: 0.0,
        }
    }

    pub(crate) fn add(&mut self, value: f64) {
        self.count += 1;
        // Ties between 0.0 and -0.0 are broken by sign, not by arrival order.
        if value < self.min || (value == self.min && value.is_sign_negative()) {
            self.min = value;
        }
        if value > self.max || (value == self.max && value.is_sign_positive()) {
            self.max = value;
        }
        let t = self.sum + value;
        self.compensation += if self.sum.abs() >= value.abs() {
            (self.sum - t) + value
        } else {
            (value - t) + self.sum
        };
        self.sum = t;
    }

    /// Adds the readings `other` aggregates (a pane of a hopping window).
    pub(crate) fn merge(&mut self, other: &Acc) {
        self.count += other.count;
        if other.min < self.min || (other.min == self.min && other.min.is_sign_negative()) {
            self.min = other.min;
        }
        if other.max > self.max || (other.max == self.max && other.max.is_sign_positive()) {
            self.max = other.max;
        }
        let value = other.sum;
        let t = self.sum + value;
        self.compensation += if self.sum.abs() >= value.abs() {
            (self.sum - t) + value
        } else {
            (value - t) + self.sum
        };
        self.compensation += other.compensation;
        self.sum = t;
    }
}

/// The open windows of one worker: plain data, so a checkpoint can snapshot it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WindowState {
    size_ms: u64,
    /// Open windows by end time, each with its per-key aggregates.
    open: BTreeMap<u64, HashMap<SensorKey, Acc>>,
    /// Windows ending before this time were emitted before a restart:
    /// their readings are ignored.
    floor: u64,
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
            open: BTreeMap::new(),
            floor: 0,
            keys_hint: 0,
        }
    }

    /// Ignores readings of windows that end before `frontier`: after a
    /// restart from a checkpoint at `frontier`, they were already emitted.
    pub fn resume_at(&mut self, frontier: u64) {
        self.floor = frontier;
    }

    /// Discards every open window (a stop: they are not complete) and
    /// returns how many (window, key) aggregates were dropped.
    pub fn discard(&mut self) -> usize {
        std::mem::take(&mut self.open)
            .values()
            .map(HashMap::len)
            .sum()
    }

    /// The (window, key) aggregates held, and an estimate of their bytes.
    pub fn footprint(&self) -> (usize, usize) {
        let entries: usize = self.open.values().map(HashMap::len).sum();
        let capacity: usize = self.open.values().map(HashMap::capacity).sum();
        let per_entry = std::mem::size_of::<(SensorKey, Acc)>() + 1;
        let per_window = std::mem::size_of::<(u64, HashMap<SensorKey, Acc>)>();
        (entries, capacity * per_entry + self.open.len() * per_window)
    }

    /// Window size in milliseconds.
    pub fn size_ms(&self) -> u64 {
        self.size_ms
    }

    /// Adds a reading to its window.
    pub fn insert(&mut self, reading: &Reading) {
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
            Some(acc) => acc.add(reading.value),
            None => {
                window.insert(reading.key(), Acc::new(reading.value));
            }
        }
    }

    /// The end of the earliest open window.
    pub fn earliest_end(&self) -> Option<u64> {
        self.open.keys().next().copied()
    }

    /// Closes every window that ends at or before `frontier` (every window
    /// when `None`: the input has ended) and appends their aggregates to
    /// `out`, by window end, then device, then sensor.
    pub fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>) {
        while let Some(entry) = self.open.first_entry() {
            let end = *entry.key();
            if frontier.is_some_and(|f| end > f) {
                break;
            }
            let mut keys: Vec<_> = entry.remove().into_iter().collect();
            self.keys_hint = keys.len();
            keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            out.extend(keys.into_iter().map(|(key, acc)| Aggregate {
                device: key.device,
                sensor: key.sensor,
                window_start: end - self.size_ms,
                window_end: end,
                count: acc.count,
                min: acc.min,
                max: acc.max,
                sum: acc.sum + acc.compensation,
            }));
        }
    }
}

/// Aggregates readings into tumbling event-time windows.
pub trait WindowAggregate<'scope> {
    /// Groups readings by (device, sensor) into tumbling windows
    /// `[k * size_ms, (k + 1) * size_ms)` of event time and emits one
    /// [`WindowAggregate`](crate::reading::WindowAggregate) record per key and window.
    ///
    /// Readings are exchanged by key. A window is emitted once the input
    /// frontier reaches its end, at timely time `window_end`, so every reading
    /// of the window has arrived; windows close in order of their end, and
    /// within one close by device and sensor. When the input ends, every
    /// open window is emitted; when the run stops instead (a signal, a
    /// pipeline error), open windows are not complete and are dropped, never
    /// written as if complete (with checkpoints they are rebuilt after the
    /// restart). Output depends only on the input readings.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use weir_operators::{Env, Reading, WindowAggregateOp};
    ///
    /// let readings = vec![
    ///     Reading::new("d1", "temp", 59_999, 10.0, 0, 0),
    ///     Reading::new("d1", "temp", 0, 20.0, 0, 1),
    ///     Reading::new("d1", "temp", 60_000, 30.0, 0, 2), // next window
    /// ];
    /// let captured = timely::example(move |scope| {
    ///     let env = Env::standalone(scope);
    ///     readings.to_stream(scope).window_aggregate(60_000, &env).stream.capture()
    /// });
    /// let windows: Vec<_> = captured.iter().flat_map(|e| match e { Event::Messages(_, d) => d, Event::Progress(_) => vec![] }).collect();
    /// let summary: Vec<_> = windows.iter().map(|w| (w.window_start, w.count, w.min, w.max, w.mean())).collect();
    /// assert_eq!(summary, vec![(0, 2, 10.0, 20.0, 15.0), (60_000, 1, 30.0, 30.0, 30.0)]);
    /// ```
    fn window_aggregate(self, size_ms: u64, env: &Env<'scope>) -> Windows<'scope>;

    /// Windows of `kind`, per (device, sensor), emitted as
    /// [`window_aggregate`](WindowAggregate::window_aggregate) emits
    /// tumbling ones: each once the input frontier reaches its end, at
    /// timely time `window_end`. Hopping windows are kept as slide-sized
    /// panes (see [`Panes`]): a reading updates one pane.
    fn windows(self, kind: WindowKind, env: &Env<'scope>) -> Windows<'scope>;
}

/// A stream of window rows, with the kind of its windows: what window rules
/// and sinks of windows take.
#[derive(Clone)]
pub struct Windows<'scope> {
    /// The window rows, each at timely time `window_end`.
    pub stream: Stream<'scope, u64, Vec<Aggregate>>,
    /// Which windows the rows are of.
    pub kind: WindowKind,
}

impl Windows<'_> {
    /// The size of tumbling windows; `None` for other kinds.
    pub fn tumbling(&self) -> Option<u64> {
        match self.kind {
            WindowKind::Tumbling { size_ms } => Some(size_ms),
            _ => None,
        }
    }
}

/// Which windows a window operator computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    /// `[k * size, (k + 1) * size)`: each reading in one window.
    Tumbling {
        /// Window size, ms.
        size_ms: u64,
    },
    /// `[k * slide - size, k * slide)` for every `k` whose window holds a
    /// reading: each reading in `size / slide` windows.
    Hopping {
        /// Window size, ms (a multiple of `slide_ms`).
        size_ms: u64,
        /// Time between two window ends, ms.
        slide_ms: u64,
    },
    /// Per key, a run of readings each less than `gap_ms` after the one
    /// before, as the window `[first, last + gap)` (see [`Sessions`]).
    Session {
        /// The gap that ends a session, ms.
        gap_ms: u64,
    },
}

impl WindowKind {
    /// How much event time before a checkpoint's frontier the sources
    /// re-read after a restart, to rebuild the open windows: a window's
    /// size; nothing for sessions, which checkpoints hold.
    fn history_ms(&self) -> u64 {
        match *self {
            WindowKind::Tumbling { size_ms } | WindowKind::Hopping { size_ms, .. } => size_ms,
            WindowKind::Session { .. } => 0,
        }
    }
}

impl<'scope> WindowAggregate<'scope> for Stream<'scope, u64, Vec<Reading>> {
    fn window_aggregate(self, size_ms: u64, env: &Env<'scope>) -> Windows<'scope> {
        self.windows(WindowKind::Tumbling { size_ms }, env)
    }

    fn windows(self, kind: WindowKind, env: &Env<'scope>) -> Windows<'scope> {
        let stream = match kind {
            WindowKind::Tumbling { size_ms } => {
                window_stream(self, WindowState::new(size_ms), kind, env)
            }
            WindowKind::Hopping { size_ms, slide_ms } => {
                window_stream(self, Panes::new(size_ms, slide_ms), kind, env)
            }
            WindowKind::Session { gap_ms } => window_stream(self, Sessions::new(gap_ms), kind, env),
        };
        Windows { stream, kind }
    }
}

/// The state of open windows: tumbling windows, the panes of hopping ones,
/// or sessions.
trait WindowStore: 'static {
    /// The part of checkpoints this state writes, if checkpoints hold it
    /// (else a restart rebuilds it from re-read history).
    type Part: Serialize + serde::de::DeserializeOwned;
    /// Whether checkpoints hold this state.
    const CHECKPOINTED: bool = false;
    fn snapshot(&self) -> Option<Self::Part> {
        None
    }
    fn restore(
        &mut self,
        _parts: Vec<Self::Part>,
        _owns: &dyn Fn(&SensorKey) -> bool,
    ) -> Result<(), String> {
        Ok(())
    }
    fn resume_at(&mut self, frontier: u64);
    fn insert(&mut self, reading: &Reading);
    fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>);
    fn discard(&mut self) -> usize;
    fn earliest_end(&self) -> Option<u64>;
    fn footprint(&self) -> (usize, usize);
}

macro_rules! window_store {
    ($t:ty $(, $part:ty, $snapshot:ident, $restore:ident)?) => {
        impl WindowStore for $t {
            window_store!(@part $($part, $snapshot, $restore)?);
            fn resume_at(&mut self, frontier: u64) {
                <$t>::resume_at(self, frontier)
            }
            fn insert(&mut self, reading: &Reading) {
                <$t>::insert(self, reading)
            }
            fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>) {
                <$t>::flush_until(self, frontier, out)
            }
            fn discard(&mut self) -> usize {
                <$t>::discard(self)
            }
            fn earliest_end(&self) -> Option<u64> {
                <$t>::earliest_end(self)
            }
            fn footprint(&self) -> (usize, usize) {
                <$t>::footprint(self)
            }
        }
    };
    (@part) => {
        type Part = ();
    };
    (@part $part:ty, $snapshot:ident, $restore:ident) => {
        type Part = $part;
        const CHECKPOINTED: bool = true;
        fn snapshot(&self) -> Option<$part> {
            Some(self.$snapshot())
        }
        fn restore(&mut self, parts: Vec<$part>, owns: &dyn Fn(&SensorKey) -> bool) -> Result<(), String> {
            self.$restore(parts, owns)
        }
    };
}
window_store!(WindowState);
window_store!(Panes);
window_store!(Sessions, SessionPart, snapshot, restore);

/// The window operator over `state`, of windows of `kind`: readings
/// exchanged by key, state resumed at the restored frontier (and restored
/// from the checkpoint, if checkpoints hold it).
fn window_stream<'scope, S: WindowStore>(
    readings: Stream<'scope, u64, Vec<Reading>>,
    mut state: S,
    kind: WindowKind,
    env: &Env<'scope>,
) -> Stream<'scope, u64, Vec<Aggregate>> {
    env.keep_history(kind.history_ms());
    let run = env.run().clone();
    let participant = S::CHECKPOINTED.then(|| env.participant("windows").0);
    if let Some(frontier) = env.restored_frontier() {
        state.resume_at(frontier);
        if let Some(participant) = &participant {
            let parts = env.restored::<S::Part>(participant.op());
            let (worker, peers) = (
                readings.scope().index() as u64,
                readings.scope().peers() as u64,
            );
            let owns =
                |k: &SensorKey| SensorKey::route_hash(&k.device, &k.sensor) % peers == worker;
            if let Err(e) = state.restore(parts, &owns) {
                run.control.add_error(e);
            }
        }
    }
    let markers = env.markers();
    // With one worker, routing by key is a no-op: skip the exchange.
    if readings.scope().peers() == 1 {
        window_operator(readings, markers, Pipeline, state, participant, run)
    } else {
        let pact = Exchange::new(|r: &Reading| r.route);
        window_operator(readings, markers, pact, state, participant, run)
    }
}

fn window_operator<'scope, P, S>(
    stream: Stream<'scope, u64, Vec<Reading>>,
    markers: Stream<'scope, u64, Vec<Marker>>,
    pact: P,
    state: S,
    participant: Option<Participant>,
    run: Run,
) -> Stream<'scope, u64, Vec<Aggregate>>
where
    P: ParallelizationContract<u64, Vec<Reading>>,
    S: WindowStore,
{
    use timely::dataflow::operators::vec::Map;
    let logic = WindowLogic {
        open: GaugeShare::new(&run.metrics.windows_open),
        bytes: GaugeShare::new(&run.metrics.window_state_bytes),
        state,
        participant,
        run: run.clone(),
    };
    let side = markers.map(Side::Marker);
    stateful("WindowAggregate", stream, pact, side, run, logic)
}

/// The window operator's logic: windows close as the frontier passes their
/// end, each sent at its end time.
struct WindowLogic<S> {
    state: S,
    /// Where the state goes at checkpoints, if checkpoints hold it.
    participant: Option<Participant>,
    run: Run,
    open: GaugeShare,
    bytes: GaugeShare,
}

impl<S: WindowStore> StatefulLogic<Reading, Aggregate> for WindowLogic<S> {
    type Side = ();

    fn take(&mut self, batch: &mut Vec<Reading>) -> bool {
        for reading in batch.iter() {
            self.state.insert(reading);
        }
        batch.clear();
        true
    }

    fn advance(&mut self, until: Option<u64>, out: &mut Vec<Aggregate>) {
        let before = out.len();
        self.state.flush_until(until, out);
        self.run.metrics.windows.inc_by((out.len() - before) as u64);
    }

    fn checkpoint(&mut self, marker: Marker) {
        if let (Some(participant), Some(part)) = (&self.participant, self.state.snapshot()) {
            participant.write(&marker, &part, Vec::new());
        }
    }

    fn discard(&mut self) {
        let dropped = self.state.discard();
        if dropped > 0 {
            self.run.metrics.windows_left_open.inc_by(dropped as u64);
            tracing::info!(
                dropped,
                "Stopped: open windows are not complete and are not written"
            );
        }
    }

    fn earliest(&self, _frontier: Option<u64>) -> Option<u64> {
        self.state.earliest_end()
    }

    fn time_of(window: &Aggregate) -> u64 {
        window.window_end
    }

    fn report(&mut self, _frontier: Option<u64>) {
        // A walk over the open windows, not their keys.
        let (n, b) = self.state.footprint();
        self.open.set(n);
        self.bytes.set(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flush(
        state: &mut WindowState,
        frontier: Option<u64>,
    ) -> Vec<(String, u64, u64, f64, f64, f64)> {
        let mut out = Vec::new();
        state.flush_until(frontier, &mut out);
        out.into_iter()
            .map(|w| {
                (
                    w.sensor.to_string(),
                    w.window_start,
                    w.count,
                    w.min,
                    w.max,
                    w.sum,
                )
            })
            .collect()
    }

    #[test]
    fn window_boundaries_are_half_open() {
        let mut s = WindowState::new(1_000);
        for (t, v) in [
            (0, 1.0),
            (999, 2.0),
            (1_000, 3.0),
            (1_999, 4.0),
            (2_000, 5.0),
        ] {
            s.insert(&Reading::new("d", "t", t, v, 0, 0));
        }
        // Frontier 1999: only [0, 1000) has ended.
        assert_eq!(
            flush(&mut s, Some(1_999)),
            vec![("t".into(), 0, 2, 1.0, 2.0, 3.0)]
        );
        // Frontier 2000: [1000, 2000) has ended.
        assert_eq!(
            flush(&mut s, Some(2_000)),
            vec![("t".into(), 1_000, 2, 3.0, 4.0, 7.0)]
        );
        assert_eq!(
            flush(&mut s, None),
            vec![("t".into(), 2_000, 1, 5.0, 5.0, 5.0)]
        );
        assert_eq!(s.earliest_end(), None);
    }

    #[test]
    fn keys_are_separate_and_sorted() {
        let mut s = WindowState::new(1_000);
        s.insert(&Reading::new("d", "z", 5, 1.0, 0, 0));
        s.insert(&Reading::new("d", "a", 6, 2.0, 0, 1));
        s.insert(&Reading::new("d", "z", 7, 3.0, 0, 2));
        assert_eq!(
            flush(&mut s, None),
            vec![
                ("a".into(), 0, 1, 2.0, 2.0, 2.0),
                ("z".into(), 0, 2, 1.0, 3.0, 4.0)
            ]
        );
    }

    #[test]
    fn compensated_sum_does_not_lose_small_values() {
        let mut s = WindowState::new(1_000);
        s.insert(&Reading::new("d", "t", 0, 1e16, 0, 0));
        for i in 0..10 {
            s.insert(&Reading::new("d", "t", 1, 1.0, 0, i + 1));
        }
        s.insert(&Reading::new("d", "t", 2, -1e16, 0, 20));
        assert_eq!(flush(&mut s, None)[0].5, 10.0);
    }

    /// A restart from a checkpoint at a frontier `F`: windows that ended
    /// before `F` came from the first run, the rest from a run that re-reads
    /// the input from one window before `F` with `resume_at(F)`. Together
    /// they equal an uninterrupted run, for seeded inputs and several cuts.
    #[test]
    fn resume_at_a_cut_equals_an_uninterrupted_run() {
        const SIZE: u64 = 1_000;
        for seed in 1..10u64 {
            let mut x = seed;
            let mut next = || {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                x >> 33
            };
            // Readings of 3 devices, up to 300 ms out of order.
            let readings: Vec<Reading> = (0..400u64)
                .map(|i| {
                    let device = format!("d{}", next() % 3);
                    let time = (i * 25 + 300).saturating_sub(next() % 300);
                    Reading::new(&device, "t", time, (next() % 100) as f64, 0, i as i64)
                })
                .collect();
            let all = |state: &mut WindowState, readings: &[Reading]| {
                readings.iter().for_each(|r| state.insert(r));
                flush(state, None)
            };
            let expected = all(&mut WindowState::new(SIZE), &readings);
            for cut in [2_000, 4_000, 7_500] {
                // The first run: readings that arrived before the frontier
                // reached the cut (all earlier than it), windows before it.
                let mut first = WindowState::new(SIZE);
                let before: Vec<Reading> =
                    readings.iter().filter(|r| r.time < cut).cloned().collect();
                before.iter().for_each(|r| first.insert(r));
                let mut got: Vec<_> = flush(&mut first, Some(cut))
                    .into_iter()
                    .filter(|w| w.1 + SIZE < cut)
                    .collect();
                // The resumed run re-reads from one window before the cut.
                let mut resumed = WindowState::new(SIZE);
                resumed.resume_at(cut);
                let reread: Vec<Reading> = readings
                    .iter()
                    .filter(|r| r.time + SIZE >= cut)
                    .cloned()
                    .collect();
                got.extend(all(&mut resumed, &reread));
                got.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
                let mut want = expected.clone();
                want.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
                assert_eq!(got, want, "seed {seed}, cut {cut}");
            }
        }
    }

    /// A marker still on its way may be the last one of a stop (in a
    /// cluster, markers and the frontiers of other processes' sources travel
    /// on different connections): windows close no further than the markers
    /// have come, and after a last marker only as far as it.
    #[test]
    fn windows_close_no_further_than_the_markers() {
        use crate::checkpoint::Marker;
        use crate::run::Env;
        use crate::WindowAggregateOp;
        use std::cell::RefCell;
        use std::rc::Rc;
        use timely::dataflow::operators::{Input, Inspect};
        use timely::dataflow::InputHandle;

        let ends = timely::execute_directly(|worker| {
            let mut readings = InputHandle::new();
            let mut markers = InputHandle::new();
            let ends = Rc::new(RefCell::new(Vec::new()));
            let out = ends.clone();
            worker.dataflow(|scope| {
                let env = Env::standalone(scope).with_markers(scope.input_from(&mut markers));
                scope
                    .input_from(&mut readings)
                    .window_aggregate(10_000, &env)
                    .stream
                    .inspect(move |w| out.borrow_mut().push(w.window_end));
                env.finish();
            });
            readings.send(Reading::new("d", "s", 1_000, 1.0, 0, 0));
            readings.send(Reading::new("d", "s", 12_000, 2.0, 0, 0));
            markers.advance_to(5_000);
            // The readings' frontier passes both windows; the markers' does not.
            readings.advance_to(30_000);
            for _ in 0..50 {
                worker.step();
            }
            // The last marker of a stop, at 15 s: only [0, 10 s) is complete.
            markers.send(Marker {
                id: 0,
                frontier: 15_000,
                last: true,
                rules_version: 1,
                reload: None,
            });
            drop(markers);
            drop(readings);
            while worker.step() {}
            let ends = ends.borrow().clone();
            ends
        });
        assert_eq!(ends, vec![10_000]);
    }
}
