use std::sync::Arc;

use super::*;
use crate::reading::{Reading, WindowAggregate};

/// Pushes `readings` (device, event time, value) of "temp", in order.
fn push_all(eval: &mut AlertEvaluator<Reading>, readings: &[(&str, u64, f64)]) {
    for (i, (device, t, v)) in readings.iter().enumerate() {
        eval.push(Reading::new(device, "temp", *t, *v, 0, i as i64));
    }
}

/// The alerts of `rule` over `obs` (event time, value) of one device, up
/// to the frontier `end`.
fn alerts(rule: &Rule, obs: &[(u64, f64)], end: Option<u64>) -> Vec<Alert> {
    let mut eval = AlertEvaluator::new(Arc::new(RuleSet::new(vec![rule.clone()])));
    let readings: Vec<_> = obs.iter().map(|&(t, v)| ("d1", t, v)).collect();
    push_all(&mut eval, &readings);
    let mut out = Vec::new();
    eval.advance_to(end, &mut out);
    out
}

/// (state, event time, value) of the alerts of `rule` over `obs`.
fn run(rule: &Rule, obs: &[(u64, f64)], end: Option<u64>) -> Vec<(AlertState, u64, f64)> {
    alerts(rule, obs, end)
        .into_iter()
        .map(|a| (a.state, a.event_time, a.value))
        .collect()
}

fn hot() -> Rule {
    Rule::new("hot", "temp", Direction::Above, 90.0)
}

#[test]
fn threshold_fires_and_resolves_once_per_episode() {
    let got = run(
        &hot(),
        &[(1, 80.0), (2, 91.0), (3, 95.0), (4, 90.0), (5, 92.0)],
        None,
    );
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 2, 91.0),
            (AlertState::Resolved, 4, 90.0),
            (AlertState::Firing, 5, 92.0)
        ]
    );
}

#[test]
fn below_direction() {
    let rule = Rule::new("low", "temp", Direction::Below, 10.0);
    let got = run(&rule, &[(1, 12.0), (2, 9.0), (3, 10.0)], None);
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 2, 9.0),
            (AlertState::Resolved, 3, 10.0)
        ]
    );
}

#[test]
fn hysteresis_keeps_firing_until_clear_threshold() {
    let rule = hot().clear_at(85.0);
    // 88 is under the threshold but above the clear threshold: still firing.
    let got = run(
        &rule,
        &[(1, 95.0), (2, 88.0), (3, 91.0), (4, 85.0), (5, 88.0)],
        None,
    );
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 1, 95.0),
            (AlertState::Resolved, 4, 85.0)
        ]
    );
}

#[test]
fn consecutive_needs_an_unbroken_run() {
    let rule = hot().consecutive(3);
    let got = run(
        &rule,
        &[
            (1, 95.0),
            (2, 95.0),
            (3, 80.0),
            (4, 91.0),
            (5, 92.0),
            (6, 93.0),
        ],
        None,
    );
    assert_eq!(got, vec![(AlertState::Firing, 6, 93.0)]);
}

#[test]
fn for_duration_fires_when_frontier_passes_the_deadline() {
    let rule = hot().with(|m| m.for_ms = 30_000);
    // Breach from t=10s; the readings stop at 20s but the frontier moves
    // past 40s. At frontier 40s a reading at 40s may still come (it would
    // fire the deadline first, at 40s, itself): nothing fires yet.
    let obs = [(10_000, 95.0), (20_000, 96.0)];
    assert_eq!(run(&rule, &obs, Some(40_000)), vec![]);
    assert_eq!(
        run(&rule, &obs, Some(40_001)),
        vec![(AlertState::Firing, 40_000, 96.0)]
    );
}

#[test]
fn for_duration_is_cancelled_by_a_clear_reading_before_the_deadline() {
    let rule = hot().with(|m| m.for_ms = 30_000);
    let obs = [(10_000, 95.0), (39_999, 80.0), (45_000, 95.0)];
    // The second breach starts at 45s, so it may fire at 75s at the
    // earliest, once the frontier has passed 75s.
    assert_eq!(run(&rule, &obs, Some(75_000)), vec![]);
    assert_eq!(
        run(&rule, &obs, Some(75_001)),
        vec![(AlertState::Firing, 75_000, 95.0)]
    );
}

#[test]
fn for_duration_fires_at_deadline_before_a_later_reading() {
    let rule = hot().with(|m| m.for_ms = 30_000);
    // The clearing reading at 50s comes after the deadline at 40s: fire at 40s, resolve at 50s.
    let got = run(&rule, &[(10_000, 95.0), (50_000, 80.0)], None);
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 40_000, 95.0),
            (AlertState::Resolved, 50_000, 80.0)
        ]
    );
}

