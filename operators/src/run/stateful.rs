//! The frames of stateful operators and sinks: data, checkpoint markers,
//! the input frontier, and the stop, written once.

use timely::dataflow::channels::pact::{ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::{Barrier, Run};
use crate::checkpoint::Marker;

/// What a stateful operator's side input carries: checkpoint markers, and
/// whatever else the operator follows.
#[derive(Clone, Debug)]
pub(crate) enum Side<X> {
    /// A checkpoint marker.
    Marker(Marker),
    /// Something else the operator follows (e.g. the sources' progress).
    Other(X),
}

/// The logic of a stateful operator that [`stateful`] drives: state kept by
/// event time, brought forward as the input frontier passes, written at
/// checkpoint markers, and never brought past the last checkpoint of a stop.
pub(crate) trait StatefulLogic<D, O>: 'static {
    /// What the side input carries besides markers.
    type Side;
    /// Whether the operator may send output before any data (silences
    /// do): it then holds a capability from the start.
    fn hold_from_start(&self) -> bool {
        false
    }
    /// Takes a batch of data: whether it left anything waiting for the
    /// frontier (the frame then holds a capability at the batch's time).
    fn take(&mut self, batch: &mut Vec<D>) -> bool;
    /// Takes a record of the side input: whether it left anything waiting
    /// for the frontier (the frame then holds a capability at its time).
    fn side(&mut self, _side: Self::Side) -> bool {
        false
    }
    /// Brings the state to `until` (every input before it applied; `None`:
    /// the input ended), pushing the output this completes.
    fn advance(&mut self, until: Option<u64>, out: &mut Vec<O>);
    /// Writes the state as of checkpoint `marker`, to which it was just
    /// brought.
    fn checkpoint(&mut self, _marker: Marker) {}
    /// The run stopped and its input ended: what is still open depends on
    /// input never read, and is dropped.
    fn discard(&mut self);
    /// The earliest time of output still to come (`None`: none).
    fn earliest(&self, frontier: Option<u64>) -> Option<u64>;
    /// The time an output record travels at: its event time, or earlier
    /// for a consumer that reads each record's own time (then 0: as early
    /// as the operator may send). Records of one time travel in one
    /// message, so fewer times cost less.
    fn time_of(&self, out: &O) -> u64;
    /// Called at the end of each activation (gauges of the state's size).
    fn report(&mut self, _frontier: Option<u64>) {}
}

/// A stateful operator on `data` (exchanged by `pact`), driven by
/// `markers` (and the other records of `side`): at each activation the
/// frame gives `logic` the data, brings its state to each checkpoint marker
/// the inputs reached (then writes it), then to the input frontier, and
/// sends the output each record at the time [`StatefulLogic::time_of`]
/// gives it (never before the operator's capability). While the run stops, only
/// checkpoints move the state on: what it would lead to past the last one
/// depends on input not read yet.
pub(crate) fn stateful<'scope, D, O, P, L>(
    name: &str,
    data: Stream<'scope, u64, Vec<D>>,
    pact: P,
    side: Stream<'scope, u64, Vec<Side<L::Side>>>,
    run: Run,
    mut logic: L,
) -> Stream<'scope, u64, Vec<O>>
where
    D: 'static,
    O: Clone + 'static,
    P: ParallelizationContract<u64, Vec<D>>,
    L: StatefulLogic<D, O>,
    L::Side: Clone + 'static,
{
    data.binary_frontier(side, pact, Pipeline, name, move |cap, _info| {
        let mut held: Option<Capability<u64>> = logic.hold_from_start().then_some(cap);
        let mut barrier = Barrier::default();
        let mut out = Vec::new();
        move |(input, frontier), (side_input, side_frontier), output| {
            input.for_each_stamp(|cap, data| {
                let mut any = false;
                for batch in data {
                    any |= logic.take(batch);
                }
                if any
                    && held
                        .as_ref()
                        .is_none_or(|h| cap.least().is_some_and(|t| t < h.time()))
                {
                    held = cap.retain_least(output.output_index());
                }
            });
            side_input.for_each_stamp(|cap, side| {
                let mut markers = Vec::new();
                let mut any = false;
                for s in side.flat_map(|batch| batch.drain(..)) {
                    match s {
                        Side::Marker(m) => markers.push(m),
                        Side::Other(x) => any |= logic.side(x),
                    }
                }
                barrier.receive(&mut markers, &run);
                if any
                    && held
                        .as_ref()
                        .is_none_or(|h| cap.least().is_some_and(|t| t < h.time()))
                {
                    held = cap.retain_least(output.output_index());
                }
            });
            let frontier = least_frontier(
                frontier.frontier().first().copied(),
                side_frontier.frontier().first().copied(),
            );
            let stopping = barrier.stopping(&run);
            // Each checkpoint sees the state exactly at its frontier.
            let mut steps = Vec::new();
            while let Some(marker) = barrier.next_due(frontier) {
                steps.push((marker.until(), Some(marker)));
            }
            steps.push((frontier, None));
            for (until, marker) in steps {
                if stopping && marker.is_none() {
                    if frontier.is_none() {
                        logic.discard();
                        held = None;
                    }
                    continue;
                }
                logic.advance(until, &mut out);
                if let Some(cap) = held.as_ref() {
                    send_in_time_order(&mut out, |o| logic.time_of(o), cap, output);
                }
                if let Some(marker) = marker {
                    logic.checkpoint(marker);
                }
            }
            logic.report(frontier);
            if let Some(cap) = held.as_mut() {
                match logic.earliest(frontier) {
                    Some(t) => cap.downgrade(&t.max(*cap.time())),
                    None => held = None,
                }
            }
        }
    })
}

