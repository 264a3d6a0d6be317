//! The workload of issue 9, in memory: 2,000,000 JSON readings of about 80
//! bytes (`{"device_id":"dev-00042","sensor":"temperature","ts":…,"value":61.23}`)
//! from 1,000 devices with 3 sensors, 10 readings per ms of event time,
//! generated from a fixed seed. The pipeline computes 10 s tumbling windows
//! (count, min, max, mean) and, in the second variant, one threshold rule
//! (above 80) on every sensor.
//!
//! It reports, in the same run, Weir on 1 and 2 workers (windows only, and
//! windows + rule) and a plain single-threaded loop: serde_json into a
//! borrowed struct, a hash map of windows, the same threshold. The loop is
//! the reference, both for speed and for correctness: Weir's window and
//! alert counts must equal the loop's.
//!
//! `cargo bench --bench workload` (set `WEIR_BENCH_READINGS` to change the
//! input size, `WEIR_BENCH_RUNS` the number of runs of which the best is
//! kept; to profile one case, `WEIR_BENCH_WORKERS=1` or `2` and
//! `WEIR_BENCH_ONLY=windows`, `rule`, `ledger`, `hopping` or
//! `percentiles`). The ledger variant wires the rule as pipelines do, with
//! `alerts()`: its events then pass through the alarm ledger, and it
//! reports its rate against the rule alone, measured beside it. The
//! hopping variant (one-minute windows every 10 s) reports its rate against
//! tumbling 10 s windows measured beside it, and checks its window count
//! against the definition. The percentiles variant computes p50, p95 and
//! p99 of every 10 s window, reports its rate against the same windows
//! without them, measured beside it, and the bytes of window state per key
//! of one window of the input, without and with the percentiles.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

mod support;

use hashbrown::HashMap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use support::best_of;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;
use weir::operators::alert::{alerts, Direction, Rule, RuleSet};
use weir::operators::memory::{MemorySource, MemoryTopic};
use weir::operators::{
    Decoder, Env, EvaluateAlerts, Reading, Run, SensorKey, Stat, Stats, WindowAggregateOp,
    WindowKind, WindowSpec, WindowState,
};

const DEVICES: usize = 1_000;
const SENSORS: [&str; 3] = ["temperature", "pressure", "vibration"];
/// Readings per ms of event time.
const PER_MS: u64 = 10;
const START_MS: u64 = 1_700_000_000_000;
const WINDOW_MS: u64 = 10_000;
const THRESHOLD: f64 = 80.0;
const PARTITIONS: usize = 8;
const SEED: u64 = 9;
/// The source's out-of-orderness bound (ms): the input is in order per
/// partition, so it only delays the frontier.
const OUT_OF_ORDERNESS_MS: u64 = 5_000;

/// `n` readings, each of a random (device, sensor), valued uniformly in
/// [20, 82.5) with two decimals (so about 4% breach the threshold), on
/// `PARTITIONS` partitions keyed by device. Event time grows by 1 ms every
/// `PER_MS` readings, so every partition, and every key, is in time order.
fn workload(n: usize) -> MemoryTopic {
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut payload = String::with_capacity(96);
    let mut records = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let device = rng.random_range(0..DEVICES);
        let sensor = SENSORS[rng.random_range(0..SENSORS.len())];
        let value = 20.0 + rng.random_range(0..6_250) as f64 / 100.0;
        let ts = START_MS + i / PER_MS;
        payload.clear();
        write!(
            payload,
            r#"{{"device_id":"dev-{device:05}","sensor":"{sensor}","ts":{ts},"value":{value:.2}}}"#
        )
        .expect("writing to a String");
        let key = format!("dev-{device:05}");
        let partition = SensorKey::route_hash(&key, "") as usize % PARTITIONS;
        records.push((partition, key, payload.clone().into_bytes(), ts as i64));
    }
    MemoryTopic::from_records(
        "workload",
        PARTITIONS,
        records
            .iter()
            .map(|(p, key, payload, ts)| (*p, Some(key.as_bytes()), payload.as_slice(), Some(*ts))),
    )
}

#[derive(Deserialize)]
struct Plain<'a> {
    device_id: &'a str,
    sensor: &'a str,
    ts: u64,
    value: f64,
}