#[test]
fn end_of_input_drops_breaches_short_of_their_duration() {
    let rule = hot().with(|m| m.for_ms = 30_000);
    // The data stop 10 s into the breach: nothing shows it lasting 30 s.
    assert_eq!(run(&rule, &[(10_000, 95.0), (20_000, 96.0)], None), vec![]);
}

#[test]
fn window_rules_carry_the_bounds_of_the_window_that_fired() {
    let rule = hot().window(60_000, Stat::Mean).consecutive(2);
    let mut eval = AlertEvaluator::new(Arc::new(RuleSet::new(vec![rule])));
    let window = |start: u64, sum: f64| WindowAggregate {
        device: "d1".into(),
        sensor: "temp".into(),
        window_start: start,
        window_end: start + 60_000,
        count: 2,
        min: 0.0,
        max: 0.0,
        sum,
        revision: 0,
        extra: Vec::new(),
    };
    // Means 95, 96, 80: fires on the second window, resolves on the third.
    for w in [
        window(0, 190.0),
        window(60_000, 192.0),
        window(120_000, 160.0),
    ] {
        eval.push(w);
    }
    // A 5-minute window is not this rule's size: ignored.
    eval.push(WindowAggregate {
        window_end: 300_000,
        ..window(0, 1000.0)
    });
    let mut out = Vec::new();
    eval.advance_to(None, &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|a| (a.state, a.event_time, a.window_start, a.window_end, a.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                AlertState::Firing,
                120_000,
                Some(60_000),
                Some(120_000),
                96.0
            ),
            (
                AlertState::Resolved,
                180_000,
                Some(120_000),
                Some(180_000),
                80.0
            )
        ]
    );
}

#[test]
fn cooldown_suppresses_flapping() {
    let rule = hot().with(|m| m.cooldown_ms = 60_000);
    let obs = [
        (0, 95.0),
        (10_000, 80.0),
        (20_000, 95.0),
        (30_000, 80.0),
        (70_000, 95.0),
    ];
    // The episode at 20s is inside the 60s cooldown of the firing at 0s: neither
    // its firing nor its resolved event is emitted. The one at 70s is.
    assert_eq!(
        run(&rule, &obs, None),
        vec![
            (AlertState::Firing, 0, 95.0),
            (AlertState::Resolved, 10_000, 80.0),
            (AlertState::Firing, 70_000, 95.0)
        ]
    );
}

#[test]
fn out_of_order_arrival_is_applied_in_event_time_order() {
    let rule = hot().consecutive(2);
    // Arrival order 3, 1, 2: in event time the breaches at 1 and 2 are consecutive.
    let got = run(&rule, &[(3, 80.0), (1, 95.0), (2, 96.0)], None);
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 2, 96.0),
            (AlertState::Resolved, 3, 80.0)
        ]
    );
}

#[test]
fn observations_at_or_after_the_frontier_wait() {
    let got = run(&hot(), &[(5, 95.0)], Some(5));
    assert_eq!(got, vec![]);
}

#[test]
fn only_listed_sensors_reach_a_rule_and_an_empty_list_takes_all() {
    let listed = Arc::new(RuleSet::new(vec![hot()]));
    let mut eval = AlertEvaluator::new(listed);
    assert!(!eval.push(Reading::new("d1", "pressure", 1, 95.0, 0, 0)));
    assert!(eval.push(Reading::new("d1", "temp", 1, 95.0, 0, 1)));
    let any = Arc::new(RuleSet::new(vec![hot().every_sensor()]));
    let mut eval = AlertEvaluator::new(any);
    assert!(eval.push(Reading::new("d1", "pressure", 1, 95.0, 0, 0)));
}

#[test]
fn device_pattern_and_sensor_select() {
    let rule = hot().devices("press-*").unwrap();
    assert!(rule.selects("press-001", "temp"));
    assert!(!rule.selects("lathe-001", "temp"));
    assert!(!rule.selects("press-001", "vibration"));
}

