//! Window kinds through the whole operator, in memory, at 1 and 3 workers,
//! equal their definitions, computed here by loops: hopping windows (the
//! window ending at `E`, a multiple of the slide, holds the readings with
//! `E - size <= t < E`; every window with a reading is emitted), with their
//! percentiles to the sketch's 1% accuracy, bit for bit the same at any
//! worker count; and sessions (a key's readings in event-time order, cut
//! where two are a gap or more apart; a session is `[first, last + gap)`).
//!
//! The input has disorder within the 5 s bound and stragglers beyond it:
//! those behind their partition's watermark are late (dead letters, no
//! output takes late readings here), judged here per partition too.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use weir::prelude::*;

mod common;
use common::{assert_rows, topic, Record};

type Rows = BTreeMap<(String, String, u64, u64), (u64, f64, f64, f64)>;

/// Readings on 4 partitions, out of order within 4 s (the bound is 5 s),
/// with one straggler in 25 from 6 to 60 s behind, from a fixed seed.
fn readings(seed: u64) -> Vec<Record> {
    common::readings_with_stragglers(seed, 5, 60_000, 25, 54_000)
}

/// The readings that are not late: each partition in the order produced,
/// late when behind the largest event time before it on that partition
/// minus the 5 s bound.
fn on_time(input: &[Record]) -> Vec<Record> {
    let mut max_time: BTreeMap<usize, u64> = BTreeMap::new();
    let on_time: Vec<_> = input
        .iter()
        .filter(|(p, t, ..)| {
            let late = max_time
                .get(p)
                .is_some_and(|m| *t < m.saturating_sub(5_000));
            if !late {
                let m = max_time.entry(*p).or_insert(*t);
                *m = (*m).max(*t);
            }
            !late
        })
        .cloned()
        .collect();
    assert!(on_time.len() < input.len(), "the input has late readings");
    on_time
}

fn reference(input: &[Record], size: u64, slide: u64) -> Rows {
    let mut rows = Rows::new();
    for (_, t, device, sensor, value) in &on_time(input) {
        let first_end = t - t % slide + slide;
        for end in (first_end..first_end + size).step_by(slide as usize) {
            let w = rows
                .entry((device.clone(), sensor.clone(), end - size, end))
                .or_insert((0, f64::INFINITY, f64::NEG_INFINITY, 0.0));
            w.0 += 1;
            w.1 = w.1.min(*value);
            w.2 = w.2.max(*value);
            w.3 += value;
        }
    }
    rows
}

fn run(input: &[Record], kind: WindowKind, workers: usize) -> Rows {
    let mut got = Rows::new();
    for w in rows_of(input, kind.into(), workers) {
        let key = (
            w.device.to_string(),
            w.sensor.to_string(),
            w.window_start,
            w.window_end,
        );
        assert!(
            got.insert(key, (w.count, w.min, w.max, w.sum)).is_none(),
            "a window emitted twice"
        );
    }
    got
}

/// The rows of windows of `spec` over `input`, on `workers` workers.
fn rows_of(input: &[Record], spec: WindowSpec, workers: usize) -> Vec<WindowAggregate> {
    let topic = topic(input);
    let rows = Arc::new(Mutex::new(Vec::new()));
    let out = rows.clone();
    let options = RunOptions {
        workers,
        bounded: true,
        progress: false,
        ..RunOptions::default()
    };
    weir::run(&options, move |scope, ctx| {
        let (readings, _dead) = scope.memory_source(topic.clone(), Decoder::default(), 5_000, ctx);
        let out = out.clone();
        readings
            .windows(spec.clone(), ctx)
            .stream
            .inspect(move |w: &WindowAggregate| out.lock().unwrap().push(w.clone()));
    })
    .unwrap();
    let rows = rows.lock().unwrap().clone();
    rows
}

#[test]
fn hopping_windows_equal_the_definition_at_one_and_three_workers() {
    for (seed, size, slide) in [(1, 60_000, 10_000), (2, 30_000, 5_000), (3, 20_000, 20_000)] {
        let input = readings(seed);
        let want = reference(&input, size, slide);
        let kind = match size == slide {
            true => WindowKind::Tumbling { size_ms: size },
            false => WindowKind::Hopping {
                size_ms: size,
                slide_ms: slide,
            },
        };
        for workers in [1, 3] {
            let got = run(&input, kind, workers);
            assert_rows(&got, &want, &format!("{kind:?}, {workers} worker(s)"));
        }
    }
}

