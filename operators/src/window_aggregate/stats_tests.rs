//! The extra statistics against references written here: seeded readings
//! (negative values, zeros, duplicate values, readings sharing an event
//! time across partitions and offsets) are aggregated in shuffled order,
//! split over several aggregates that are merged in random groupings, as
//! panes and workers do; the results are compared with loops over the
//! sorted values, and with each other bit for bit.

use std::collections::BTreeMap;

use super::acc::{Acc, Extras};
use super::{Panes, WindowState, PERCENTILE_ACCURACY};
use crate::reading::{Reading, WindowAggregate};
use crate::record::{Percentile, Stat, Stats};

/// Every extra statistic, with percentiles from p0.1 to p99.9.
fn every_stat() -> Stats {
    let mut stats: Stats = [Stat::Stddev, Stat::StddevPop, Stat::First, Stat::Last]
        .into_iter()
        .collect();
    for tenths in [1, 10, 250, 500, 900, 950, 990, 999] {
        stats.insert(Stat::Percentile(Percentile::new(tenths).unwrap()));
    }
    stats
}

/// `n` readings of one key: values drawn from a small set (so duplicates
/// and zeros of both signs are common), small integers of either sign, or
/// wide magnitudes; event times from a narrow range, so many readings
/// share one, each from its own (partition, offset).
fn readings(next: &mut impl FnMut(u64) -> u64, n: usize) -> Vec<Reading> {
    let mut offsets = [0i64; 4];
    (0..n)
        .map(|_| {
            let value = match next(4) {
                0 => [0.0, -0.0, 1.5, -1.5, 1e6, 7.0][next(6) as usize],
                1 => next(200) as f64 - 100.0,
                2 => (next(2_000_001) as f64 - 1e6) / 64.0,
                _ => {
                    let magnitude = 10f64.powi(next(16) as i32 - 8);
                    let sign = if next(2) == 0 { -1.0 } else { 1.0 };
                    sign * magnitude * (1.0 + next(1_000) as f64 / 1_000.0)
                }
            };
            let partition = next(4) as usize;
            offsets[partition] += 1 + next(3) as i64;
            let time = 1_000 + next(20);
            Reading::new("d", "s", time, value, partition as i32, offsets[partition])
        })
        .collect()
}

/// What the statistics must be, from the readings themselves: the values
/// sorted; the percentile of rank ⌈q·n⌉ (at least 1); the standard
/// deviations in two passes; first and last by (time, partition, offset).
struct Reference {
    sorted: Vec<f64>,
    stddev: Option<f64>,
    stddev_pop: f64,
    first: f64,
    last: f64,
}

impl Reference {
    fn of(readings: &[Reading]) -> Self {
        let mut sorted: Vec<f64> = readings.iter().map(|r| r.value).collect();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let mean = sorted.iter().sum::<f64>() / n;
        let m2: f64 = sorted.iter().map(|x| (x - mean) * (x - mean)).sum();
        let by_order = |r: &&Reading| (r.time, r.partition, r.offset);
        Reference {
            stddev: (sorted.len() >= 2).then(|| (m2 / (n - 1.0)).sqrt()),
            stddev_pop: (m2 / n).sqrt(),
            first: readings.iter().min_by_key(by_order).unwrap().value,
            last: readings.iter().max_by_key(by_order).unwrap().value,
            sorted,
        }
    }

    /// The exact value of rank ⌈tenths · n / 1000⌉.
    fn percentile(&self, tenths: u16) -> f64 {
        let n = self.sorted.len();
        let rank = (tenths as usize * n).div_ceil(1_000).max(1);
        self.sorted[rank - 1]
    }

