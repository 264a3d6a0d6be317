//! The ledger by hand, and the alarm views against a reference loop on
//! seeded alert events, at 1 and 3 workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use timely::dataflow::operators::{Input, Inspect, Probe};

use super::alarm_views;
use super::ledger::{Change, Entry, Ledger, LedgerPart};
use crate::record::{ActiveAlarm, Alert, AlertState, Place};
use crate::rules::{Device, Registry, RuleSet};
use crate::Env;

pub(super) fn event(rule: &str, device: &str, state: AlertState, at: u64, severity: &str) -> Alert {
    let mut alert = Alert::event(rule, device, "temp", state, at);
    alert.severity = severity.into();
    alert
}

pub(super) fn alarm(
    rule: &str,
    device: &str,
    severity: &str,
    since: u64,
    escalated: bool,
) -> ActiveAlarm {
    ActiveAlarm {
        rule: rule.into(),
        device: device.into(),
        sensor: "temp".into(),
        severity: severity.into(),
        since,
        escalated,
        acked_by: None,
        acked_at: None,
        shelved: false,
    }
}

/// The changes of the collection among what a ledger sent.
pub(super) fn changes(out: &mut Vec<Entry>) -> Vec<Change> {
    out.drain(..)
        .filter_map(|e| match e {
            Entry::Change(c) => Some(c),
            Entry::Alert(_) => None,
        })
        .collect()
}

#[test]
fn firing_escalation_and_resolve_insert_move_and_retract_an_alarm() {
    let mut ledger = Ledger::default();
    // Arrival out of event-time order across keys; applied in time order.
    ledger.push([
        event("hot", "d2", AlertState::Firing, 3_000, "warning"),
        event("hot", "d1", AlertState::Firing, 1_000, "warning"),
        event("hot", "d1", AlertState::Escalated, 5_000, "critical"),
        event("hot", "d1", AlertState::Resolved, 9_000, "critical"),
    ]);
    let mut out = Vec::new();
    ledger.advance(Some(6_000), &mut out);
    assert_eq!(
        changes(&mut out),
        vec![
            (alarm("hot", "d1", "warning", 1_000, false), 1_000, 1),
            (alarm("hot", "d2", "warning", 3_000, false), 3_000, 1),
            (alarm("hot", "d1", "warning", 1_000, false), 5_000, -1),
            (alarm("hot", "d1", "critical", 1_000, true), 5_000, 1),
        ]
    );
    // The resolve waits for the frontier; a snapshot holds what is active.
    assert_eq!(ledger.earliest(false), Some(9_000));
    assert_eq!(
        ledger.snapshot().active,
        vec![
            alarm("hot", "d1", "critical", 1_000, true),
            alarm("hot", "d2", "warning", 3_000, false)
        ]
    );
    ledger.advance(None, &mut out);
    assert_eq!(
        changes(&mut out),
        vec![(alarm("hot", "d1", "critical", 1_000, true), 9_000, -1)]
    );
    // A resolve of an alarm the ledger does not hold changes nothing.
    ledger.push([event("cold", "d1", AlertState::Resolved, 10_000, "warning")]);
    ledger.advance(None, &mut out);
    assert!(changes(&mut out).is_empty());
}

#[test]
fn a_restored_ledger_inserts_its_alarms_at_the_frontier_and_resolves_them_later() {
    let part = LedgerPart {
        active: vec![
            alarm("hot", "d1", "warning", 1_000, false),
            alarm("hot", "d2", "warning", 2_000, false),
            alarm("old", "d3", "warning", 2_000, false),
        ],
        ..LedgerPart::default()
    };
    // This worker owns d1 and d3; rule "old" changed since the checkpoint.
    let mut ledger = Ledger::restore(vec![part], 60_000, |k| k.1 != "d2", |rule| rule == "old");
    assert_eq!(ledger.earliest(false), Some(60_000));
    ledger.push([event("hot", "d1", AlertState::Resolved, 61_000, "warning")]);
    let mut out = Vec::new();
    ledger.advance(None, &mut out);
    assert_eq!(
        changes(&mut out),
        vec![
            (alarm("hot", "d1", "warning", 1_000, false), 60_000, 1),
            (alarm("hot", "d1", "warning", 1_000, false), 61_000, -1),
        ]
    );
}

