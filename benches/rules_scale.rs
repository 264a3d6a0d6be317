//! Alert evaluation at scale: 1,000 rules over 100,000 devices, on one
//! thread (one core), outside timely. Aims (project issue): at least
//! 1,000,000 readings/s per core through alert evaluation, and at most
//! 256 bytes of state per (device, rule).
//!
//! The fleet: 100,000 devices in 20 groups of 5,000 (`g000-dev-00000` ..
//! `g019-dev-04999`), each with the same 10 sensors: 1,000,000 (device,
//! sensor) keys. Rule `i` selects one sensor and one group (`sensors =
//! [s]`, `devices = "g017-*"`); the 200 (group, sensor) pairs get 5 rules
//! each, of 5 of the 6 kinds below, so each key is judged by 5 rules and
//! each rule selects 5,000 devices: 1,000 x 5,000 = 5,000,000 (device,
//! rule) pairs, each one rule state (a rule selects one sensor, so a
//! (device, rule) pair is one (device, sensor, rule) state). The kinds,
//! about 1/6 of the rules each: plain threshold, hysteresis (clear below
//! the threshold), 3 consecutive breaches, a breach lasting 5 s
//! (`for_ms`), rate of change over 10 s, deviation from a baseline of the
//! 10 previous values.
//!
//! Every key reads once a second of event time (a "round" of 1,000,000
//! readings): values around 50 with uniform noise of +-5 and a spike of
//! +20 in 0.1% of the readings, so rules breach, fire and resolve now and
//! then. Within a round, devices come in a fresh random order (each
//! device's 10 sensors together), in event-time order, so key lookups
//! land all over the state as they would from many partitions. Readings
//! are pushed in batches of 10,000; after each, `advance_to` moves the
//! frontier to the latest event time pushed minus 5 s (the default
//! `source.out_of_orderness`), as the operator does at each activation.
//! Readings are built before the clock starts; pushing moves them in.
//!
//! Printed, in one run:
//! - key creation: the first round on an empty evaluator, where each
//!   reading creates its key and matches it against all 1,000 rules;
//! - steady-state throughput (criterion, one round per iteration) once
//!   every key exists and every rate and deviation window is full, in
//!   readings/s on one thread, against the aim;
//! - state bytes per (device, rule): `footprint()`'s estimate, the heap
//!   the evaluator really holds (a counting global allocator: the bytes
//!   freed when it is dropped), and the bincode-encoded checkpoint
//!   snapshot (as `benches/checkpoint.rs` encodes it), each divided by
//!   the number of states, against the 256 B aim; and the encoded bytes
//!   per state by rule kind.
//!
//! `cargo bench --bench rules_scale` (`WEIR_BENCH_BATCH` sets the readings
//! pushed between two `advance_to` calls, default 10,000). Without
//! `--bench` (`cargo test --benches`) the fleet is 1,000 devices (50 per
//! group: 50,000 states) and batches are of 1,000.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use weir::operators::alert::{
    Alert, AlertEvaluator, Direction, Rule, RuleSet, RuleState, Threshold,
};
use weir::operators::Reading;

/// Counts the bytes live, so that what the evaluator holds is what
/// dropping it frees.
#[global_allocator]
static ALLOCATOR: support::Counting = support::Counting;

const RULES: usize = 1_000;
const GROUPS: usize = 20;
const SENSORS: [&str; 10] = [
    "temperature",
    "pressure",
    "vibration",
    "humidity",
    "current",
    "voltage",
    "flow",
    "rpm",
    "torque",
    "level",
];
/// The six kinds, by the name part they give rule names.
const KINDS: [&str; 6] = [
    "threshold",
    "hysteresis",
    "consecutive",
    "for",
    "rate",
    "deviation",
];
const START_MS: u64 = 1_763_900_000_000;
/// Event time between two readings of a key: one round.
const ROUND_MS: u64 = 1_000;
/// The frontier trails the latest event time by this much.
const OUT_OF_ORDERNESS_MS: u64 = 5_000;
/// Rounds after key creation before measuring: rate (10 s) and deviation
/// (10 values) windows are full, and every queue has its steady size.
const WARM_ROUNDS: u64 = 12;
const AIM_READINGS_PER_S: f64 = 1_000_000.0;
const AIM_BYTES_PER_STATE: f64 = 256.0;

/// `cargo test --benches` runs each bench once, without `--bench`: keep it small.
fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

fn devices() -> usize {
    if quick() {
        1_000
    } else {
        100_000
    }
}

