//! Window rules on the extra statistics of windows: which windows feed
//! them, and windows without the rule's value.

use std::sync::Arc;

use super::*;
use crate::reading::WindowAggregate;

fn hot() -> Rule {
    Rule::new("hot", "temp", Direction::Above, 90.0)
}

/// Windows feed a rule only if they are of its size and compute its
/// statistic: an evaluator of windows without it cannot judge the rule, so
/// a reload adding such a rule is refused.
#[test]
fn windows_feed_rules_on_the_statistics_they_compute() {
    use crate::record::Stats;
    let p95: Stat = "p95".parse().unwrap();
    let on = |stat| RuleInput::Window {
        size_ms: 60_000,
        stat,
    };
    let with_p95: Stats = [p95].into_iter().collect();
    let fed = |input, size, stats: &Stats| {
        <WindowAggregate as Observation>::fed(&input, Some((size, stats)))
    };
    assert!(fed(on(Stat::Max), 60_000, &Stats::basic()));
    assert!(!fed(on(p95), 60_000, &Stats::basic()));
    assert!(fed(on(p95), 60_000, &with_p95));
    assert!(!fed(on(p95), 10_000, &with_p95));
    assert!(!<WindowAggregate as Observation>::fed(&on(Stat::Max), None));
}

/// A rule on a statistic that a window has no value for (the sample
/// standard deviation of one reading) skips that window: it neither
/// breaches nor clears.
#[test]
fn windows_without_the_rule_statistic_are_skipped() {
    let rule = hot().window(60_000, Stat::Stddev);
    let mut eval = AlertEvaluator::new(Arc::new(RuleSet::new(vec![rule])));
    let window = |start: u64, stddev: Option<f64>| WindowAggregate {
        device: "d1".into(),
        sensor: "temp".into(),
        window_start: start,
        window_end: start + 60_000,
        count: if stddev.is_some() { 2 } else { 1 },
        min: 0.0,
        max: 0.0,
        sum: 0.0,
        extra: vec![(Stat::Stddev, stddev)],
        revision: 0,
    };
    for w in [
        window(0, Some(95.0)),
        window(60_000, None),
        window(120_000, Some(80.0)),
    ] {
        eval.push(w);
    }
    let mut out = Vec::new();
    eval.advance_to(None, &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|a| (a.state, a.event_time, a.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 60_000, 95.0),
            (AlertState::Resolved, 180_000, 80.0)
        ]
    );
}
