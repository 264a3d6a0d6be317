//! Recordings: a source topic's records captured into compressed Parquet
//! files, to be replayed later with exactly the results of the live run.
//!
//! A recording is a directory:
//!
//! ```text
//! DIR/recording.json                  {"format": 1, "topic": "readings"}
//! DIR/segments/p00003-<first>-<last>.parquet
//!                                     records of partition 3, offsets first..=last (20 digits each)
//! DIR/marks/p00003.json               idle marks of partition 3: [[offset, watermark], ...]
//! ```
//!
//! Every segment has the columns `partition` (int32), `offset` (int64),
//! `timestamp` (timestamp[ms, UTC], null when the record has none), `key`
//! (binary, nullable), `value` (binary) and `headers` (list of struct
//! `{key: utf8, value: binary}`), in offset order, zstd-compressed. DuckDB
//! reads a recording with `SELECT * FROM 'DIR/segments/*.parquet'`.
//!
//! Idle marks are the wall-clock decisions of a live run: from `offset` on,
//! the partition's records were judged against a source watermark of at
//! least `watermark`, because the partition had been idle. A replay applies
//! them, so its lateness decisions are the live run's.
//!
//! Segments are written under a temporary name and renamed when complete,
//! so a recording interrupted at any moment keeps every complete segment,
//! and recording again continues after the last recorded offset of each
//! partition.

mod reader;
mod remote;
mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use reader::{PartitionReader, Recording, Segment};
pub use writer::{RecordRef, Recorder};

/// The version of the recording format this code writes and reads.
pub const FORMAT: u32 = 1;

/// What `recording.json` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// The format version.
    pub format: u32,
    /// The recorded topic (dead letters of a replay name it).
    pub topic: String,
}

/// A failure to write or read a recording; each names the file concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// A file system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A segment could not be written or read as Parquet.
    #[error("{} is not a readable recording segment: {detail}", path.display())]
    Segment {
        /// The segment.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The directory is not a recording, or one this version cannot read.
    #[error("{} is not a usable recording: {detail}", path.display())]
    Invalid {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl RecordingError {
    fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Self + 'a {
        move |source| RecordingError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }

    fn segment(path: &Path) -> impl FnOnce(String) -> Self + '_ {
        move |detail| RecordingError::Segment {
            path: path.to_owned(),
            detail,
        }
    }
}

fn info_path(dir: &Path) -> PathBuf {
    dir.join("recording.json")
}

fn segments_dir(dir: &Path) -> PathBuf {
    dir.join("segments")
}

fn marks_path(dir: &Path, partition: i32) -> PathBuf {
    dir.join("marks").join(format!("p{partition:05}.json"))
}

fn segment_name(partition: i32, first: i64, last: i64) -> String {
    format!("p{partition:05}-{first:020}-{last:020}.parquet")
}

/// Parses a segment file name into (partition, first, last).
fn parse_segment_name(name: &str) -> Option<(i32, i64, i64)> {
    let stem = name.strip_prefix('p')?.strip_suffix(".parquet")?;
    let mut parts = stem.split('-');
    let partition = parts.next()?.parse().ok()?;
    let first = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((partition, first, last))
}

/// Writes `bytes` to `path` atomically: a temporary file, then a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RecordingError> {
    // A temporary name of this writer's own: the workers of a run open the
    // recording together, and each may write the same file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.{}-{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(RecordingError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(RecordingError::io("rename into place", path))
}

#[cfg(test)]
mod tests;