/// Restoring a snapshot taken at a frontier and feeding the same input
/// gives exactly the alerts of an uninterrupted run after that frontier,
/// for seeded inputs and several cut points (hysteresis, consecutive,
/// for-duration and cooldown state all cross the cut).
/// The borrowed view a checkpoint writes decodes as the snapshot.
#[test]
fn the_snapshot_view_encodes_as_the_snapshot() {
    let rules = Arc::new(RuleSet::new(vec![hot().clear_at(85.0).consecutive(2)]));
    let mut eval = AlertEvaluator::new(rules);
    for (i, (device, value)) in [("a", 95.0), ("b", 80.0), ("a", 96.0), ("c", 91.0)]
        .into_iter()
        .enumerate()
    {
        eval.push(Reading::new(
            device,
            "temp",
            i as u64 * 1_000,
            value,
            0,
            i as i64,
        ));
    }
    eval.advance_to(Some(10_000), &mut Vec::new());
    let snapshot = eval.snapshot();
    assert!(snapshot.keys.len() >= 2, "{snapshot:?}");
    let view = bincode::serialize(&eval.snapshot_view()).unwrap();
    assert_eq!(view, bincode::serialize(&snapshot).unwrap());
}

#[test]
fn restore_then_continue_equals_an_uninterrupted_run() {
    let durations = hot().clear_at(85.0).with(|m| {
        m.consecutive = 2;
        m.for_ms = 3_000;
        m.cooldown_ms = 5_000;
    });
    // Durations of its own: escalation, and a chattering rule's calm moment.
    let chattering = hot().with(|m| {
        m.escalation = Some((1_500, "critical".into()));
        m.chattering = Some(Chattering {
            changes: 3,
            within_ms: 4_000,
            calm_ms: 2_500,
        });
    });
    for (rule, seed) in [durations, chattering]
        .into_iter()
        .flat_map(|r| (0..15u64).map(move |seed| (r.clone(), seed)))
    {
        restore_then_continue(rule, seed);
    }
}

/// Runs `rule` on seeded readings uninterrupted and cut at several
/// frontiers by a snapshot and restore: the alerts must be the same.
fn restore_then_continue(rule: Rule, seed: u64) {
    let chatters = rule.modifiers.chattering.is_some();
    let rules = Arc::new(RuleSet::new(vec![rule]));
    {
        // A small LCG: readings of 3 devices, values around the threshold.
        let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut next = || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            x >> 33
        };
        let obs: Vec<Reading> = (0..300)
            .map(|i| {
                let device = format!("d{}", next() % 3);
                let time = i * 500 + next() % 400;
                Reading::new(
                    &device,
                    "temp",
                    time,
                    80.0 + (next() % 200) as f64 / 10.0,
                    0,
                    i as i64,
                )
            })
            .collect();
        let steps: Vec<u64> = (1..=16).map(|k| k * 10_000).collect();
        let run_steps = |eval: &mut AlertEvaluator<Reading>, steps: &[u64]| {
            let mut out = Vec::new();
            for &f in steps {
                eval.advance_to(Some(f), &mut out);
            }
            eval.advance_to(None, &mut out);
            out
        };
        let mut whole = AlertEvaluator::new(rules.clone());
        obs.iter().for_each(|o| {
            whole.push(o.clone());
        });
        let expected = run_steps(&mut whole, &steps);
        for cut in [10_000, 40_000, 70_000, 120_000] {
            let mut first = AlertEvaluator::new(rules.clone());
            obs.iter().for_each(|o| {
                first.push(o.clone());
            });
            let mut got = Vec::new();
            for &f in steps.iter().filter(|f| **f <= cut) {
                first.advance_to(Some(f), &mut got);
            }
            let snapshot = first.snapshot();
            let mut resumed = AlertEvaluator::new(rules.clone());
            resumed.restore(vec![snapshot], cut, |_| true);
            obs.iter().for_each(|o| {
                resumed.push(o.clone());
            });
            let after: Vec<u64> = steps.iter().copied().filter(|f| *f > cut).collect();
            got.extend(run_steps(&mut resumed, &after));
            // Alerts of different keys in one step come in no set order.
            let sorted = |mut a: Vec<Alert>| {
                a.sort_by(|x, y| x.order_key().cmp(&y.order_key()));
                a
            };
            assert_eq!(
                sorted(got),
                sorted(expected.clone()),
                "seed {seed}, cut at {cut}"
            );
        }
        assert!(
            !expected.is_empty(),
            "seed {seed}: the input must fire alerts"
        );
        if chatters {
            assert!(
                expected.iter().any(|a| a.state == AlertState::Chattering),
                "seed {seed}: the input must make the rule chatter"
            );
        }
    }
}

/// Above 10, resolving only after 5 s clear (hand-worked cases).
fn off_delay() -> Rule {
    Rule::new("hot", "temp", Direction::Above, 10.0).with(|m| m.keep_firing_for_ms = 5_000)
}

