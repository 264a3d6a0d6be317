//! Criterion benches of what checkpoints cost:
//!
//! - size: the encoded bytes per open window key and per alert rule state
//!   (aim: at most 256 bytes each), printed for a state of 1,000,000 keys;
//! - time: snapshot and encode, and decode and restore, of that state, for
//!   the windows and for the alert evaluator;
//! - throughput: the in-memory pipeline (decode, one-minute windows, alerts)
//!   through `weir::run` with no checkpoints, with one every 10 s (aim: at
//!   most 5% slower), and with one every 100 ms. A run is shorter than 10 s,
//!   so the 10 s variant takes only the final checkpoint; the 100 ms variant
//!   gives the cost of one checkpoint, from which the cost at one per 10 s
//!   is printed.
//!
//! Parts are encoded as the checkpoint session encodes them
//! (`bincode::serialize`).
//!
//! `cargo bench --bench checkpoint` (`WEIR_BENCH_READINGS` sets the
//! pipeline's input size, default 2,000,000).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use support::input;
use weir::operators::alert::{AlertEvaluator, AlertPart, Direction, Rule, RuleSet, Stat};
use weir::operators::memory::{MemorySource, MemoryTopic};
use weir::operators::{
    CheckpointConfig, Decoder, EvaluateAlerts, Reading, WindowAggregateOp, WindowState,
};
use weir::RunOptions;

/// Counts the bytes live, to measure the memory state holds.
#[global_allocator]
static ALLOCATOR: support::Counting = support::Counting;

const WINDOW_MS: u64 = 60_000;
/// The source's out-of-orderness bound (ms); the simulated input is out of
/// order by less.
const OUT_OF_ORDERNESS_MS: u64 = 5_000;
const SENSORS: [&str; 3] = ["temperature", "pressure", "vibration"];
/// The frontier the alert state is snapshot at.
const FRONTIER: u64 = 3_000;

/// `cargo test --benches` runs each bench once, without `--bench`: keep it small.
fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn keys() -> usize {
    if quick() {
        10_000
    } else {
        1_000_000
    }
}

/// A reading of key `k`: devices `device-0000000`.. with three sensors each.
fn reading(k: usize, time: u64, value: f64) -> Reading {
    let device = format!("device-{:07}", k / SENSORS.len());
    Reading::new(
        &device,
        SENSORS[k % SENSORS.len()],
        time,
        value,
        0,
        k as i64,
    )
}

/// `bincode::serialize(state)`, as a checkpoint part is encoded. `state` is
/// moved into timely's wrapper and back.
fn encode<T: serde::Serialize>(state: &T) -> Vec<u8> {
    bincode::serialize(state).expect("a part serializes")
}

/// `bincode::deserialize(bytes)`, as a restored part is decoded.
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    bincode::deserialize(bytes).expect("a part deserializes")
}

fn report_size(what: &str, n: usize, bytes: usize) {
    println!(
        "{what}: {n} in {bytes} bytes: {:.1} bytes each (aim: at most 256)",
        bytes as f64 / n as f64
    );
}