/// Readings pushed between two `advance_to` calls (`WEIR_BENCH_BATCH`).
fn batch() -> usize {
    std::env::var("WEIR_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick() { 1_000 } else { 10_000 })
        .clamp(1, devices() * SENSORS.len())
}

/// SplitMix64: a cheap, seeded source of noise.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Device `d`'s id: `g017-dev-00042`.
fn device(d: usize) -> String {
    let per_group = devices() / GROUPS;
    format!("g{:03}-dev-{:05}", d / per_group, d % per_group)
}

/// Rule `i`: (group, sensor) pair `i % 200`, kind `(pair + i / 200) % 6`,
/// so a pair's 5 rules are of 5 kinds. Thresholds are for values around
/// 50 with noise of +-5 and spikes of +20.
fn rule(i: usize) -> Rule {
    let pair = i % (GROUPS * SENSORS.len());
    let (group, sensor) = (pair / SENSORS.len(), SENSORS[pair % SENSORS.len()]);
    let kind = (pair + i / (GROUPS * SENSORS.len())) % KINDS.len();
    let name = format!("r{i:04}-{}-{sensor}-g{group:03}", KINDS[kind]);
    let base = Rule::new(&name, sensor, Direction::Above, 56.0).severity(if i % 2 == 0 {
        "warning"
    } else {
        "critical"
    });
    let limits = |threshold: f64, clear: f64| {
        move |t: &mut Threshold| {
            t.threshold = threshold;
            t.clear = clear;
        }
    };
    let rule = match kind {
        0 => base.with_threshold(limits(58.0, 58.0)),
        1 => base.with_threshold(limits(57.0, 52.0)),
        2 => base.consecutive(3),
        3 => base.with(|m| m.for_ms = 5_000),
        4 => base.with_threshold(limits(1.5, 1.5)).rate_of_change(10_000),
        _ => base.with_threshold(limits(4.0, 4.0)).deviation(10),
    };
    rule.devices(&format!("g{group:03}-*"))
        .expect("a valid glob")
}

fn rules() -> Arc<RuleSet> {
    Arc::new(RuleSet::new((0..RULES).map(rule).collect()))
}

/// The kind of a rule, from its name.
fn kind_of(name: &str) -> &str {
    name.split('-').nth(1).expect("rule names carry their kind")
}

/// The fleet's readings, one round at a time.
struct Fleet {
    /// One reading per key, devices' sensors together: names and routing
    /// hash, copied into every round.
    templates: Vec<Reading>,
    /// The next round.
    round: u64,
    offset: i64,
}

impl Fleet {
    fn new() -> Self {
        let mut templates = Vec::with_capacity(devices() * SENSORS.len());
        for d in 0..devices() {
            let device = device(d);
            for sensor in SENSORS {
                templates.push(Reading::new(&device, sensor, 0, 0.0, (d % 8) as i32, 0));
            }
        }
        Fleet {
            templates,
            round: 0,
            offset: 0,
        }
    }

    fn keys(&self) -> usize {
        self.templates.len()
    }

    /// The next round: every key once, devices in a random order, in
    /// event-time order over the round's second.
    fn next_round(&mut self) -> Vec<Reading> {
        let n = devices();
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (mix(self.round << 32 | i as u64) % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        let start = START_MS + self.round * ROUND_MS;
        let mut readings = Vec::with_capacity(self.keys());
        for (pos, d) in order.into_iter().enumerate() {
            let time = start + (pos as u64 * ROUND_MS) / n as u64;
            for s in 0..SENSORS.len() {
                let k = d * SENSORS.len() + s;
                let h = mix((k as u64) << 24 ^ self.round);
                let noise = (h % 10_000) as f64 / 1_000.0 - 5.0;
                let spike = if (h >> 32) % 1_000 == 0 { 20.0 } else { 0.0 };
                let mut r = self.templates[k].clone();
                r.time = time;
                r.value = 50.0 + noise + spike;
                r.offset = self.offset;
                self.offset += 1;
                readings.push(r);
            }
        }
        self.round += 1;
        readings
    }
}

/// Time spent pushing and advancing over one round, and alerts emitted.
#[derive(Default)]
struct RoundTime {
    push: Duration,
    advance: Duration,
    alerts: usize,
}

/// Pushes a round in batches, advancing the frontier after each.
fn run_round(
    eval: &mut AlertEvaluator<Reading>,
    readings: Vec<Reading>,
    out: &mut Vec<Alert>,
) -> RoundTime {
    let mut time = RoundTime::default();
    let mut readings = readings.into_iter();
    let size = batch();
    let mut batch = Vec::with_capacity(size);
    loop {
        // A batch as the operator is handed one (moved out before the clock).
        batch.extend(readings.by_ref().take(size));
        let Some(latest) = batch.iter().map(|r| r.time).max() else {
            break;
        };
        let start = Instant::now();
        eval.push_all(&mut batch);
        let pushed = Instant::now();
        eval.advance_to(Some(latest.saturating_sub(OUT_OF_ORDERNESS_MS)), out);
        let advanced = Instant::now();
        time.push += pushed - start;
        time.advance += advanced - pushed;
        time.alerts += out.len();
        out.clear();
    }
    time
}

fn rules_scale(c: &mut Criterion) {
    let rules = rules();
    let mut fleet = Fleet::new();
    let keys = fleet.keys();
    let mut eval = AlertEvaluator::<Reading>::new(rules.clone());
    let mut out = Vec::new();
    println!(
        "{RULES} rules, {} devices in {GROUPS} groups, {} sensors: {keys} keys; \
         batches of {}, frontier {} s behind",
        devices(),
        SENSORS.len(),
        batch(),
        OUT_OF_ORDERNESS_MS / 1_000
    );

    // Key creation: the first round, every reading a new key.
    let first = fleet.next_round();
    let t = run_round(&mut eval, first, &mut out);
    let (states, _) = eval.footprint();
    assert_eq!(eval.key_count(), keys, "every key exists");
    println!(
        "key creation: {keys} keys (each matched against {RULES} rules) pushed in {:.2} s \
         = {:.2} us/key ({:.0} keys/s); that round's advance_to: {:.2} s",
        t.push.as_secs_f64(),
        t.push.as_secs_f64() * 1e6 / keys as f64,
        keys as f64 / t.push.as_secs_f64(),
        t.advance.as_secs_f64()
    );
    println!(
        "(device, rule) states: {states} ({:.1} rules per key)",
        states as f64 / keys as f64
    );

    let warm = Instant::now();
    let mut warm_alerts = 0;
    for _ in 0..WARM_ROUNDS {
        let round = fleet.next_round();
        warm_alerts += run_round(&mut eval, round, &mut out).alerts;
    }
    println!(
        "warm-up: {WARM_ROUNDS} rounds in {:.2} s, {:.0} alerts per round",
        warm.elapsed().as_secs_f64(),
        warm_alerts as f64 / WARM_ROUNDS as f64
    );

    // Steady state: one round per iteration, readings built off the clock.
    let mut rounds: Vec<(RoundTime, usize)> = Vec::new();
    let mut group = c.benchmark_group("rules_scale");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(keys as u64));
    group.bench_function(format!("steady_{keys}_keys_{RULES}_rules"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let round = fleet.next_round();
                let t = run_round(&mut eval, round, &mut out);
                total += t.push + t.advance;
                rounds.push((t, keys));
            }
            total
        })
    });
    group.finish();

    let mut rates: Vec<f64> = rounds
        .iter()
        .map(|(t, n)| *n as f64 / (t.push + t.advance).as_secs_f64())
        .collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    let (push, advance, alerts) = rounds.iter().fold((0.0, 0.0, 0), |(p, a, n), (t, _)| {
        (
            p + t.push.as_secs_f64(),
            a + t.advance.as_secs_f64(),
            n + t.alerts,
        )
    });
    println!(
        "steady state, {} rounds of {keys} readings on 1 thread: median {median:.0} readings/s, \
         best {:.0} ({:.2}x the aim of 1,000,000/s per core); time in push {:.0}%, \
         advance_to {:.0}%; {:.0} alerts per round",
        rounds.len(),
        rates[rates.len() - 1],
        median / AIM_READINGS_PER_S,
        push / (push + advance) * 100.0,
        advance / (push + advance) * 100.0,
        alerts as f64 / rounds.len() as f64
    );

    state_size(eval, &rules);
}

