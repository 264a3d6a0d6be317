//! The source operator: one timely operator per source and worker that
//! drives a [`Poller`], hands what it reads to its [`Ingest`], sends the
//! readings, dead letters and progress, and moves its capabilities with the
//! watermark.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::Stream;
use timely::progress::frontier::MutableAntichain;
use timely::progress::Antichain;
use timely::scheduling::{Activator, SyncActivator};

use super::align::Alignment;
use super::ingest::{Ingest, Watermark};
use super::item::Decode;
use super::resume::IngestBook;
use super::Items;
use crate::dead_letter::DeadLetter;
use crate::reading::{Reading, PROGRESS_BUCKET_MS};
use crate::run::{stop_on_last_marker, Env, Run};

/// What a source operator polls: it reads records and hands them to its
/// [`Ingest`] (of what `D` decodes).
pub(crate) trait Poller<D: Decode>: 'static {
    /// Reads a batch; returns how many records were read (0: nothing now).
    /// A poller with nothing to read should wait a little for data (a few
    /// ms at most), since the source is rescheduled at once, unless it
    /// wakes the source itself ([`Poller::wake_on_data`]).
    fn poll(
        &mut self,
        ingest: &mut Ingest<D>,
        cap_time: u64,
        readings: &mut Vec<D::Item>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize;
    /// Whether the source stops at its partitions' ends.
    fn bounded(&self) -> bool;
    /// Has the poller call `wake` (from any thread) when data arrives. If
    /// it does (true), a poll that finds nothing returns at once and the
    /// source sleeps until woken, or [`STARVED_RECHECK`] at most, for the
    /// wall-clock duties (idleness, status); the worker runs its other
    /// operators or parks meanwhile.
    fn wake_on_data(&mut self, _wake: Box<dyn Fn() + Send + Sync>) -> bool {
        false
    }
    /// Stops reading the partitions of `alignment.hold` and reads those of
    /// `alignment.release` again (watermark alignment, see
    /// [`Ingest::align`]). A poller whose [`Ingest`] has no alignment bound
    /// is never asked to.
    fn align(&mut self, _alignment: &Alignment) {}
    /// The latest known end offset of each partition (Kafka's high
    /// watermark), for the lag metrics.
    fn end_offsets(&self) -> BTreeMap<i32, i64> {
        BTreeMap::new()
    }
}

/// How often a source publishes where its partitions stand.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// How long a source that found nothing sleeps at most when its poller
/// wakes it on data: the pace of its wall-clock duties (idle partitions and
/// the idle watermark) while no data arrives.
const STARVED_RECHECK: Duration = Duration::from_millis(10);

/// An output of a source operator.
type Out<T> = OutputBuilder<u64, CapacityContainerBuilder<Vec<T>>>;

/// A source's late items, each with the watermark it is behind.
type Late<'scope, T> = Stream<'scope, u64, Vec<(u64, T)>>;

/// The progress stream of a source: (partition, bucket) pairs.
type Progress<'scope> = Stream<'scope, u64, Vec<(i32, u64)>>;

/// A source operator's outputs, with the buffers of one batch.
struct Outputs<T: 'static> {
    readings: Out<T>,
    dead: Out<DeadLetter>,
    /// (partition, bucket) for each bucket of event time in which a
    /// partition delivered readings: how far each partition has come, for
    /// silence rules.
    progress: Out<(i32, u64)>,
    /// Late readings a window output takes, with the watermark each is
    /// behind (see [`Env::take_late`]).
    late: Out<(u64, T)>,
    readings_buf: Vec<T>,
    dead_buf: Vec<DeadLetter>,
    late_buf: Vec<(u64, T)>,
}

impl<T: Clone + 'static> Outputs<T> {
    /// The outputs of the operator `builder` builds, with their streams:
    /// the readings and dead letters, the progress, and the late readings.
    fn new<'scope>(
        builder: &mut OperatorBuilder<'scope, u64>,
    ) -> (Self, Items<'scope, T>, Progress<'scope>, Late<'scope, T>) {
        let (readings_out, readings) = builder.new_output::<Vec<T>>();
        let (dead_out, dead) = builder.new_output::<Vec<DeadLetter>>();
        let (progress_out, progress) = builder.new_output::<Vec<(i32, u64)>>();
        let (late_out, late) = builder.new_output::<Vec<(u64, T)>>();
        let outputs = Outputs {
            readings: OutputBuilder::from(readings_out),
            dead: OutputBuilder::from(dead_out),
            progress: OutputBuilder::from(progress_out),
            late: OutputBuilder::from(late_out),
            readings_buf: Vec::new(),
            dead_buf: Vec::new(),
            late_buf: Vec::new(),
        };
        (outputs, (readings, dead), progress, late)
    }
}

