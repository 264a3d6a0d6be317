//! Folding: observations that cannot change a key's state are not applied
//! one by one, and the alerts are those of applying every one in turn.

use super::*;
use crate::alert::{AlertState, Direction};
use crate::reading::Reading;
use crate::rules::Chattering;

/// What a test checks of each alert: (state, time, value).
fn states(out: &[Alert]) -> Vec<(AlertState, u64, f64)> {
    out.iter()
        .map(|a| (a.state, a.event_time, a.value))
        .collect()
}

/// The threshold rules of the comparison, one modifier each, on sensor `t`
/// above 50.
fn threshold_rules() -> Vec<Rule> {
    let above = |name: &str| Rule::new(name, "t", Direction::Above, 50.0);
    vec![
        above("plain"),
        above("hysteresis").clear_at(40.0),
        above("twice").consecutive(2),
        above("lasting").with(|m| m.for_ms = 300),
        above("off-delay").with(|m| m.keep_firing_for_ms = 200),
        above("cooldown").with(|m| m.cooldown_ms = 500),
        above("escalating").with(|m| m.escalation = Some((300, "critical".into()))),
        above("chattering").with(|m| {
            m.chattering = Some(Chattering {
                changes: 3,
                within_ms: 400,
                calm_ms: 300,
            })
        }),
    ]
}

/// Feeds the same readings, in the same arrival order and with the same
/// frontier advances, to an evaluator that folds and to one that does not:
/// the alerts are the same, in the same order. The readings are mostly
/// below the threshold (folded while a key is at rest); a breach now and
/// then arrives after later readings of its key were folded, which must
/// revive them.
#[test]
fn folded_alerts_are_those_of_every_reading_applied_in_turn() {
    let (mut folded_total, mut revived_seeds, mut alerts_total) = (0, 0, 0);
    for seed in 1..=60u64 {
        let mut next = crate::seeded(seed);
        let all = threshold_rules();
        // One rule at a time, or all of them on the same keys.
        let rules = match seed as usize % (all.len() + 1) {
            0 => all,
            i => vec![all[i - 1].clone()],
        };
        let rules = Arc::new(RuleSet::new(rules));
        let mut readings: Vec<Reading> = (0..600)
            .map(|i| {
                let device = ["a", "b", "c", "d", "e", "f"][next(6) as usize];
                let value = if next(25) == 0 { 60.0 } else { next(45) as f64 };
                Reading::new(device, "t", next(3_000), value, next(2) as i32, i)
            })
            .collect();

        let mut eval = AlertEvaluator::new(rules.clone());
        let mut plain = AlertEvaluator::new(rules);
        plain.fold = false;
        let (mut got, mut want) = (Vec::new(), Vec::new());
        let mut frontier = 0;
        while !readings.is_empty() {
            let chunk = (1 + next(30) as usize).min(readings.len());
            for _ in 0..chunk {
                let r = readings.swap_remove(next(readings.len() as u64) as usize);
                eval.push(r.clone());
                plain.push(r);
            }
            let earliest_left = readings.iter().map(|r| r.time).min().unwrap_or(3_000);
            frontier = frontier.max(earliest_left.saturating_sub(next(200)));
            eval.advance_to(Some(frontier), &mut got);
            plain.advance_to(Some(frontier), &mut want);
        }
        eval.advance_to(None, &mut got);
        plain.advance_to(None, &mut want);

        assert_eq!(plain.folded, 0);
        assert_eq!(got, want, "seed {seed}");
        folded_total += eval.folded;
        revived_seeds += u32::from(eval.revive_until.is_some());
        alerts_total += want.len();
    }
    // The comparison is worth something only if folding and revivals
    // happened, and rules fired.
    assert!(folded_total > 5_000, "{folded_total} readings folded");
    assert!(revived_seeds > 30, "revivals in {revived_seeds} seeds");
    assert!(alerts_total > 1_000, "{alerts_total} alerts");
}

/// Worked by hand: a reading below the threshold at 2 s is folded; a breach
/// at 1 s arrives after it. In event time the breach fires at 1 s and the
/// reading at 2 s resolves it, with its own value.
#[test]
fn a_breach_arriving_after_a_later_folded_reading_is_resolved_by_it() {
    let rule = Rule::new("hot", "t", Direction::Above, 50.0);
    let mut eval = AlertEvaluator::new(Arc::new(RuleSet::new(vec![rule])));
    assert!(eval.push(Reading::new("d", "t", 2_000, 10.0, 0, 1)));
    assert_eq!(eval.folded, 1, "the reading at rest is folded");
    assert!(eval.push(Reading::new("d", "t", 1_000, 60.0, 0, 0)));
    assert_eq!(eval.folded, 1, "a breach is not folded");
    let mut out = Vec::new();
    eval.advance_to(None, &mut out);
    let got = states(&out);
    assert_eq!(
        got,
        vec![
            (AlertState::Firing, 1_000, 60.0),
            (AlertState::Resolved, 2_000, 10.0)
        ]
    );
}

/// Worked by hand: a reading of 30 is folded under "above 50"; the rules
/// are then replaced by "above 20" before the frontier reaches it. The
/// new rules judge every reading not yet applied, the folded one too: it
/// fires at its own time.
#[test]
fn a_folded_reading_is_judged_by_rules_that_replace_those_it_was_folded_under() {
    let rules = |threshold| {
        let rule = Rule::new("hot", "t", Direction::Above, threshold);
        Arc::new(RuleSet::new(vec![rule]))
    };
    let mut eval = AlertEvaluator::new(rules(50.0));
    assert!(eval.push(Reading::new("d", "t", 1_000, 30.0, 0, 0)));
    assert_eq!(eval.folded, 1);
    let mut out = Vec::new();
    eval.advance_to(Some(500), &mut out);
    eval.replace_rules(rules(20.0), 2, |_| true);
    eval.advance_to(None, &mut out);
    let got = states(&out);
    assert_eq!(got, vec![(AlertState::Firing, 1_000, 30.0)]);
}