/// count, min, max, sum
type Window = (u64, f64, f64, f64);

/// What the plain loop computes.
struct PlainResult {
    windows: usize,
    /// Sum of the windows' counts.
    counted: u64,
    /// Readings above the threshold.
    breaches: u64,
    /// Alert events (firing and resolved) of the threshold rule.
    alerts: u64,
}

/// The plain loop over every partition in turn. Each key's readings are in
/// time order within its partition, which is the order the rule needs.
fn plain_loop(topic: &MemoryTopic) -> PlainResult {
    // Keys borrow the names from the payloads, which outlive the maps.
    let mut windows: HashMap<(&str, &str, u64), Window> = HashMap::new();
    let mut firing: HashMap<(&str, &str), bool> = HashMap::new();
    let (mut breaches, mut alerts) = (0, 0);
    for partition in &topic.partitions {
        for record in partition {
            let r: Plain = serde_json::from_slice(&record.payload).expect("bench input is valid");
            let start = r.ts - r.ts % WINDOW_MS;
            let w = windows.entry((r.device_id, r.sensor, start)).or_insert((
                0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                0.0,
            ));
            w.0 += 1;
            w.1 = w.1.min(r.value);
            w.2 = w.2.max(r.value);
            w.3 += r.value;
            let breach = r.value > THRESHOLD;
            breaches += u64::from(breach);
            let state = firing.entry((r.device_id, r.sensor)).or_insert(false);
            alerts += u64::from(*state != breach);
            *state = breach;
        }
    }
    // The mean, as the pipeline reports it.
    let means: f64 = windows.values().map(|w| w.3 / w.0 as f64).sum();
    assert!(means.is_finite());
    PlainResult {
        windows: windows.len(),
        counted: windows.values().map(|w| w.0).sum(),
        breaches,
        alerts,
    }
}

/// The threshold rule on every sensor.
fn rules() -> Arc<RuleSet> {
    let rule = Rule::new("above-80", "", Direction::Above, THRESHOLD).every_sensor();
    Arc::new(RuleSet::new(vec![rule]))
}

/// What Weir computed.
struct WeirResult {
    windows: u64,
    alerts: u64,
}

/// Hopping windows of the bench: one minute, every 10 s.
const HOPPING: WindowKind = WindowKind::Hopping {
    size_ms: 60_000,
    slide_ms: 10_000,
};

/// The number of hopping (key, window) pairs that hold a reading, counted
/// here from the definition: a reading at `t` is in the windows ending at
/// the slide multiples in `(t, t + size]`.
fn hopping_windows(topic: &MemoryTopic) -> usize {
    let WindowKind::Hopping { size_ms, slide_ms } = HOPPING else {
        unreachable!("HOPPING is hopping")
    };
    let mut windows = hashbrown::HashSet::new();
    for record in topic.partitions.iter().flatten() {
        let r: Plain = serde_json::from_slice(&record.payload).expect("bench input is valid");
        let first_end = r.ts - r.ts % slide_ms + slide_ms;
        for end in (first_end..first_end + size_ms).step_by(slide_ms as usize) {
            windows.insert((r.device_id, r.sensor, end));
        }
    }
    windows.len()
}

/// What Weir runs beside the windows.
#[derive(Clone, Copy, PartialEq)]
enum Alerting {
    /// No rule.
    None,
    /// The rule, by `evaluate_alerts`.
    Rule,
    /// The rule as pipelines wire it, by `alerts()`: the alarm ledger too.
    Ledger,
}

/// Weir on `workers` threads, with or without the rule.
fn weir(topic: &Arc<MemoryTopic>, workers: usize, alerting: Alerting) -> WeirResult {
    weir_windows(
        topic,
        workers,
        alerting,
        WindowKind::Tumbling { size_ms: WINDOW_MS },
    )
}

/// The statistics of the percentiles variant: p50, p95 and p99.
fn percentiles() -> Stats {
    ["p50", "p95", "p99"]
        .iter()
        .map(|p| p.parse::<Stat>().expect("percentile names"))
        .collect()
}