/// Seeded alert events of 3 rules on 40 devices: each key's events form a
/// valid sequence (firing, maybe escalated, resolved, ...).
pub(super) fn seeded_events(seed: u64) -> Vec<Alert> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut events = Vec::new();
    for rule in ["hot", "cold", "stuck"] {
        for d in 0..40 {
            let device = format!("d{d}");
            let mut at = rng.random_range(0..5_000u64);
            let mut firing = false;
            let mut escalated = false;
            for _ in 0..rng.random_range(0..8) {
                at += rng.random_range(0..3_000u64);
                let state = match (firing, escalated, rng.random_range(0..3)) {
                    (false, _, _) => AlertState::Firing,
                    (true, false, 0) => AlertState::Escalated,
                    _ => AlertState::Resolved,
                };
                let severity = if state == AlertState::Escalated || escalated {
                    "critical"
                } else {
                    "warning"
                };
                firing = state != AlertState::Resolved;
                escalated = state == AlertState::Escalated || (escalated && firing);
                events.push(event(rule, &device, state, at, severity));
            }
        }
    }
    events
}

/// The reference: the active alarms before `cut`, by replaying each key's
/// events in order.
pub(super) fn reference(events: &[Alert], cut: u64) -> BTreeSet<(ActiveAlarm, Place)> {
    let mut active: BTreeMap<(String, String), ActiveAlarm> = BTreeMap::new();
    for e in events.iter().filter(|e| e.event_time < cut) {
        let key = (e.rule.clone(), e.device.to_string());
        match e.state {
            AlertState::Firing => {
                active.insert(
                    key,
                    alarm(&e.rule, &e.device, &e.severity, e.event_time, false),
                );
            }
            AlertState::Escalated => {
                let a = active.get_mut(&key).expect("escalates a firing alarm");
                a.severity = e.severity.clone();
                a.escalated = true;
            }
            _ => {
                active.remove(&key);
            }
        }
    }
    active
        .into_values()
        .map(|a| {
            let place = place_of(&a.device);
            (a, place)
        })
        .collect()
}

/// The counts of `active` by dimension: its severity and rule, and where
/// the registry places it, its site and `site/line`.
pub(super) fn counts_of(
    active: &BTreeSet<(ActiveAlarm, Place)>,
) -> BTreeMap<(String, String), isize> {
    let mut counts: BTreeMap<(String, String), isize> = BTreeMap::new();
    for (a, place) in active {
        let mut dims = vec![
            ("severity".to_owned(), a.severity.clone()),
            ("rule".to_owned(), a.rule.clone()),
        ];
        if !place.site.is_empty() {
            dims.push(("site".into(), place.site.clone()));
            dims.push(("line".into(), format!("{}/{}", place.site, place.line)));
        }
        for dim in dims {
            *counts.entry(dim).or_default() += 1;
        }
    }
    counts
}

/// The oldest of each place of `active`: the earliest since, then the
/// smallest alarm.
pub(super) fn oldest_of(
    active: &BTreeSet<(ActiveAlarm, Place)>,
) -> BTreeMap<Place, (u64, ActiveAlarm)> {
    let mut oldest: BTreeMap<Place, (u64, ActiveAlarm)> = BTreeMap::new();
    for (a, place) in active {
        let candidate = (a.since, a.clone());
        let entry = oldest.entry(place.clone()).or_insert(candidate.clone());
        if candidate < *entry {
            *entry = candidate;
        }
    }
    oldest
}

