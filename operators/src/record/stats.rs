//! The statistics of a window row: one statistic ([`Stat`]), a percentile
//! ([`Percentile`]), and the set a window output computes ([`Stats`]).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One statistic of a window's readings: what a window output computes and
/// what a window rule compares with its threshold.
///
/// The variants' order is part of encoded rules (their fingerprints and
/// reloads): new statistics go at the end.
///
/// # Examples
/// ```
/// use weir_operators::record::{Percentile, Stat};
///
/// assert_eq!("p99.9".parse::<Stat>(), Ok(Stat::Percentile(Percentile::new(999).unwrap())));
/// assert_eq!(Stat::StddevPop.name(), "stddev_pop");
/// assert!("p100".parse::<Stat>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    /// Arithmetic mean.
    Mean,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Sum.
    Sum,
    /// Number of readings.
    Count,
    /// Sample standard deviation (divides by `count - 1`); absent for a
    /// window of one reading.
    Stddev,
    /// Population standard deviation (divides by `count`).
    StddevPop,
    /// The value of the reading with the smallest (event time, partition,
    /// offset).
    First,
    /// The value of the reading with the largest (event time, partition,
    /// offset).
    Last,
    /// A percentile, estimated by a DDSketch to 1% relative accuracy.
    Percentile(Percentile),
}

impl Stat {
    /// The statistics every window row carries.
    pub const BASIC: [Stat; 5] = [Stat::Count, Stat::Min, Stat::Max, Stat::Sum, Stat::Mean];

    /// The name a pipeline or rules file gives the statistic (`"max"`,
    /// `"stddev_pop"`, `"p99.9"`); also its column in window outputs.
    pub fn name(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Stat::Mean => "mean",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::Sum => "sum",
            Stat::Count => "count",
            Stat::Stddev => "stddev",
            Stat::StddevPop => "stddev_pop",
            Stat::First => "first",
            Stat::Last => "last",
            Stat::Percentile(p) => return Cow::Owned(p.to_string()),
        })
    }

    /// Whether every window row carries it (count, min, max, sum, mean).
    pub fn is_basic(self) -> bool {
        Stat::BASIC.contains(&self)
    }

    /// The place of an extra statistic in a row and among columns:
    /// stddev, stddev_pop, first, last, then percentiles in increasing order.
    fn rank(self) -> u32 {
        match self {
            Stat::Count | Stat::Min | Stat::Max | Stat::Sum | Stat::Mean => 0,
            Stat::Stddev => 1,
            Stat::StddevPop => 2,
            Stat::First => 3,
            Stat::Last => 4,
            Stat::Percentile(p) => 5 + u32::from(p.tenths()),
        }
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A statistic name that [`Stat::from_str`] does not accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseStatError {
    /// Not the name of a statistic.
    #[error(
        "unknown value {0:?}: expected one of \"count\", \"min\", \"max\", \"sum\", \"mean\", \
         \"stddev\", \"stddev_pop\", \"first\", \"last\", or a percentile \"pNN\" or \"pNN.N\" \
         (like \"p95\" or \"p99.9\")"
    )]
    Unknown(String),
    /// A percentile out of range, or not in its one spelling.
    #[error(
        "{0:?} is not a percentile: give \"pNN\" or \"pNN.N\" strictly between p0 and p100, \
         without leading zeros or a trailing \".0\" (like \"p5\", \"p95\" or \"p99.9\")"
    )]
    BadPercentile(String),
}

impl FromStr for Stat {
    type Err = ParseStatError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "mean" => Stat::Mean,
            "min" => Stat::Min,
            "max" => Stat::Max,
            "sum" => Stat::Sum,
            "count" => Stat::Count,
            "stddev" => Stat::Stddev,
            "stddev_pop" => Stat::StddevPop,
            "first" => Stat::First,
            "last" => Stat::Last,
            _ => match s.strip_prefix('p') {
                Some(digits)
                    if !digits.is_empty()
                        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
                {
                    Stat::Percentile(
                        Percentile::parse(digits)
                            .ok_or_else(|| ParseStatError::BadPercentile(s.to_owned()))?,
                    )
                }
                _ => return Err(ParseStatError::Unknown(s.to_owned())),
            },
        })
    }
}

/// A percentile strictly between 0 and 100, in tenths of a percent: `p95`
/// is 950 tenths, `p99.9` is 999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Percentile(u16);

impl Percentile {
    /// The percentile of `tenths` tenths of a percent, if strictly between 0
    /// and 1000.
    pub fn new(tenths: u16) -> Option<Self> {
        (1..=999).contains(&tenths).then_some(Percentile(tenths))
    }

    /// Tenths of a percent (1 to 999).
    pub fn tenths(self) -> u16 {
        self.0
    }

    /// The rank of this percentile among `n` values, from 1 (the smallest):
    /// `⌈q·n⌉` for `q = tenths / 1000`, at least 1. Exact integer arithmetic.
    pub fn rank(self, n: u64) -> u64 {
        let scaled = u128::from(n) * u128::from(self.0);
        (scaled.div_ceil(1_000) as u64).max(1)
    }

    /// `NN` or `NN.N` (the text after `p`), in its one spelling: no leading
    /// zero (except `0.N`), no trailing `.0`.
    fn parse(text: &str) -> Option<Self> {
        let (whole, tenth) = match text.split_once('.') {
            Some((whole, tenth)) => (whole, Some(tenth)),
            None => (text, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || whole.len() > 2 || (whole.len() == 2 && whole.starts_with('0')) {
            return None;
        }
        let tenth = match tenth {
            None => 0,
            Some(t) if digits(t) && t.len() == 1 && t != "0" => t.parse::<u16>().ok()?,
            Some(_) => return None,
        };
        Percentile::new(whole.parse::<u16>().ok()? * 10 + tenth)
    }
}

impl fmt::Display for Percentile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 % 10 {
            0 => write!(f, "p{}", self.0 / 10),
            tenth => write!(f, "p{}.{tenth}", self.0 / 10),
        }
    }
}

