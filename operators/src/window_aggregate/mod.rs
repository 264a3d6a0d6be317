//! Tumbling event-time windows per (device, sensor): count, min, max, sum, mean.

use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;

use crate::reading::{Reading, SensorKey, WindowAggregate as Aggregate};
use crate::run::Env;

mod hopping;
mod late;
mod operator;
mod session;
mod tumbling;

pub use hopping::Panes;
pub use session::{SessionPart, Sessions};
pub use tumbling::WindowState;

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

    /// The window row of `key` over `[start, end)` with this aggregate, at
    /// `revision`.
    pub(crate) fn row(&self, key: &SensorKey, start: u64, end: u64, revision: u32) -> Aggregate {
        Aggregate {
            device: key.device.clone(),
            sensor: key.sensor.clone(),
            window_start: start,
            window_end: end,
            count: self.count,
            min: self.min,
            max: self.max,
            sum: self.sum + self.compensation,
            revision,
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

    /// Windows of `kind` (tumbling or hopping) that late readings correct
    /// for `allowed_lateness_ms` after their end.
    ///
    /// A reading behind its partition's watermark `wm` is late. If one of
    /// its windows ended (and was emitted) no more than the allowed
    /// lateness before `wm`, the sources send it here instead of to the
    /// dead letters: it is applied when the frontier reaches `wm`, and each
    /// window it changed is emitted again with its `revision` one higher (a
    /// correction; all late readings judged behind the same `wm` make one).
    /// Windows not emitted yet just include it. A window's state is kept
    /// until the frontier passes its end plus the allowed lateness. A late
    /// reading no output takes is a dead letter, as without lateness.
    ///
    /// # Panics
    /// For session windows with a lateness (config validation rejects it
    /// first).
    fn windows_with_lateness(
        self,
        kind: WindowKind,
        allowed_lateness_ms: u64,
        env: &Env<'scope>,
    ) -> Windows<'scope>;
}

/// A stream of window rows, with the kind of its windows: what window rules
/// and sinks of windows take.
#[derive(Clone)]
pub struct Windows<'scope> {
    /// The window rows, each at timely time `window_end`.
    pub stream: Stream<'scope, u64, Vec<Aggregate>>,
    /// Which windows the rows are of.
    pub kind: WindowKind,
    /// How long after its end a window is corrected by late readings, ms
    /// (0: never; rows then all have revision 0).
    pub allowed_lateness_ms: u64,
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
    pub(crate) fn history_ms(&self) -> u64 {
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
        self.windows_with_lateness(kind, 0, env)
    }

    fn windows_with_lateness(
        self,
        kind: WindowKind,
        allowed_lateness_ms: u64,
        env: &Env<'scope>,
    ) -> Windows<'scope> {
        let late = allowed_lateness_ms;
        let stream = match kind {
            WindowKind::Tumbling { size_ms } => {
                let state = WindowState::new(size_ms).with_lateness(late);
                operator::window_stream(self, state, kind, late, env)
            }
            WindowKind::Hopping { size_ms, slide_ms } => {
                let state = Panes::new(size_ms, slide_ms).with_lateness(late);
                operator::window_stream(self, state, kind, late, env)
            }
            WindowKind::Session { gap_ms } => {
                assert_eq!(late, 0, "session windows take no late readings");
                operator::window_stream(self, Sessions::new(gap_ms), kind, 0, env)
            }
        };
        Windows {
            stream,
            kind,
            allowed_lateness_ms,
        }
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
