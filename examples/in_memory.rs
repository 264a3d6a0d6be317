//! A pipeline over records held in memory, no broker needed: decode,
//! one-minute windows and a threshold rule, printing what comes out.
//!
//! `cargo run --example in_memory`

use std::sync::{Arc, Mutex};

use timely::dataflow::operators::Inspect;
use weir::operators::alert::{Direction, Rule, RuleSet};
use weir::operators::memory::{MemorySource, MemoryTopic};
use weir::operators::{Decoder, EvaluateAlerts, WindowAggregateOp};
use weir::simulate::{generate, SimulatorConfig};
use weir::RunOptions;

fn main() -> anyhow::Result<()> {
    let sim = SimulatorConfig {
        devices: 3,
        duration_ms: 3 * 60_000,
        anomaly_rate: 1.0,
        ..Default::default()
    };
    let records: Vec<_> = generate(&sim).collect();
    let topic = Arc::new(MemoryTopic::from_records(
        "readings",
        1,
        records.iter().map(|r| {
            (
                0,
                Some(r.key.as_bytes()),
                r.payload.as_slice(),
                Some(r.timestamp_ms),
            )
        }),
    ));
    let rules = Arc::new(RuleSet::new(vec![Rule::new(
        "hot",
        "temperature",
        Direction::Above,
        90.0,
    )]));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();

    let options = RunOptions {
        workers: 2,
        bounded: true,
        ..RunOptions::default()
    };
    let report = weir::run(&options, move |scope, ctx| {
        let (readings, _dead) = scope.memory_source(topic.clone(), Decoder::default(), 5_000, ctx);
        let out = out.clone();
        readings
            .clone()
            .window_aggregate(60_000, ctx)
            .stream
            .inspect(move |w| {
                out.lock().unwrap().push(format!(
                    "window {} {} [{}, {}): n={} mean={:.2}",
                    w.device,
                    w.sensor,
                    w.window_start,
                    w.window_end,
                    w.count,
                    w.mean()
                ))
            });
        readings.evaluate_alerts(rules.clone(), ctx).inspect(|a| {
            println!(
                "alert {:?} {} {} at {}: {}",
                a.state, a.rule, a.device, a.event_time, a.value
            )
        });
    })?;
    let mut lines = seen.lock().unwrap().clone();
    lines.sort();
    for line in lines.iter().take(6) {
        println!("{line}");
    }
    print!("{report}");
    Ok(())
}
