//! Completing checkpoints: each worker acknowledges its parts, and worker 0
//! writes the manifest once every worker did.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;

use super::{Run, Shared};
use crate::checkpoint::{Ack, Manifest, Marker, Session, FORMAT};

/// The acknowledger of one worker: holds each marker's time until every
/// participant of the worker wrote its part (and writes the sources' parts
/// itself), then sends the worker's [`Ack`] to worker 0.
pub(super) fn acknowledge<'scope>(
    markers: &Stream<'scope, u64, Vec<Marker>>,
    session: Arc<Session>,
    shared: Rc<Shared>,
    run: Run,
) -> Stream<'scope, u64, Vec<Ack>> {
    let scope = markers.scope();
    let worker = scope.index();
    markers
        .clone()
        .unary(Pipeline, "CheckpointAck", move |_cap, info| {
            *shared.acker.borrow_mut() = Some(scope.activator_for(info.address));
            let mut held: Vec<(Marker, Capability<u64>)> = Vec::new();
            move |input, output| {
                input.for_each(|cap, data| {
                    for marker in data.drain(..) {
                        // The sources' bookkeeping holds at any time after the
                        // marker: write their parts at once.
                        let restart_from = marker.frontier.saturating_sub(shared.history_ms.get());
                        for book in shared.sources.borrow().iter() {
                            let part = book.part(restart_from, marker.frontier);
                            match session.write_bytes(marker.id, &book.op(), worker, &part) {
                                Ok(info) => shared
                                    .written
                                    .borrow_mut()
                                    .entry(marker.id)
                                    .or_default()
                                    .parts
                                    .push(info),
                                Err(e) => {
                                    run.control.add_error(e);
                                    shared
                                        .written
                                        .borrow_mut()
                                        .entry(marker.id)
                                        .or_default()
                                        .failed += 1;
                                }
                            }
                        }
                        held.push((marker, cap.retain_least(0).expect("a marker has a time")));
                    }
                });
                let expected = shared.participants.get() + shared.sources.borrow().len();
                held.retain(|(marker, cap)| {
                    let mut written = shared.written.borrow_mut();
                    let done = written
                        .get(&marker.id)
                        .is_some_and(|w| w.parts.len() + w.failed >= expected);
                    if done {
                        let w = written.remove(&marker.id).unwrap_or_default();
                        // A failed part: no ack, so the checkpoint never
                        // completes; the capability is released all the same.
                        if w.failed == 0 {
                            output.session(cap).give(Ack {
                                marker: marker.clone(),
                                worker,
                                parts: w.parts,
                                files: w.files,
                            });
                        }
                    }
                    !done
                });
            }
        })
}

/// Worker 0 completes each checkpoint once every worker acknowledged it.
pub(super) fn commit(
    acks: Stream<'_, u64, Vec<Ack>>,
    session: Arc<Session>,
    shared: Rc<Shared>,
    run: Run,
) {
    let peers = acks.scope().peers();
    let mut pending: BTreeMap<u64, Vec<Ack>> = BTreeMap::new();
    acks.sink(
        Exchange::new(|_: &Ack| 0),
        "CheckpointCommit",
        move |(input, frontier)| {
            input.for_each(|_, data| {
                for ack in data.drain(..) {
                    pending.entry(ack.marker.id).or_default().push(ack);
                }
            });
            let frontier = frontier.frontier().first().copied();
            while let Some(entry) = pending.first_entry() {
                let marker = entry.get()[0].marker.clone();
                // Complete once every worker acknowledged; a worker that
                // could not write its part sends none, which shows once the
                // acknowledgements' frontier passes the checkpoint.
                let passed = frontier.is_none_or(|f| f > marker.frontier);
                if entry.get().len() < peers && !passed {
                    break;
                }
                let acks = entry.remove();
                if acks.len() != peers {
                    let problem = format!(
                        "checkpoint {} has parts of {} of {peers} workers; it is not completed",
                        marker.id,
                        acks.len()
                    );
                    // A worker that failed said why already.
                    match run.control.errors().is_empty() {
                        true => run.control.add_error(problem),
                        false => tracing::warn!("{problem}"),
                    }
                    continue;
                }
                let manifest = Manifest {
                    format: FORMAT,
                    pipeline: session.pipeline.clone(),
                    id: marker.id,
                    frontier: marker.frontier,
                    created_ms: now_ms(),
                    workers: peers,
                    parts: acks.iter().flat_map(|a| a.parts.clone()).collect(),
                    files: acks.iter().flat_map(|a| a.files.clone()).collect(),
                    rules_version: marker.rules_version,
                    rules: shared.definitions.borrow().clone(),
                };
                match session.commit(&manifest) {
                    Ok(()) => {
                        let took = shared
                            .started
                            .borrow_mut()
                            .remove(&marker.id)
                            .map_or(Duration::ZERO, |at| at.elapsed());
                        run.metrics
                            .add_checkpoint(marker.frontier, manifest.bytes(), took);
                        tracing::info!(
                            checkpoint = marker.id,
                            frontier = marker.frontier,
                            bytes = manifest.bytes(),
                            "Checkpoint complete"
                        );
                    }
                    Err(e) => run.control.add_error(e),
                }
            }
        },
    );
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
