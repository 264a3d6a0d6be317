//! The window operator: readings exchanged by key into a window store
//! (tumbling, hopping or session), driven by the stateful-operator frame,
//! with the late readings of outputs that allow lateness on its side input.

use serde::Serialize;
use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::Stream;

use super::{Panes, SessionPart, Sessions, WindowKind, WindowState};
use crate::checkpoint::Marker;
use crate::metrics::GaugeShare;
use crate::reading::{Reading, SensorKey, WindowAggregate as Aggregate};
use crate::run::{stateful, Env, Participant, Run, Side, StatefulLogic};

/// The state of open windows: tumbling windows, the panes of hopping ones,
/// or sessions.
pub(super) trait WindowStore: 'static {
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
    fn insert_late(&mut self, _wm: u64, _reading: Reading) {}
    fn flush_timed(&mut self, frontier: Option<u64>, out: &mut Vec<(u64, Aggregate)>);
    fn discard(&mut self) -> usize;
    fn earliest_end(&self) -> Option<u64>;
    fn footprint(&self) -> (usize, usize);
}

/// Implements [`WindowStore`] for a store by its own methods: `late` if it
/// takes late readings, `part` with the type of its checkpoint part if
/// checkpoints hold it.
macro_rules! window_store {
    ($t:ty, $($what:ident $($part:ty)?),*) => {
        impl WindowStore for $t {
            $(window_store!(@$what $t $(, $part)?);)*
            fn resume_at(&mut self, frontier: u64) {
                <$t>::resume_at(self, frontier)
            }
            fn insert(&mut self, reading: &Reading) {
                <$t>::insert(self, reading)
            }
            fn flush_timed(&mut self, frontier: Option<u64>, out: &mut Vec<(u64, Aggregate)>) {
                <$t>::flush_timed(self, frontier, out)
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
    (@rebuilt $t:ty) => {
        type Part = ();
    };
    (@late $t:ty) => {
        fn insert_late(&mut self, wm: u64, reading: Reading) {
            <$t>::insert_late(self, wm, reading)
        }
    };
    (@part $t:ty, $part:ty) => {
        type Part = $part;
        const CHECKPOINTED: bool = true;
        fn snapshot(&self) -> Option<$part> {
            Some(<$t>::snapshot(self))
        }
        fn restore(&mut self, parts: Vec<$part>, owns: &dyn Fn(&SensorKey) -> bool) -> Result<(), String> {
            <$t>::restore(self, parts, owns)
        }
    };
}
window_store!(WindowState, rebuilt, late);
window_store!(Panes, rebuilt, late);
window_store!(Sessions, part SessionPart);

/// The window operator over `state`, of windows of `kind`: readings
/// exchanged by key, state resumed at the restored frontier (and restored
/// from the checkpoint, if checkpoints hold it).
pub(super) fn window_stream<'scope, S: WindowStore>(
    readings: Stream<'scope, u64, Vec<Reading>>,
    mut state: S,
    kind: WindowKind,
    allowed_lateness_ms: u64,
    env: &Env<'scope>,
) -> Stream<'scope, u64, Vec<Aggregate>> {
    let late = allowed_lateness_ms;
    // A restart re-reads the windows still open, and those still taking
    // late readings (one bucket of the resume bookkeeping more).
    let resume_bucket = if late > 0 { 1_000 } else { 0 };
    env.keep_history(kind.history_ms() + late + resume_bucket);
    if late > 0 {
        env.take_late(move |t, wm| last_end(kind, t) + late > wm);
    }
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
    let side = {
        use timely::dataflow::operators::vec::Map;
        use timely::dataflow::operators::{Concat, Exchange as _};
        let markers = env.markers().map(Side::Marker);
        match late {
            0 => markers,
            _ => {
                let late = env.late_readings();
                // The late readings go to the worker of their key.
                let late = match readings.scope().peers() {
                    1 => late,
                    _ => late.exchange(|(_, r): &(u64, Reading)| r.route),
                };
                markers.concat(late.map(Side::Other))
            }
        }
    };
    // With one worker, routing by key is a no-op: skip the exchange.
    if readings.scope().peers() == 1 {
        window_operator(readings, side, Pipeline, state, participant, run)
    } else {
        let pact = Exchange::new(|r: &Reading| r.route);
        window_operator(readings, side, pact, state, participant, run)
    }
}

/// The end of the last window of `kind` that holds event time `t`.
fn last_end(kind: WindowKind, t: u64) -> u64 {
    match kind {
        WindowKind::Tumbling { size_ms } => t - t % size_ms + size_ms,
        WindowKind::Hopping { size_ms, slide_ms } => t - t % slide_ms + size_ms,
        WindowKind::Session { gap_ms } => t + gap_ms,
    }
}

fn window_operator<'scope, P, S>(
    stream: Stream<'scope, u64, Vec<Reading>>,
    side: Stream<'scope, u64, Vec<Side<(u64, Reading)>>>,
    pact: P,
    state: S,
    participant: Option<Participant>,
    run: Run,
) -> Stream<'scope, u64, Vec<Aggregate>>
where
    P: ParallelizationContract<u64, Vec<Reading>>,
    S: WindowStore,
{
    let logic = WindowLogic {
        open: GaugeShare::new(&run.metrics.windows_open),
        bytes: GaugeShare::new(&run.metrics.window_state_bytes),
        state,
        participant,
        run: run.clone(),
    };
    use timely::dataflow::operators::vec::Map;
    stateful("WindowAggregate", stream, pact, side, run, logic).map(|(_, row)| row)
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

/// Each row goes out at the time it was made: its window's end, or the
/// watermark of the late readings that made it (so a checkpoint at a
/// frontier holds the rows made before it, and a restart makes the
/// others).
impl<S: WindowStore> StatefulLogic<Reading, (u64, Aggregate)> for WindowLogic<S> {
    type Side = (u64, Reading);

    fn side(&mut self, (wm, reading): (u64, Reading)) -> bool {
        self.state.insert_late(wm, reading);
        true
    }

    fn take(&mut self, batch: &mut Vec<Reading>) -> bool {
        for reading in batch.iter() {
            self.state.insert(reading);
        }
        batch.clear();
        true
    }

    fn advance(&mut self, until: Option<u64>, out: &mut Vec<(u64, Aggregate)>) {
        let before = out.len();
        self.state.flush_timed(until, out);
        let corrections = out[before..].iter().filter(|(_, w)| w.revision > 0).count();
        let m = &self.run.metrics;
        m.windows.inc_by((out.len() - before - corrections) as u64);
        m.window_corrections.inc_by(corrections as u64);
    }

    fn hold_from_start(&self) -> bool {
        // Restored state may be emitted before any input arrives.
        true
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

    fn time_of(&self, (time, _): &(u64, Aggregate)) -> u64 {
        *time
    }

    fn report(&mut self, _frontier: Option<u64>) {
        // A walk over the open windows, not their keys.
        let (n, b) = self.state.footprint();
        self.open.set(n);
        self.bytes.set(b);
    }
}
