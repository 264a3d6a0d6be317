//! Criterion benches of the per-record work of each operator, outside
//! timely: decoding a payload, adding a reading to its window, and
//! evaluating alert rules. Throughput is in readings.
//!
//! `cargo bench --bench operators`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use weir::operators::alert::{AlertEvaluator, Direction, Rule, RuleSet};
use weir::operators::{Decoder, Reading, Stat, Stats, WindowState};
use weir::simulate::{generate, SimRecord, SimulatorConfig};

const N: usize = 60_000;

fn records() -> Vec<SimRecord> {
    let config = SimulatorConfig {
        devices: 100,
        duration_ms: 200_000,
        start_ms: 1_763_900_000_000,
        bad_record_rate: 0.0,
        late_rate: 0.0,
        ..SimulatorConfig::default()
    };
    generate(&config).take(N).collect()
}

fn readings(records: &[SimRecord]) -> Vec<Reading> {
    let decoder = Decoder::default();
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            decoder
                .decode(&r.payload, Some(r.timestamp_ms), 0, i as i64)
                .expect("valid")
        })
        .collect()
}

/// Decoding JSON payloads into readings (field lookup, borrowed strings, inline names).
fn decode(c: &mut Criterion) {
    let records = records();
    let decoder = Decoder::default();
    let mut group = c.benchmark_group("weir_operators::decode::Decoder");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for (i, r) in records.iter().enumerate() {
                sum += decoder
                    .decode(&r.payload, Some(r.timestamp_ms), 0, i as i64)
                    .map_or(0.0, |r| r.value);
            }
            sum
        })
    });
    // The reference: serde_json into a borrowed struct of the same fields,
    // as the workload bench's plain loop decodes.
    #[derive(serde::Deserialize)]
    struct Plain<'a> {
        #[serde(borrow)]
        device_id: &'a str,
        #[serde(borrow)]
        sensor: &'a str,
        value: f64,
        ts: u64,
    }
    group.bench_function("serde_json_borrowed", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for r in &records {
                let p: Plain = serde_json::from_slice(&r.payload).expect("valid");
                sum += p.value + (p.ts + (p.device_id.len() + p.sensor.len()) as u64) as f64;
            }
            sum
        })
    });
    group.finish();
}

/// Adding readings to one-minute windows and closing them.
fn window(c: &mut Criterion) {
    let readings = readings(&records());
    let mut group = c.benchmark_group("weir_operators::window_aggregate::WindowState");
    group.throughput(Throughput::Elements(readings.len() as u64));
    group.bench_function("insert_and_flush", |b| {
        b.iter_batched(
            || WindowState::new(60_000),
            |mut state| {
                for r in &readings {
                    state.insert(r);
                }
                let mut out = Vec::new();
                state.flush_until(None, &mut out);
                out.len()
            },
            BatchSize::LargeInput,
        )
    });
    // The same with p50, p95 and p99 of every window (a sketch per key).
    let percentiles: Stats = ["p50", "p95", "p99"]
        .iter()
        .map(|p| p.parse::<Stat>().expect("percentile names"))
        .collect();
    group.bench_function("insert_and_flush_p50_p95_p99", |b| {
        b.iter_batched(
            || WindowState::with_stats(60_000, percentiles.clone()),
            |mut state| {
                for r in &readings {
                    state.insert(r);
                }
                let mut out = Vec::new();
                state.flush_until(None, &mut out);
                out.len()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Evaluating a threshold rule with hysteresis and a for-duration rule.
fn alerts(c: &mut Criterion) {
    let readings = readings(&records());
    let rules = Arc::new(RuleSet::new(vec![
        Rule::new("hot", "temperature", Direction::Above, 90.0).clear_at(85.0),
        Rule::new("shaking", "vibration", Direction::Above, 7.5).with(|m| m.for_ms = 10_000),
    ]));
    let mut group = c.benchmark_group("weir_operators::alert::AlertEvaluator");
    group.throughput(Throughput::Elements(readings.len() as u64));
    group.bench_function("push_and_advance", |b| {
        b.iter_batched(
            || (AlertEvaluator::new(rules.clone()), readings.clone()),
            |(mut eval, readings)| {
                let mut out = Vec::new();
                for chunk in readings.chunks(1_024) {
                    let frontier = chunk.iter().map(|r| r.time).min();
                    for r in chunk {
                        eval.push(r.clone());
                    }
                    eval.advance_to(frontier.map(|t| t.saturating_sub(5_000)), &mut out);
                }
                eval.advance_to(None, &mut out);
                out.len()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, decode, window, alerts);
criterion_main!(benches);