#[test]
fn off_delay_resolves_once_clear_for_the_whole_delay_at_the_moment_it_elapsed() {
    // Clear from 2 s on: the delay elapses at 7 s, seen by the reading at 8 s.
    let obs = [(1_000, 12.0), (2_000, 8.0), (4_000, 9.0), (8_000, 7.0)];
    assert_eq!(
        run(&off_delay(), &obs, Some(9_000)),
        vec![
            (AlertState::Firing, 1_000, 12.0),
            (AlertState::Resolved, 7_000, 8.0)
        ]
    );
}

#[test]
fn off_delay_restarts_when_the_value_leaves_the_clear_side() {
    // Clear at 2 s, not at 4 s (11 > 10), clear again from 5 s: 5 + 5 = 10 s.
    let obs = [(1_000, 12.0), (2_000, 8.0), (4_000, 11.0), (5_000, 8.0)];
    assert_eq!(
        run(&off_delay(), &obs, Some(20_000)),
        vec![
            (AlertState::Firing, 1_000, 12.0),
            (AlertState::Resolved, 10_000, 8.0)
        ]
    );
    // With hysteresis, a value between the clear threshold and the
    // threshold is not clear either: 9.5 > 9 ends the first spell.
    let rule = off_delay().clear_at(9.0);
    let obs = [(1_000, 12.0), (2_000, 8.0), (4_000, 9.5), (6_000, 8.0)];
    assert_eq!(
        run(&rule, &obs, Some(20_000)),
        vec![
            (AlertState::Firing, 1_000, 12.0),
            (AlertState::Resolved, 11_000, 8.0)
        ]
    );
}

#[test]
fn off_delay_waits_for_the_frontier_and_is_not_completed_by_the_end_of_input() {
    let obs = [(1_000, 12.0), (2_000, 8.0)];
    let fired = (AlertState::Firing, 1_000, 12.0);
    // The frontier at 7 s: a reading at 7 s could still break the spell.
    assert_eq!(run(&off_delay(), &obs, Some(7_000)), vec![fired]);
    assert_eq!(
        run(&off_delay(), &obs, Some(7_001)),
        vec![fired, (AlertState::Resolved, 7_000, 8.0)]
    );
    // The input ends at 2 s: nothing shows the value staying clear for 5 s.
    assert_eq!(run(&off_delay(), &obs, None), vec![fired]);
}

#[test]
fn off_delay_then_a_new_breach_fires_again() {
    // Resolved at 7 s; the breach at 7 s itself comes after the resolution.
    let obs = [(1_000, 12.0), (2_000, 8.0), (7_000, 13.0)];
    assert_eq!(
        run(&off_delay(), &obs, Some(10_000)),
        vec![
            (AlertState::Firing, 1_000, 12.0),
            (AlertState::Resolved, 7_000, 8.0),
            (AlertState::Firing, 7_000, 13.0)
        ]
    );
}

/// Rising faster than 2 units per second over the last 10 s.
fn rising() -> Rule {
    Rule::new("rising", "temp", Direction::Above, 2.0).rate_of_change(10_000)
}

#[test]
fn rate_of_change_compares_the_change_per_second_over_the_span() {
    // Rates against the earliest reading at most 10 s back:
    //   1 s: none (first reading)
    //   5 s: (30 - 20) / 4 s = 2.5/s  > 2: firing
    //   9 s: (32 - 20) / 8 s = 1.5/s <= 2: resolved
    //  14 s: 5 s and 9 s are within 10 s, 1 s is not: (60 - 30) / 9 s = 3.33/s: firing
    let obs = [(1_000, 20.0), (5_000, 30.0), (9_000, 32.0), (14_000, 60.0)];
    let got = run(&rising(), &obs, None);
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 5_000, 2.5),
            (AlertState::Resolved, 9_000, 1.5),
            (AlertState::Firing, 14_000, 30.0 / 9.0)
        ]
    );
}

#[test]
fn rate_of_change_is_the_same_whatever_order_readings_arrive_in() {
    let obs = [(1_000, 20.0), (5_000, 30.0), (9_000, 32.0), (14_000, 60.0)];
    let mut shuffled = obs;
    shuffled.reverse();
    // The evaluator sorts a key's readings by event time before applying them.
    let rules = Arc::new(RuleSet::new(vec![rising()]));
    let mut eval = AlertEvaluator::new(rules);
    for (t, v) in shuffled {
        eval.push(Reading::new("d1", "temp", t, v, 0, t as i64));
    }
    let mut out = Vec::new();
    eval.advance_to(None, &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|a| (a.state, a.event_time, a.value))
        .collect();
    assert_eq!(got, run(&rising(), &obs, None));
}

