//! The operators' framework: what an operator gets from its run (metrics,
//! the stop request, its part in checkpoints: markers in, parts out,
//! restored state), and the operators that drive checkpoints and stops.
//!
//! This layer knows the records and the checkpoint store, nothing above
//! them: a layer that needs more of the run (the alert evaluators' check of
//! a reload, the redirection of a run's inputs and outputs) keeps it here
//! through [`Env::layer`] and the hooks of [`Env`], opaque to the run.

mod commit;
pub mod control;
mod participant;
mod stateful;
mod trigger;

use std::any::{Any, TypeId};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use serde::de::DeserializeOwned;
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::Probe;
use timely::dataflow::{Scope, Stream};
use timely::scheduling::Activator;

use crate::checkpoint::{Marker, PartInfo, PendingFile, Session};
use crate::reading::Reading;
pub use control::{Reload, Run, RunControl};
pub(crate) use participant::{stop_on_last_marker, Barrier, Participant};
pub(crate) use stateful::{checkpointed_sink, stateful, Side, SinkEvent, StatefulLogic};

/// A source's resume bookkeeping, written by the worker's acknowledger at
/// each checkpoint.
pub(crate) trait SourceBook {
    /// The operator name of the source's part.
    fn op(&self) -> String;
    /// The part for a checkpoint at `frontier`, re-reading from event time
    /// `restart_from` (earlier than `frontier` by the longest window).
    fn part(&self, restart_from: u64, frontier: u64) -> Vec<u8>;
}

/// The parts one worker has written for a checkpoint, and the files they
/// make visible.
#[derive(Default)]
struct Written {
    parts: Vec<PartInfo>,
    files: Vec<PendingFile>,
    /// Operators that could not write their part: the checkpoint cannot
    /// complete.
    failed: usize,
}

/// State shared by the checkpointing operators of one worker.
#[derive(Default)]
struct Shared {
    /// Operators that write a part at every marker.
    participants: Cell<usize>,
    /// Participants so far by kind, to name them.
    kinds: RefCell<BTreeMap<String, usize>>,
    /// The longest window any operator keeps: sources re-read this much
    /// event time before a checkpoint's frontier.
    history_ms: Cell<u64>,
    /// Parts written so far, by checkpoint id.
    written: RefCell<BTreeMap<u64, Written>>,
    /// Sources of this worker.
    sources: RefCell<Vec<Rc<dyn SourceBook>>>,
    /// Frontiers of the sources' outputs, followed by the trigger.
    probes: RefCell<Vec<ProbeHandle<u64>>>,
    /// Frontiers of the sinks' inputs.
    sinks: RefCell<Vec<ProbeHandle<u64>>>,
    /// Every operator is wired (set by [`Env::finish`]).
    built: Cell<bool>,
    /// Wakes the acknowledger when a part is written.
    acker: RefCell<Option<Activator>>,
    /// When each checkpoint in progress started (worker 0), for its duration.
    started: RefCell<BTreeMap<u64, Instant>>,
    /// What the layers above keep for the run ([`Env::layer`]), by type.
    layers: RefCell<BTreeMap<TypeId, Rc<dyn Any>>>,
    /// Decides on reloads ([`Env::on_reload`]).
    reload_check: RefCell<Option<ReloadCheck>>,
    /// The fingerprints of the definitions in force (worker 0 writes them in
    /// every manifest; see [`Env::set_definitions`]).
    definitions: RefCell<Vec<(String, u64)>>,
    /// Checks made once every operator is wired ([`Env::check_at_finish`]).
    finish_checks: RefCell<Vec<FinishCheck>>,
    /// Whether some operator takes a reading of event time `t` behind its
    /// partition's watermark `wm` ([`Env::take_late`]), one per operator.
    late_takers: RefCell<Vec<LateTaker>>,
}

/// Whether an operator takes a late reading: `(event time, watermark it is
/// behind)` (see [`Env::take_late`]).
pub(crate) type LateTaker = Box<dyn Fn(u64, u64) -> bool>;

/// A source's late readings, each with the partition watermark it was
/// judged behind (see [`Env::register_late`]).
pub(crate) type LateStream<'scope> = Stream<'scope, u64, Vec<(u64, Reading)>>;

/// Decodes a requested [`Reload`] and says whether the running pipeline can
/// take it: the fingerprints of the definitions it puts in force, or why not.
pub type ReloadCheck = Box<dyn Fn(&Reload) -> Result<Vec<(String, u64)>, String>>;

/// A check made once every operator is wired: a problem that fails the run
/// before it reads anything.
pub type FinishCheck = Box<dyn Fn() -> Option<String>>;

impl Shared {
    fn wake_acker(&self) {
        if let Some(acker) = self.acker.borrow().as_ref() {
            acker.activate();
        }
    }
}