/// One-minute windows, all open, of `keys()` keys with two readings each.
fn window_state(c: &mut Criterion) {
    let n = keys();
    let mut state = WindowState::new(WINDOW_MS);
    for k in 0..n {
        state.insert(&reading(k, 1_000, 20.0));
        state.insert(&reading(k, 2_000, 21.5));
    }
    let bytes = encode(&state);
    report_size("open window keys, encoded", n, bytes.len());
    let copy: WindowState = decode(&bytes);
    report_size("open window keys, heap held", n, support::held_by(copy));

    let mut group = c.benchmark_group("checkpoint/window_state");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("snapshot_{n}_keys"), |b| {
        b.iter_batched(|| (), |()| encode(&state), BatchSize::PerIteration)
    });
    group.bench_function(format!("restore_{n}_keys"), |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut restored: WindowState = decode(&bytes);
                restored.resume_at(FRONTIER);
                restored
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// A rule on every sensor; each key is two breaches into its three.
fn alert_rules() -> Arc<RuleSet> {
    let rule = Rule::new("overheat", "temperature", Direction::Above, 90.0)
        .every_sensor()
        .clear_at(85.0)
        .with(|m| {
            m.consecutive = 3;
            m.for_ms = 20_000;
        });
    Arc::new(RuleSet::new(vec![rule]))
}

/// The state of one rule for each of `keys()` keys, mid-breach (a streak,
/// its start and its values), which every key's snapshot holds.
fn alert_state(c: &mut Criterion) {
    let n = keys();
    let rules = alert_rules();
    let mut evaluator = AlertEvaluator::new(rules.clone());
    for k in 0..n {
        evaluator.push(reading(k, 1_000, 95.0));
        evaluator.push(reading(k, 2_000, 96.0));
    }
    let mut alerts = Vec::new();
    evaluator.advance_to(Some(FRONTIER), &mut alerts);
    assert!(alerts.is_empty(), "no rule state fires");
    let part = evaluator.snapshot();
    assert_eq!(part.keys.len(), n, "every key has a rule state");
    let bytes = encode(&part);
    report_size(
        "alert rule states (one rule per key), encoded",
        n,
        bytes.len(),
    );
    let mut copy = AlertEvaluator::<Reading>::new(rules.clone());
    copy.restore(vec![part], FRONTIER, |_| true);
    report_size(
        "alert rule states (one rule per key), heap held",
        n,
        support::held_by(copy),
    );

    let mut group = c.benchmark_group("checkpoint/alert_state");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("snapshot_{n}_keys"), |b| {
        b.iter_batched(
            || (),
            |()| encode(&evaluator.snapshot()),
            BatchSize::PerIteration,
        )
    });
    // The snapshot alone (its drop included), to tell it from the encoding.
    group.bench_function(format!("snapshot_unencoded_{n}_keys"), |b| {
        b.iter_batched(
            || (),
            |()| drop(evaluator.snapshot()),
            BatchSize::PerIteration,
        )
    });
    group.bench_function(format!("restore_{n}_keys"), |b| {
        b.iter_batched(
            || (),
            |()| {
                let part: AlertPart = decode(&bytes);
                let mut restored = AlertEvaluator::<Reading>::new(rules.clone());
                restored.restore(vec![part], FRONTIER, |_| true);
                restored
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The pipeline of `benches/pipeline.rs` on one worker: returns the records
/// read and the checkpoints completed.
fn run_pipeline(topic: &Arc<MemoryTopic>, checkpoint: Option<CheckpointConfig>) -> (u64, u64) {
    let rules = Arc::new(RuleSet::new(vec![
        Rule::new("hot", "temperature", Direction::Above, 90.0),
        Rule::new("hot-mean", "temperature", Direction::Above, 90.0).window(WINDOW_MS, Stat::Mean),
    ]));
    let options = RunOptions {
        workers: 1,
        bounded: true,
        name: "checkpoint-bench".to_owned(),
        checkpoint,
        from_scratch: true,
        ..RunOptions::default()
    };
    let topic = topic.clone();
    let report = weir::run(&options, move |scope, ctx| {
        let (readings, _dead) =
            scope.memory_source(topic.clone(), Decoder::default(), OUT_OF_ORDERNESS_MS, ctx);
        let windows = readings.clone().window_aggregate(WINDOW_MS, ctx);
        readings.evaluate_alerts(rules.clone(), ctx);
        windows.evaluate_alerts(rules.clone(), ctx);
    })
    .expect("pipeline runs");
    (report.records_read, report.checkpoints)
}

fn pipeline(c: &mut Criterion) {
    let readings = std::env::var("WEIR_BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick() { 60_000 } else { 2_000_000 });
    let topic = Arc::new(input(readings));
    let n = topic.len() as u64;
    let variants = [
        ("none", None),
        ("every_10s", Some(Duration::from_secs(10))),
        ("every_100ms", Some(Duration::from_millis(100))),
    ];
    // The fastest run of each variant and its checkpoints.
    let mut fastest = [(Duration::MAX, 0u64); 3];

    let mut group = c.benchmark_group("checkpoint/pipeline");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(n));
    for ((name, interval), best) in variants.iter().zip(&mut fastest) {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let config = interval.map(|interval| CheckpointConfig {
                        interval,
                        ..CheckpointConfig::new(dir.path())
                    });
                    let start = Instant::now();
                    let (read, checkpoints) = run_pipeline(&topic, config);
                    let took = start.elapsed();
                    assert_eq!(read, n, "the pipeline read every record");
                    total += took;
                    if took < best.0 {
                        *best = (took, checkpoints);
                    }
                }
                total
            })
        });
    }
    group.finish();

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let (none, _) = fastest[0];
    println!("in-memory pipeline, {n} readings, 1 worker, fastest run of each:");
    for ((name, _), (took, checkpoints)) in variants.iter().zip(fastest) {
        println!(
            "  {name:<12} {:>10.0} readings/s, {checkpoints} checkpoint(s): {:+.1}% time",
            rate(took),
            (took.as_secs_f64() / none.as_secs_f64() - 1.0) * 100.0
        );
    }
    // The aim is on throughput with checkpoints every 10 s against none.
    let cost = (fastest[1].0.as_secs_f64() / none.as_secs_f64() - 1.0) * 100.0;
    let verdict = if cost <= 5.0 { "met" } else { "missed" };
    println!(
        "  checkpoints every 10 s: {cost:+.1}% time against none (aim: at most 5%: {verdict})"
    );
    let (often, checkpoints) = fastest[2];
    if checkpoints > 0 {
        let each = often.saturating_sub(none).as_secs_f64() / checkpoints as f64;
        println!(
            "  one checkpoint (from every_100ms): {:.2} ms, {:.3}% of a 10 s interval",
            each * 1e3,
            each / 10.0 * 100.0
        );
    }
}

criterion_group!(benches, window_state, alert_state, pipeline);
criterion_main!(benches);