#[test]
fn a_falling_rate_uses_below() {
    let falling = Rule::new("draining", "level", Direction::Below, -1.0).rate_of_change(60_000);
    // Level drops 30 in 10 s: -3/s.
    let rules = Arc::new(RuleSet::new(vec![falling]));
    let mut eval = AlertEvaluator::new(rules);
    eval.push(Reading::new("tank", "level", 0, 100.0, 0, 0));
    eval.push(Reading::new("tank", "level", 10_000, 70.0, 0, 1));
    let mut out = Vec::new();
    eval.advance_to(None, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].state, out[0].value), (AlertState::Firing, -3.0));
}

/// Outside mean ± 2σ of the previous 4 readings.
fn deviating() -> Rule {
    Rule::new("odd", "temp", Direction::Above, 2.0).deviation(4)
}

#[test]
fn deviation_compares_with_the_mean_and_sigma_of_the_previous_observations() {
    // Baseline 10, 12, 10, 12: mean 11, sample σ = sqrt(4 / 3) = 1.1547.
    //   t=5: 15 is 4 / 1.1547 = 3.46σ away: firing.
    //   t=6: baseline 12, 10, 12, 15: mean 12.25, σ = sqrt(12.75 / 3) = 2.0616;
    //        12 is 0.25 / 2.0616 = 0.12σ away: resolved.
    let obs = [
        (1, 10.0),
        (2, 12.0),
        (3, 10.0),
        (4, 12.0),
        (5, 15.0),
        (6, 12.0),
    ];
    let got = run(&deviating(), &obs, None);
    let sigma1 = (4.0f64 / 3.0).sqrt();
    let sigma2 = (12.75f64 / 3.0).sqrt();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!((got[0].0, got[0].1), (AlertState::Firing, 5));
    assert!((got[0].2 - 4.0 / sigma1).abs() < 1e-12, "{got:?}");
    assert_eq!((got[1].0, got[1].1), (AlertState::Resolved, 6));
    assert!((got[1].2 - 0.25 / sigma2).abs() < 1e-12, "{got:?}");
}

#[test]
fn deviation_needs_a_full_baseline_and_a_flat_one_flags_any_change() {
    // Three readings: no baseline yet, even for a wild value.
    assert!(run(&deviating(), &[(1, 5.0), (2, 5.0), (3, 500.0)], None).is_empty());
    // A flat baseline: the same value is 0σ away, any other infinitely far.
    let got = run(
        &deviating(),
        &[(1, 5.0), (2, 5.0), (3, 5.0), (4, 5.0), (5, 5.0), (6, 5.1)],
        None,
    );
    assert_eq!(got, vec![(AlertState::Firing, 6, f64::INFINITY)]);
}

/// No temperature reading for 5 s.
fn silent() -> Rule {
    Rule::new_silence("silent", "temp", 5_000)
}

/// Feeds (device, partition, event time) readings and, as the source
/// would, the progress of their partitions; then advances to `frontier`.
/// Returns (state, device, event time, value, last seen).
fn silence_run(
    readings: &[(&str, i32, u64)],
    frontier: Option<u64>,
) -> Vec<(AlertState, String, u64, f64, Option<u64>)> {
    let mut eval = AlertEvaluator::new(Arc::new(RuleSet::new(vec![silent()])));
    for (i, (device, partition, t)) in readings.iter().enumerate() {
        eval.push(Reading::new(device, "temp", *t, 1.0, *partition, i as i64));
        eval.note_progress(*partition, t - t % 1_000);
    }
    let mut out = Vec::new();
    eval.advance_to(frontier, &mut out);
    out.into_iter()
        .map(|a| {
            (
                a.state,
                a.device.to_string(),
                a.event_time,
                a.value,
                a.last_seen,
            )
        })
        .collect()
}

#[test]
fn silence_fires_once_the_partition_has_moved_past_the_deadline() {
    // d1 last reads at 2 s (deadline 7 s); d2, on the same partition, reads
    // every second up to 20 s. The partition's bucket [7 s, 8 s) is complete
    // at 8 s: the silence fires then, 6 s after d1's last reading. d1 reads
    // again at 15 s: resolved.
    let mut readings = vec![("d1", 0, 1_000), ("d1", 0, 2_000), ("d1", 0, 15_000)];
    readings.extend((0..=20).map(|s| ("d2", 0, s * 1_000)));
    let got = silence_run(&readings, Some(20_500));
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, "d1".into(), 8_000, 6.0, Some(2_000)),
            (AlertState::Resolved, "d1".into(), 15_000, 1.0, None),
        ]
    );
}