/// Bytes of window state per key for the readings of the first window of
/// the input, with `stats`, as the window operator counts them.
fn state_bytes_per_key(topic: &MemoryTopic, stats: Stats) -> usize {
    let mut state = WindowState::with_stats(WINDOW_MS, stats);
    for record in topic.partitions.iter().flatten() {
        let r: Plain = serde_json::from_slice(&record.payload).expect("bench input is valid");
        if r.ts < START_MS + WINDOW_MS {
            state.insert(&Reading::new(r.device_id, r.sensor, r.ts, r.value, 0, 0));
        }
    }
    let (keys, bytes) = state.footprint();
    bytes / keys.max(1)
}

/// Weir on `workers` threads, with windows of `spec`, and `alerting`.
fn weir_windows(
    topic: &Arc<MemoryTopic>,
    workers: usize,
    alerting: Alerting,
    spec: impl Into<WindowSpec>,
) -> WeirResult {
    let spec = spec.into();
    let run = Run::default();
    let metrics = run.metrics.clone();
    let topic = topic.clone();
    let rules = rules();
    timely::execute(timely::Config::process(workers), move |worker| {
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let env = Env::new(scope, run.clone(), "workload", None);
            let (readings, _dead) =
                scope.memory_source(topic.clone(), Decoder::default(), OUT_OF_ORDERNESS_MS, &env);
            let windows = readings.clone().windows(spec.clone(), &env);
            windows.stream.clone().probe_with(&probe);
            match alerting {
                Alerting::None => {}
                Alerting::Rule => {
                    (readings.clone())
                        .evaluate_alerts(rules.clone(), &env)
                        .probe_with(&probe);
                }
                Alerting::Ledger => {
                    alerts(&readings, &[windows], rules.clone(), &env).probe_with(&probe);
                }
            }
        });
    })
    .expect("timely starts")
    .join();
    let alerts = metrics
        .alerts_by_rule()
        .values()
        .map(|c| c.firing + c.resolved)
        .sum();
    WeirResult {
        windows: metrics.windows.get(),
        alerts,
    }
}

