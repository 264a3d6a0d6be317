//! Event-time windows per (device, sensor), tumbling, hopping or session:
//! count, min, max, sum and mean, and the extra statistics an output
//! chooses ([`Stats`]: standard deviations, first and last values,
//! percentiles); with an allowed lateness, corrected by late readings.

use timely::dataflow::Stream;

use crate::reading::{Reading, WindowAggregate as Aggregate};
use crate::record::Stats;
use crate::run::Env;

mod acc;
mod hopping;
mod late;
mod operator;
mod session;
mod sketch;
mod tumbling;

pub use hopping::Panes;
pub use session::{SessionPart, Sessions};
pub use sketch::RELATIVE_ACCURACY as PERCENTILE_ACCURACY;
pub use tumbling::WindowState;

/// Aggregates readings into event-time windows.
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

    /// Windows of a kind, with statistics, per (device, sensor), emitted as
    /// [`window_aggregate`](WindowAggregate::window_aggregate) emits
    /// tumbling ones: each once the input frontier reaches its end, at
    /// timely time `window_end`. Hopping windows are kept as slide-sized
    /// panes (see [`Panes`]): a reading updates one pane. Session windows
    /// (see [`Sessions`]) are held by checkpoints.
    ///
    /// `spec` is a [`WindowKind`] (the basic statistics), or a
    /// [`WindowSpec`] made by [`WindowKind::with_stats`] or
    /// [`WindowKind::with_lateness`]. Extra statistics add state per key
    /// only when chosen, a sketch only for percentiles.
    ///
    /// With an allowed lateness (tumbling and hopping windows), a reading
    /// behind its partition's watermark `wm` whose window ended (and was
    /// emitted) no more than the allowed lateness before `wm` is sent here
    /// by the sources instead of to the dead letters: it is applied when
    /// the frontier reaches `wm`, and each window it changed is emitted
    /// again with its `revision` one higher (a correction; the late
    /// readings judged behind the same `wm` make one). Windows not emitted
    /// yet just include it. A window's state is kept until the frontier
    /// passes its end plus the allowed lateness; a late reading no output
    /// takes is a dead letter.
    ///
    /// # Examples
    /// Ten-second windows with the sample standard deviation, the first
    /// value and the median.
    /// ```
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use weir_operators::record::{Stat, Stats};
    /// use weir_operators::{Env, Reading, WindowAggregateOp, WindowKind};
    ///
    /// let readings = vec![
    ///     Reading::new("d1", "temp", 2_000, 4.0, 0, 0),
    ///     Reading::new("d1", "temp", 1_000, 2.0, 0, 1), // earliest: the first value
    ///     Reading::new("d1", "temp", 3_000, 9.0, 0, 2),
    /// ];
    /// let stats: Stats = ["stddev", "first", "p50"].iter().map(|s| s.parse::<Stat>().unwrap()).collect();
    /// let spec = WindowKind::Tumbling { size_ms: 10_000 }.with_stats(stats);
    /// let captured = timely::example(move |scope| {
    ///     let env = Env::standalone(scope);
    ///     readings.to_stream(scope).windows(spec, &env).stream.capture()
    /// });
    /// let rows: Vec<_> = captured.iter().flat_map(|e| match e { Event::Messages(_, d) => d.clone(), Event::Progress(_) => vec![] }).collect();
    /// let row = &rows[0];
    /// assert_eq!(row.value(Stat::Mean), Some(5.0));
    /// assert!((row.value(Stat::Stddev).unwrap() - 13f64.sqrt()).abs() < 1e-12); // (1 + 9 + 16) / 2
    /// assert_eq!(row.value(Stat::First), Some(2.0));
    /// let median = row.value("p50".parse().unwrap()).unwrap();
    /// assert!((median - 4.0).abs() <= 0.01 * 4.0); // the 2nd of 3 values, within 1%
    /// ```
    fn windows(self, spec: impl Into<WindowSpec>, env: &Env<'scope>) -> Windows<'scope>;
}

/// A stream of window rows, with the kind of its windows and the
/// statistics of its rows: what window rules and sinks of windows take.
#[derive(Clone)]
pub struct Windows<'scope> {
    /// The window rows, each at timely time `window_end` (a correction at
    /// the watermark of the late readings that made it).
    pub stream: Stream<'scope, u64, Vec<Aggregate>>,
    /// Which windows the rows are of.
    pub kind: WindowKind,
    /// The statistics every row carries.
    pub stats: Stats,
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
    /// These windows, with `stats` in every row.
    pub fn with_stats(self, stats: Stats) -> WindowSpec {
        WindowSpec::from(self).with_stats(stats)
    }

    /// These windows, corrected by late readings for `allowed_ms` after
    /// their end (tumbling and hopping windows).
    pub fn with_lateness(self, allowed_ms: u64) -> WindowSpec {
        WindowSpec::from(self).with_lateness(allowed_ms)
    }

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

/// One window output: which windows, which statistics their rows carry,
/// and how long late readings correct them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    /// Tumbling, hopping or session, and the sizes.
    pub kind: WindowKind,
    /// The statistics of every row.
    pub stats: Stats,
    /// How long after its end late readings correct a window, ms (0: never).
    pub allowed_lateness_ms: u64,
}

impl WindowSpec {
    /// With `stats` in every row.
    pub fn with_stats(mut self, stats: Stats) -> Self {
        self.stats = stats;
        self
    }

    /// Corrected by late readings for `allowed_ms` after a window's end.
    pub fn with_lateness(mut self, allowed_ms: u64) -> Self {
        self.allowed_lateness_ms = allowed_ms;
        self
    }
}

impl From<WindowKind> for WindowSpec {
    /// The windows of `kind` with the basic statistics and no lateness.
    fn from(kind: WindowKind) -> Self {
        WindowSpec {
            kind,
            stats: Stats::basic(),
            allowed_lateness_ms: 0,
        }
    }
}

impl<'scope> WindowAggregate<'scope> for Stream<'scope, u64, Vec<Reading>> {
    fn window_aggregate(self, size_ms: u64, env: &Env<'scope>) -> Windows<'scope> {
        self.windows(WindowKind::Tumbling { size_ms }, env)
    }

    fn windows(self, spec: impl Into<WindowSpec>, env: &Env<'scope>) -> Windows<'scope> {
        let WindowSpec {
            kind,
            stats,
            allowed_lateness_ms: late,
        } = spec.into();
        let stream = match kind {
            WindowKind::Tumbling { size_ms } => {
                let state = WindowState::with_stats(size_ms, stats.clone()).with_lateness(late);
                operator::window_stream(self, state, kind, late, env)
            }
            WindowKind::Hopping { size_ms, slide_ms } => {
                let panes = Panes::with_stats(size_ms, slide_ms, stats.clone()).with_lateness(late);
                operator::window_stream(self, panes, kind, late, env)
            }
            WindowKind::Session { gap_ms } => {
                assert_eq!(late, 0, "session windows take no late readings");
                let sessions = Sessions::with_stats(gap_ms, stats.clone());
                operator::window_stream(self, sessions, kind, 0, env)
            }
        };
        Windows {
            stream,
            kind,
            stats,
            allowed_lateness_ms: late,
        }
    }
}

#[cfg(test)]
mod stats_tests;
#[cfg(test)]
mod tests;
