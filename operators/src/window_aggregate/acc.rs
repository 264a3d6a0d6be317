//! The running aggregate of one key in one window (or pane): count, min,
//! max and a compensated sum ([`Acc`]), and what it keeps beyond them for
//! the extra statistics of its output ([`Extra`]: nothing, or [`Extras`]).

use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use super::sketch::Sketch;
use hashbrown::HashMap;

use crate::reading::{KeyRef, Reading, SensorKey, WindowAggregate as Aggregate};
use crate::record::{Stat, Stats};

/// Running aggregate of one key in an open window. The sum is compensated
/// (Neumaier), so it barely depends on the order values arrive in. `X` is
/// what it keeps for extra statistics: `()` for the basic ones alone, so
/// that their state is 40 bytes per key, or [`Extras`] (kept inline, next
/// to the rest, so that a reading touches one entry and, for percentiles,
/// its sketch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Acc<X = ()> {
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
    compensation: f64,
    extra: X,
}

/// What an aggregate keeps beyond count, min, max and sum.
pub(crate) trait Extra: Clone + Debug + 'static {
    /// The state of one reading; `sketch` says whether percentiles are
    /// computed.
    fn first(reading: &Reading, sketch: bool) -> Self;
    /// Adds a reading.
    fn add(&mut self, reading: &Reading, sketch: bool);
    /// Adds the readings `other` holds.
    fn merge(&mut self, other: &Self);
    /// Bytes held on the heap.
    fn heap_bytes(&self) -> usize;
    /// The values of the extra statistics of `stats`, in their order, for
    /// `count` readings whose sum is `sum + compensation`.
    fn values(&self, count: u64, sum: (f64, f64), stats: &Stats) -> Vec<(Stat, Option<f64>)>;
}

impl Extra for () {
    fn first(_: &Reading, _: bool) -> Self {}
    fn add(&mut self, _: &Reading, _: bool) {}
    fn merge(&mut self, _: &Self) {}
    fn heap_bytes(&self) -> usize {
        0
    }
    fn values(&self, _: u64, _: (f64, f64), _: &Stats) -> Vec<(Stat, Option<f64>)> {
        Vec::new()
    }
}

/// Adds `value` to the Neumaier sum `sum + compensation`.
fn neumaier(sum: &mut f64, compensation: &mut f64, value: f64) {
    let t = *sum + value;
    *compensation += if sum.abs() >= value.abs() {
        (*sum - t) + value
    } else {
        (value - t) + *sum
    };
    *sum = t;
}

/// `a + b` as a rounded sum and its exact error (Knuth's two-sum).
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

impl<X: Extra> Acc<X> {
    /// The aggregate of one reading.
    pub(crate) fn new(reading: &Reading, sketch: bool) -> Self {
        Acc {
            count: 1,
            min: reading.value,
            max: reading.value,
            sum: reading.value,
            compensation: 0.0,
            extra: X::first(reading, sketch),
        }
    }

    /// Adds a reading.
    pub(crate) fn add(&mut self, reading: &Reading, sketch: bool) {
        let value = reading.value;
        self.count += 1;
        // Ties between 0.0 and -0.0 are broken by sign, not by arrival order.
        if value < self.min || (value == self.min && value.is_sign_negative()) {
            self.min = value;
        }
        if value > self.max || (value == self.max && value.is_sign_positive()) {
            self.max = value;
        }
        neumaier(&mut self.sum, &mut self.compensation, value);
        self.extra.add(reading, sketch);
    }

    /// Adds the readings `other` aggregates (a pane of a hopping window).
    pub(crate) fn merge(&mut self, other: &Acc<X>) {
        self.count += other.count;
        if other.min < self.min || (other.min == self.min && other.min.is_sign_negative()) {
            self.min = other.min;
        }
        if other.max > self.max || (other.max == self.max && other.max.is_sign_positive()) {
            self.max = other.max;
        }
        neumaier(&mut self.sum, &mut self.compensation, other.sum);
        self.compensation += other.compensation;
        self.extra.merge(&other.extra);
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.extra.heap_bytes()
    }

    /// The row of `key` for the window `[start, end)`, with `stats`.
    pub(crate) fn row(&self, key: SensorKey, start: u64, end: u64, stats: &Stats) -> Aggregate {
        Aggregate {
            device: key.device,
            sensor: key.sensor,
            window_start: start,
            window_end: end,
            count: self.count,
            min: self.min,
            max: self.max,
            sum: self.sum + self.compensation,
            extra: self
                .extra
                .values(self.count, (self.sum, self.compensation), stats),
            revision: 0,
        }
    }
}

/// A reading's place in the order of event time, then origin, and its
/// value: the first and last readings of a window are the smallest and
/// largest of these (the value only breaks ties between duplicates).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Stamp {
    time: u64,
    partition: i32,
    offset: i64,
    value: f64,
}

impl Stamp {
    fn of(reading: &Reading) -> Self {
        Stamp {
            time: reading.time,
            partition: reading.partition,
            offset: reading.offset,
            value: reading.value,
        }
    }

    /// Whether this comes before `other`: a total order.
    fn before(&self, other: &Stamp) -> bool {
        (self.time, self.partition, self.offset)
            .cmp(&(other.time, other.partition, other.offset))
            .then(self.value.total_cmp(&other.value))
            .is_lt()
    }
}

