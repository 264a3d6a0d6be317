//! Tests of tumbling windows: boundaries, keys, compensated sums, resuming
//! at a cut, and closing no further than the markers.

use super::*;

fn flush(state: &mut WindowState, frontier: Option<u64>) -> Vec<(String, u64, u64, f64, f64, f64)> {
    let mut out = Vec::new();
    state.flush_until(frontier, &mut out);
    out.into_iter()
        .map(|w| {
            (
                w.sensor.to_string(),
                w.window_start,
                w.count,
                w.min,
                w.max,
                w.sum,
            )
        })
        .collect()
}

#[test]
fn window_boundaries_are_half_open() {
    let mut s = WindowState::new(1_000);
    for (t, v) in [
        (0, 1.0),
        (999, 2.0),
        (1_000, 3.0),
        (1_999, 4.0),
        (2_000, 5.0),
    ] {
        s.insert(&Reading::new("d", "t", t, v, 0, 0));
    }
    // Frontier 1999: only [0, 1000) has ended.
    assert_eq!(
        flush(&mut s, Some(1_999)),
        vec![("t".into(), 0, 2, 1.0, 2.0, 3.0)]
    );
    // Frontier 2000: [1000, 2000) has ended.
    assert_eq!(
        flush(&mut s, Some(2_000)),
        vec![("t".into(), 1_000, 2, 3.0, 4.0, 7.0)]
    );
    assert_eq!(
        flush(&mut s, None),
        vec![("t".into(), 2_000, 1, 5.0, 5.0, 5.0)]
    );
    assert_eq!(s.earliest_end(), None);
}

#[test]
fn keys_are_separate_and_sorted() {
    let mut s = WindowState::new(1_000);
    s.insert(&Reading::new("d", "z", 5, 1.0, 0, 0));
    s.insert(&Reading::new("d", "a", 6, 2.0, 0, 1));
    s.insert(&Reading::new("d", "z", 7, 3.0, 0, 2));
    assert_eq!(
        flush(&mut s, None),
        vec![
            ("a".into(), 0, 1, 2.0, 2.0, 2.0),
            ("z".into(), 0, 2, 1.0, 3.0, 4.0)
        ]
    );
}

#[test]
fn compensated_sum_does_not_lose_small_values() {
    let mut s = WindowState::new(1_000);
    s.insert(&Reading::new("d", "t", 0, 1e16, 0, 0));
    for i in 0..10 {
        s.insert(&Reading::new("d", "t", 1, 1.0, 0, i + 1));
    }
    s.insert(&Reading::new("d", "t", 2, -1e16, 0, 20));
    assert_eq!(flush(&mut s, None)[0].5, 10.0);
}

/// A restart from a checkpoint at a frontier `F`: windows that ended
/// before `F` came from the first run, the rest from a run that re-reads
/// the input from one window before `F` with `resume_at(F)`. Together
/// they equal an uninterrupted run, for seeded inputs and several cuts.
#[test]
fn resume_at_a_cut_equals_an_uninterrupted_run() {
    const SIZE: u64 = 1_000;
    for seed in 1..10u64 {
        let mut x = seed;
        let mut next = || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            x >> 33
        };
        // Readings of 3 devices, up to 300 ms out of order.
        let readings: Vec<Reading> = (0..400u64)
            .map(|i| {
                let device = format!("d{}", next() % 3);
                let time = (i * 25 + 300).saturating_sub(next() % 300);
                Reading::new(&device, "t", time, (next() % 100) as f64, 0, i as i64)
            })
            .collect();
        let all = |state: &mut WindowState, readings: &[Reading]| {
            readings.iter().for_each(|r| state.insert(r));
            flush(state, None)
        };
        let expected = all(&mut WindowState::new(SIZE), &readings);
        for cut in [2_000, 4_000, 7_500] {
            // The first run: readings that arrived before the frontier
            // reached the cut (all earlier than it), windows before it.
            let mut first = WindowState::new(SIZE);
            let before: Vec<Reading> = readings.iter().filter(|r| r.time < cut).cloned().collect();
            before.iter().for_each(|r| first.insert(r));
            let mut got: Vec<_> = flush(&mut first, Some(cut))
                .into_iter()
                .filter(|w| w.1 + SIZE < cut)
                .collect();
            // The resumed run re-reads from one window before the cut.
            let mut resumed = WindowState::new(SIZE);
            resumed.resume_at(cut);
            let reread: Vec<Reading> = readings
                .iter()
                .filter(|r| r.time + SIZE >= cut)
                .cloned()
                .collect();
            got.extend(all(&mut resumed, &reread));
            got.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            let mut want = expected.clone();
            want.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            assert_eq!(got, want, "seed {seed}, cut {cut}");
        }
    }
}

/// A marker still on its way may be the last one of a stop (in a
/// cluster, markers and the frontiers of other processes' sources travel
/// on different connections): windows close no further than the markers
/// have come, and after a last marker only as far as it.
#[test]
fn windows_close_no_further_than_the_markers() {
    use crate::checkpoint::Marker;
    use crate::run::Env;
    use crate::WindowAggregateOp;
    use std::cell::RefCell;
    use std::rc::Rc;
    use timely::dataflow::operators::{Input, Inspect};
    use timely::dataflow::InputHandle;

    let ends = timely::execute_directly(|worker| {
        let mut readings = InputHandle::new();
        let mut markers = InputHandle::new();
        let ends = Rc::new(RefCell::new(Vec::new()));
        let out = ends.clone();
        worker.dataflow(|scope| {
            let env = Env::standalone(scope).with_markers(scope.input_from(&mut markers));
            scope
                .input_from(&mut readings)
                .window_aggregate(10_000, &env)
                .stream
                .inspect(move |w| out.borrow_mut().push(w.window_end));
            env.finish();
        });
        readings.send(Reading::new("d", "s", 1_000, 1.0, 0, 0));
        readings.send(Reading::new("d", "s", 12_000, 2.0, 0, 0));
        markers.advance_to(5_000);
        // The readings' frontier passes both windows; the markers' does not.
        readings.advance_to(30_000);
        for _ in 0..50 {
            worker.step();
        }
        // The last marker of a stop, at 15 s: only [0, 10 s) is complete.
        markers.send(Marker {
            id: 0,
            frontier: 15_000,
            last: true,
            rules_version: 1,
            reload: None,
        });
        drop(markers);
        drop(readings);
        while worker.step() {}
        let ends = ends.borrow().clone();
        ends
    });
    assert_eq!(ends, vec![10_000]);
}
