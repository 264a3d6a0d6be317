//! In-memory pipeline benchmark: the same readings through Weir's decode,
//! windows and alerts (a timely dataflow fed by the in-memory source, on 1
//! and 2 workers) and through a plain single-threaded loop (serde_json into a
//! borrowed struct, a hash map of windows, the same threshold). Prints
//! readings per second for each and Weir's ratio to the plain loop, so the
//! cost of Weir itself shows.
//!
//! `cargo bench --bench pipeline` (set `WEIR_BENCH_READINGS` to change the
//! input size, default 2,000,000).

mod support;

use std::sync::Arc;

use hashbrown::HashMap;
use serde::Deserialize;
use support::{best_of, input};
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::ProbeHandle;
use weir::operators::alert::{Direction, Rule, RuleInput, RuleSet, Stat};
use weir::operators::memory::{MemorySource, MemoryTopic};
use weir::operators::{Decoder, Env, EvaluateAlerts, Metrics, Run, WindowAggregateOp};

const WINDOW_MS: u64 = 60_000;
const THRESHOLD: f64 = 90.0;

#[derive(Deserialize)]
struct Plain<'a> {
    device_id: &'a str,
    sensor: &'a str,
    value: f64,
    ts: u64,
}

/// count, min, max, sum
type Window = (u64, f64, f64, f64);

/// The plain loop: (windows, breaches).
fn plain_loop(topic: &MemoryTopic) -> (usize, u64) {
    // Keys borrow the names from the payloads, which outlive the map.
    let mut windows: HashMap<(&str, &str, u64), Window> = HashMap::new();
    let mut breaches = 0u64;
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
            breaches += u64::from(r.sensor == "temperature" && r.value > THRESHOLD);
        }
    }
    (windows.len(), breaches)
}

fn rules() -> Arc<RuleSet> {
    let on_readings = Rule::new("hot", "temperature", Direction::Above, THRESHOLD);
    let on_windows = Rule {
        input: RuleInput::Window {
            size_ms: WINDOW_MS,
            stat: Stat::Mean,
        },
        ..Rule::new("hot-mean", "temperature", Direction::Above, THRESHOLD)
    };
    Arc::new(RuleSet::new(vec![on_readings, on_windows]))
}

/// Weir on `workers` threads: (windows, alert events).
fn weir(topic: &Arc<MemoryTopic>, workers: usize) -> (u64, u64) {
    let run = Run::default();
    let (metrics, m) = (run.metrics.clone(), run);
    let topic = topic.clone();
    let rules = rules();
    let config = timely::Config::process(workers);
    timely::execute(config, move |worker| {
        let probe = ProbeHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let env = Env::new(scope, m.clone(), "bench", None);
            let (readings, _dead) =
                scope.memory_source(topic.clone(), Decoder::default(), 5_000, &env);
            let windows = readings.clone().window_aggregate(WINDOW_MS, &env);
            let a = readings.evaluate_alerts(rules.clone(), &env);
            let b = windows.evaluate_alerts(rules.clone(), &env);
            a.inspect(|_| ()).probe_with(&probe);
            b.probe_with(&probe);
        });
    })
    .expect("timely starts")
    .join();
    let alerts = metrics
        .alerts_by_rule()
        .values()
        .map(|c| c.firing + c.resolved)
        .sum();
    (Metrics::get(&metrics.windows), alerts)
}

fn main() {
    // `cargo test --benches` runs bench binaries with `--bench` absent: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("WEIR_BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 60_000 } else { 2_000_000 });
    let runs = if quick { 1 } else { 3 };
    let topic = Arc::new(input(n));
    let n = topic.len() as f64;
    println!(
        "in-memory pipeline: {} readings, best of {runs} runs",
        topic.len()
    );

    let (plain, (plain_windows, _)) = best_of(runs, || plain_loop(&topic));
    let plain_rate = n / plain.as_secs_f64();
    println!(
        "  plain loop         {:>12.0} readings/s ({plain_windows} windows)",
        plain_rate
    );
    for workers in [1, 2] {
        let (took, (windows, alerts)) = best_of(runs, || weir(&topic, workers));
        assert_eq!(
            windows as usize, plain_windows,
            "Weir and the plain loop disagree on windows"
        );
        let rate = n / took.as_secs_f64();
        println!(
            "  weir, {workers} worker(s)   {:>12.0} readings/s ({windows} windows, {alerts} alert events): {:.2}x the plain loop",
            rate,
            rate / plain_rate
        );
    }
}
