//! The trigger of markers on worker 0, and the stop relay that tells it
//! about stops asked for on any worker.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::{Scope, Stream};
use timely::progress::Antichain;

use super::{Reload, Run, Shared};
use crate::checkpoint::{Marker, Session};

/// Stop requests, one per worker asked to stop (a signal, a pipeline
/// error), sent to worker 0's trigger. It holds a capability until its
/// worker is asked to stop or the markers end.
pub(super) fn stop_relay<'scope>(
    scope: Scope<'scope, u64>,
    run: Run,
    markers_done: ProbeHandle<u64>,
) -> Stream<'scope, u64, Vec<usize>> {
    source(scope, "StopRelay", move |cap, info| {
        let activator = scope.activator_for(info.address);
        let worker = scope.index();
        let mut cap = Some(cap);
        move |output| {
            let Some(c) = cap.as_ref() else { return };
            if run.control.stop_requested() {
                output.session(c).give(worker);
                cap = None;
            } else if markers_done.done() {
                cap = None;
            } else {
                activator.activate_after(Duration::from_millis(5));
            }
        }
    })
}

/// The trigger: on worker 0, holds a capability that follows the sources'
/// frontier. With checkpoints it sends a marker at it every interval, and
/// one that covers everything ([`Marker::END`]) when the input ends.
///
/// A stop, requested on any worker of the run (each worker's stop relay
/// tells it), is one last marker ([`Marker::last`]) at the frontier, with or
/// without checkpoints. Sources keep their capabilities until the markers
/// end, and operators go no further than the markers until they have seen
/// the last one (which asks their own process to stop too): so the whole
/// run stops at one frontier, however its processes were signalled, and the
/// frontier never jumps past readings a stopped source did not read.
pub(super) fn trigger<'scope>(
    scope: Scope<'scope, u64>,
    stops: Stream<'scope, u64, Vec<usize>>,
    session: Option<Arc<Session>>,
    shared: Rc<Shared>,
    run: Run,
) -> Stream<'scope, u64, Vec<Marker>> {
    let mut builder = OperatorBuilder::new("CheckpointTrigger".into(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let (output, markers) = builder.new_output::<Vec<Marker>>();
    let mut output = OutputBuilder::from(output);
    let no_connection: Vec<(usize, Antichain<u64>)> = Vec::new();
    let mut stops = builder.new_input_connection(stops, Exchange::new(|_| 0), no_connection);
    let leader = scope.index() == 0;
    builder.build(move |mut caps| {
        let mut cap = caps.pop().filter(|_| leader);
        let mut schedule = Schedule::new(session.as_deref(), run.control.rules_version());
        move |_frontiers| {
            stops.for_each(|_, workers| {
                if let Some(worker) = workers.drain(..).next() {
                    if !run.control.stop_requested() {
                        tracing::info!(worker, "A worker was asked to stop: the run stops");
                        run.control.request_stop();
                    }
                }
            });
            let Some(c) = cap.as_mut() else { return };
            // Operators are wired before anything runs.
            if shared.sources.borrow().is_empty() {
                // Nothing to follow (operators fed by hand, in tests).
                cap = None;
                return;
            }
            // Checkpoints wait for every participant to be counted.
            if session.is_some() && !shared.built.get() {
                activator.activate_after(Duration::from_millis(1));
                return;
            }
            let frontier = sources_frontier(&shared);
            if let Some(f) = frontier.filter(|f| *f > *c.time()) {
                c.downgrade(&f);
            }
            let at = *c.time();
            // On a stop the sources hold their capabilities (at or after
            // `at`) until this trigger is done: a last marker at `at`. When
            // the input ends, a checkpoint that covers everything.
            let stopping = run.control.stop_requested();
            let target = match frontier {
                None if !stopping => Marker::END,
                _ => at,
            };
            let reload = match frontier.is_some() && !stopping {
                true => checked_reload(&shared, &run),
                false => None,
            };
            let due = stopping
                || reload.is_some()
                || session.is_some() && (schedule.interval_passed() || frontier.is_none());
            match schedule.marker(due, at, target, stopping, reload, &shared, &run) {
                Ok(marker) => {
                    output.activate().session(&*c).give(marker);
                }
                // Not now (before the restored frontier): at a later turn.
                Err(Some(reload)) => run.control.request_reload(reload),
                Err(None) => {}
            }
            if frontier.is_none() || stopping {
                // The sources are done, or wait for this to stop.
                cap = None;
                return;
            }
            // Operators go no further than the markers: follow the sources
            // closely.
            activator.activate_after(Duration::from_millis(1));
        }
    });
    markers
}

/// The least frontier of the sources' outputs (`None`: every source is done).
fn sources_frontier(shared: &Shared) -> Option<u64> {
    shared
        .probes
        .borrow()
        .iter()
        .map(|p| p.with_frontier(|f| f.first().copied()))
        .try_fold(u64::MAX, |min, f| f.map(|f| min.min(f)))
}

/// A requested reload, if the running pipeline can take it (a reload
/// applies from the frontier on): with the fingerprints of what it puts in
/// force.
fn checked_reload(shared: &Shared, run: &Run) -> Option<(Reload, Vec<(String, u64)>)> {
    let reload = run.control.take_reload()?;
    let checked = match shared.reload_check.borrow().as_ref() {
        Some(check) => check(&reload),
        None => Err("the running pipeline evaluates no rules: restart it to add them".to_owned()),
    };
    match checked {
        Ok(definitions) => Some((reload, definitions)),
        Err(problem) => {
            tracing::error!(
                "The rules are not reloaded: {problem}; the rules in force stay (save the file again to retry)"
            );
            run.metrics.note_reload(None);
            run.control.note_reload_refused();
            None
        }
    }
}

/// When the trigger sends markers, and their numbers.
struct Schedule {
    /// Whether checkpoints are taken (markers then start them).
    checkpointing: bool,
    next_id: u64,
    /// The restored frontier: no marker before it.
    floor: u64,
    interval: Duration,
    last_frontier: Option<u64>,
    last_sent: Instant,
    /// The version of the rules in force.
    version: u64,
}

impl Schedule {
    fn new(session: Option<&Session>, version: u64) -> Self {
        let (next_id, floor, interval) = session.map_or((0, 0, Duration::MAX), |s| {
            (
                s.next_id(),
                s.restored_frontier().unwrap_or(0),
                s.config().interval,
            )
        });
        Schedule {
            checkpointing: session.is_some(),
            next_id,
            floor,
            interval,
            last_frontier: None,
            last_sent: Instant::now(),
            version,
        }
    }

    /// Whether a checkpoint interval passed since the last marker.
    fn interval_passed(&self) -> bool {
        self.last_sent.elapsed() >= self.interval
    }

    /// The marker to send at `at` for a checkpoint at `target`, if one is
    /// `due`: never before the restored frontier, and never twice at one
    /// frontier (but for a reload). Otherwise the reload, for a later turn.
    #[allow(clippy::too_many_arguments)]
    fn marker(
        &mut self,
        due: bool,
        at: u64,
        target: u64,
        stopping: bool,
        reload: Option<(Reload, Vec<(String, u64)>)>,
        shared: &Shared,
        run: &Run,
    ) -> Result<Marker, Option<Reload>> {
        let sends = due
            && (at >= self.floor || target == Marker::END)
            && self
                .last_frontier
                .is_none_or(|l| target > l || reload.is_some() && target >= l);
        if !sends {
            return Err(reload.map(|(reload, _)| reload));
        }
        if let Some((_, definitions)) = &reload {
            *shared.definitions.borrow_mut() = definitions.clone();
            self.version += 1;
            let version = self.version;
            run.control.set_rules_version(version);
            run.metrics.note_reload(Some((version, at)));
            tracing::info!(
                version,
                from = at,
                "Rules reloaded: version {version} applies from event time {at}"
            );
        }
        let marker = Marker {
            id: self.next_id,
            frontier: target,
            last: stopping,
            rules_version: self.version,
            reload: reload.map(|(reload, _)| reload),
        };
        if self.checkpointing {
            shared
                .started
                .borrow_mut()
                .insert(self.next_id, Instant::now());
        }
        tracing::debug!(
            checkpoint = self.next_id,
            frontier = target,
            last = stopping,
            "Marker sent"
        );
        self.next_id += 1;
        self.last_frontier = Some(target);
        self.last_sent = Instant::now();
        Ok(marker)
    }
}
