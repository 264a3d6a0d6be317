//! The board against the reference of the alarm views' tests, and a
//! registry edit worked by hand.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::board::{Board, Pending};
use super::ledger::Ledger;
use super::tests::{alarm, changes, counts_of, oldest_of, reference, registry, seeded_events};
use super::views::places;
use crate::reading::Name;
use crate::record::{AlarmBoard, Place};

/// The board's counts as a map, to compare.
fn counts(board: &AlarmBoard) -> BTreeMap<(String, String), isize> {
    let counts = board.counts.iter();
    counts
        .map(|(d, v, n)| ((d.clone(), v.clone()), *n as isize))
        .collect()
}

#[test]
fn the_board_equals_a_reference_loop_as_of_each_frontier_whatever_the_order() {
    for seed in 1..=6 {
        let events = seeded_events(seed);
        let end = events.iter().map(|e| e.event_time).max().unwrap() + 1;
        let mut ledger = Ledger::default();
        ledger.push(events.clone());
        let mut out = Vec::new();
        ledger.advance(None, &mut out);
        let mut pending = Pending {
            changes: changes(&mut out),
            places: Vec::new(),
        };
        // The changes come in any order, and ahead of the frontier.
        pending.changes.shuffle(&mut SmallRng::seed_from_u64(seed));
        let mut board = Board::new(places(&registry()));
        for cut in [1_000, 4_000, 7_500, 12_000, end] {
            pending.apply_due(Some(cut), &mut board);
            let got = board.publish();
            let want = reference(&events, cut);
            let alarms: Vec<_> = want.iter().cloned().collect();
            assert_eq!(got.alarms, alarms, "seed {seed}, alarms before {cut}");
            assert_eq!(
                counts(&got),
                counts_of(&want),
                "seed {seed}, counts before {cut}"
            );
            let oldest: Vec<_> = oldest_of(&want)
                .into_iter()
                .map(|(place, (_, alarm))| (place, alarm))
                .collect();
            assert_eq!(got.oldest, oldest, "seed {seed}, oldest before {cut}");
        }
        assert!(pending.changes.is_empty(), "seed {seed}: all applied");
    }
}

#[test]
fn a_registry_edit_moves_the_alarms_of_the_devices_it_moves() {
    let at = |site: &str, line: &str| Place {
        site: site.into(),
        line: line.into(),
    };
    let north = at("north", "a");
    let south = at("south", "b");
    let devices = |d1: &Place| -> Vec<(Name, Place)> {
        vec![("d1".into(), d1.clone()), ("d2".into(), north.clone())]
    };
    let d1 = alarm("hot", "d1", "warning", 1_000, false);
    let d2 = alarm("hot", "d2", "warning", 2_500, false);
    let mut board = Board::new(devices(&north));
    // d1 fires at 1 s and resolves at 3 s; d2 fires at 2.5 s; from 2 s
    // on, d1 is in the south. Given latest first.
    let mut pending = Pending {
        changes: vec![
            (d1.clone(), 3_000, -1),
            (d2.clone(), 2_500, 1),
            (d1.clone(), 1_000, 1),
        ],
        places: vec![(2_000, devices(&south))],
    };
    let count = |dim: &str, value: &str, n: u64| (dim.to_owned(), value.to_owned(), n);

    pending.apply_due(Some(2_000), &mut board);
    let got = board.publish();
    assert_eq!(got.alarms, vec![(d1.clone(), north.clone())]);
    let want = vec![
        count("line", "north/a", 1),
        count("rule", "hot", 1),
        count("severity", "warning", 1),
        count("site", "north", 1),
    ];
    assert_eq!(got.counts, want);
    assert_eq!(got.oldest, vec![(north.clone(), d1.clone())]);

    pending.apply_due(Some(2_600), &mut board);
    let got = board.publish();
    let want = vec![(d1.clone(), south.clone()), (d2.clone(), north.clone())];
    assert_eq!(got.alarms, want);
    let want = vec![
        count("line", "north/a", 1),
        count("line", "south/b", 1),
        count("rule", "hot", 2),
        count("severity", "warning", 2),
        count("site", "north", 1),
        count("site", "south", 1),
    ];
    assert_eq!(got.counts, want);
    let want = vec![(north.clone(), d2.clone()), (south.clone(), d1.clone())];
    assert_eq!(got.oldest, want);

    pending.apply_due(None, &mut board);
    let got = board.publish();
    assert_eq!(got.alarms, vec![(d2.clone(), north.clone())]);
    let want = vec![
        count("line", "north/a", 1),
        count("rule", "hot", 1),
        count("severity", "warning", 1),
        count("site", "north", 1),
    ];
    assert_eq!(got.counts, want);
    assert_eq!(got.oldest, vec![(north, d2)]);
}