/// A source's progress: (partition, bucket) pairs (see [`Env::register_progress`]).
pub(crate) type ProgressStream<'scope> = Stream<'scope, u64, Vec<(i32, u64)>>;

/// Everything an operator needs from its run, one per worker and dataflow:
/// the metrics, the stop request, and checkpointing.
///
/// Build one with [`Env::new`] before wiring operators, and call
/// [`Env::finish`] after (the runtime does both). Without checkpoints the
/// operators behave as before: the marker stream stays empty.
pub struct Env<'scope> {
    scope: Scope<'scope, u64>,
    run: Run,
    run_id: String,
    session: Option<Arc<Session>>,
    markers: Stream<'scope, u64, Vec<Marker>>,
    shared: Rc<Shared>,
    /// The sources' progress streams (see [`Env::register_progress`]).
    progress: RefCell<Vec<ProgressStream<'scope>>>,
    /// The sources' late readings (see [`Env::register_late`]).
    late: RefCell<Vec<LateStream<'scope>>>,
    /// The control sources' events (see [`Env::register_control`]), and
    /// whether an operator took them already.
    control: RefCell<(Vec<ControlStream<'scope>>, bool)>,
}

/// A stream of control events.
pub type ControlStream<'scope> = Stream<'scope, u64, Vec<crate::record::ControlEvent>>;

impl<'scope> Env<'scope> {
    /// An environment for the operators of `scope`, with checkpoints when
    /// `session` is given. `run_id` makes output file names unique per run.
    pub fn new(
        scope: Scope<'scope, u64>,
        run: Run,
        run_id: &str,
        session: Option<Arc<Session>>,
    ) -> Self {
        let shared = Rc::new(Shared::default());
        let markers_done = ProbeHandle::new();
        let stops = trigger::stop_relay(scope, run.clone(), markers_done.clone());
        let markers = trigger::trigger(scope, stops, session.clone(), shared.clone(), run.clone())
            .broadcast()
            .probe_with(&markers_done);
        Env {
            scope,
            run,
            run_id: run_id.to_owned(),
            session,
            markers,
            shared,
            progress: RefCell::default(),
            late: RefCell::default(),
            control: RefCell::default(),
        }
    }

