//! Watermark alignment: a partition that runs ahead of the readings'
//! frontier is held back and released, and holding changes only when
//! records are read, never the results.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use timely::dataflow::operators::{Concatenate, Inspect};

use super::*;
use crate::alert::{Direction, Rule, RuleSet};
use crate::{EvaluateAlerts, WindowAggregateOp};

/// Two partitions, out-of-orderness 5 s, alignment bound 10 s.
fn ingest() -> Ingest {
    Ingest::new(
        Decoder::default(),
        "t",
        5_000,
        [0, 1].map(|p| PartitionStart::new(p, 0, None, None)),
        Run::default(),
    )
    .with_alignment(Some(10_000))
}

/// Takes the reading of `partition` at event time `time` (offsets in order).
fn take(ingest: &mut Ingest, partition: i32, time: u64) {
    let offset = ingest.partitions[partition as usize].next;
    let payload = format!(r#"{{"device_id":"d","sensor":"s","value":1,"ts":{time}}}"#);
    let record = RecordRef {
        partition,
        offset,
        key: None,
        value: payload.as_bytes(),
        timestamp: None,
        headers: &[],
    };
    assert!(ingest.accept(record, 0, &mut Vec::new(), &mut Vec::new()));
}

fn held(ingest: &Ingest) -> Vec<i32> {
    ingest
        .partitions
        .iter()
        .filter(|p| p.held)
        .map(|p| p.id)
        .collect()
}

/// Worked by hand: partition 0 reads up to 31 s (its watermark 26 s),
/// partition 1 to 12 s (7 s); the frontier is the slower one's, 7 s.
#[test]
fn a_partition_running_ahead_is_held_until_the_frontier_catches_up() {
    let mut ing = ingest();
    assert_eq!(ing.align(Some(7_000)), Alignment::default());
    for t in [12_000, 16_000, 17_000] {
        take(&mut ing, 0, t);
        // Watermarks 7, 11, 12 s: at most 5 s ahead of 7 s.
        assert!(!ing.runs_ahead(0), "{t}");
    }
    take(&mut ing, 1, 12_000);
    assert!(!ing.runs_ahead(1));
    take(&mut ing, 0, 23_000);
    // Watermark 18 s: 11 s ahead of 7 s, more than the 10 s bound.
    assert!(ing.runs_ahead(0), "held at once, mid-batch");
    assert!(!ing.runs_ahead(0), "held once");
    assert_eq!(held(&ing), vec![0]);
    take(&mut ing, 0, 31_000); // what librdkafka had delivered already
                               // The frontier moves to 10 s, then 13 s: 8 s, then 13 s ahead. It
                               // is released only within half the bound (5 s), at 21 s.
    for f in [10_000, 13_000, 20_999] {
        assert_eq!(ing.align(Some(f)), Alignment::default(), "{f}");
    }
    assert_eq!(
        ing.align(Some(21_000)),
        Alignment {
            hold: vec![],
            release: vec![0]
        }
    );
    // Partition 1, which holds the frontier back, was never held; at a
    // frontier of 0 it is no more than 2 s ahead.
    assert_eq!(held(&ing), Vec::<i32>::new());
    // A frontier far behind holds both, once, in one step.
    assert_eq!(
        ing.align(Some(0)),
        Alignment {
            hold: vec![0],
            release: vec![]
        }
    );
    take(&mut ing, 1, 40_000);
    assert!(ing.runs_ahead(1));
    assert_eq!(held(&ing), vec![0, 1]);
    assert_eq!(ing.run.metrics.partitions_held.get(), 3);
    // A held partition is quiet, not idle.
    ing.check_idle(Duration::ZERO);
    ing.check_idle(Duration::ZERO);
    assert!(ing.partitions.iter().all(|p| !p.idle));
    // Once every source is done, nothing is held.
    assert_eq!(
        ing.align(None),
        Alignment {
            hold: vec![],
            release: vec![0, 1]
        }
    );
}

#[test]
fn partitions_without_a_watermark_or_alignment_are_never_held() {
    let mut ing = ingest();
    assert_eq!(ing.align(Some(0)), Alignment::default());
    take(&mut ing, 0, 100_000);
    assert!(ing.runs_ahead(0));
    // Partition 1 has delivered nothing: it is not held, so it can read
    // and move the frontier.
    assert_eq!(ing.align(Some(0)), Alignment::default());
    assert_eq!(held(&ing), vec![0]);
    let mut off = ingest().with_alignment(None);
    take(&mut off, 0, 100_000);
    assert!(!off.runs_ahead(0));
    assert_eq!(off.align(Some(0)), Alignment::default());
    // The bound is at least two watermark steps.
    let mut small = ingest().with_alignment(Some(1));
    small.align_at_least(100);
    assert_eq!(small.max_drift, Some(200));
}

/// Reads in-memory partitions in turns of `TURN` records, as the memory
/// source does, and stops reading a partition as soon as it is held,
/// as the Kafka source does.
struct Turns {
    /// Event times of each partition of this worker, in offset order.
    partitions: Vec<(i32, Vec<u64>)>,
    next: Vec<usize>,
    held: BTreeSet<i32>,
}

const TURN: usize = 50;

impl<D: Decode> Poller<D> for Turns {
    fn poll(
        &mut self,
        ingest: &mut Ingest<D>,
        cap_time: u64,
        readings: &mut Vec<D::Item>,
        dead: &mut Vec<DeadLetter>,
    ) -> usize {
        let mut read = 0;
        for ((p, times), next) in self.partitions.iter().zip(&mut self.next) {
            for _ in 0..TURN {
                if self.held.contains(p) || *next == times.len() {
                    break;
                }
                let time = times[*next];
                // Two devices, so that alerts and windows are keyed.
                let value = (time / 1_000) % 97;
                let payload = format!(
                    r#"{{"device_id":"d{}","sensor":"s","value":{value},"ts":{time}}}"#,
                    time % 2
                );
                let record = RecordRef {
                    partition: *p,
                    offset: *next as i64,
                    key: None,
                    value: payload.as_bytes(),
                    timestamp: None,
                    headers: &[],
                };
                read += usize::from(ingest.accept(record, cap_time, readings, dead));
                *next += 1;
                if ingest.runs_ahead(*p) {
                    self.held.insert(*p);
                }
            }
        }
        read
    }

    fn bounded(&self) -> bool {
        true
    }

    fn align(&mut self, alignment: &Alignment) {
        self.held.extend(&alignment.hold);
        for p in &alignment.release {
            self.held.remove(p);
        }
    }
}

/// Four partitions whose readings are 0.1, 1, 5 and 20 s apart in
/// event time (a few out of order, some late), read in equal turns of
/// records: the sparse ones run far ahead in event time.
fn skewed() -> Vec<Vec<u64>> {
    [100u64, 1_000, 5_000, 20_000]
        .iter()
        .map(|gap| {
            (0..400u64)
                .map(|i| {
                    let t = 1_000_000 + i * gap;
                    // Every 7th reading 8 s behind: late where the gap is wide.
                    if i % 7 == 3 {
                        t.saturating_sub(8_000)
                    } else {
                        t
                    }
                })
                .collect()
        })
        .collect()
}

/// Runs the skewed partitions through 10 s windows and a rule on
/// `workers` workers, read by one source or by `sources` sources that
/// share them out (the dense ones in the first); returns the windows,
/// alerts and dead letters (sorted, as text) and how often partitions
/// were held.
fn run(workers: usize, alignment: Option<u64>, sources: usize) -> (Vec<String>, u64) {
    let out = Arc::new(Mutex::new(Vec::new()));
    let run = Run::default();
    let (o, r) = (out.clone(), run.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let (out, run) = (o.clone(), r.clone());
        worker.dataflow::<u64, _, _>(|scope| {
            let env = Env::new(scope, run.clone(), "t", None);
            let (mut all_readings, mut all_dead) = (Vec::new(), Vec::new());
            for source in 0..sources {
                let run = run.clone();
                let name = format!("Turns{source}");
                let (readings, dead) = ingest_source(&env, "t", name, 100, move |w, peers| {
                    let mine: Vec<(i32, Vec<u64>)> = skewed()
                        .into_iter()
                        .enumerate()
                        .filter(|(p, _)| p % peers == w && p * sources / 4 == source)
                        .map(|(p, times)| (p as i32, times))
                        .collect();
                    let starts: Vec<_> = mine
                        .iter()
                        .map(|(p, times)| {
                            PartitionStart::new(*p, 0, Some(times.len() as i64), None)
                        })
                        .collect();
                    let ingest = Ingest::new(Decoder::default(), "t", 5_000, starts, run)
                        .with_alignment(alignment);
                    let next = vec![0; mine.len()];
                    let poller = Turns {
                        partitions: mine,
                        next,
                        held: BTreeSet::new(),
                    };
                    Ok((poller, ingest))
                });
                all_readings.push(readings);
                all_dead.push(dead);
            }
            let readings = scope.concatenate(all_readings);
            let dead = scope.concatenate(all_dead);
            let rules = Arc::new(RuleSet::new(vec![Rule::new(
                "high",
                "s",
                Direction::Above,
                60.0,
            )
            .clear_at(40.0)
            .with(|m| m.for_ms = 3_000)]));
            let o = out.clone();
            readings
                .clone()
                .window_aggregate(10_000, &env)
                .stream
                .inspect(move |w| o.lock().unwrap().push(format!("{w:?}")));
            let o = out.clone();
            readings
                .evaluate_alerts(rules, &env)
                .inspect(move |a| o.lock().unwrap().push(format!("{a:?}")));
            let o = out.clone();
            dead.inspect(move |d| {
                o.lock()
                    .unwrap()
                    .push(format!("{} {} {}", d.reason, d.partition, d.offset))
            });
            env.finish();
        });
    })
    .unwrap()
    .join();
    let mut out = out.lock().unwrap().clone();
    out.sort();
    (out, run.metrics.partitions_held.get())
}

/// The same windows, alerts and dead letters with and without
/// alignment, on 1 and 2 workers, with the partitions read by one
/// source or shared out between two (the frontier is that of both);
/// with it, the sparse partitions were held back many times.
#[test]
fn alignment_changes_when_records_are_read_not_the_results() {
    let (reference, never) = run(1, None, 1);
    assert_eq!(never, 0);
    assert!(
        reference.iter().any(|o| o.starts_with("late ")),
        "late readings"
    );
    assert!(
        reference.iter().any(|o| o.contains("Firing")),
        "alerts fired"
    );
    assert!(reference.len() > 200, "{}", reference.len());
    for (workers, sources) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
        let (aligned, held) = run(workers, Some(1_000), sources);
        let case = format!("{workers} worker(s), {sources} source(s)");
        assert!(held > 20, "held {held} times on {case}");
        assert_eq!(aligned, reference, "{case}");
    }
}
