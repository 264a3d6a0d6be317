use std::collections::BTreeMap;

use super::*;

/// A session row as the tests compare it: (end, device, sensor) →
/// (start, count, min, max, sum).
type Rows = BTreeMap<(u64, String, String), (u64, u64, f64, f64, f64)>;

/// The README's definition, looped: each key's readings sorted by event
/// time, cut wherever two neighbours are `gap` or more apart; a session is
/// `[first, last + gap)`.
fn reference(readings: &[Reading], gap: u64) -> Rows {
    let mut by_key: BTreeMap<(String, String), Vec<&Reading>> = BTreeMap::new();
    for r in readings {
        by_key
            .entry((r.device.to_string(), r.sensor.to_string()))
            .or_default()
            .push(r);
    }
    let mut rows = Rows::new();
    for ((device, sensor), mut rs) in by_key {
        rs.sort_by_key(|r| r.time);
        let mut runs: Vec<Vec<&Reading>> = Vec::new();
        for r in rs {
            match runs.last_mut() {
                Some(run) if r.time - run.last().expect("never empty").time < gap => run.push(r),
                _ => runs.push(vec![r]),
            }
        }
        for run in runs {
            let values: Vec<f64> = run.iter().map(|r| r.value).collect();
            let end = run.last().expect("never empty").time + gap;
            rows.insert(
                (end, device.clone(), sensor.clone()),
                (
                    run[0].time,
                    values.len() as u64,
                    values.iter().copied().fold(f64::INFINITY, f64::min),
                    values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    values.iter().sum(),
                ),
            );
        }
    }
    rows
}

fn rows(out: &[Aggregate]) -> Rows {
    let rows: Rows = out
        .iter()
        .map(|w| {
            (
                (w.window_end, w.device.to_string(), w.sensor.to_string()),
                (w.window_start, w.count, w.min, w.max, w.sum),
            )
        })
        .collect();
    assert_eq!(rows.len(), out.len(), "each session once");
    rows
}

fn assert_same(got: &Rows, want: &Rows, what: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (key, w) in want {
        let g = got[key];
        assert_eq!((g.0, g.1, g.2, g.3), (w.0, w.1, w.2, w.3), "{what} {key:?}");
        assert!(
            (g.4 - w.4).abs() <= 1e-9 * w.4.abs().max(1.0),
            "{what} {key:?}"
        );
    }
}

/// Seeded readings of 2 devices × 2 sensors, in bursts with pauses, so that
/// sessions form, and some readings land between two and bridge them.
fn readings(seed: u64, n: usize) -> Vec<Reading> {
    let mut next = crate::seeded(seed);
    let base = 1_000_000_000;
    (0..n)
        .map(|i| {
            let device = ["d1", "d2"][next(2) as usize];
            let sensor = ["a", "b"][next(2) as usize];
            // Bursts: a burst every 100 s, readings within 25 s of its start.
            let time = base + next(30) * 100_000 + next(25_000);
            let value = next(2_000) as f64 / 10.0 - 100.0;
            Reading::new(device, sensor, time, value, next(3) as i32, i as i64)
        })
        .collect()
}

/// Feeds `readings` in event-time order, shuffled within batches (disorder
/// within the out-of-orderness a frontier allows), the frontier stepping
/// to each next batch's first reading.
fn run(
    sessions: &mut Sessions,
    readings: &[Reading],
    next: &mut impl FnMut(u64) -> u64,
) -> Vec<Aggregate> {
    let mut sorted = readings.to_vec();
    sorted.sort_by_key(|r| r.time);
    let mut out = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let n = 1 + next(40) as usize;
        let end = (i + n).min(sorted.len());
        let mut batch: Vec<&Reading> = sorted[i..end].iter().collect();
        for k in (1..batch.len()).rev() {
            batch.swap(k, next(k as u64 + 1) as usize);
        }
        for r in batch {
            sessions.insert(r);
        }
        i = end;
        sessions.flush_until(sorted.get(i).map(|r| r.time), &mut out);
    }
    sessions.flush_until(None, &mut out);
    out
}

#[test]
fn sessions_equal_the_definition_under_disorder_and_any_frontier_steps() {
    for seed in 1..25u64 {
        let gap = [5_000, 10_000, 30_000, 80_000][seed as usize % 4];
        let readings = readings(seed, 300);
        let want = reference(&readings, gap);
        let mut next = crate::seeded(seed + 100);
        let out = run(&mut Sessions::new(gap), &readings, &mut next);
        assert_same(&rows(&out), &want, &format!("seed {seed}, gap {gap}"));
        assert!(
            out.windows(2).all(|p| p[0].window_end <= p[1].window_end),
            "emitted in order of end"
        );
    }
}

