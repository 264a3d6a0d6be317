//! What an operator gets from its run: metrics, the stop request, and its
//! part in checkpoints (markers in, parts out, restored state).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::generic::{Operator, OutputBuilder};
use timely::dataflow::operators::probe::Handle as ProbeHandle;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Capability, Probe};
use timely::dataflow::{Scope, Stream};
use timely::progress::{Antichain, Source};
use timely::scheduling::Activator;

use super::{Ack, Manifest, Marker, PartInfo, PendingFile, Session, FORMAT};
use crate::alert::{Rule, RuleKind, RuleSet};
use crate::control::Run;
use crate::kafka::source::{EndOffset, StartOffset};
use crate::recording::Recording;

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
    /// The window streams wired so far, by stream, with their size.
    window_streams: RefCell<Vec<(Source, u64)>>,
    /// Every rule given to an alert evaluator, by name: what it looks at,
    /// and whether some evaluator feeds it.
    rules_fed: RefCell<BTreeMap<String, (String, bool)>>,
    /// When each checkpoint in progress started (worker 0), for its duration.
    started: RefCell<BTreeMap<u64, Instant>>,
    /// Whether each alert evaluator can judge a rule: it is fed what the
    /// rule looks at, and is wired as the rule needs (following the
    /// sources' progress for silence rules, routing by device for
    /// combination rules). A reload whose rules no evaluator can judge is
    /// refused.
    evaluators: RefCell<Vec<Judges>>,
    /// The rules in force (worker 0 keeps them for the manifests).
    rules: RefCell<Option<Arc<RuleSet>>>,
}

/// Whether an alert evaluator can judge a rule.
pub(crate) type Judges = Box<dyn Fn(&Rule) -> bool>;

impl Shared {
    fn wake_acker(&self) {
        if let Some(acker) = self.acker.borrow().as_ref() {
            acker.activate();
        }
    }
}

/// Where a run's inputs come from and its outputs go, when not where the
/// pipeline says: set by `weir run --record` and `weir replay`, and applied
/// by the operators themselves, so that config pipelines and Rust pipelines
/// behave alike.
#[derive(Clone, Debug, Default)]
pub struct RunIo {
    /// Sources record what they read, with their idle marks, into this
    /// recording directory.
    pub record: Option<PathBuf>,
    /// Sources read this recording instead of their Kafka topic.
    pub replay: Option<Arc<Recording>>,
    /// A replay moves its watermark this many times as fast as the wall
    /// clock (for demos); as fast as it can when `None`.
    pub speed: Option<f64>,
    /// A replay limited to the event times `[from, to)`: it reads the
    /// recording from its start (so watermarks and rule states are exactly
    /// the live run's at `from`), stops reading a partition once its
    /// watermark passes `to`, and writes only the windows and alert events
    /// inside the range.
    pub range: Option<(u64, u64)>,
    /// Kafka sources start here instead of their configured start.
    pub start: Option<StartOffset>,
    /// Kafka sources stop at these ends (see [`KafkaSourceConfig::end`]).
    ///
    /// [`KafkaSourceConfig::end`]: crate::kafka::KafkaSourceConfig::end
    pub end: Option<EndOffset>,
    /// Sinks write local files under this directory instead of their
    /// configured destination: `windows/` (Parquet), `alerts.jsonl`,
    /// `dead_letters.jsonl`.
    pub out: Option<PathBuf>,
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
    io: Arc<RunIo>,
    /// The sources' progress streams (see [`Env::register_progress`]).
    progress: RefCell<Vec<ProgressStream<'scope>>>,
}

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
        let stops = stop_relay(scope, run.clone(), markers_done.clone());
        let markers = trigger(scope, stops, session.clone(), shared.clone(), run.clone())
            .broadcast()
            .probe_with(&markers_done);
        Env {
            scope,
            run,
            run_id: run_id.to_owned(),
            session,
            markers,
            shared,
            io: Arc::default(),
            progress: RefCell::default(),
        }
    }

    /// This environment with inputs and outputs redirected by `io`.
    pub fn with_io(mut self, io: Arc<RunIo>) -> Self {
        self.io = io;
        self
    }

    /// Where inputs come from and outputs go, when redirected.
    pub fn io(&self) -> &RunIo {
        &self.io
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

    /// Notes that `stream` carries tumbling windows of `size_ms`, so that
    /// rules evaluated on it know which windows they see.
    pub(crate) fn note_windows<D>(&self, stream: &Stream<'scope, u64, D>, size_ms: u64) {
        let name = *stream.name();
        self.shared
            .window_streams
            .borrow_mut()
            .push((name, size_ms));
    }

    /// The size of the windows `stream` carries, if a window operator of
    /// this environment built it.
    pub(crate) fn window_size<D>(&self, stream: &Stream<'scope, u64, D>) -> Option<u64> {
        let streams = self.shared.window_streams.borrow();
        streams
            .iter()
            .find(|(name, _)| name == stream.name())
            .map(|(_, size)| *size)
    }

    /// Notes an alert evaluator: which rules it can judge.
    pub(crate) fn note_evaluator(&self, judges: Judges, rules: &Arc<RuleSet>) {
        self.shared.evaluators.borrow_mut().push(judges);
        *self.shared.rules.borrow_mut() = Some(rules.clone());
    }

    /// The rules of `rules` whose state a resumed run must not take from
    /// its checkpoint: their definition changed since (see
    /// [`Manifest::changed_rules`]).
    pub(crate) fn changed_since_restore(&self, rules: &RuleSet) -> Vec<String> {
        self.session
            .as_ref()
            .and_then(|s| s.restored())
            .map_or_else(Vec::new, |r| {
                r.manifest.changed_rules(&rules.fingerprints())
            })
    }

    /// Notes rules given to an alert evaluator: (name, what it looks at,
    /// whether this evaluator feeds it). [`Env::finish`] fails the run if a
    /// rule is fed by none.
    pub(crate) fn note_rules(&self, rules: impl IntoIterator<Item = (String, String, bool)>) {
        let mut fed = self.shared.rules_fed.borrow_mut();
        for (name, input, feeds) in rules {
            fed.entry(name).or_insert((input, false)).1 |= feeds;
        }
    }

    /// Completes the wiring: every worker acknowledges its parts of each
    /// checkpoint to worker 0, which writes the manifest. A rule that no
    /// alert evaluator is fed the observations for is a pipeline error, so
    /// the run stops before it reads anything.
    pub fn finish(self) {
        self.shared.built.set(true);
        let unfed: Vec<String> = self
            .shared
            .rules_fed
            .borrow()
            .iter()
            .filter(|(_, (_, fed))| !fed)
            .map(|(name, (input, _))| format!("rule \"{name}\" ({input})"))
            .collect();
        if !unfed.is_empty() {
            self.run.control.add_error(format!(
                "no alert evaluator of the pipeline sees what {} looks at: evaluate the rules \
                 with weir_operators::alert::alerts, which wires the windows every rule needs",
                unfed.join(", ")
            ));
        }
        let Some(session) = self.session else {
            return;
        };
        let acks = acknowledge(
            &self.markers,
            session.clone(),
            self.shared.clone(),
            self.run.clone(),
        );
        commit(acks, session, self.shared, self.run);
    }
}