/// The session definition, looped: per key, readings sorted by event time
/// and cut where two neighbours are `gap` or more apart.
fn session_reference(input: &[Record], gap: u64) -> Rows {
    let mut by_key: BTreeMap<(String, String), Vec<(u64, f64)>> = BTreeMap::new();
    for (_, t, device, sensor, value) in &on_time(input) {
        by_key
            .entry((device.clone(), sensor.clone()))
            .or_default()
            .push((*t, *value));
    }
    let mut rows = Rows::new();
    for ((device, sensor), mut readings) in by_key {
        readings.sort_by_key(|r| r.0);
        let mut runs: Vec<Vec<(u64, f64)>> = Vec::new();
        for r in readings {
            match runs.last_mut() {
                Some(run) if r.0 - run[run.len() - 1].0 < gap => run.push(r),
                _ => runs.push(vec![r]),
            }
        }
        for run in runs {
            let values = run.iter().map(|r| r.1);
            rows.insert(
                (
                    device.clone(),
                    sensor.clone(),
                    run[0].0,
                    run[run.len() - 1].0 + gap,
                ),
                (
                    run.len() as u64,
                    values.clone().fold(f64::INFINITY, f64::min),
                    values.clone().fold(f64::NEG_INFINITY, f64::max),
                    values.sum(),
                ),
            );
        }
    }
    rows
}

#[test]
fn session_windows_equal_the_definition_at_one_and_three_workers() {
    for (seed, gap) in [(4, 2_500), (5, 6_000)] {
        // Pauses: every third stretch of 20 s has no reading.
        let input: Vec<_> = readings(seed)
            .into_iter()
            .filter(|r| (r.1 / 20_000) % 3 != 2)
            .collect();
        let want = session_reference(&input, gap);
        assert!(want.len() > 50, "sessions form: {}", want.len());
        for workers in [1, 3] {
            let got = run(&input, WindowKind::Session { gap_ms: gap }, workers);
            assert_rows(&got, &want, &format!("gap {gap}, {workers} worker(s)"));
        }
    }
}

/// Hopping windows with percentiles: each within 1% of the value of rank
/// ⌈q·n⌉ among the window's values (by the definition above), and the
/// same bits at 1 and 3 workers, whose panes are merged in other groupings.
#[test]
fn hopping_percentiles_equal_the_definition_at_one_and_three_workers() {
    let input = readings(4);
    let (size, slide) = (60_000, 10_000);
    let mut values: BTreeMap<(String, String, u64), Vec<f64>> = BTreeMap::new();
    for (_, t, device, sensor, value) in &on_time(&input) {
        let first_end = t - t % slide + slide;
        for end in (first_end..first_end + size).step_by(slide as usize) {
            let key = (device.clone(), sensor.clone(), end);
            values.entry(key).or_default().push(*value);
        }
    }
    let percentiles = [(500, "p50"), (900, "p90"), (990, "p99"), (999, "p99.9")];
    let stats: Stats = percentiles
        .iter()
        .map(|(_, name)| name.parse::<Stat>().unwrap())
        .collect();
    let kind = WindowKind::Hopping {
        size_ms: size,
        slide_ms: slide,
    };
    let mut by_workers = Vec::new();
    for workers in [1, 3] {
        let rows = rows_of(&input, kind.with_stats(stats.clone()), workers);
        assert_eq!(rows.len(), values.len(), "{workers} worker(s)");
        let mut got = BTreeMap::new();
        for row in rows {
            let key = (
                row.device.to_string(),
                row.sensor.to_string(),
                row.window_end,
            );
            let mut sorted = values[&key].clone();
            sorted.sort_by(f64::total_cmp);
            for ((tenths, name), (stat, value)) in percentiles.iter().zip(&row.extra) {
                assert_eq!(stat.name(), *name);
                let rank = (tenths * sorted.len()).div_ceil(1_000).max(1);
                let (value, exact) = (value.unwrap(), sorted[rank - 1]);
                assert!(
                    (value - exact).abs() <= 0.01 * exact.abs(),
                    "{workers} worker(s), {key:?} {name}: {value} vs {exact}"
                );
            }
            got.insert(key, row.extra);
        }
        by_workers.push(got);
    }
    assert_eq!(by_workers[0], by_workers[1], "1 and 3 workers, bit for bit");
}