    /// Checks `row` against the reference; `what` names the case.
    fn check(&self, row: &WindowAggregate, what: &str) {
        let close = |got: f64, want: f64, tolerance: f64| {
            (got - want).abs() <= tolerance * want.abs().max(f64::MIN_POSITIVE)
        };
        assert_eq!(row.count as usize, self.sorted.len(), "{what}");
        for (stat, value) in &row.extra {
            match stat {
                Stat::Stddev => match (value, self.stddev) {
                    (Some(got), Some(want)) => {
                        assert!(close(*got, want, 1e-9), "{what}: stddev {got} vs {want}")
                    }
                    (got, want) => assert_eq!(*got, want, "{what}: stddev"),
                },
                Stat::StddevPop => {
                    let got = value.unwrap();
                    assert!(
                        close(got, self.stddev_pop, 1e-9) || got == self.stddev_pop,
                        "{what}: stddev_pop {got} vs {}",
                        self.stddev_pop
                    );
                }
                Stat::First => assert_eq!(value.unwrap().to_bits(), self.first.to_bits(), "{what}"),
                Stat::Last => assert_eq!(value.unwrap().to_bits(), self.last.to_bits(), "{what}"),
                Stat::Percentile(p) => {
                    let (got, want) = (value.unwrap(), self.percentile(p.tenths()));
                    assert!(
                        got == want || close(got, want, PERCENTILE_ACCURACY * (1.0 + 1e-9)),
                        "{what}: {p} {got} vs exact {want}"
                    );
                }
                other => panic!("{what}: unexpected {other}"),
            }
        }
    }
}

/// The readings in a random order, split into up to 6 aggregates, merged
/// in a random grouping (`sketch`: with percentiles).
fn aggregate(readings: &[Reading], next: &mut impl FnMut(u64) -> u64, sketch: bool) -> Acc<Extras> {
    let mut shuffled: Vec<&Reading> = readings.iter().collect();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, next(i as u64 + 1) as usize);
    }
    let parts = 1 + next(6) as usize;
    let mut accs: Vec<Acc<Extras>> = Vec::new();
    for chunk in shuffled.chunks(shuffled.len().div_ceil(parts)) {
        let mut acc = Acc::new(chunk[0], sketch);
        chunk[1..].iter().for_each(|r| acc.add(r, sketch));
        accs.push(acc);
    }
    while accs.len() > 1 {
        let a = accs.swap_remove(next(accs.len() as u64) as usize);
        let b = next(accs.len() as u64) as usize;
        accs[b].merge(&a);
    }
    accs.pop().unwrap()
}

/// The row's statistics as bits, but for the sum and deviations, which
/// only barely depend on the order.
fn exact_bits(row: &WindowAggregate) -> Vec<(Stat, Option<u64>)> {
    let mut bits = vec![
        (Stat::Count, Some(row.count)),
        (Stat::Min, Some(row.min.to_bits())),
        (Stat::Max, Some(row.max.to_bits())),
    ];
    bits.extend(
        row.extra
            .iter()
            .filter(|(s, _)| !matches!(s, Stat::Stddev | Stat::StddevPop))
            .map(|(s, v)| (*s, v.map(f64::to_bits))),
    );
    bits
}

#[test]
fn extra_statistics_equal_the_reference_in_every_order_and_grouping() {
    let stats = every_stat();
    for seed in 1..=40u64 {
        let mut next = crate::seeded(seed);
        let n = 1 + next(if seed % 4 == 0 { 5 } else { 400 }) as usize;
        let input = readings(&mut next, n);
        let want = Reference::of(&input);
        let key = input[0].key();
        let mut first: Option<WindowAggregate> = None;
        for round in 0..6 {
            let acc = aggregate(&input, &mut next, true);
            let row = acc.row(key.clone(), 0, 1, &stats);
            let what = format!("seed {seed}, n {n}, round {round}");
            want.check(&row, &what);
            match &first {
                None => first = Some(row),
                Some(first) => {
                    assert_eq!(exact_bits(&row), exact_bits(first), "{what}");
                    for ((_, a), (_, b)) in row.extra.iter().zip(&first.extra) {
                        if let (Some(a), Some(b)) = (a, b) {
                            assert!((a - b).abs() <= 1e-12 * b.abs(), "{what}: {a} vs {b}");
                        }
                    }
                }
            }
        }
    }
}