/// An operator's handle on checkpoints: the markers it must obey, and where
/// its parts go.
pub(crate) struct Participant {
    op: String,
    worker: usize,
    session: Option<Arc<Session>>,
    shared: Rc<Shared>,
    run: Run,
}

impl Participant {
    /// The operator's name in checkpoints.
    pub(crate) fn op(&self) -> &str {
        &self.op
    }

    /// Writes this operator's state for `marker`, with files that become
    /// visible when the checkpoint completes. A failure is a pipeline error
    /// (the checkpoint then never completes).
    pub(crate) fn write<T: Serialize>(&self, marker: &Marker, state: &T, files: Vec<PendingFile>) {
        let Some(session) = &self.session else { return };
        match session.write_part(marker.id, &self.op, self.worker, state) {
            Ok(part) => {
                let mut written = self.shared.written.borrow_mut();
                let entry = written.entry(marker.id).or_default();
                entry.parts.push(part);
                entry.files.extend(files);
            }
            Err(e) => self.fail(marker, e),
        }
        self.shared.wake_acker();
    }

    /// Gives up this operator's part of `marker` (its state at the
    /// checkpoint cannot be made durable, e.g. its outputs cannot be
    /// delivered): the checkpoint never completes, and the run fails with
    /// `reason`.
    pub(crate) fn fail(&self, marker: &Marker, reason: String) {
        self.run.control.add_error(reason);
        if self.session.is_some() {
            self.shared
                .written
                .borrow_mut()
                .entry(marker.id)
                .or_default()
                .failed += 1;
        }
        self.shared.wake_acker();
    }
}

/// The markers an operator has received and not yet obeyed.
#[derive(Debug, Default)]
pub(crate) struct Barrier {
    pending: Vec<Marker>,
    last: bool,
}

impl Barrier {
    /// Takes the markers of the marker input. The last marker of a stop
    /// stops this process too, if it was not asked to stop itself.
    pub(crate) fn receive(&mut self, markers: &mut Vec<Marker>, run: &Run) {
        if !self.last && markers.iter().any(|m| m.last) {
            self.last = true;
            stop_on_last_marker(run);
        }
        self.pending.append(markers);
        self.pending.sort_by_key(|m| m.frontier);
    }

    /// Whether the run is stopping: asked to here, or the last marker of a
    /// stop (from a process asked to stop) arrived. A stopping operator goes
    /// only as far as checkpoint markers take it: once stopped sources let
    /// go of their capabilities, the frontier may pass records they never
    /// read.
    pub(crate) fn stopping(&self, run: &Run) -> bool {
        self.last || run.control.stop_requested()
    }