    /// Keeps `value` for the operators of this run, one per type (it
    /// replaces a value of its type kept before): how a layer above this
    /// one keeps what the whole run shares, e.g. where its inputs come
    /// from. Read it back with [`Env::layer`].
    pub fn insert<T: 'static>(&self, value: T) {
        self.shared
            .layers
            .borrow_mut()
            .insert(TypeId::of::<T>(), Rc::new(value));
    }

    /// The value of type `T` kept for this run ([`Env::insert`]), or a
    /// default one, kept from then on.
    pub fn layer<T: Default + 'static>(&self) -> Rc<T> {
        let mut layers = self.shared.layers.borrow_mut();
        let value = layers
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Rc::new(T::default()));
        value.clone().downcast().expect("kept under its own type")
    }

    /// An environment without checkpoints and with fresh metrics: for tests
    /// and examples.
    pub fn standalone(scope: Scope<'scope, u64>) -> Self {
        Env::new(scope, Run::default(), "local", None)
    }

    /// This environment with markers fed by hand instead of by the trigger.
    #[cfg(test)]
    pub(crate) fn with_markers(mut self, markers: Stream<'scope, u64, Vec<Marker>>) -> Self {
        self.markers = markers;
        self
    }

    /// The run: its metrics and its control.
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// The dataflow scope.
    pub fn scope(&self) -> Scope<'scope, u64> {
        self.scope
    }

    /// A file name prefix unique to this run and worker, for sinks that write
    /// files: `part-<run>-w<worker>`.
    pub fn file_prefix(&self) -> String {
        format!("part-{}-w{}", self.run_id, self.scope.index())
    }

    /// Whether checkpoints are taken.
    pub fn checkpointing(&self) -> bool {
        self.session.is_some()
    }

    /// The frontier of the checkpoint this run resumed from: every input
    /// before it is already accounted for.
    pub fn restored_frontier(&self) -> Option<u64> {
        self.session.as_ref().and_then(|s| s.restored_frontier())
    }

    /// The number of the checkpoint this run resumed from.
    pub fn restored_checkpoint(&self) -> Option<u64> {
        self.session
            .as_ref()
            .and_then(|s| s.restored())
            .map(|r| r.manifest.id)
    }

    /// The restored parts of operator `op`, one per worker of the run that
    /// wrote them. A part that cannot be decoded is a pipeline error.
    pub(crate) fn restored<T: DeserializeOwned>(&self, op: &str) -> Vec<T> {
        let Some(session) = &self.session else {
            return Vec::new();
        };
        session.parts(op).unwrap_or_else(|e| {
            self.run.control.add_error(e);
            Vec::new()
        })
    }

    /// Tells the sources that an operator keeps `ms` of event time (a
    /// window): after a restart they re-read that much before the
    /// checkpoint's frontier.
    pub(crate) fn keep_history(&self, ms: u64) {
        self.shared
            .history_ms
            .set(self.shared.history_ms.get().max(ms));
    }

    /// Registers a source: the trigger follows `stream`'s frontier, and the
    /// source's bookkeeping goes into every checkpoint.
    pub(crate) fn register_source<C: timely::Container>(
        &self,
        stream: Stream<'scope, u64, C>,
        book: Rc<dyn SourceBook>,
    ) {
        let probe = ProbeHandle::new();
        stream.probe_with(&probe);
        self.shared.probes.borrow_mut().push(probe);
        self.shared.sources.borrow_mut().push(book);
    }

    /// Registers a control source's events, for the alarm ledger. A control
    /// source must be wired before the alerts.
    ///
    /// # Panics
    /// If the ledger already took the control events: the pipeline wired
    /// its control source after its alerts.
    pub(crate) fn register_control(&self, stream: ControlStream<'scope>) {
        let mut control = self.control.borrow_mut();
        assert!(
            !control.1,
            "the control source must be wired before the alerts (ctx.control before alerts)"
        );
        control.0.push(stream);
    }

    /// Every control source's events, on every worker: empty without a
    /// control source.
    pub(crate) fn control(&self) -> ControlStream<'scope> {
        use timely::dataflow::operators::{Concatenate, ToStream};
        let mut control = self.control.borrow_mut();
        control.1 = true;
        match control.0.len() {
            0 => Vec::<crate::record::ControlEvent>::new().to_stream(self.scope),
            _ => self.scope.concatenate(control.0.clone()),
        }
        .broadcast()
    }

    /// Registers the resume book of a source that does not count in the
    /// readings' frontier (control events): its positions are part of
    /// checkpoints.
    pub(crate) fn register_source_book(&self, book: Rc<dyn SourceBook>) {
        self.shared.sources.borrow_mut().push(book);
    }

    /// The frontier of the readings of every source of this dataflow: the
    /// least time at which any source, on any worker or process, may still
    /// send a reading (`None` once every source is done). Each source's
    /// readings are probed when it is registered ([`Env::register_source`]),
    /// and timely's progress tracking makes a probe's frontier the global
    /// one, so this is the same on every worker once progress has spread.
    /// Sources align their partitions' watermarks to it.
    pub(crate) fn sources_frontier(&self) -> impl Fn() -> Option<u64> + 'static {
        let shared = self.shared.clone();
        move || {
            shared
                .probes
                .borrow()
                .iter()
                .filter_map(|p| p.with_frontier(|f| f.first().copied()))
                .min()
        }
    }

    /// Registers a sink's input, so sources can tell when everything before
    /// a time has reached every sink (see [`Env::sinks_reached`]).
    pub(crate) fn register_sink<C: timely::Container>(
        &self,
        stream: Stream<'scope, u64, C>,
    ) -> Stream<'scope, u64, C> {
        let probe = ProbeHandle::new();
        let stream = stream.probe_with(&probe);
        self.shared.sinks.borrow_mut().push(probe);
        stream
    }

    /// A test of whether every sink's input frontier has reached a time:
    /// every operator before the sinks that holds back output until the
    /// frontier passes a time (windows, rule durations) has then run with
    /// its input frontier there.
    pub(crate) fn sinks_reached(&self) -> impl Fn(u64) -> bool + 'static {
        let shared = self.shared.clone();
        move |time| !shared.sinks.borrow().iter().any(|p| p.less_than(&time))
    }

    /// Registers a source's progress: (partition, bucket) for each bucket
    /// of event time in which a partition delivered readings, sent at or
    /// before the time of those readings.
    pub(crate) fn register_progress(&self, stream: Stream<'scope, u64, Vec<(i32, u64)>>) {
        self.progress.borrow_mut().push(stream);
    }

    /// Every source's progress, on every worker.
    pub(crate) fn progress(&self) -> Stream<'scope, u64, Vec<(i32, u64)>> {
        use timely::dataflow::operators::{Concatenate, ToStream};
        let streams = self.progress.borrow().clone();
        match streams.len() {
            0 => Vec::<(i32, u64)>::new().to_stream(self.scope),
            _ => self.scope.concatenate(streams),
        }
        .broadcast()
    }

    /// Has the sources send an operator the readings behind their
    /// partition's watermark (late) that `takes` says it takes, given their
    /// event time and that watermark, instead of sending them to the dead
    /// letters (see [`Env::late_readings`]). A late reading no operator
    /// takes is a dead letter.
    pub(crate) fn take_late(&self, takes: impl Fn(u64, u64) -> bool + 'static) {
        self.shared.late_takers.borrow_mut().push(Box::new(takes));
    }

    /// Whether some operator takes a late reading of event time `t` behind
    /// watermark `wm` (asked by the sources while they run).
    pub(crate) fn late_taken(&self) -> impl Fn(u64, u64) -> bool + 'static {
        let shared = self.shared.clone();
        move |t, wm| shared.late_takers.borrow().iter().any(|takes| takes(t, wm))
    }

    /// Registers a source's late readings that some operator takes, each
    /// with the watermark it was judged behind, sent at or before it.
    pub(crate) fn register_late(&self, stream: LateStream<'scope>) {
        self.late.borrow_mut().push(stream);
    }

    /// Every source's late readings (see [`Env::take_late`]), on the worker
    /// that read them.
    pub(crate) fn late_readings(&self) -> LateStream<'scope> {
        use timely::dataflow::operators::{Concatenate, ToStream};
        let streams = self.late.borrow().clone();
        match streams.len() {
            0 => Vec::<(u64, Reading)>::new().to_stream(self.scope),
            _ => self.scope.concatenate(streams),
        }
    }

    /// The checkpoint markers, for an operator that needs to know where
    /// checkpoints are taken without writing a part.
    pub(crate) fn markers(&self) -> Stream<'scope, u64, Vec<Marker>> {
        self.markers.clone()
    }

    /// Registers an operator that writes a part at every marker, named
    /// `<kind>.<n>` for the `n`-th operator of that kind wired on the worker
    /// (so a restarted pipeline, wired the same way, finds its parts).
    /// Returns the participant and the markers it must take as an input.
    pub(crate) fn participant(
        &self,
        kind: &str,
    ) -> (Participant, Stream<'scope, u64, Vec<Marker>>) {
        self.shared
            .participants
            .set(self.shared.participants.get() + 1);
        let mut kinds = self.shared.kinds.borrow_mut();
        let n = kinds.entry(kind.to_owned()).or_default();
        *n += 1;
        let participant = Participant {
            op: format!("{kind}.{n}"),
            worker: self.scope.index(),
            session: self.session.clone(),
            shared: self.shared.clone(),
            run: self.run.clone(),
        };
        (participant, self.markers.clone())
    }

    /// Sets how a requested reload is decided on (see [`RunControl::request_reload`]):
    /// worker 0's trigger asks `check`, and sends the reload with the next
    /// marker if it agrees. Without a check, a reload is refused.
    pub(crate) fn on_reload(&self, check: ReloadCheck) {
        *self.shared.reload_check.borrow_mut() = Some(check);
    }

    /// Sets the fingerprints of the definitions in force (the rules, by
    /// name), which every manifest records so that a resumed run can tell
    /// what changed since ([`Env::changed_since_restore`]).
    pub(crate) fn set_definitions(&self, fingerprints: Vec<(String, u64)>) {
        *self.shared.definitions.borrow_mut() = fingerprints;
    }

    /// The names among `fingerprints` whose definition changed since the
    /// checkpoint this run resumed from (see [`Manifest::changed_rules`]):
    /// their state must not be taken from it.
    ///
    /// [`Manifest::changed_rules`]: crate::checkpoint::Manifest::changed_rules
    pub(crate) fn changed_since_restore(&self, fingerprints: &[(String, u64)]) -> Vec<String> {
        self.session
            .as_ref()
            .and_then(|s| s.restored())
            .map_or_else(Vec::new, |r| r.manifest.changed_rules(fingerprints))
    }

    /// Adds a check made by [`Env::finish`], once every operator is wired.
    pub(crate) fn check_at_finish(&self, check: FinishCheck) {
        self.shared.finish_checks.borrow_mut().push(check);
    }

    /// Completes the wiring: every worker acknowledges its parts of each
    /// checkpoint to worker 0, which writes the manifest. A problem found by
    /// a check a layer added (a rule no alert evaluator is fed
    /// for, say) is a pipeline error, so the run stops before it reads
    /// anything.
    pub fn finish(self) {
        self.shared.built.set(true);
        for check in self.shared.finish_checks.borrow().iter() {
            if let Some(problem) = check() {
                self.run.control.add_error(problem);
            }
        }
        let Some(session) = self.session else {
            return;
        };
        let acks = commit::acknowledge(
            &self.markers,
            session.clone(),
            self.shared.clone(),
            self.run.clone(),
        );
        commit::commit(acks, session, self.shared, self.run);
    }
}