/// Devices d0..d29 are in the registry, on two sites of three lines.
pub(super) fn place_of(device: &str) -> Place {
    let n: usize = device[1..].parse().unwrap();
    if n >= 30 {
        return Place::default();
    }
    Place {
        site: format!("s{}", n % 2),
        line: format!("l{}", n % 3),
    }
}

pub(super) fn registry() -> Registry {
    let mut registry = Registry::default();
    for n in 0..30 {
        let place = place_of(&format!("d{n}"));
        registry.devices.insert(
            format!("d{n}"),
            Device {
                fields: vec![("site".into(), place.site), ("line".into(), place.line)],
                limits: Vec::new(),
            },
        );
    }
    registry
}

type Captured<T> = Arc<Mutex<Vec<(T, u64, isize)>>>;
/// The changes of the active alarms, of their counts and of the oldest
/// alarm of each place.
type ViewChanges = (
    Captured<(ActiveAlarm, Place)>,
    Captured<((String, String), isize)>,
    Captured<(Place, (u64, ActiveAlarm))>,
);

/// Runs the views on `events` at `workers` workers, each worker sending
/// the events of its share of the keys in event-time order, in steps.
fn run_views(events: &[Alert], workers: usize) -> ViewChanges {
    let active: Captured<(ActiveAlarm, Place)> = Arc::default();
    let counts: Captured<((String, String), isize)> = Arc::default();
    let oldest: Captured<(Place, (u64, ActiveAlarm))> = Arc::default();
    let (a, c, o, events) = (
        active.clone(),
        counts.clone(),
        oldest.clone(),
        events.to_vec(),
    );
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let (a, c, o) = (a.clone(), c.clone(), o.clone());
        let rules = Arc::new(RuleSet::new(Vec::new()).with_devices(registry()));
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let env = Env::standalone(scope);
            let (input, alerts) = scope.new_input::<Vec<Alert>>();
            let views = alarm_views(&alerts, &rules, &env).collections();
            let (probe, _) = views
                .active
                .inner
                .inspect(move |x| a.lock().unwrap().push(x.clone()))
                .probe();
            views
                .counts
                .inner
                .inspect(move |x| c.lock().unwrap().push(x.clone()));
            views
                .oldest
                .inner
                .inspect(move |x| o.lock().unwrap().push(x.clone()));
            (input, probe)
        });
        let mut mine: Vec<Alert> = events
            .iter()
            .filter(|e| e.device[1..].parse::<usize>().unwrap() % peers == index)
            .cloned()
            .collect();
        mine.sort_by_key(|e| e.event_time);
        for e in mine {
            let step = e.event_time / 2_000 * 2_000;
            if step > *input.time() {
                input.advance_to(step);
                worker.step();
            }
            input.send(e);
        }
        input.close();
        while !probe.done() {
            worker.step();
        }
    })
    .unwrap();
    (active, counts, oldest)
}

/// The accumulated collection before `cut`.
fn at<T: Ord + Clone>(changes: &Captured<T>, cut: u64) -> BTreeMap<T, isize> {
    let mut acc: BTreeMap<T, isize> = BTreeMap::new();
    for (x, t, d) in changes.lock().unwrap().iter() {
        if *t < cut {
            *acc.entry(x.clone()).or_default() += d;
        }
    }
    acc.retain(|_, d| *d != 0);
    acc
}

#[test]
fn the_views_equal_a_reference_loop_at_one_and_three_workers() {
    for seed in [1, 2, 3] {
        let events = seeded_events(seed);
        let end = events.iter().map(|e| e.event_time).max().unwrap() + 1;
        for workers in [1, 3] {
            let (active, counts, oldest) = run_views(&events, workers);
            for cut in [1_000, 4_000, 7_500, 12_000, end] {
                let want = reference(&events, cut);
                let got = at(&active, cut);
                assert!(got.values().all(|d| *d == 1), "seed {seed}: multiplicities");
                let got: BTreeSet<_> = got.into_keys().collect();
                assert_eq!(got, want, "seed {seed}, {workers} workers, before {cut}");
                let want_counts = counts_of(&want);
                let got_counts: BTreeMap<(String, String), isize> =
                    at(&counts, cut).into_keys().collect();
                assert_eq!(
                    got_counts, want_counts,
                    "seed {seed}, {workers} workers, counts before {cut}"
                );
                let want_oldest = oldest_of(&want);
                let got_oldest: BTreeMap<Place, (u64, ActiveAlarm)> =
                    at(&oldest, cut).into_keys().collect();
                assert_eq!(
                    got_oldest, want_oldest,
                    "seed {seed}, {workers} workers, oldest before {cut}"
                );
            }
        }
    }
}

