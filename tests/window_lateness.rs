//! Late readings and corrections through the whole operator (memory source,
//! window operator), at 1 and 3 workers, against the README's definition
//! looped here:
//!
//! - a reading is late when its event time is behind its partition's
//!   watermark `wm` (the largest event time read before it on that
//!   partition, minus the 5 s bound);
//! - a late reading belongs to each of its windows that ends after `wm`
//!   (in its first emission), and to each that ends at or before `wm` but
//!   whose end plus the allowed lateness is after `wm` (a correction at
//!   `wm`); one that belongs to none is a dead letter;
//! - a window's rows: revision 0 with its on-time readings (and the late
//!   ones of its first emission), then one row per distinct `wm` of its
//!   corrections, in order, each with every reading so far. A window with
//!   no reading before its first correction has that as revision 0.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use weir::operators::dead_letter::DeadLetterReason;
use weir::operators::WindowKind;
use weir::prelude::*;

mod common;
use common::{assert_rows, topic, Record};

const BOUND_MS: u64 = 5_000;
const LATENESS_MS: u64 = 30_000;

/// (device, sensor, window end, revision) → (count, min, max, sum).
type Rows = BTreeMap<(String, String, u64, u32), (u64, f64, f64, f64)>;

/// Readings on 4 partitions, out of order within 4 s, with stragglers
/// 6 to 80 s behind (late, some within the lateness, some beyond it).
fn records(seed: u64) -> Vec<Record> {
    common::readings_with_stragglers(seed, 4, 10_000, 20, 74_000)
}

/// The ends of the windows of `kind` that hold event time `t`.
fn ends(kind: WindowKind, t: u64) -> Vec<u64> {
    match kind {
        WindowKind::Tumbling { size_ms } => vec![t - t % size_ms + size_ms],
        WindowKind::Hopping { size_ms, slide_ms } => {
            let first = t - t % slide_ms + slide_ms;
            (first..first + size_ms)
                .step_by(slide_ms as usize)
                .collect()
        }
        WindowKind::Session { .. } => unreachable!("sessions take no late readings"),
    }
}

/// The rows the definition gives, and the number of late dead letters.
fn reference(input: &[Record], kind: WindowKind) -> (Rows, usize) {
    // Per partition, in the order produced (the offset order).
    let mut max_time: BTreeMap<usize, u64> = BTreeMap::new();
    // (device, sensor, end) → (readings of the first emission, corrections by wm)
    type Window = (Vec<f64>, BTreeMap<u64, Vec<f64>>);
    let mut windows: BTreeMap<(String, String, u64), Window> = BTreeMap::new();
    let mut dead = 0;
    for (p, t, device, sensor, value) in input {
        let wm = max_time.get(p).map(|m| m.saturating_sub(BOUND_MS));
        let mut taken = false;
        for end in ends(kind, *t) {
            let w = windows
                .entry((device.clone(), sensor.clone(), end))
                .or_default();
            match wm {
                Some(wm) if *t < wm => {
                    if end > wm {
                        w.0.push(*value);
                        taken = true;
                    } else if end + LATENESS_MS > wm {
                        w.1.entry(wm).or_default().push(*value);
                        taken = true;
                    }
                }
                _ => {
                    w.0.push(*value);
                    taken = true;
                }
            }
        }
        let late = wm.is_some_and(|wm| *t < wm);
        if late && !taken {
            dead += 1;
        }
        if !late {
            let m = max_time.entry(*p).or_insert(*t);
            *m = (*m).max(*t);
        }
    }
    let mut rows = Rows::new();
    for ((device, sensor, end), (first, corrections)) in windows {
        let mut values = first;
        let mut revision = 0;
        let mut emit = |values: &[f64], revision: &mut u32| {
            if values.is_empty() {
                return;
            }
            rows.insert(
                (device.clone(), sensor.clone(), end, *revision),
                (
                    values.len() as u64,
                    values.iter().copied().fold(f64::INFINITY, f64::min),
                    values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    values.iter().sum(),
                ),
            );
            *revision += 1;
        };
        emit(&values, &mut revision);
        for (_, late) in corrections {
            values.extend(late);
            emit(&values, &mut revision);
        }
    }
    (rows, dead)
}