/// What an aggregate keeps for the extra statistics: the sum of squares
/// (for standard deviations), the first and last readings, and a DDSketch
/// when percentiles are computed (empty, so never allocated, otherwise).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Extras {
    /// Σx², compensated as the sum is: each square is split exactly into
    /// `x·x` and its rounding error (`mul_add`), both summed, so that
    /// `squares + squares_compensation` is Σx² to about twice f64 precision.
    squares: f64,
    squares_compensation: f64,
    first: Stamp,
    last: Stamp,
    sketch: Sketch,
}

impl Extras {
    fn add_square(&mut self, value: f64) {
        let square = value * value;
        let error = value.mul_add(value, -square);
        neumaier(&mut self.squares, &mut self.squares_compensation, square);
        self.squares_compensation += error;
    }

    /// `Σ(x − mean)²` from `n`, Σx and Σx², each a double-double (`hi + lo`):
    /// `Σx² − (Σx)²/n` in double-double arithmetic, so the cancellation of
    /// the two large terms loses nothing at f64 precision.
    fn squared_deviations(n: u64, sum: (f64, f64), squares: (f64, f64)) -> f64 {
        let n = n as f64;
        let (s, s_lo) = two_sum(sum.0, sum.1);
        let (q, q_lo) = two_sum(squares.0, squares.1);
        // (Σx)² = p + e exactly but for the s_lo² term.
        let p = s * s;
        let e = s.mul_add(s, -p) + 2.0 * s * s_lo;
        // (p + e) / n = d + d_lo.
        let d = p / n;
        let d_lo = ((-d).mul_add(n, p) + e) / n;
        let (h, l) = two_sum(q, -d);
        (h + (l + q_lo - d_lo)).max(0.0)
    }
}

impl Extra for Extras {
    fn first(reading: &Reading, sketch: bool) -> Self {
        let stamp = Stamp::of(reading);
        let mut extras = Extras {
            squares: 0.0,
            squares_compensation: 0.0,
            first: stamp,
            last: stamp,
            sketch: Sketch::default(),
        };
        extras.add_square(reading.value);
        if sketch {
            extras.sketch.add(reading.value);
        }
        extras
    }

    fn add(&mut self, reading: &Reading, sketch: bool) {
        self.add_square(reading.value);
        let stamp = Stamp::of(reading);
        if stamp.before(&self.first) {
            self.first = stamp;
        }
        if self.last.before(&stamp) {
            self.last = stamp;
        }
        if sketch {
            self.sketch.add(reading.value);
        }
    }

    fn merge(&mut self, other: &Self) {
        neumaier(
            &mut self.squares,
            &mut self.squares_compensation,
            other.squares,
        );
        self.squares_compensation += other.squares_compensation;
        if other.first.before(&self.first) {
            self.first = other.first;
        }
        if self.last.before(&other.last) {
            self.last = other.last;
        }
        self.sketch.merge(&other.sketch);
    }

    fn heap_bytes(&self) -> usize {
        self.sketch.heap_bytes()
    }

    fn values(&self, count: u64, sum: (f64, f64), stats: &Stats) -> Vec<(Stat, Option<f64>)> {
        let deviations = || {
            let squares = (self.squares, self.squares_compensation);
            Extras::squared_deviations(count, sum, squares)
        };
        stats
            .extra()
            .iter()
            .map(|&stat| {
                let value = match stat {
                    Stat::Stddev => {
                        (count >= 2).then(|| (deviations() / (count - 1) as f64).sqrt())
                    }
                    Stat::StddevPop => Some((deviations() / count as f64).sqrt()),
                    Stat::First => Some(self.first.value),
                    Stat::Last => Some(self.last.value),
                    Stat::Percentile(p) => self.sketch.value_at_rank(p.rank(count)),
                    Stat::Count | Stat::Min | Stat::Max | Stat::Sum | Stat::Mean => None,
                };
                (stat, value)
            })
            .collect()
    }
}

/// Adds `reading` to its key's aggregate in `window` (keeping a sketch if
/// `sketch`), cloning the key only for a new sensor; returns how many bytes
/// the aggregate's heap grew by.
pub(crate) fn add_to<X: Extra>(
    window: &mut HashMap<SensorKey, Acc<X>>,
    reading: &Reading,
    sketch: bool,
) -> usize {
    match window.get_mut(&KeyRef::new(&reading.device, &reading.sensor)) {
        Some(acc) => {
            let before = acc.heap_bytes();
            acc.add(reading, sketch);
            acc.heap_bytes() - before
        }
        None => {
            let acc = Acc::new(reading, sketch);
            let bytes = acc.heap_bytes();
            window.insert(reading.key(), acc);
            bytes
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_state_stays_forty_bytes() {
        assert_eq!(std::mem::size_of::<Acc>(), 40);
        // The README gives this size.
        assert_eq!(std::mem::size_of::<Acc<Extras>>(), 40 + 104);
    }

    #[test]
    fn deviations_survive_a_large_mean() {
        // Values 1e9 + {0, 1, 2, 3}: Σ(x − mean)² = 5, where Σx² is 4e18.
        let readings: Vec<Reading> = (0..4)
            .map(|i| Reading::new("d", "s", i, 1e9 + i as f64, 0, i as i64))
            .collect();
        let mut acc: Acc<Extras> = Acc::new(&readings[0], false);
        readings[1..].iter().for_each(|r| acc.add(r, false));
        let squares = (acc.extra.squares, acc.extra.squares_compensation);
        let m2 = Extras::squared_deviations(4, (acc.sum, acc.compensation), squares);
        assert_eq!(m2, 5.0);
    }
}
