//! A Rust pipeline cannot silently drop a rule: one that evaluates its rules
//! on windows of another size than a rule looks at fails at start, naming
//! the rule, and `alerts` wires the windows every rule needs.

use std::sync::{Arc, Mutex};

use timely::dataflow::operators::Inspect;
use weir::operators::alert::{alerts, AlertState, Direction, Rule, RuleSet, Stat};
use weir::operators::memory::{MemorySource, MemoryTopic};
use weir::operators::{Decoder, EvaluateAlerts, WindowAggregateOp};
use weir::RunOptions;

/// Device d1 reads 50 every 10 s for 10 minutes, and 95 once, at 150 s.
fn topic() -> Arc<MemoryTopic> {
    let payloads: Vec<(u64, String)> = (0..60u64)
        .map(|i| {
            let t = i * 10_000;
            let value = if t == 150_000 { 95.0 } else { 50.0 };
            let json = format!(r#"{{"device_id":"d1","sensor":"temp","ts":{t},"value":{value}}}"#);
            (t, json)
        })
        .collect();
    Arc::new(MemoryTopic::from_records(
        "readings",
        1,
        payloads
            .iter()
            .map(|(t, p)| (0, Some(&b"d1"[..]), p.as_bytes(), Some(*t as i64))),
    ))
}

/// A rule on readings, and one on the maximum of five-minute windows.
fn rules() -> Arc<RuleSet> {
    let spike = Rule::new("spike", "temp", Direction::Above, 90.0);
    let warm = Rule::new("warm-5m", "temp", Direction::Above, 90.0).window(300_000, Stat::Max);
    Arc::new(RuleSet::new(vec![spike, warm]))
}

fn options() -> RunOptions {
    RunOptions {
        workers: 2,
        bounded: true,
        ..RunOptions::default()
    }
}

#[test]
fn rules_on_windows_of_another_size_fail_at_start_naming_the_rule() {
    let topic = topic();
    let result = weir::run(&options(), move |scope, ctx| {
        let (readings, _dead) = scope.memory_source(topic.clone(), Decoder::default(), 5_000, ctx);
        // Only one-minute windows: "warm-5m" would never see a window.
        let minutes = readings.clone().window_aggregate(60_000, ctx);
        readings.evaluate_alerts(rules(), ctx);
        minutes.evaluate_alerts(rules(), ctx);
    });
    let error = format!("{:#}", result.expect_err("the run must fail"));
    assert!(
        error.contains(r#"rule "warm-5m" (windows of 5m)"#),
        "{error}"
    );
    assert!(!error.contains(r#"rule "spike""#), "{error}");
}

#[test]
fn alerts_wires_the_windows_each_rule_needs() {
    let topic = topic();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    weir::run(&options(), move |scope, ctx| {
        let (readings, _dead) = scope.memory_source(topic.clone(), Decoder::default(), 5_000, ctx);
        let minutes = readings.clone().window_aggregate(60_000, ctx);
        let out = out.clone();
        alerts(&readings, &[minutes], rules(), ctx).inspect(move |a| {
            out.lock()
                .unwrap()
                .push((a.rule.clone(), a.state, a.event_time))
        });
    })
    .expect("the run succeeds");
    let mut got = seen.lock().unwrap().clone();
    got.sort_by_key(|(rule, _, t)| (*t, rule.clone()));
    // Worked by hand: the reading at 150 s breaches and the next one clears;
    // the window [0, 5 min) has that maximum and [5 min, 10 min) does not.
    let want = vec![
        ("spike".to_string(), AlertState::Firing, 150_000),
        ("spike".to_string(), AlertState::Resolved, 160_000),
        ("warm-5m".to_string(), AlertState::Firing, 300_000),
        ("warm-5m".to_string(), AlertState::Resolved, 600_000),
    ];
    assert_eq!(got, want);
}