#[test]
fn a_reload_ends_the_alarms_it_starts_afresh_at_its_frontier() {
    use crate::rules::Pattern;
    use crate::rules::{Direction, Rule};
    // "hot" judges the devices of the north; "warm" every device.
    let registry = |d2_site: &str| {
        let mut registry = Registry::default();
        for (id, site) in [("d1", "north"), ("d2", d2_site)] {
            let fields = vec![("site".to_owned(), site.to_owned())];
            let device = Device {
                fields,
                limits: Vec::new(),
            };
            registry.devices.insert(id.into(), device);
        }
        registry
    };
    let mut hot = Rule::new("hot", "temp", Direction::Above, 90.0);
    let north = Pattern::new("north").unwrap();
    hot.selection.fields.push(("site".into(), north));
    let warm = Rule::new("warm", "temp", Direction::Above, 80.0);
    let old = RuleSet::new(vec![hot.clone(), warm.clone()]).with_devices(registry("north"));
    // The reload changes "warm" and moves d2 to the south, where "hot"
    // no longer judges it: the evaluator starts both keys afresh.
    let new = RuleSet::new(vec![hot, warm.severity("critical")]).with_devices(registry("south"));
    let reload = super::RulesInForce::of(&old).replaced(new);

    let mut ledger = Ledger::default();
    ledger.push([
        event("hot", "d1", AlertState::Firing, 1_000, "warning"),
        event("hot", "d2", AlertState::Firing, 1_000, "warning"),
        event("warm", "d1", AlertState::Firing, 2_000, "warning"),
    ]);
    let mut out = Vec::new();
    ledger.advance(Some(5_000), &mut out);
    ledger.end_alarms(
        |(rule, device, sensor)| reload.ends(rule, device, sensor),
        5_000,
    );
    assert_eq!(ledger.earliest(false), Some(5_000));
    assert_eq!(
        ledger.snapshot().active,
        vec![alarm("hot", "d1", "warning", 1_000, false)]
    );
    out.clear();
    ledger.advance(Some(6_000), &mut out);
    let mut ended = changes(&mut out);
    ended.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ended,
        vec![
            (alarm("hot", "d2", "warning", 1_000, false), 5_000, -1),
            (alarm("warm", "d1", "warning", 2_000, false), 5_000, -1),
        ]
    );
}

#[test]
fn the_published_board_holds_the_alarms_and_says_when_the_input_ended() {
    use timely::dataflow::operators::ToStream;
    let events = vec![
        event("hot", "d1", AlertState::Firing, 1_000, "warning"),
        event("hot", "d2", AlertState::Firing, 2_000, "critical"),
        event("hot", "d1", AlertState::Resolved, 3_000, "warning"),
    ];
    let run = timely::example(move |scope| {
        let env = Env::standalone(scope);
        let rules = Arc::new(RuleSet::new(Vec::new()).with_devices(registry()));
        alarm_views(&events.to_stream(scope), &rules, &env).publish(&env);
        env.run().clone()
    });
    let board = run.metrics.alarm_board();
    assert!(board.complete);
    assert_eq!(
        board.alarms,
        vec![(alarm("hot", "d2", "critical", 2_000, false), place_of("d2"))]
    );
    assert!(board
        .counts
        .contains(&("severity".to_owned(), "critical".to_owned(), 1)));
    assert_eq!(board.oldest.len(), 1);
}