#[test]
fn an_idle_partition_does_not_make_its_devices_look_silent() {
    // d3's partition 1 delivers nothing after 1 s; the frontier moves on (other
    // partitions, or partition 1 declared idle). No evidence: no alert, not
    // even when the input ends.
    let mut readings = vec![("d3", 1, 1_000)];
    readings.extend((0..=30).map(|s| ("d4", 0, s * 1_000)));
    assert!(silence_run(&readings, Some(60_000)).is_empty());
    assert!(silence_run(&readings, None).is_empty());
}

#[test]
fn silence_waits_for_the_frontier_to_pass_the_bucket_that_shows_it() {
    // d5's deadline is 6 s; its partition shows readings in [6 s, 7 s).
    let readings = [("d5", 0, 1_000), ("d6", 0, 6_500)];
    assert!(silence_run(&readings, Some(7_000)).is_empty());
    assert_eq!(
        silence_run(&readings, Some(7_001)),
        vec![(AlertState::Firing, "d5".into(), 7_000, 6.0, Some(1_000))]
    );
}

#[test]
fn a_silent_key_that_reads_again_before_the_evidence_fires_and_resolves_at_that_reading() {
    // d7 alone on its partition: 1 s, then 30 s. The partition shows nothing
    // between; its own reading at 30 s tells of the silence.
    let got = silence_run(&[("d7", 2, 1_000), ("d7", 2, 30_000)], Some(40_000));
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, "d7".into(), 30_000, 29.0, Some(1_000)),
            (AlertState::Resolved, "d7".into(), 30_000, 1.0, None),
        ]
    );
}

/// Above 10, escalated to critical after firing for 5 s.
fn escalating() -> Rule {
    Rule::new("hot", "temp", Direction::Above, 10.0)
        .with(|m| m.escalation = Some((5_000, "critical".to_owned())))
}

/// (state, event time, severity) of the alerts of `rule` over `obs`.
fn run_severities(
    rule: &Rule,
    obs: &[(u64, f64)],
    end: Option<u64>,
) -> Vec<(AlertState, u64, String)> {
    alerts(rule, obs, end)
        .into_iter()
        .map(|a| (a.state, a.event_time, a.severity))
        .collect()
}

#[test]
fn escalation_after_firing_long_enough_and_the_resolution_keeps_the_severity() {
    let got = run_severities(
        &escalating(),
        &[(1_000, 12.0), (3_000, 13.0), (9_000, 8.0)],
        Some(10_000),
    );
    let warning = "warning".to_owned();
    let critical = "critical".to_owned();
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 1_000, warning),
            (AlertState::Escalated, 6_000, critical.clone()),
            (AlertState::Resolved, 9_000, critical)
        ]
    );
}

#[test]
fn no_escalation_when_the_alert_resolves_first_or_the_frontier_has_not_passed() {
    // Resolved at 4 s, before the 6 s escalation.
    let got = run_severities(&escalating(), &[(1_000, 12.0), (4_000, 8.0)], Some(10_000));
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].0, AlertState::Resolved);
    assert_eq!(got[1].2, "warning");
    // With an off-delay of 3 s, clear from 2 s: resolved at 5 s, before 6 s.
    let rule = escalating().with(|m| m.keep_firing_for_ms = 3_000);
    let got = run_severities(&rule, &[(1_000, 12.0), (2_000, 8.0)], Some(10_000));
    assert_eq!(
        got.iter().map(|a| (a.0, a.1)).collect::<Vec<_>>(),
        vec![(AlertState::Firing, 1_000), (AlertState::Resolved, 5_000)]
    );
    // The frontier at 6 s: a reading at 6 s could still clear it first.
    let got = run_severities(&escalating(), &[(1_000, 12.0)], Some(6_000));
    assert_eq!(got.len(), 1);
    // A bounded input that ends at 1 s shows nothing of the next 5 s.
    let got = run_severities(&escalating(), &[(1_000, 12.0)], None);
    assert_eq!(got.len(), 1);
}

fn chattering() -> Rule {
    hot().with(|m| {
        m.chattering = Some(Chattering {
            changes: 3,
            within_ms: 60_000,
            calm_ms: 30_000,
        })
    })
}