fn main() {
    // `cargo test --benches` runs bench binaries without `--bench`: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let env_usize = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let n = env_usize("WEIR_BENCH_READINGS").unwrap_or(if quick { 60_000 } else { 2_000_000 });
    let runs = env_usize("WEIR_BENCH_RUNS").unwrap_or(if quick { 1 } else { 3 });
    let topic = Arc::new(workload(n));
    let bytes: usize = topic
        .partitions
        .iter()
        .flatten()
        .map(|r| r.payload.len())
        .sum();
    println!(
        "workload: {n} readings ({:.1} bytes each), {DEVICES} devices x {} sensors, \
         {WINDOW_MS} ms windows, rule above {THRESHOLD} on every sensor; best of {runs} runs",
        bytes as f64 / n as f64,
        SENSORS.len()
    );
    let rate = |took: Duration| n as f64 / took.as_secs_f64();

    let (took, plain) = best_of(runs, || plain_loop(&topic));
    assert_eq!(plain.counted, n as u64, "the plain loop lost readings");
    let plain_rate = rate(took);
    println!(
        "  plain loop, 1 thread      {plain_rate:>12.0} readings/s  ({} windows, {} breaches, {} alert events)",
        plain.windows, plain.breaches, plain.alerts
    );

    let only = std::env::var("WEIR_BENCH_ONLY").ok();
    let only_workers = env_usize("WEIR_BENCH_WORKERS");
    let mut aims = Vec::new();
    for (with_rule, label) in [(false, "windows"), (true, "windows + rule")] {
        let name = if with_rule { "rule" } else { "windows" };
        if only.as_ref().is_some_and(|o| o != name) {
            continue;
        }
        let mut rates = Vec::new();
        for workers in [1, 2] {
            if only_workers.is_some_and(|w| w != workers) {
                continue;
            }
            let alerting = if with_rule {
                Alerting::Rule
            } else {
                Alerting::None
            };
            let (took, out) = best_of(runs, || weir(&topic, workers, alerting));
            assert_eq!(
                out.windows as usize, plain.windows,
                "{label}, {workers} worker(s): Weir and the plain loop disagree on windows"
            );
            if with_rule {
                assert_eq!(
                    out.alerts, plain.alerts,
                    "{label}, {workers} worker(s): Weir and the plain loop disagree on alerts"
                );
            }
            let r = rate(took);
            rates.push(r);
            println!(
                "  weir {label:<14} {workers}w {r:>12.0} readings/s  {:.2}x the loop  ({} windows, {} alert events)",
                r / plain_rate,
                out.windows,
                out.alerts
            );
        }
        if let [one, two] = rates[..] {
            println!("  weir {label:<14} 2 workers vs 1: {:.2}x", two / one);
            if with_rule {
                aims.extend([
                    (
                        "1 worker, windows + rule, vs the loop",
                        one / plain_rate,
                        1.0,
                    ),
                    (
                        "2 workers, windows + rule, vs the loop",
                        two / plain_rate,
                        2.0,
                    ),
                    ("2 workers vs 1, windows + rule", two / one, 1.8),
                ]);
            }
        }
    }
    if only.as_ref().is_none_or(|o| o == "ledger") {
        for workers in [1, 2] {
            if only_workers.is_some_and(|w| w != workers) {
                continue;
            }
            let (took, out) = best_of(runs, || weir(&topic, workers, Alerting::Ledger));
            assert_eq!(
                (out.windows as usize, out.alerts),
                (plain.windows, plain.alerts),
                "rule and ledger, {workers} worker(s): windows and alerts"
            );
            let (rule, _) = best_of(runs, || weir(&topic, workers, Alerting::Rule));
            let r = rate(took);
            println!(
                "  weir rule + ledger    {workers}w {r:>12.0} readings/s  {:.2}x the loop, {:.2}x the rule alone",
                r / plain_rate,
                r / rate(rule),
            );
        }
    }
    if only.as_ref().is_none_or(|o| o == "hopping") {
        let want = hopping_windows(&topic);
        for workers in [1, 2] {
            if only_workers.is_some_and(|w| w != workers) {
                continue;
            }
            let (took, out) = best_of(runs, || {
                weir_windows(&topic, workers, Alerting::None, HOPPING)
            });
            assert_eq!(
                out.windows as usize, want,
                "hopping, {workers} worker(s): windows"
            );
            let (tumbling, _) = best_of(runs, || weir(&topic, workers, Alerting::None));
            let r = rate(took);
            println!(
                "  weir hopping 1m/10s  {workers}w {r:>12.0} readings/s  {:.2}x tumbling 10 s  ({} windows)",
                r / rate(tumbling),
                out.windows
            );
            aims.push((
                if workers == 1 {
                    "1 worker, hopping vs tumbling"
                } else {
                    "2 workers, hopping vs tumbling"
                },
                r / rate(tumbling),
                0.8,
            ));
        }
    }
    if only.as_ref().is_none_or(|o| o == "percentiles") {
        let tumbling = WindowKind::Tumbling { size_ms: WINDOW_MS };
        for workers in [1, 2] {
            if only_workers.is_some_and(|w| w != workers) {
                continue;
            }
            let spec = tumbling.with_stats(percentiles());
            let (took, out) = best_of(runs, || {
                weir_windows(&topic, workers, Alerting::None, spec.clone())
            });
            assert_eq!(
                out.windows as usize, plain.windows,
                "percentiles, {workers} worker(s): windows"
            );
            let (basic, _) = best_of(runs, || weir(&topic, workers, Alerting::None));
            let r = rate(took);
            println!(
                "  weir p50,p95,p99 10s  {workers}w {r:>12.0} readings/s  {:.2}x tumbling 10 s  ({} windows)",
                r / rate(basic),
                out.windows
            );
            aims.push((
                if workers == 1 {
                    "1 worker, percentiles vs tumbling"
                } else {
                    "2 workers, percentiles vs tumbling"
                },
                r / rate(basic),
                0.7,
            ));
        }
        println!(
            "  window state per key (first 10 s window): {} bytes, {} bytes with p50,p95,p99",
            state_bytes_per_key(&topic, Stats::basic()),
            state_bytes_per_key(&topic, percentiles())
        );
    }
    if !aims.is_empty() {
        println!("aims of the workload:");
    }
    for (what, ratio, aim) in aims {
        let verdict = if ratio >= aim { "met" } else { "missed" };
        println!("  {what:<40} {ratio:>5.2}x  (aim {aim:.1}x: {verdict})");
    }
}