/// Bytes per (device, rule) state: estimated, held, and encoded.
fn state_size(eval: AlertEvaluator<Reading>, rules: &RuleSet) {
    let report = |what: &str, bytes: usize, states: usize| {
        let each = bytes as f64 / states as f64;
        println!(
            "  {what:<44} {bytes:>13} B = {each:>6.1} B/state ({:.2}x the aim of 256 B)",
            each / AIM_BYTES_PER_STATE
        );
    };
    let (states, estimate) = eval.footprint();
    let encoded = bincode::serialized_size(&eval.snapshot_view()).expect("sizes") as usize;
    // Per kind, from the snapshot itself (states in their initial state are
    // left out of it).
    let part = eval.snapshot();
    if quick() {
        let bytes = bincode::serialize(&part).expect("a part serializes");
        assert_eq!(bytes.len(), encoded, "the view encodes as the snapshot");
    }
    let mut by_kind = [(0usize, 0usize); KINDS.len()];
    for (_, saved) in &part.keys {
        for (name, state) in saved {
            let k = KINDS
                .iter()
                .position(|k| *k == kind_of(name))
                .expect("a known kind");
            by_kind[k].0 += 1;
            by_kind[k].1 += bincode::serialized_size(&(name, state)).expect("sizes") as usize;
        }
    }
    let saved: usize = by_kind.iter().map(|(n, _)| n).sum();
    drop(part);
    let held = support::held_by(eval);
    let rules_per_kind = |k: usize| {
        rules
            .rules
            .iter()
            .filter(|r| kind_of(&r.name) == KINDS[k])
            .count()
    };
    println!("state per (device, rule), {states} states:");
    report("footprint() estimate", estimate, states);
    report("heap held (freed when dropped)", held, states);
    report("checkpoint snapshot, bincode", encoded, states);
    println!(
        "  ({saved} states differ from the initial one and are in the snapshot; \
         size_of RuleState {} B, of Reading {} B)",
        std::mem::size_of::<RuleState>(),
        std::mem::size_of::<Reading>()
    );
    println!("  snapshot bytes per saved state, by kind (name included):");
    for (k, (n, bytes)) in by_kind.iter().enumerate() {
        println!(
            "    {:<12} {:>3} rules, {n:>8} saved states, {:>6.1} B each",
            KINDS[k],
            rules_per_kind(k),
            *bytes as f64 / (*n).max(1) as f64
        );
    }
}

criterion_group!(benches, rules_scale);
criterion_main!(benches);