/// The capabilities of a source operator's outputs, which move together.
struct Caps {
    readings: Capability<u64>,
    dead: Capability<u64>,
    progress: Capability<u64>,
    late: Capability<u64>,
}

impl Caps {
    /// The capabilities timely hands the operator: one per output, in the
    /// order of [`Outputs`].
    fn new(mut caps: Vec<Capability<u64>>) -> Option<Self> {
        match (caps.pop(), caps.pop(), caps.pop(), caps.pop()) {
            (Some(late), Some(progress), Some(dead), Some(readings)) => Some(Caps {
                readings,
                dead,
                progress,
                late,
            }),
            _ => None,
        }
    }

    fn time(&self) -> u64 {
        *self.readings.time()
    }

    fn downgrade(&mut self, time: u64) {
        self.readings.downgrade(&time);
        self.dead.downgrade(&time);
        self.progress.downgrade(&time);
        self.late.downgrade(&time);
    }
}

/// Builds a source operator with a readings and a dead-letter output that
/// drives a [`Poller`]. `open` runs on each worker with (worker, peers); an
/// error there is recorded in the metrics and ends the source.
pub(crate) fn ingest_source<'scope, D, P, F>(
    env: &Env<'scope>,
    topic: &str,
    name: String,
    watermark_step_ms: u64,
    open: F,
) -> Items<'scope, D::Item>
where
    D: Decode,
    P: Poller<D>,
    F: FnOnce(usize, usize) -> Result<(P, Ingest<D>), String> + 'static,
{
    let scope = env.scope();
    let run = env.run().clone();
    let shared_ingest: Rc<RefCell<Option<Ingest<D>>>> = Rc::new(RefCell::new(None));
    let ingest_cell = shared_ingest.clone();
    let mut builder = OperatorBuilder::new(name, scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let sync_activator = scope
        .worker()
        .sync_activator_for(builder.operator_info().address.to_vec());
    let (outputs, (readings, dead), progress, late) = Outputs::new(&mut builder);
    let late_taken = env.late_taken();
    // The checkpoint markers, connected to no output: on a stop the source
    // keeps its capabilities until the trigger has taken its last
    // checkpoint. Dropping them at once would let the frontier jump to
    // other workers' watermarks, past records this source never read, and
    // the last checkpoint would count them as processed.
    let no_connection: Vec<(usize, Antichain<u64>)> = Vec::new();
    let mut markers = builder.new_input_connection(env.markers(), Pipeline, no_connection);
    let (worker, peers) = (scope.index(), scope.peers());
    let step = watermark_step_ms.max(1);
    let record_dir =
        crate::connect::RunIo::of(env)
            .record
            .clone()
            .map(|dir| match D::RECORDED_IN {
                Some(below) => dir.join(below),
                None => dir,
            });
    let sinks_reached = env.sinks_reached();
    let sources_frontier = env.sources_frontier();
    let checkpointing = env.checkpointing();
    run.metrics.sources_wired.inc_by(1);

    builder.build(move |caps| {
        let caps = Caps::new(caps);
        let (poller, woken) = match open(worker, peers) {
            Ok((mut poller, mut ingest)) => {
                if D::READINGS {
                    ingest.late_taken = Some(Box::new(late_taken));
                }
                let dir = record_dir.as_deref();
                let woken = ready(
                    &mut poller,
                    &mut ingest,
                    sync_activator,
                    dir,
                    &run,
                    step,
                    checkpointing,
                );
                *ingest_cell.borrow_mut() = Some(ingest);
                (Some(poller), woken)
            }
            Err(error) => {
                run.control.add_error(error);
                (None, false)
            }
        };
        let mut source = Source {
            poller,
            ingest: ingest_cell,
            caps,
            outputs,
            woken,
            last_status: Instant::now(),
            run: run.clone(),
            activator,
            worker,
            step,
        };
        move |frontiers| {
            markers.for_each(|_, data| {
                if data.drain(..).any(|m| m.last) {
                    stop_on_last_marker(&run);
                }
            });
            source.activate(&frontiers[0], &sources_frontier, &sinks_reached);
        }
    });
    let book = Rc::new(IngestBook::new(topic, shared_ingest));
    D::register(env, &readings, late, progress, book);
    (readings, dead)
}

/// A source operator on one worker, between activations.
struct Source<P, D: Decode> {
    /// `None`: the source failed to open.
    poller: Option<P>,
    /// Shared with the checkpoint acknowledger (see [`IngestBook`]).
    ingest: Rc<RefCell<Option<Ingest<D>>>>,
    /// `None` once the source is done.
    caps: Option<Caps>,
    outputs: Outputs<D::Item>,
    /// The poller wakes the source on data.
    woken: bool,
    last_status: Instant,
    run: Run,
    activator: Activator,
    worker: usize,
    step: u64,
}

impl<P: Poller<D>, D: Decode> Source<P, D> {
    /// One activation: stops on request (once the markers' `input` says
    /// the last checkpoint is taken), or reads a batch, sends it and moves
    /// the capabilities with the watermark, then schedules itself again.
    fn activate(
        &mut self,
        input: &MutableAntichain<u64>,
        sources_frontier: &dyn Fn() -> Option<u64>,
        sinks_reached: &dyn Fn(u64) -> bool,
    ) {
        let (run, activator, worker) = (&self.run, &self.activator, self.worker);
        let mut ingest = self.ingest.borrow_mut();
        let (Some(poller), Some(ingest), Some(c)) =
            (self.poller.as_mut(), ingest.as_mut(), self.caps.as_mut())
        else {
            self.caps = None;
            return;
        };
        if run.control.stop_requested() {
            if !input.frontier().is_empty() {
                // Stopped reading; the last checkpoint is not taken yet.
                activator.activate_after(Duration::from_millis(5));
                return;
            }
            tracing::info!(
                worker,
                capability = c.time(),
                "Source stopping on request; the dataflow drains"
            );
            ingest.seal_recording();
            self.caps = None;
            return;
        }
        let outputs = &mut self.outputs;
        let read = poll(poller, ingest, sources_frontier(), c.time(), outputs);
        if self.last_status.elapsed() >= STATUS_EVERY {
            ingest.publish_status(&poller.end_offsets());
            self.last_status = Instant::now();
        }
        send_batch::<D>(outputs, c, run, read);
        // A control source follows the readings once it has read its topic.
        let follow = (!D::READINGS).then(|| (sources_frontier(), poller.end_offsets()));
        match advance(
            ingest,
            poller.bounded(),
            c,
            self.step,
            sinks_reached,
            follow,
        ) {
            Next::Read => {}
            Next::Hold => {
                activator.activate_after(Duration::from_millis(1));
                return;
            }
            Next::Done => {
                tracing::debug!(worker, "Source reached the end of its partitions");
                ingest.seal_recording();
                self.caps = None;
                return;
            }
        }
        if self.woken && read == 0 {
            activator.activate_after(STARVED_RECHECK);
        } else {
            // Others wait for data themselves (briefly) when starved.
            activator.activate();
        }
    }
}

/// Readies a source that opened on its worker: the poller wakes it on
/// data with `activator` if it can (the result), what it reads is recorded into
/// `record_dir` if given, alignment steps are at least `step`, and without
/// checkpoints no resume bookkeeping is kept.
fn ready<P: Poller<D>, D: Decode>(
    poller: &mut P,
    ingest: &mut Ingest<D>,
    activator: SyncActivator,
    record_dir: Option<&Path>,
    run: &Run,
    step: u64,
    checkpointing: bool,
) -> bool {
    let woken = poller.wake_on_data(Box::new(move || {
        // Fails only once the worker is gone.
        let _ = activator.activate();
    }));
    if let Some(dir) = record_dir {
        ingest.record_into(dir, run);
    }
    run.metrics.sources_open.inc_by(1);
    ingest.align_at_least(step);
    if !checkpointing {
        ingest.without_checkpoints();
    }
    ingest.publish_status(&BTreeMap::new());
    woken
}

/// Aligns the partitions with the readings' `frontier`, then polls a batch
/// into the buffers of `outputs`; returns how many records were read.
fn poll<P: Poller<D>, D: Decode>(
    poller: &mut P,
    ingest: &mut Ingest<D>,
    frontier: Option<u64>,
    cap_time: u64,
    outputs: &mut Outputs<D::Item>,
) -> usize {
    let alignment = ingest.align(frontier);
    if alignment != Alignment::default() {
        poller.align(&alignment);
    }
    let read = poller.poll(
        ingest,
        cap_time,
        &mut outputs.readings_buf,
        &mut outputs.dead_buf,
    );
    outputs.late_buf.append(&mut ingest.late);
    read
}

/// Counts a batch of `read` records in the metrics and sends its readings,
/// dead letters and progress.
fn send_batch<D: Decode>(outputs: &mut Outputs<D::Item>, caps: &Caps, run: &Run, read: usize) {
    let m = &run.metrics;
    m.records_read.inc_by(read as u64);
    if D::READINGS {
        m.readings.inc_by(outputs.readings_buf.len() as u64);
        if let Some(latest) = outputs.readings_buf.iter().map(D::time).max() {
            m.note_arrival(latest);
        }
        let mut progress_buf = progress_of(D::progress(&outputs.readings_buf).iter());
        send(&mut outputs.progress, &caps.progress, &mut progress_buf);
    } else {
        m.control_events.inc_by(outputs.readings_buf.len() as u64);
    }
    send(
        &mut outputs.readings,
        &caps.readings,
        &mut outputs.readings_buf,
    );
    send(&mut outputs.dead, &caps.dead, &mut outputs.dead_buf);
    m.late_readings_taken.inc_by(outputs.late_buf.len() as u64);
    send(&mut outputs.late, &caps.late, &mut outputs.late_buf);
}

/// What a source does after an activation's batch.
enum Next {
    /// Read on.
    Read,
    /// Hold the capabilities where they are and look again shortly.
    Hold,
    /// Drop the capabilities: the source is done.
    Done,
}

/// Moves the capabilities with `ingest`'s watermark, in steps of `step`,
/// and says what to do next.
fn advance<D: Decode>(
    ingest: &mut Ingest<D>,
    bounded: bool,
    caps: &mut Caps,
    step: u64,
    sinks_reached: &dyn Fn(u64) -> bool,
    follow: Option<(Option<u64>, BTreeMap<i32, i64>)>,
) -> Next {
    let watermark = match ingest.watermark(bounded) {
        // Stopped at an event time `to`: first move on to it, and
        // hold it until every sink's input has reached it, so that
        // what comes before it completes as in a full run (a rule's
        // duration that ends before it fires) even where timely
        // would let the frontier jump from below `to` to the end.
        Watermark::Done if ingest.done_at.is_some_and(|to| !sinks_reached(to)) => {
            let to = ingest.done_at.unwrap_or_default();
            if caps.time() < to {
                caps.downgrade(to);
            }
            return Next::Hold;
        }
        Watermark::Done => return Next::Done,
        // All partitions idle: move on with the wall clock so this
        // worker does not stall the others. Late wakers go to dead letters.
        Watermark::Idle => ingest.idle_watermark(),
        Watermark::At(wm) => Some(wm),
        Watermark::Unknown => None,
    };
    // A source of control events follows the readings' frontier: it never
    // holds the readings back, and what it reads behind them is applied
    // where they are (see `Decode::at_watermark`).
    let watermark = match follow {
        Some((readings, ends)) => ingest.following(watermark, readings, &ends),
        None => watermark,
    };
    if let Some(wm) = watermark {
        let target = wm - wm % step;
        if target > caps.time() {
            caps.downgrade(target);
            ingest.capability_moved(target);
        }
    }
    Next::Read
}

/// The distinct (partition, bucket) pairs of a batch of readings, where a
/// bucket is the start of a [`PROGRESS_BUCKET_MS`] of event time.
fn progress_of<'a>(readings: impl Iterator<Item = &'a Reading>) -> Vec<(i32, u64)> {
    let mut pairs: Vec<(i32, u64)> = Vec::new();
    for r in readings {
        let pair = (r.partition, r.time - r.time % PROGRESS_BUCKET_MS);
        // Readings of a batch mostly come in runs of one partition and
        // bucket; a batch of many partitions has many runs, so the rest of
        // the duplicates go in one sort, not a search per reading.
        if pairs.last() != Some(&pair) {
            pairs.push(pair);
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

fn send<T: Clone + 'static>(
    out: &mut OutputBuilder<u64, CapacityContainerBuilder<Vec<T>>>,
    cap: &Capability<u64>,
    buf: &mut Vec<T>,
) {
    if !buf.is_empty() {
        out.activate().session(cap).give_container(buf);
        buf.clear();
    }
}