    /// The next marker whose frontier the operator's inputs have reached
    /// (every one when `frontier` is `None`: the inputs have ended).
    pub(crate) fn next_due(&mut self, frontier: Option<u64>) -> Option<Marker> {
        let first = self.pending.first()?;
        if frontier.is_some_and(|f| first.frontier > f) {
            return None;
        }
        Some(self.pending.remove(0))
    }
}

/// Asks this process to stop once the last marker of a stop requested
/// elsewhere in the run arrived.
pub(crate) fn stop_on_last_marker(run: &Run) {
    if !run.control.stop_requested() {
        tracing::info!("The run was asked to stop elsewhere: stopping");
        run.control.request_stop();
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
pub(crate) fn least_frontier(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    a.into_iter().chain(b).min()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Stop requests, one per worker asked to stop (a signal, a pipeline
/// error), sent to worker 0's trigger. It holds a capability until its
/// worker is asked to stop or the markers end.
fn stop_relay<'scope>(
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
fn trigger<'scope>(
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
        let (mut next_id, floor, interval) = session.as_ref().map_or((0, 0, Duration::MAX), |s| {
            (
                s.next_id(),
                s.restored_frontier().unwrap_or(0),
                s.config().interval,
            )
        });
        let mut last_frontier: Option<u64> = None;
        let mut last_sent = Instant::now();
        let mut version = run.control.rules_version();
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
            let frontier = shared
                .probes
                .borrow()
                .iter()
                .map(|p| p.with_frontier(|f| f.first().copied()))
                .try_fold(u64::MAX, |min, f| f.map(|f| min.min(f)));
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
            // A reload applies from the frontier on; refused if the running
            // pipeline cannot judge the new rules.
            let reload = match run.control.take_reload() {
                Some(rules) if frontier.is_some() && !stopping => {
                    match unjudged(&rules, &shared.evaluators.borrow()) {
                        Ok(()) => Some(rules),
                        Err(problem) => {
                            tracing::error!("The rules are not reloaded: {problem}");
                            run.metrics.note_reload(None);
                            None
                        }
                    }
                }
                _ => None,
            };
            let due = stopping
                || reload.is_some()
                || session.is_some() && (last_sent.elapsed() >= interval || frontier.is_none());
            // Never before the restored frontier, and never twice at one
            // frontier (but for a reload).
            if due
                && (at >= floor || target == Marker::END)
                && last_frontier.is_none_or(|l| target > l || reload.is_some() && target >= l)
            {
                if let Some(rules) = &reload {
                    *shared.rules.borrow_mut() = Some(Arc::new(rules.clone()));
                    version += 1;
                    run.control.set_rules_version(version);
                    run.metrics.note_reload(Some((version, at)));
                    tracing::info!(
                        version,
                        from = at,
                        "Rules reloaded: version {version} applies from event time {at}"
                    );
                }
                output.activate().session(&*c).give(Marker {
                    id: next_id,
                    frontier: target,
                    last: stopping,
                    rules_version: version,
                    rules: reload,
                });
                if session.is_some() {
                    shared.started.borrow_mut().insert(next_id, Instant::now());
                }
                tracing::debug!(
                    checkpoint = next_id,
                    frontier = target,
                    last = stopping,
                    "Marker sent"
                );
                next_id += 1;
                last_frontier = Some(target);
                last_sent = Instant::now();
            } else if let Some(rules) = reload {
                // Not now (before the restored frontier): at a later turn.
                run.control.request_reload(rules);
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

/// Why some alert evaluator of the pipeline cannot judge a rule of
/// `rules`: no evaluator is fed what it looks at (windows of a size the
/// pipeline does not compute), or none is wired as it needs (a silence
/// rule, or a combination rule, where the pipeline started without one).
fn unjudged(rules: &RuleSet, evaluators: &[Judges]) -> Result<(), String> {
    let problems: Vec<String> = rules
        .rules
        .iter()
        .filter(|r| !evaluators.iter().any(|judges| judges(r)))
        .map(|r| {
            let kind = match r.kind {
                RuleKind::Silence { .. } => ", a silence rule",
                RuleKind::Combination => ", a combination rule",
                _ => "",
            };
            format!("rule \"{}\" ({}{kind})", r.name, r.input)
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "no alert evaluator of the running pipeline can judge {}: restart the pipeline to add it",
        problems.join(", ")
    ))
}

/// The acknowledger of one worker: holds each marker's time until every
/// participant of the worker wrote its part (and writes the sources' parts
/// itself), then sends the worker's [`Ack`] to worker 0.
fn acknowledge<'scope>(
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
fn commit(acks: Stream<'_, u64, Vec<Ack>>, session: Arc<Session>, shared: Rc<Shared>, run: Run) {
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
                    rules: shared
                        .rules
                        .borrow()
                        .as_ref()
                        .map_or_else(Vec::new, |set| set.fingerprints()),
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
