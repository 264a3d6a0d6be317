//! The source that reads a recording: it replays the recorded partitions
//! through the live source's logic, with the recorded idle marks, so its
//! readings and dead letters are exactly those of the run that made it.

use std::sync::Arc;

use timely::dataflow::Scope;

use super::{ingest_source, restored_positions, Ingest, PartitionStart, Poller, SourceStreams};
use crate::dead_letter::DeadLetter;
use crate::decode::Decoder;
use crate::recording::{PartitionReader, Recording};
use crate::run::Env;
use crate::run::Run;
use crate::source::{Decode, Items};

/// Reads a recording into a dataflow.
pub trait RecordingSource<'scope> {
    /// Replays this worker's partitions (`p % peers == worker`) of
    /// `recording`, through the same decoding, lateness and watermark logic
    /// as the Kafka source in bounded mode, with the recorded idle marks:
    /// readings and dead letters are exactly those of the run that made the
    /// recording, at any worker count. With checkpoints, a resumed replay
    /// starts each partition at the checkpoint's resume offset. The
    /// watermark moves in steps of `watermark_step_ms`, as the pipeline's
    /// source does live.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::capture::{Capture, Event};
    /// use weir_operators::recording::{RecordRef, Recorder, Recording};
    /// use weir_operators::source::RecordingSource;
    /// use weir_operators::{Decoder, Env};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut recorder = Recorder::open(dir.path(), "readings").unwrap();
    /// let payloads = [
    ///     r#"{"device_id":"d1","sensor":"temp","value":20.5,"ts":10000}"#,
    ///     r#"{"device_id":"d1","sensor":"temp","value":19.0,"ts":1000}"#, // 9 s behind: late
    /// ];
    /// for (offset, payload) in payloads.iter().enumerate() {
    ///     let record = RecordRef {
    ///         partition: 0,
    ///         offset: offset as i64,
    ///         timestamp: None,
    ///         key: None,
    ///         value: payload.as_bytes(),
    ///         headers: &[],
    ///     };
    ///     recorder.push(&record).unwrap();
    /// }
    /// recorder.seal().unwrap();
    ///
    /// let recording = Arc::new(Recording::open(dir.path()).unwrap());
    /// let (readings, dead) = timely::example(move |scope| {
    ///     let env = Env::standalone(scope);
    ///     let (readings, dead) = scope.recording_source(recording, Decoder::default(), 5_000, 100, &env);
    ///     (readings.capture(), dead.capture())
    /// });
    /// let data = |e: Event<u64, Vec<_>>| match e { Event::Messages(_, d) => d, Event::Progress(_) => vec![] };
    /// let values: Vec<_> = readings.iter().flat_map(data).map(|r| r.value).collect();
    /// assert_eq!(values, vec![20.5]);
    /// let data = |e: Event<u64, Vec<_>>| match e { Event::Messages(_, d) => d, Event::Progress(_) => vec![] };
    /// let late: Vec<_> = dead.iter().flat_map(data).map(|d: weir_operators::DeadLetter| (d.offset, d.reason.as_str())).collect();
    /// assert_eq!(late, vec![(1, "late")]);
    /// ```
    fn recording_source(
        self,
        recording: Arc<Recording>,
        decoder: Decoder,
        out_of_orderness_ms: u64,
        watermark_step_ms: u64,
        env: &Env<'scope>,
    ) -> SourceStreams<'scope>;
}

impl<'scope> RecordingSource<'scope> for Scope<'scope, u64> {
    fn recording_source(
        self,
        recording: Arc<Recording>,
        decoder: Decoder,
        out_of_orderness_ms: u64,
        watermark_step_ms: u64,
        env: &Env<'scope>,
    ) -> SourceStreams<'scope> {
        recorded_items(
            recording,
            decoder,
            out_of_orderness_ms,
            watermark_step_ms,
            env,
        )
    }
}

/// A source of what `decoder` makes of the records of `recording`
/// (readings, control events), with its dead letters (see
/// [`RecordingSource::recording_source`]).
pub(crate) fn recorded_items<'scope, D: Decode>(
    recording: Arc<Recording>,
    decoder: D,
    out_of_orderness_ms: u64,
    watermark_step_ms: u64,
    env: &Env<'scope>,
) -> Items<'scope, D::Item> {
    let topic = recording.info.topic.clone();
    let name = format!("RecordingSource({})", recording.dir.display());
    let run = env.run().clone();
    let resume = restored_positions(env, &topic);
    let io = crate::connect::RunIo::of(env);
    let speed = io.speed;
    let range = io.range;
    ingest_source(
        env,
        &topic.clone(),
        name,
        watermark_step_ms,
        move |worker, peers| {
            let mut starts = Vec::new();
            let mut readers = Vec::new();
            let ends = recording.ends();
            let mut expected = 0;
            for (&p, &end) in ends.iter().filter(|(p, _)| **p as usize % peers == worker) {
                let first = recording.segments[&p][0].first;
                let (start, mut marks) = PartitionStart::new(p, first, Some(end), resume.get(&p));
                marks.extend(recording.marks.get(&p).into_iter().flatten().copied());
                marks.sort_unstable();
                marks.dedup();
                expected += recording.records_from(p, start.offset);
                readers.push(recording.reader(p, start.offset));
                starts.push((start, marks));
            }
            run.metrics.records_expected.inc_by(expected);
            let mut ingest = Ingest::new(decoder, &topic, out_of_orderness_ms, starts, run.clone());
            ingest.done_at = range.map(|(_, to)| to).filter(|to| *to < u64::MAX);
            let pace = speed.map(|speed| Pace {
                speed,
                origin: None,
            });
            Ok((RecordingPoller { readers, run, pace }, ingest))
        },
    )
}

/// Records taken from one partition before moving to the next.
const TURN: usize = 4_096;

/// Reads this worker's partitions of a recording, taking turns.
pub(crate) struct RecordingPoller {
    readers: Vec<PartitionReader>,
    run: Run,
    pace: Option<Pace>,
}

/// Paces a replay: the source's watermark moves `speed` times as fast as
/// the wall clock. Only how fast, never what: a bounded replay makes no
/// wall-clock decision.
struct Pace {
    speed: f64,
    /// The wall time and watermark of the first watermark seen.
    origin: Option<(std::time::Instant, u64)>,
}

impl Pace {
    /// Whether the watermark `cap_time` is ahead of the pace.
    fn ahead(&mut self, cap_time: u64) -> bool {
        if cap_time == 0 {
            return false;
        }
        let (since, start) = *self
            .origin
            .get_or_insert((std::time::Instant::now(), cap_time));
        let allowed = start as f64 + since.elapsed().as_secs_f64() * 1_000.0 * self.speed;
        cap_time as f64 > allowed
    }
}

impl<D: Decode> Poller<D> for RecordingPoller {
    fn poll(
        &mut self,
        ingest: &mut Ingest<D>,
        cap_time: u64,
        readings: &mut Vec<D::Item>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize {
        if self.pace.as_mut().is_some_and(|p| p.ahead(cap_time)) {
            std::thread::sleep(std::time::Duration::from_millis(2));
            return 0;
        }
        // Paced: small turns, so the watermark moves in small steps.
        let turn = if self.pace.is_some() { 64 } else { TURN };
        let mut read = 0;
        for reader in &mut self.readers {
            let result = reader.read(turn, |record| {
                read += usize::from(ingest.accept(record, cap_time, readings, dead));
            });
            if let Err(e) = result {
                self.run.control.add_error(e.to_string());
            }
        }
        read
    }

    fn bounded(&self) -> bool {
        true
    }
}
