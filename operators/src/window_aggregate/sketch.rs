//! A DDSketch of a window's values, for its percentiles: 1% relative
//! accuracy, and results that depend only on the multiset of values.
//!
//! Written here rather than taken from the `sketches-ddsketch` crate: that
//! crate's dense stores collapse their lowest bins once a bin limit is hit
//! (so what a percentile reports then depends on when the limit was hit),
//! count every value within ±1e-9 as zero, fix the rank rule at
//! `⌊q·(n − 1)⌋`, and allocate at least 128 bins (1 KiB) per sign for a
//! sketch of one value. Windows keep one sketch per key (per pane for
//! hopping windows), mostly of a few dozen values, so a sorted vector of
//! the buckets in use (8 bytes each), with no limit and no collapsing, is
//! both smaller and exactly order-independent.

use serde::{Deserialize, Serialize};

/// `ln γ` for `γ = (1 + α) / (1 − α)` with `α = 0.01` (rounded down, so
/// the accuracy `(γ − 1) / (γ + 1)` is at most 1%).
const LN_GAMMA: f64 = 0.020_000_666_706_669_435;

/// Relative accuracy of every percentile: `|estimate − exact| ≤ 1% · |exact|`
/// for the exact value at the same rank.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Added to a positive value's bucket key `⌈log_γ v⌉` (from about −37 220
/// for the smallest subnormal to 35 488 for `f64::MAX`), so that every
/// bucket index of a positive value is above 0.
const BIAS: i32 = 40_000;

/// Bits of a bucket's count in its packed form; the index is above them.
const COUNT_BITS: u32 = 44;
/// The largest count of one bucket: counts saturate there (1.7·10^13
/// values of one key in one bucket of one window).
const MAX_COUNT: u64 = (1 << COUNT_BITS) - 1;
/// Added to a bucket index (at most 75 488 in magnitude) before packing, so
/// packed buckets sort as their indices do.
const INDEX_OFFSET: i64 = 1 << 19;

/// The buckets of a window's values: bucket `BIAS + k` holds the positive
/// values in `(γ^(k−1), γ^k]`, bucket `−(BIAS + k)` the negative values
/// whose magnitude is there, and bucket 0 the zeros (of either sign).
/// Bucket indices grow with the values they hold, so the buckets, sorted by
/// index, are in the order of their values.
///
/// The buckets and their counts are a function of the multiset of values
/// added (and merged): so are the percentiles, bit for bit, whatever the
/// order of the values or the grouping of merges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Sketch {
    /// The buckets in use, sorted, each packed in 8 bytes: its index plus
    /// `INDEX_OFFSET` above `COUNT_BITS`, its count (at least 1) below.
    buckets: Vec<u64>,
}

/// A bucket's packed form.
fn pack(index: i32, count: u64) -> u64 {
    ((i64::from(index) + INDEX_OFFSET) as u64) << COUNT_BITS | count.min(MAX_COUNT)
}

/// The index of a packed bucket.
fn index_of(bucket: u64) -> i32 {
    ((bucket >> COUNT_BITS) as i64 - INDEX_OFFSET) as i32
}

/// The count of a packed bucket.
fn count_of(bucket: u64) -> u64 {
    bucket & MAX_COUNT
}

impl Sketch {
    /// The bucket of a finite value.
    fn index(value: f64) -> i32 {
        if value == 0.0 {
            return 0;
        }
        let key = (value.abs().ln() / LN_GAMMA).ceil() as i32 + BIAS;
        if value > 0.0 {
            key
        } else {
            -key
        }
    }

    /// The value a bucket reports: `2γ^k / (1 + γ)` for bucket `BIAS + k`,
    /// within 1% of every value of the bucket.
    fn representative(index: i32) -> f64 {
        if index == 0 {
            return 0.0;
        }
        let k = f64::from(index.abs() - BIAS);
        let gamma = LN_GAMMA.exp();
        // exp(k ln γ) · 2 / (1 + γ), without overflowing before the product.
        let magnitude = (k * LN_GAMMA - (0.5 * (1.0 + gamma)).ln())
            .exp()
            .min(f64::MAX);
        if index > 0 {
            magnitude
        } else {
            -magnitude
        }
    }

    /// Adds one value (finite, as readings are).
    pub(crate) fn add(&mut self, value: f64) {
        let index = Self::index(value);
        match self.buckets.binary_search_by_key(&index, |b| index_of(*b)) {
            Ok(at) => {
                if count_of(self.buckets[at]) < MAX_COUNT {
                    self.buckets[at] += 1;
                }
            }
            Err(at) => {
                if self.buckets.is_empty() {
                    // Most windows use a few buckets: no growing one by one.
                    self.buckets.reserve_exact(8);
                }
                self.buckets.insert(at, pack(index, 1));
            }
        }
    }