#[test]
fn a_reading_between_two_sessions_merges_them() {
    let mut s = Sessions::new(10_000);
    for (t, v) in [(0, 1.0), (30_000, 4.0), (8_000, 2.0), (22_000, 3.0)] {
        s.insert(&Reading::new("d", "s", t, v, 0, 0));
    }
    // Alone, 0 and 8 s would form one session, 22 and 30 s another.
    let mut out = Vec::new();
    s.flush_until(Some(12_000), &mut out);
    assert!(out.is_empty(), "no session has ended: {out:?}");
    // 15 s arrives before the frontier passes 18 s: it bridges them.
    s.insert(&Reading::new("d", "s", 15_000, 5.0, 0, 0));
    s.flush_until(None, &mut out);
    let got: Vec<_> = out
        .iter()
        .map(|w| (w.window_start, w.window_end, w.count, w.sum))
        .collect();
    assert_eq!(got, vec![(0, 40_000, 5, 15.0)]);
}

#[test]
fn a_session_closes_when_the_frontier_passes_last_plus_gap() {
    let mut s = Sessions::new(10_000);
    s.insert(&Reading::new("d", "s", 5_000, 1.0, 0, 0));
    let mut out = Vec::new();
    s.flush_until(Some(15_000), &mut out);
    assert!(out.is_empty());
    assert_eq!(s.earliest_end(), Some(15_000));
    s.flush_until(Some(15_001), &mut out);
    assert_eq!(out.len(), 1);
    // A reading exactly a gap after the last starts a new session.
    let mut s = Sessions::new(10_000);
    s.insert(&Reading::new("d", "s", 0, 1.0, 0, 0));
    s.insert(&Reading::new("d", "s", 10_000, 1.0, 0, 0));
    s.flush_until(None, &mut out);
    assert_eq!(out.len(), 3);
}

/// A checkpoint at frontier `F`: the snapshot holds the open sessions and
/// no reading at or after `F`; the resumed run restores it and re-reads
/// from some point before `F`. Together the two runs equal one
/// uninterrupted run.
#[test]
fn a_checkpoint_and_resume_at_any_cut_equals_an_uninterrupted_run() {
    for seed in 1..15u64 {
        let gap = 30_000;
        let readings = readings(seed, 250);
        let want = reference(&readings, gap);
        let mut sorted = readings.clone();
        sorted.sort_by_key(|r| r.time);
        // Cuts at a reading, and at the end of a session.
        let cuts = [sorted[40].time, sorted[125].time + gap, sorted[200].time];
        for cut in cuts {
            // The first run: the readings it had taken when the checkpoint
            // came (all before the cut, some after), brought to the cut.
            let mut first = Sessions::new(gap);
            let mut out = Vec::new();
            for r in sorted.iter().take_while(|r| r.time < cut + 3_000) {
                first.insert(r);
            }
            first.flush_until(Some(cut), &mut out);
            // A sink's checkpoint at the cut holds the rows of windows that
            // ended before it; the resumed run must make the others.
            out.retain(|w| w.window_end < cut);
            let part = first.snapshot();
            // Encoded and decoded, as a checkpoint stores it.
            let part: SessionPart =
                bincode::deserialize(&bincode::serialize(&part).expect("encodes"))
                    .expect("decodes");
            let mut resumed = Sessions::new(gap);
            resumed.resume_at(cut);
            resumed.restore(vec![part], |_| true).expect("same gap");
            // The resumed run re-reads from 20 s before the cut.
            let reread: Vec<Reading> = readings
                .iter()
                .filter(|r| r.time + 20_000 >= cut)
                .cloned()
                .collect();
            let mut next = crate::seeded(seed);
            out.extend(run(&mut resumed, &reread, &mut next));
            assert_same(&rows(&out), &want, &format!("seed {seed}, cut {cut}"));
        }
    }
}

#[test]
fn restore_keeps_the_keys_a_worker_owns_and_refuses_another_gap() {
    let mut s = Sessions::new(10_000);
    s.insert(&Reading::new("d1", "s", 0, 1.0, 0, 0));
    s.insert(&Reading::new("d2", "s", 0, 2.0, 0, 0));
    s.flush_until(Some(5_000), &mut Vec::new());
    let part = s.snapshot();
    let mut mine = Sessions::new(10_000);
    mine.restore(vec![part.clone()], |k| k.device == "d2")
        .expect("same gap");
    let mut out = Vec::new();
    mine.flush_until(None, &mut out);
    assert_eq!(
        out.iter().map(|w| w.device.as_str()).collect::<Vec<_>>(),
        vec!["d2"]
    );
    let err = Sessions::new(20_000)
        .restore(vec![part], |_| true)
        .expect_err("another gap");
    assert!(
        err.contains("10000 ms") && err.contains("20000 ms"),
        "{err}"
    );
}
