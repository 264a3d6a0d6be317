//! The Parquet sink: window aggregates as Hive-partitioned Parquet files, and its config.

use std::fmt;
use std::str::FromStr;

use crate::record::Stats;
use crate::storage::Location;

mod error;
mod health;
pub mod resume;
mod row;
pub mod sink;
mod writer;
pub use resume::Published;
pub use sink::*;

/// Where and how the Parquet sink writes its files.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetSinkConfig {
    /// Root directory, or prefix of an object store. Partitions
    /// `date=YYYY-MM-DD/hour=HH/` are created below it.
    pub dir: Location,
    /// Compression codec of every column.
    pub compression: ParquetCompression,
    /// Largest number of rows in one row group (at least 1; 0 counts as 1).
    pub row_group_rows: usize,
    /// Largest number of rows in one file; a bigger partition is split over
    /// several files (at least 1; 0 counts as 1).
    pub max_rows_per_file: usize,
    /// The statistics of the rows: each extra one is a nullable `Float64`
    /// column after the basic ones. The sink of a
    /// [`Windows`](crate::Windows) stream takes its windows' statistics.
    pub stats: Stats,
}

impl ParquetSinkConfig {
    /// Default of [`ParquetSinkConfig::row_group_rows`].
    pub const DEFAULT_ROW_GROUP_ROWS: usize = 65_536;
    /// Default of [`ParquetSinkConfig::max_rows_per_file`].
    pub const DEFAULT_MAX_ROWS_PER_FILE: usize = 1_000_000;

    /// A config writing below `dir`, with zstd level 3, row groups of 65 536
    /// rows, at most 1 000 000 rows per file, and the basic statistics.
    pub fn new(dir: impl Into<Location>) -> Self {
        ParquetSinkConfig {
            dir: dir.into(),
            compression: ParquetCompression::default(),
            row_group_rows: Self::DEFAULT_ROW_GROUP_ROWS,
            max_rows_per_file: Self::DEFAULT_MAX_ROWS_PER_FILE,
            stats: Stats::basic(),
        }
    }
}

/// Compression codec of a Parquet file. Parsed from `zstd`, `zstd(LEVEL)`,
/// `zstd:LEVEL`, `snappy`, `none` or `uncompressed` (case-insensitive).
#[derive(Debug, Clone, PartialEq)]
pub enum ParquetCompression {
    /// Zstandard at the given level (1 to 22; the default is 3).
    Zstd(i32),
    /// Snappy.
    Snappy,
    /// No compression.
    Uncompressed,
}

impl ParquetCompression {
    /// The zstd level used when none is given.
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
    /// The zstd levels accepted by [`FromStr`].
    pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=22;
}

impl Default for ParquetCompression {
    /// Zstd at level 3: small files, cheap to write.
    fn default() -> Self {
        ParquetCompression::Zstd(Self::DEFAULT_ZSTD_LEVEL)
    }
}

impl fmt::Display for ParquetCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParquetCompression::Zstd(level) => write!(f, "zstd({level})"),
            ParquetCompression::Snappy => f.write_str("snappy"),
            ParquetCompression::Uncompressed => f.write_str("none"),
        }
    }
}

/// A compression name that [`ParquetCompression::from_str`] does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid Parquet compression {input:?}: expected one of \"zstd\", \"zstd(LEVEL)\" or \
     \"zstd:LEVEL\" with LEVEL from 1 to 22, \"snappy\", \"none\" or \"uncompressed\""
)]
pub struct ParseCompressionError {
    /// The text that was given.
    pub input: String,
}

impl FromStr for ParquetCompression {
    type Err = ParseCompressionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        let level = name
            .strip_prefix("zstd(")
            .and_then(|rest| rest.strip_suffix(')'))
            .or_else(|| name.strip_prefix("zstd:"));
        let error = || ParseCompressionError {
            input: s.to_owned(),
        };
        match (name.as_str(), level) {
            ("zstd", _) => Ok(ParquetCompression::default()),
            ("snappy", _) => Ok(ParquetCompression::Snappy),
            ("none" | "uncompressed", _) => Ok(ParquetCompression::Uncompressed),
            (_, Some(level)) => match level.trim().parse() {
                Ok(level) if Self::ZSTD_LEVELS.contains(&level) => {
                    Ok(ParquetCompression::Zstd(level))
                }
                _ => Err(error()),
            },
            _ => Err(error()),
        }
    }
}

#[cfg(test)]
mod tests;