/// Values far from zero and close together: the one-pass formula
/// `(Σx² − (Σx)²/n)/(n − 1)` in plain f64 would lose every digit.
#[test]
fn deviations_of_values_with_a_large_mean() {
    for (seed, mean) in [(1, 1e6), (2, 1e8), (3, -1e7), (4, 3e5)] {
        let mut next = crate::seeded(seed);
        let input: Vec<Reading> = (0..500)
            .map(|i| {
                let value = mean + (next(1_000_001) as f64 - 500_000.0) / 1e6;
                Reading::new("d", "s", i, value, 0, i as i64)
            })
            .collect();
        let want = Reference::of(&input);
        let stats: Stats = [Stat::Stddev, Stat::StddevPop].into_iter().collect();
        let row = aggregate(&input, &mut next, false).row(input[0].key(), 0, 1, &stats);
        want.check(&row, &format!("mean {mean}"));
    }
}

/// The README's definition of hopping windows, looped, with the extra
/// statistics of each window computed from its own readings.
#[test]
fn hopping_windows_with_percentiles_equal_the_definition() {
    let stats = every_stat();
    for seed in 1..8u64 {
        let mut next = crate::seeded(seed);
        let (size, slide) =
            [(30_000u64, 10_000u64), (60_000, 5_000), (20_000, 20_000)][seed as usize % 3];
        let base = 1_000_000_000;
        let mut offsets = [0i64; 3];
        let input: Vec<Reading> = (0..600)
            .map(|_| {
                let sensor = ["a", "b"][next(2) as usize];
                let partition = next(3) as usize;
                offsets[partition] += 1;
                let time = base + next(300) * 1_000;
                let value = next(2_001) as f64 / 10.0 - 100.0;
                Reading::new(
                    "d",
                    sensor,
                    time,
                    value,
                    partition as i32,
                    offsets[partition],
                )
            })
            .collect();
        let mut windows: BTreeMap<(u64, String), Vec<Reading>> = BTreeMap::new();
        for r in &input {
            let first_end = r.time - r.time % slide + slide;
            for end in (first_end..first_end + size).step_by(slide as usize) {
                windows
                    .entry((end, r.sensor.to_string()))
                    .or_default()
                    .push(r.clone());
            }
        }
        let mut panes = Panes::with_stats(size, slide, stats.clone());
        let mut arrival = input.clone();
        arrival.reverse();
        arrival.iter().for_each(|r| panes.insert(r));
        let mut out = Vec::new();
        panes.flush_until(None, &mut out);
        assert_eq!(out.len(), windows.len(), "seed {seed}");
        for row in &out {
            let key = (row.window_end, row.sensor.to_string());
            let readings = &windows[&key];
            let what = format!("seed {seed}, window {key:?}");
            Reference::of(readings).check(row, &what);
            // The panes merged give exactly what one tumbling-style pass
            // over the window's readings gives.
            let mut whole = WindowState::with_stats(size, stats.clone());
            let shift = row.window_start % size;
            for r in readings {
                let mut r = r.clone();
                r.time -= shift;
                whole.insert(&r);
            }
            let mut direct = Vec::new();
            whole.flush_until(None, &mut direct);
            assert_eq!(exact_bits(row), exact_bits(&direct[0]), "{what}");
        }
    }
}

/// Without extra statistics a key's state does not grow; with them it
/// grows by their state, and a sketch is allocated only for percentiles.
#[test]
fn extra_state_is_allocated_only_when_chosen() {
    let state_bytes = |stats: Stats| {
        let mut state = WindowState::with_stats(10_000, stats);
        let mut next = crate::seeded(3);
        for i in 0..3_000i64 {
            let sensor = format!("s{}", i % 100);
            let value = 20.0 + next(6_250) as f64 / 100.0;
            state.insert(&Reading::new("d", &sensor, 1_000, value, 0, i));
        }
        let (keys, bytes) = state.footprint();
        (bytes / keys) as f64
    };
    let basic = state_bytes(Stats::basic());
    let extra = state_bytes([Stat::Stddev, Stat::First].into_iter().collect());
    let p = |t| Stat::Percentile(Percentile::new(t).unwrap());
    let percentiles = state_bytes([p(500), p(950), p(990)].into_iter().collect());
    eprintln!(
        "state bytes per key: basic {basic}, stddev+first {extra}, p50+p95+p99 {percentiles}"
    );
    // The extras (in a map with some spare room), and nothing on the heap.
    let grown = (extra - basic) / std::mem::size_of::<Extras>() as f64;
    assert!((1.0..1.5).contains(&grown), "{basic} {extra}");
    assert!(extra < percentiles, "{extra} {percentiles}");
}