/// The statistics a window output computes: count, min, max, sum and mean
/// always, and any extra ones (standard deviations, first and last values,
/// percentiles). The default is the basic five.
///
/// Extra statistics are kept in one order (stddev, stddev_pop, first, last,
/// then percentiles in increasing order), the order of their values in a
/// window row and of their columns.
///
/// # Examples
/// ```
/// use weir_operators::record::{Stat, Stats};
///
/// let stats: Stats = ["p99", "count", "stddev", "p50"]
///     .iter()
///     .map(|s| s.parse::<Stat>().unwrap())
///     .collect();
/// let names: Vec<_> = stats.extra().iter().map(|s| s.name()).collect();
/// assert_eq!(names, ["stddev", "p50", "p99"]);
/// assert!(stats.contains(Stat::Mean) && !stats.contains(Stat::First));
/// assert!(Stats::default().is_basic());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stats {
    /// The extra statistics, in their order, each once.
    extra: Vec<Stat>,
}

impl Stats {
    /// Count, min, max, sum and mean: what every window row carries.
    pub fn basic() -> Self {
        Stats::default()
    }

    /// These statistics and `stat`.
    pub fn with(mut self, stat: Stat) -> Self {
        self.insert(stat);
        self
    }

    /// Adds `stat` (a basic statistic is always there).
    pub fn insert(&mut self, stat: Stat) {
        if stat.is_basic() {
            return;
        }
        if let Err(at) = self.extra.binary_search_by_key(&stat.rank(), |s| s.rank()) {
            self.extra.insert(at, stat);
        }
    }

    /// Whether rows carry `stat`.
    pub fn contains(&self, stat: Stat) -> bool {
        stat.is_basic() || self.extra.contains(&stat)
    }

    /// Whether every statistic of `other` is here.
    pub fn covers(&self, other: &Stats) -> bool {
        other.extra.iter().all(|s| self.extra.contains(s))
    }

    /// The extra statistics, in their order.
    pub fn extra(&self) -> &[Stat] {
        &self.extra
    }

    /// Whether only the basic statistics are computed.
    pub fn is_basic(&self) -> bool {
        self.extra.is_empty()
    }

    /// The percentiles, in increasing order.
    pub fn percentiles(&self) -> impl Iterator<Item = Percentile> + '_ {
        self.extra.iter().filter_map(|s| match s {
            Stat::Percentile(p) => Some(*p),
            _ => None,
        })
    }

    /// Whether some percentile is computed (a sketch is kept per key).
    pub fn has_percentiles(&self) -> bool {
        self.percentiles().next().is_some()
    }

    /// Every statistic: the basic five, then the extra ones.
    pub fn all(&self) -> impl Iterator<Item = Stat> + '_ {
        Stat::BASIC.into_iter().chain(self.extra.iter().copied())
    }
}

impl FromIterator<Stat> for Stats {
    fn from_iter<I: IntoIterator<Item = Stat>>(iter: I) -> Self {
        let mut stats = Stats::default();
        iter.into_iter().for_each(|s| stats.insert(s));
        stats
    }
}

impl fmt::Display for Stats {
    /// The names, comma separated: `count, min, max, sum, mean, p95`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.all().map(Stat::name).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_names_have_one_spelling() {
        for (text, tenths) in [
            ("p50", 500),
            ("p5", 50),
            ("p99.9", 999),
            ("p0.1", 1),
            ("p1", 10),
        ] {
            let stat: Stat = text.parse().unwrap();
            assert_eq!(stat, Stat::Percentile(Percentile(tenths)), "{text}");
            assert_eq!(stat.name(), text);
        }
        for bad in [
            "p0", "p100", "p1000", "p05", "p95.0", "p99.99", "p.5", "p9.", "p0.0", "p9.5.5",
        ] {
            assert_eq!(
                bad.parse::<Stat>(),
                Err(ParseStatError::BadPercentile(bad.into())),
                "{bad}"
            );
        }
        for unknown in ["px", "p", "p-5", "p+5", "median", "P95", ""] {
            assert_eq!(
                unknown.parse::<Stat>(),
                Err(ParseStatError::Unknown(unknown.into())),
                "{unknown}"
            );
        }
    }

    #[test]
    fn ranks_follow_the_ceiling_rule() {
        let p50 = Percentile(500);
        // ⌈0.5·n⌉, at least 1.
        assert_eq!([0, 1, 2, 3, 4, 5].map(|n| p50.rank(n)), [1, 1, 1, 2, 2, 3]);
        assert_eq!(Percentile(999).rank(1_000), 999);
        assert_eq!(Percentile(999).rank(1_001), 1_000);
        assert_eq!(Percentile(1).rank(u64::MAX), u64::MAX.div_ceil(1_000));
    }

    #[test]
    fn every_name_parses_back() {
        let all = [
            Stat::Mean,
            Stat::Min,
            Stat::Max,
            Stat::Sum,
            Stat::Count,
            Stat::Stddev,
            Stat::StddevPop,
            Stat::First,
            Stat::Last,
            Stat::Percentile(Percentile(955)),
        ];
        for stat in all {
            assert_eq!(stat.name().parse::<Stat>(), Ok(stat));
        }
        let stats: Stats = all.into_iter().rev().collect();
        assert_eq!(
            stats.to_string(),
            "count, min, max, sum, mean, stddev, stddev_pop, first, last, p95.5"
        );
    }
}