#[test]
fn a_chattering_rule_sends_one_chattering_event_then_the_state_once_calm() {
    use AlertState::*;
    // Worked by hand: changes at 0 s, 10 s and 20 s (three within a minute):
    // the third becomes `chattering`. The changes at 30 s and 40 s are held
    // back and put the calm moment off to 40 + 30 = 70 s, where the rule is
    // firing (since 40 s, at 95). The change at 80 s is the first of a new
    // count.
    let obs = [
        (0, 95.0),
        (10_000, 80.0),
        (20_000, 95.0),
        (30_000, 80.0),
        (40_000, 95.0),
        (50_000, 96.0),
        (70_000, 97.0),
        (80_000, 80.0),
    ];
    let want = vec![
        (Firing, 0, 95.0),
        (Resolved, 10_000, 80.0),
        (Chattering, 20_000, 95.0),
        (Firing, 70_000, 95.0),
        (Resolved, 80_000, 80.0),
    ];
    assert_eq!(run(&chattering(), &obs, None), want);
    // The calm moment also comes when the frontier passes it, without a
    // reading: the readings stop at 50 s.
    assert_eq!(run(&chattering(), &obs[..6], Some(70_000)), want[..3]);
    assert_eq!(run(&chattering(), &obs[..6], Some(70_001)), want[..4]);
}

#[test]
fn changes_further_apart_than_the_span_are_not_chattering() {
    use AlertState::*;
    // Changes every 40 s: never three within a minute.
    let obs: Vec<(u64, f64)> = (0..6u64)
        .map(|i| (i * 40_000, if i % 2 == 0 { 95.0 } else { 80.0 }))
        .collect();
    let want: Vec<_> = obs
        .iter()
        .map(|&(t, v)| (if v > 90.0 { Firing } else { Resolved }, t, v))
        .collect();
    assert_eq!(run(&chattering(), &obs, None), want);
}

/// The alerts of `old` over `readings` (device, event time, value) of
/// "temp" with a reload to `new` (version 2) at frontier 10.
fn alerts_reloaded_at_10(old: RuleSet, new: RuleSet, readings: &[(&str, u64, f64)]) -> Vec<Alert> {
    let mut eval = AlertEvaluator::new(Arc::new(old));
    push_all(&mut eval, readings);
    let mut out = Vec::new();
    eval.advance_to(Some(10), &mut out);
    eval.replace_rules(Arc::new(new), 2, |_| true);
    eval.advance_to(None, &mut out);
    out
}

/// A reload at 10: readings before it are judged by the old rules, the rest
/// by the new ones. "hot" is unchanged and keeps its state (it is firing, so
/// 85 at 11 resolves it: a fresh state would have nothing to resolve);
/// "warm" changes its threshold and starts afresh (85 at 11 fires anew under
/// the new 80, though the old "warm" was firing); "cool" is removed; "cold"
/// is new.
#[test]
fn a_reload_judges_by_the_new_rules_from_its_frontier_and_keeps_unchanged_states() {
    let warm = |threshold| Rule::new("warm", "temp", Direction::Above, threshold);
    let cool = Rule::new("cool", "temp", Direction::Below, 50.0);
    let cold = Rule::new("cold", "temp", Direction::Below, 90.0);
    let old = RuleSet::new(vec![hot(), warm(87.0), cool]);
    let new = RuleSet::new(vec![hot(), warm(80.0), cold]);
    let diff = old.diff(&new);
    assert_eq!(
        (diff.added, diff.removed, diff.changed, diff.unchanged),
        (
            vec!["cold".into()],
            vec!["cool".into()],
            vec!["warm".into()],
            1
        )
    );

    let readings =
        [(1, 40.0), (5, 95.0), (11, 85.0), (12, 95.0), (13, 70.0)].map(|(t, v)| ("d1", t, v));
    let out = alerts_reloaded_at_10(old, new, &readings);
    let mut got: Vec<_> = out
        .iter()
        .map(|a| (a.event_time, a.rule.as_str(), a.state, a.rules_version))
        .collect();
    got.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    use AlertState::{Firing, Resolved};
    assert_eq!(
        got,
        vec![
            // Version 1: 40 is below "cool"; 95 resolves it and breaches
            // "hot" and "warm" (87).
            (1, "cool", Firing, 1),
            (5, "cool", Resolved, 1),
            (5, "hot", Firing, 1),
            (5, "warm", Firing, 1),
            // Version 2: "hot" resolves at 85, fires again at 95 and
            // resolves at 70; the new "warm" (80) fires at 85 and resolves
            // at 70; "cold" (below 90) fires at 85, resolves at 95, fires at
            // 70.
            (11, "cold", Firing, 2),
            (11, "hot", Resolved, 2),
            (11, "warm", Firing, 2),
            (12, "cold", Resolved, 2),
            (12, "hot", Firing, 2),
            (13, "cold", Firing, 2),
            (13, "hot", Resolved, 2),
            (13, "warm", Resolved, 2),
        ]
    );
}

