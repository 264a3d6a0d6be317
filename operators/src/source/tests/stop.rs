//! A stop reaches the workers of a run one at a time; the checkpoint taken
//! on a stop must not count records that a source stopped before reading.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::ProbeHandle;

use super::*;
use crate::checkpoint::{CheckpointConfig, Session};
use crate::WindowAggregateOp;

/// Delivers its readings (one per second of event time up to `until`)
/// on the first poll, then nothing. The worker that `stops_first`
/// requests its run's stop after a few polls; the other one `then`
/// after that, unless its run was stopped already.
struct Scripted {
    partition: i32,
    until_s: u64,
    sent: bool,
    polls: u32,
    stops_first: bool,
    then: Duration,
    run: Run,
    first_stop: Arc<Mutex<Option<Instant>>>,
    /// Set when the second stop came from this script.
    second_scripted: Arc<AtomicBool>,
}

impl<D: Decode> Poller<D> for Scripted {
    fn poll(
        &mut self,
        ingest: &mut Ingest<D>,
        cap_time: u64,
        readings: &mut Vec<D::Item>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize {
        if !self.sent {
            self.sent = true;
            for s in 1..=self.until_s {
                let payload = format!(
                    r#"{{"device_id":"d","sensor":"s","value":1,"ts":{}}}"#,
                    s * 1_000
                );
                let record = RecordRef {
                    partition: self.partition,
                    offset: s as i64,
                    key: None,
                    value: payload.as_bytes(),
                    timestamp: None,
                    headers: &[],
                };
                ingest.accept(record, cap_time, readings, dead);
            }
            return self.until_s as usize;
        }
        self.polls += 1;
        std::thread::sleep(Duration::from_millis(1));
        let mut first = self.first_stop.lock().unwrap();
        if self.stops_first && self.polls == 50 {
            self.run.control.request_stop();
            *first = Some(Instant::now());
        }
        if !self.stops_first
            && !self.run.control.stop_requested()
            && first.is_some_and(|at| at.elapsed() >= self.then)
        {
            self.second_scripted.store(true, Ordering::SeqCst);
            self.run.control.request_stop();
        }
        0
    }

    fn bounded(&self) -> bool {
        false
    }
}

/// Runs two workers, each with its own stop flag as the processes of a
/// cluster have: worker 0 reads readings up to 40 s, worker 1 (which
/// lags, its watermark at 5 s) up to 10 s. Worker 1 is asked to stop
/// first, worker 0 `then` later unless the run stopped it before.
/// Returns the checkpoints' frontiers, the ends of the 10 s windows
/// written, and whether worker 0's stop had to come from its script.
fn stop_one_worker(checkpoints: bool, then: Duration) -> (Vec<u64>, Vec<u64>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = CheckpointConfig {
        dir: dir.path().into(),
        interval: Duration::ZERO,
        keep: 10_000,
    };
    let session = checkpoints.then(|| Arc::new(Session::open(config, "t", false).unwrap()));
    let runs: Vec<Run> = (0..2).map(|_| Run::default()).collect();
    let first_stop = Arc::new(Mutex::new(None));
    let second_scripted = Arc::new(AtomicBool::new(false));
    let windows = Arc::new(Mutex::new(Vec::new()));
    let (m, scripted, w_out) = (runs.clone(), second_scripted.clone(), windows.clone());
    timely::execute(timely::Config::process(2), move |worker| {
        let index = worker.index();
        let run = m[index].clone();
        let (first_stop, scripted) = (first_stop.clone(), scripted.clone());
        let (session, windows) = (session.clone(), w_out.clone());
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let env = Env::new(scope, run.clone(), "t", session);
            let (readings, _) = ingest_source(&env, "t", "Scripted".into(), 100, move |w, _| {
                let poller = Scripted {
                    partition: w as i32,
                    until_s: if w == 0 { 40 } else { 10 },
                    sent: false,
                    polls: 0,
                    stops_first: w == 1,
                    then,
                    run: run.clone(),
                    first_stop,
                    second_scripted: scripted,
                };
                let start = PartitionStart::new(w as i32, 1, None, None);
                let ingest = Ingest::new(Decoder::default(), "t", 5_000, [start], run);
                Ok((poller, ingest))
            });
            readings
                .window_aggregate(10_000, &env)
                .stream
                .inspect(move |w| windows.lock().unwrap().push(w.window_end))
                .probe_with(&probe);
            env.finish();
        });
    })
    .unwrap()
    .join();
    let frontiers = crate::checkpoint::list(&dir.path().into())
        .unwrap()
        .into_iter()
        .filter_map(|c| c.manifest.map(|m| m.frontier))
        .collect();
    let windows = windows.lock().unwrap().clone();
    (frontiers, windows, second_scripted.load(Ordering::SeqCst))
}

#[test]
fn the_stop_checkpoint_waits_for_the_source_that_stopped_first() {
    let (frontiers, _, _) = stop_one_worker(true, Duration::from_millis(200));
    assert!(!frontiers.is_empty(), "checkpoints were taken");
    assert!(
        frontiers.iter().all(|&f| f <= 5_000),
        "a checkpoint passed the lagging source's watermark (5 s): {frontiers:?}"
    );
}

/// A stop asked of one process of a cluster stops the whole run at one
/// frontier, with or without checkpoints; no worker takes the stopped
/// source's capabilities letting go for progress. Worker 0 would be
/// stopped by its script only after 5 s, long after the run should
/// have stopped it.
#[test]
fn a_stop_asked_of_one_worker_stops_the_run_without_closing_windows() {
    for checkpoints in [false, true] {
        let (frontiers, windows, scripted) = stop_one_worker(checkpoints, Duration::from_secs(5));
        assert!(
            !scripted,
            "the stop of worker 1 did not reach worker 0 (checkpoints: {checkpoints})"
        );
        // Worker 1's watermark was at 5 s: no 10 s window was complete.
        assert_eq!(windows, Vec::<u64>::new(), "checkpoints: {checkpoints}");
        assert!(
            frontiers.iter().all(|&f| f <= 5_000),
            "a checkpoint passed the lagging source's watermark (5 s): {frontiers:?}"
        );
    }
}