fn run(input: &[Record], kind: WindowKind, workers: usize) -> (Rows, usize) {
    let topic = topic(input);
    let rows = Arc::new(Mutex::new(Vec::new()));
    let dead = Arc::new(Mutex::new(0));
    let (out, dead_out) = (rows.clone(), dead.clone());
    let options = RunOptions {
        workers,
        bounded: true,
        progress: false,
        ..RunOptions::default()
    };
    weir::run(&options, move |scope, ctx| {
        let (readings, letters) =
            scope.memory_source(topic.clone(), Decoder::default(), BOUND_MS, ctx);
        let (out, dead_out) = (out.clone(), dead_out.clone());
        letters.inspect(move |d: &DeadLetter| {
            assert_eq!(d.reason, DeadLetterReason::Late, "{d:?}");
            *dead_out.lock().unwrap() += 1;
        });
        readings
            .windows(kind.with_lateness(LATENESS_MS), ctx)
            .stream
            .inspect(move |w: &WindowAggregate| out.lock().unwrap().push(w.clone()));
    })
    .unwrap();
    let mut got = Rows::new();
    for w in rows.lock().unwrap().iter() {
        assert_eq!(w.window_end - w.window_start, kind_size(kind));
        let key = (
            w.device.to_string(),
            w.sensor.to_string(),
            w.window_end,
            w.revision,
        );
        assert!(
            got.insert(key.clone(), (w.count, w.min, w.max, w.sum))
                .is_none(),
            "{key:?} emitted twice"
        );
    }
    let dead = *dead.lock().unwrap();
    (got, dead)
}

fn kind_size(kind: WindowKind) -> u64 {
    match kind {
        WindowKind::Tumbling { size_ms } | WindowKind::Hopping { size_ms, .. } => size_ms,
        WindowKind::Session { .. } => unreachable!(),
    }
}

#[test]
fn corrections_equal_the_definition_at_one_and_three_workers() {
    let kinds = [
        WindowKind::Tumbling { size_ms: 10_000 },
        WindowKind::Hopping {
            size_ms: 30_000,
            slide_ms: 10_000,
        },
    ];
    for (seed, kind) in [(11, kinds[0]), (12, kinds[1]), (13, kinds[0])] {
        let input = records(seed);
        let (want, dead) = reference(&input, kind);
        let corrections = want.keys().filter(|k| k.3 > 0).count();
        assert!(
            corrections > 20 && dead > 10,
            "the input makes corrections ({corrections}) and late dead letters ({dead})"
        );
        for workers in [1, 3] {
            let label = format!("{kind:?}, {workers} worker(s)");
            let (got, got_dead) = run(&input, kind, workers);
            assert_rows(&got, &want, &label);
            assert_eq!(got_dead, dead, "{label}: late dead letters");
        }
    }
}

/// The README's worked example: 1-minute windows, a 5 s bound, 2 minutes of
/// lateness, one partition; readings at 10 s, 70 s, 130 s, then 50 s (when
/// the watermark is 125 s), and at 20 s once the watermark is past 180 s.
#[test]
fn the_readme_example_of_a_correction() {
    let input: Vec<Record> = [
        (10, 1.0),
        (70, 2.0),
        (130, 3.0),
        (50, 4.0),
        (250, 5.0),
        (20, 6.0),
    ]
    .into_iter()
    .map(|(s, v)| (0, s * 1_000, "d".to_owned(), "t".to_owned(), v))
    .collect();
    let rows = {
        // Every reading on partition 0; the others stay empty.
        let topic = topic(&input);
        let rows = Arc::new(Mutex::new(Vec::new()));
        let dead = Arc::new(Mutex::new(Vec::new()));
        let (out, dead_out) = (rows.clone(), dead.clone());
        let options = RunOptions {
            bounded: true,
            progress: false,
            ..RunOptions::default()
        };
        weir::run(&options, move |scope, ctx| {
            let (readings, letters) =
                scope.memory_source(topic.clone(), Decoder::default(), BOUND_MS, ctx);
            let (out, dead_out) = (out.clone(), dead_out.clone());
            letters.inspect(move |d: &DeadLetter| dead_out.lock().unwrap().push(d.offset));
            readings
                .windows(
                    WindowKind::Tumbling { size_ms: 60_000 }.with_lateness(120_000),
                    ctx,
                )
                .stream
                .inspect(move |w: &WindowAggregate| out.lock().unwrap().push(w.clone()));
        })
        .unwrap();
        assert_eq!(
            *dead.lock().unwrap(),
            vec![5],
            "the reading at 20 s is a dead letter"
        );
        let rows = rows.lock().unwrap().clone();
        rows
    };
    let mut got: Vec<_> = rows
        .iter()
        .map(|w| (w.window_start / 1_000, w.count, w.sum, w.revision))
        .collect();
    got.sort_by_key(|r| (r.0, r.3));
    assert_eq!(
        got,
        vec![
            (0, 1, 1.0, 0),
            (0, 2, 5.0, 1),
            (60, 1, 2.0, 0),
            (120, 1, 3.0, 0),
            (240, 1, 5.0, 0),
        ]
    );
}
