//! The evaluator's queue: arrival order, buckets and compact entries.

use super::*;
use crate::alert::{AlertState, Direction};
use crate::reading::Reading;

/// Readings pushed in any order, in chunks between frontier advances
/// (each at or after the frontier reached so far), give the alerts of
/// the same readings applied in order at once: a key's queue is sorted
/// whenever an arrival breaks its order, also after earlier sorts.
#[test]
fn arrivals_out_of_order_across_advances_apply_in_order() {
    for seed in 1..=40u64 {
        let mut next = crate::seeded(seed);
        let rule = Rule::new("hot", "t", Direction::Above, 50.0).consecutive(2);
        let rules = Arc::new(RuleSet::new(vec![rule]));
        let mut readings: Vec<Reading> = (0..300)
            .map(|i| {
                let device = if next(2) == 0 { "a" } else { "b" };
                let (time, value) = (next(400), next(100) as f64);
                Reading::new(device, "t", time, value, next(2) as i32, i)
            })
            .collect();

        let mut sorted = readings.clone();
        sorted.sort_by_key(|r| r.order());
        let mut reference = AlertEvaluator::new(rules.clone());
        for r in sorted {
            reference.push(r);
        }
        let mut want = Vec::new();
        reference.advance_to(None, &mut want);

        let mut eval = AlertEvaluator::new(rules);
        let mut got = Vec::new();
        let mut frontier = 0;
        while !readings.is_empty() {
            let chunk = (1 + next(40) as usize).min(readings.len());
            for _ in 0..chunk {
                let i = next(readings.len() as u64) as usize;
                eval.push(readings.swap_remove(i));
            }
            // Later arrivals are at or after the new frontier.
            let earliest_left = readings.iter().map(|r| r.time).min().unwrap_or(400);
            frontier = frontier.max(earliest_left.saturating_sub(next(30)));
            eval.advance_to(Some(frontier), &mut got);
        }
        eval.advance_to(None, &mut got);

        got.sort_by(|x, y| x.order_key().partial_cmp(&y.order_key()).unwrap());
        want.sort_by(|x, y| x.order_key().partial_cmp(&y.order_key()).unwrap());
        assert!(!want.is_empty(), "seed {seed}: no alerts to compare");
        assert_eq!(got, want, "seed {seed}");
    }
}

/// What waits for the frontier is the compact entry, not the reading: the
/// whole point of it is its size.
#[test]
fn a_waiting_reading_is_a_third_of_a_reading() {
    use crate::alert::state::PendingReading;
    let (waiting, reading) = (
        std::mem::size_of::<PendingReading>(),
        std::mem::size_of::<Reading>(),
    );
    assert!(waiting <= 32, "{waiting} bytes wait per reading");
    assert!(waiting * 2 < reading, "{waiting} against {reading}");
}

/// A reading waiting for a combination key carries which of the key's
/// sensors it is: a combination of `b` above 5 and `a` above 5 (named in
/// that order, so that the key is not in the sensors' order) fires when
/// both hold and resolves when `b` clears, with the values of each
/// sensor's own reading.
#[test]
fn a_waiting_reading_of_a_combination_keeps_its_own_sensor() {
    use crate::rules::{Combination, Condition, Mode};
    let combination = Combination {
        mode: Mode::All,
        conditions: vec![
            Condition::new("b", Direction::Above, 5.0),
            Condition::new("a", Direction::Above, 5.0),
        ],
        within_ms: 10_000,
    };
    let rule = Rule::new_combination("both", combination);
    let mut eval = AlertEvaluator::new(Arc::new(RuleSet::new(vec![rule])));
    for (i, (sensor, time, value)) in [("a", 1_000, 7.0), ("b", 2_000, 9.0), ("b", 3_000, 1.0)]
        .into_iter()
        .enumerate()
    {
        assert!(eval.push(Reading::new("d", sensor, time, value, 0, i as i64)));
    }
    let mut out = Vec::new();
    eval.advance_to(None, &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|a| (a.state, a.event_time, a.values.clone()))
        .collect();
    // Firing carries the holding values in the conditions' order: b's, then a's.
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 2_000, vec![9.0, 7.0]),
            (AlertState::Resolved, 3_000, vec![])
        ]
    );
}

/// The bucket appended to last is kept apart from the others; the earliest
/// pending time and an advance still see what it holds.
#[test]
fn the_bucket_appended_to_last_is_seen_by_every_reader() {
    let rule = Rule::new("hot", "t", Direction::Above, 50.0);
    let mut eval = AlertEvaluator::new(Arc::new(RuleSet::new(vec![rule])));
    assert!(eval.push(Reading::new("d", "t", 5_000, 60.0, 0, 0)));
    assert_eq!(eval.earliest_pending(Some(0)), Some(5_000));
    assert!(eval.push(Reading::new("d", "t", 1_000, 10.0, 0, 1)));
    assert_eq!(eval.earliest_pending(Some(0)), Some(1_000));
    let mut out = Vec::new();
    eval.advance_to(Some(2_000), &mut out);
    assert!(out.is_empty());
    assert_eq!(eval.earliest_pending(Some(2_000)), Some(5_000));
    eval.advance_to(Some(6_000), &mut out);
    assert_eq!(out.len(), 1, "the breach at 5,000 fires: {out:?}");
    assert_eq!(out[0].event_time, 5_000);
    assert_eq!(eval.earliest_pending(Some(6_000)), None);
}