/// Sends `out`, each record at `time_of` it or at the capability's time if
/// later: one message per time, sized to its records.
fn send_in_time_order<O: Clone + 'static>(
    out: &mut Vec<O>,
    time_of: impl Fn(&O) -> u64,
    cap: &Capability<u64>,
    output: &mut timely::dataflow::operators::generic::OutputBuilderSession<
        '_,
        u64,
        timely::container::CapacityContainerBuilder<Vec<O>>,
    >,
) {
    out.sort_by_key(&time_of);
    let mut batch = Vec::new();
    let mut sorted = out.drain(..).peekable();
    while let Some(first) = sorted.next() {
        let time = time_of(&first);
        batch.push(first);
        batch.extend(std::iter::from_fn(|| {
            sorted.next_if(|o| time_of(o) == time)
        }));
        let at = cap.delayed(&time.max(*cap.time()));
        output.session(&at).give_container(&mut batch);
        batch.clear();
    }
}

/// What a checkpointed sink is told, in order: data with its timely time,
/// then each checkpoint its input reached, then the input frontier.
pub(crate) enum SinkEvent<'a, D> {
    /// Records at a time.
    Data(u64, &'a mut Vec<D>),
    /// A checkpoint: bring the state to [`Marker::until`], then write a part.
    Marker(Marker),
    /// The input frontier (`None`: the input ended).
    Frontier(Option<u64>),
}

/// A sink that takes part in checkpoints: `logic` sees every batch, every
/// checkpoint marker once the input frontier reached it, and the frontier.
pub(crate) fn checkpointed_sink<'scope, D, P, L>(
    stream: Stream<'scope, u64, Vec<D>>,
    pact: P,
    name: &str,
    markers: Stream<'scope, u64, Vec<Marker>>,
    run: Run,
    mut logic: L,
) where
    D: 'static,
    P: timely::dataflow::channels::pact::ParallelizationContract<u64, Vec<D>>,
    L: FnMut(SinkEvent<'_, D>) + 'static,
{
    type Nothing = timely::container::CapacityContainerBuilder<Vec<()>>;
    stream.binary_frontier::<_, Nothing, _, _, _, _>(
        markers,
        pact,
        Pipeline,
        name,
        move |_cap, _info| {
            let mut barrier = Barrier::default();
            move |(input, frontier), (marker_input, marker_frontier), _output| {
                input.for_each(|cap, data| {
                    logic(SinkEvent::Data(
                        cap.least().copied().unwrap_or_default(),
                        data,
                    ))
                });
                marker_input.for_each(|_, markers| barrier.receive(markers, &run));
                let frontier = least_frontier(
                    frontier.frontier().first().copied(),
                    marker_frontier.frontier().first().copied(),
                );
                while let Some(marker) = barrier.next_due(frontier) {
                    logic(SinkEvent::Marker(marker));
                }
                logic(SinkEvent::Frontier(frontier));
            }
        },
    );
}

/// The least of two input frontiers of totally ordered time, each given by
/// its least element (`None`: that input has ended; both `None`: ended).
fn least_frontier(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a.into_iter().chain(b).min()
}
