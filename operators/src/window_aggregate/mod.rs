//! Event-time windows per (device, sensor), tumbling or hopping: count,
//! min, max, sum and mean, and the extra statistics an output chooses
//! ([`Stats`]: standard deviations, first and last values, percentiles).

use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::Stream;

use crate::checkpoint::Marker;
use crate::metrics::GaugeShare;
use crate::reading::{Reading, WindowAggregate as Aggregate};
use crate::record::Stats;
use crate::run::{stateful, Env, Run, Side, StatefulLogic};

mod acc;
mod hopping;
mod sketch;
mod tumbling;

pub use hopping::Panes;
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
    /// panes (see [`Panes`]): a reading updates one pane.
    ///
    /// `spec` is a [`WindowKind`] (the basic statistics), or a
    /// [`WindowSpec`] made by [`WindowKind::with_stats`]. Extra
    /// statistics add state per key only when chosen, a sketch only for
    /// percentiles.
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

/// A stream of window rows, with the size of its windows and the statistics
/// of its rows: what window rules and sinks of windows take.
#[derive(Clone)]
pub struct Windows<'scope> {
    /// The window rows, each at timely time `window_end`.
    pub stream: Stream<'scope, u64, Vec<Aggregate>>,
    /// The size of the windows, in ms.
    pub size_ms: u64,
    /// How far apart window ends are, in ms: `size_ms` for tumbling
    /// windows, less for hopping ones.
    pub slide_ms: u64,
    /// The statistics every row carries.
    pub stats: Stats,
}

impl Windows<'_> {
    /// Whether these are tumbling windows (each reading in one window).
    pub fn tumbling(&self) -> bool {
        self.slide_ms == self.size_ms
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
}

impl WindowKind {
    /// These windows, with `stats` in every row.
    pub fn with_stats(self, stats: Stats) -> WindowSpec {
        WindowSpec { kind: self, stats }
    }
}

/// One window output: which windows, and which statistics their rows carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    /// Tumbling or hopping, and the sizes.
    pub kind: WindowKind,
    /// The statistics of every row.
    pub stats: Stats,
}

impl From<WindowKind> for WindowSpec {
    /// The windows of `kind` with the basic statistics.
    fn from(kind: WindowKind) -> Self {
        kind.with_stats(Stats::basic())
    }
}

impl<'scope> WindowAggregate<'scope> for Stream<'scope, u64, Vec<Reading>> {
    fn window_aggregate(self, size_ms: u64, env: &Env<'scope>) -> Windows<'scope> {
        self.windows(WindowKind::Tumbling { size_ms }, env)
    }

    fn windows(self, spec: impl Into<WindowSpec>, env: &Env<'scope>) -> Windows<'scope> {
        let WindowSpec { kind, stats } = spec.into();
        let (stream, size_ms, slide_ms) = match kind {
            WindowKind::Tumbling { size_ms } => {
                let state = WindowState::with_stats(size_ms, stats.clone());
                (window_stream(self, state, size_ms, env), size_ms, size_ms)
            }
            WindowKind::Hopping { size_ms, slide_ms } => {
                let panes = Panes::with_stats(size_ms, slide_ms, stats.clone());
                (window_stream(self, panes, size_ms, env), size_ms, slide_ms)
            }
        };
        Windows {
            stream,
            size_ms,
            slide_ms,
            stats,
        }
    }
}

/// The state of open windows: tumbling windows, or the panes of hopping
/// ones.
trait WindowStore: 'static {
    fn resume_at(&mut self, frontier: u64);
    fn insert(&mut self, reading: &Reading);
    fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>);
    fn discard(&mut self) -> usize;
    fn earliest_end(&self) -> Option<u64>;
    fn footprint(&self) -> (usize, usize);
}

macro_rules! window_store {
    ($t:ty) => {
        impl WindowStore for $t {
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
}
window_store!(WindowState);
window_store!(Panes);

/// The window operator over `state`, whose windows span `size_ms`:
/// readings exchanged by key, state resumed at the restored frontier.
fn window_stream<'scope, S: WindowStore>(
    readings: Stream<'scope, u64, Vec<Reading>>,
    mut state: S,
    size_ms: u64,
    env: &Env<'scope>,
) -> Stream<'scope, u64, Vec<Aggregate>> {
    env.keep_history(size_ms);
    if let Some(frontier) = env.restored_frontier() {
        state.resume_at(frontier);
    }
    let run = env.run().clone();
    let markers = env.markers();
    // With one worker, routing by key is a no-op: skip the exchange.
    if readings.scope().peers() == 1 {
        window_operator(readings, markers, Pipeline, state, run)
    } else {
        let pact = Exchange::new(|r: &Reading| r.route);
        window_operator(readings, markers, pact, state, run)
    }
}

fn window_operator<'scope, P, S>(
    stream: Stream<'scope, u64, Vec<Reading>>,
    markers: Stream<'scope, u64, Vec<Marker>>,
    pact: P,
    state: S,
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
        run: run.clone(),
    };
    let side = markers.map(Side::Marker);
    stateful("WindowAggregate", stream, pact, side, run, logic)
}

/// The window operator's logic: windows close as the frontier passes their
/// end, each sent at its end time.
struct WindowLogic<S> {
    state: S,
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
mod stats_tests;
#[cfg(test)]
mod tests;
