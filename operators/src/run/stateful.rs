//! The frame of a stateful operator: data, checkpoint markers, the input
//! frontier, and the stop.

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use super::{Barrier, Run};
use crate::checkpoint::Marker;

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
pub(crate) fn least_frontier(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a.into_iter().chain(b).min()
}