    /// Adds the values `other` holds: the counts of each bucket add up.
    pub(crate) fn merge(&mut self, other: &Sketch) {
        if other.buckets.is_empty() {
            return;
        }
        if self.buckets.is_empty() {
            self.buckets.clone_from(&other.buckets);
            return;
        }
        let mut merged = Vec::with_capacity(self.buckets.len() + other.buckets.len());
        let (mut a, mut b) = (
            self.buckets.iter().peekable(),
            other.buckets.iter().peekable(),
        );
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if index_of(x) == index_of(y) => {
                    a.next();
                    b.next();
                    pack(index_of(x), count_of(x) + count_of(y))
                }
                (Some(&&x), Some(&&y)) if x < y => *a.next().expect("peeked"),
                (_, Some(_)) => *b.next().expect("peeked"),
                (Some(_), None) => *a.next().expect("peeked"),
                (None, None) => break,
            };
            merged.push(next);
        }
        self.buckets = merged;
    }

    /// The representative value of the bucket holding the value of rank
    /// `rank` (from 1, the smallest); `None` if fewer values were added.
    pub(crate) fn value_at_rank(&self, rank: u64) -> Option<f64> {
        let mut seen = 0;
        for &bucket in &self.buckets {
            seen += count_of(bucket);
            if seen >= rank {
                return Some(Self::representative(index_of(bucket)));
            }
        }
        None
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accuracy_is_one_percent() {
        let gamma = LN_GAMMA.exp();
        let alpha = (gamma - 1.0) / (gamma + 1.0);
        assert!(alpha <= RELATIVE_ACCURACY && alpha > 0.999_999 * RELATIVE_ACCURACY);
    }

    /// Every value, from the smallest subnormal to the largest float, lands
    /// in a bucket whose representative is within 1% of it, with the sign.
    #[test]
    fn every_magnitude_is_within_the_accuracy_of_its_bucket() {
        let mut values = vec![
            f64::MIN_POSITIVE,
            f64::MAX,
            1.0,
            1e-9,
            1e-12,
            123.456,
            1e300,
        ];
        let mut x = 1e-300;
        while x < 1e300 {
            values.push(x);
            x *= 1.37;
        }
        for v in values {
            for v in [v, -v] {
                let got = Sketch::representative(Sketch::index(v));
                assert!(
                    (got - v).abs() <= RELATIVE_ACCURACY * (1.0 + 1e-9) * v.abs(),
                    "{v}: {got}"
                );
            }
        }
        assert_eq!(Sketch::representative(Sketch::index(-0.0)), 0.0);
        assert_eq!(Sketch::index(0.0), 0);
        // Subnormals keep their sign and bucket order, if not the accuracy.
        assert!(Sketch::index(5e-324) > 0 && Sketch::index(-5e-324) < 0);
    }

    #[test]
    fn buckets_follow_the_order_of_values() {
        let mut values: Vec<f64> = vec![-1e10, -3.0, -1e-5, -0.0, 0.0, 1e-5, 2.0, 2.01, 1e10];
        values.sort_by(f64::total_cmp);
        let indices: Vec<i32> = values.iter().map(|v| Sketch::index(*v)).collect();
        assert!(indices.windows(2).all(|w| w[0] <= w[1]), "{indices:?}");
    }

    #[test]
    fn ranks_walk_the_buckets() {
        let mut s = Sketch::default();
        for v in [5.0, -2.0, 0.0, 5.0, 100.0] {
            s.add(v);
        }
        let at = |r| s.value_at_rank(r).unwrap();
        assert!((at(1) + 2.0).abs() <= 0.02);
        assert_eq!(at(2), 0.0);
        assert!((at(3) - 5.0).abs() <= 0.05 && at(3) == at(4));
        assert!((at(5) - 100.0).abs() <= 1.0);
        assert_eq!(s.value_at_rank(6), None);
    }

    #[test]
    fn packed_buckets_keep_index_and_count() {
        for index in [0, 1, -1, BIAS + 35_488, -(BIAS + 35_488), BIAS - 37_221] {
            for count in [1, 7, MAX_COUNT] {
                let bucket = pack(index, count);
                assert_eq!((index_of(bucket), count_of(bucket)), (index, count));
            }
        }
        assert!(pack(-5, MAX_COUNT) < pack(-4, 1) && pack(0, 9) < pack(1, 1));
        // Counts saturate instead of spilling into the index.
        let mut s = Sketch {
            buckets: vec![pack(3, MAX_COUNT)],
        };
        s.merge(&Sketch {
            buckets: vec![pack(3, 5)],
        });
        assert_eq!(s.buckets, [pack(3, MAX_COUNT)]);
    }
}