/// A registry of three presses: `p1` at the north site with its own limit
/// for "hot" (95, clear 93), `p2` at the north site, `p3` at the south site.
fn presses(p1_hot: f64) -> Registry {
    let device = |site: &str, limits: Vec<(String, Limits)>| Device {
        fields: vec![
            ("site".into(), site.into()),
            ("type".into(), "press".into()),
        ],
        limits,
    };
    let own = Limits {
        threshold: Some(p1_hot),
        clear: None,
    };
    Registry {
        devices: [
            ("p1".into(), device("north", vec![("hot".into(), own)])),
            ("p2".into(), device("north", vec![])),
            ("p3".into(), device("south", vec![])),
        ]
        .into(),
        file: None,
    }
}

/// "hot" (above 90, clear 88) selects the north site by registry field;
/// `p1` has its own threshold, 95, whose clear threshold keeps the rule's
/// distance of 2 (93). Alerts carry the rule's labels, then the device's
/// fields. `p3` (south) and `x9` (not registered) are never judged.
#[test]
fn the_registry_selects_devices_gives_their_limits_and_labels_their_alerts() {
    let mut rule = hot().clear_at(88.0);
    rule.selection.fields = vec![("site".into(), Pattern::new("north").unwrap())];
    rule.labels = vec![("team".into(), "maintenance".into())];
    let rules = Arc::new(RuleSet::new(vec![rule]).with_devices(presses(95.0)));
    let mut eval = AlertEvaluator::new(rules);
    let readings = [
        // 92 breaches 90 but not p1's 95; 96 does; 94 is above p1's clear
        // (93), 92 is not.
        ("p1", 1, 92.0),
        ("p1", 2, 96.0),
        ("p1", 3, 94.0),
        ("p1", 4, 92.0),
        // p2 takes the rule's own limits: 92 fires, 89 stays (clear 88).
        ("p2", 1, 92.0),
        ("p2", 2, 89.0),
        ("p2", 3, 88.0),
        ("p3", 1, 99.0),
        ("x9", 1, 99.0),
    ];
    push_all(&mut eval, &readings);
    let mut out = Vec::new();
    eval.advance_to(None, &mut out);
    let mut got: Vec<_> = out
        .iter()
        .map(|a| {
            (
                a.device.to_string(),
                a.event_time,
                a.state,
                a.threshold,
                a.clear_threshold,
            )
        })
        .collect();
    got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    use AlertState::{Firing, Resolved};
    assert_eq!(
        got,
        vec![
            ("p1".into(), 2, Firing, Some(95.0), Some(93.0)),
            ("p1".into(), 4, Resolved, Some(95.0), Some(93.0)),
            ("p2".into(), 1, Firing, Some(90.0), Some(88.0)),
            ("p2".into(), 3, Resolved, Some(90.0), Some(88.0)),
        ]
    );
    let labels: Vec<(String, String)> = vec![
        ("team".into(), "maintenance".into()),
        ("site".into(), "north".into()),
        ("type".into(), "press".into()),
    ];
    assert!(out.iter().all(|a| a.labels == labels), "{out:?}");
    let json = out[0].to_json();
    assert_eq!(json["labels"]["site"], "north");
    assert_eq!(json["labels"]["team"], "maintenance");
}

/// A registry edit is a reload: `p1`'s limit for "hot" goes from 95 to 85
/// at 10. `p1` starts afresh under its new limit (it was not firing under
/// 95; 90 at 11 fires under 85), while `p2`, unchanged and firing, keeps
/// its state (90 at 11 is no new firing, 80 at 12 resolves it).
#[test]
fn a_registry_change_restarts_only_the_states_of_changed_limits() {
    let old = RuleSet::new(vec![hot()]).with_devices(presses(95.0));
    let new = RuleSet::new(vec![hot()]).with_devices(presses(85.0));
    let diff = old.diff(&new);
    assert_eq!(
        (diff.devices, diff.unchanged, diff.is_empty()),
        ((0, 0, 1), 1, false)
    );

    let readings = [
        ("p1", 5, 92.0),
        ("p2", 5, 92.0),
        ("p1", 11, 90.0),
        ("p2", 11, 90.5),
        ("p1", 12, 80.0),
        ("p2", 12, 80.0),
    ];
    let out = alerts_reloaded_at_10(old, new, &readings);
    let mut got: Vec<_> = out
        .iter()
        .map(|a| (a.event_time, a.device.to_string(), a.state, a.threshold))
        .collect();
    got.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    use AlertState::{Firing, Resolved};
    assert_eq!(
        got,
        vec![
            (5, "p2".into(), Firing, Some(90.0)),
            (11, "p1".into(), Firing, Some(85.0)),
            (12, "p1".into(), Resolved, Some(85.0)),
            (12, "p2".into(), Resolved, Some(90.0)),
        ]
    );
}
