//! Checkpoints: consistent snapshots of a running pipeline, taken at an
//! event-time frontier, from which a restarted run resumes with nothing lost
//! and nothing repeated.
//!
//! # The protocol
//! Worker 0 runs a trigger that holds a capability following the sources'
//! frontier. Every `interval` (wall clock) it sends a [`Marker`] at its
//! capability's time `F` to every worker. While the marker is in flight no
//! stateful operator can see its frontier pass `F`, so each one, once its
//! frontier reaches `F`, brings its state to exactly `F` (every input before
//! `F` applied, nothing at or after it), writes that state as its part, and
//! goes on. Each worker acknowledges its parts once all are written; when
//! worker 0 has the acknowledgements of every worker it writes the manifest
//! that makes the checkpoint complete, and only then makes the Parquet files
//! the checkpoint covers visible.
//!
//! What a checkpoint at `F` holds:
//! - per source partition, an offset to re-read from and the partition's
//!   largest event time before it, so that every lateness decision after a
//!   restart is the one the first run made. Re-reading starts early enough
//!   to rebuild every window still open at `F`;
//! - alert rule states as of `F`;
//! - the Parquet rows before `F` not yet in a visible file, and the files
//!   waiting for the checkpoint to complete;
//! - per Kafka sink, the end offsets of its topic's partitions, so a restart
//!   can read back what was delivered after `F` and not deliver it again.
//!
//! Everything at or after `F` is recomputed from the re-read input: results
//! depend only on the input, so the recomputation gives the same records,
//! with the same ids.

mod manifest;
mod session;
mod store;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::run::Reload;
use crate::storage::{Location, Upload};

pub use manifest::Manifest;
pub use session::{list, CheckpointInfo, Restored, Session};
pub use store::{CheckpointStore, LocalDir};

/// How often and where checkpoints are taken.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointConfig {
    /// Where the checkpoints are: a local directory, or a prefix of an object
    /// store. In a cluster every process must reach the same location: a
    /// bucket, or a shared file system.
    pub dir: Location,
    /// Wall-clock time between two checkpoints.
    pub interval: Duration,
    /// Complete checkpoints kept (at least 1); older ones are deleted.
    pub keep: usize,
}

impl CheckpointConfig {
    /// Checkpoints in `dir` every 10 s, keeping the last 3.
    pub fn new(dir: impl Into<Location>) -> Self {
        CheckpointConfig {
            dir: dir.into(),
            interval: Duration::from_secs(10),
            keep: 3,
        }
    }
}

/// Asks every stateful operator to snapshot its state as of `frontier`.
/// Travels at timely time `frontier`, or, for the last checkpoint of a run
/// whose input ended ([`Marker::END`]), at the sources' last frontier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// Checkpoint number, increasing.
    pub id: u64,
    /// The event-time frontier of the checkpoint.
    pub frontier: u64,
    /// The last checkpoint of a run asked to stop: operators bring their
    /// state to its frontier and no further. Once the stopped sources let go of their capabilities, the
    /// frontier may pass records they never read, so nothing beyond this
    /// frontier is complete.
    #[serde(default)]
    pub last: bool,
    /// The version of the rule set in force from this marker on.
    #[serde(default)]
    pub rules_version: u64,
    /// A reload: the rule set in force from this marker's frontier on.
    /// Observations before the frontier were judged by the rules before.
    #[serde(default)]
    pub reload: Option<Reload>,
}

impl Marker {
    /// The frontier of a checkpoint taken after the input ended (a bounded
    /// run that completed): everything was written.
    pub const END: u64 = u64::MAX;

    /// The frontier operators bring their state to: `None` for the end of
    /// the input.
    pub fn until(&self) -> Option<u64> {
        (self.frontier != Marker::END).then_some(self.frontier)
    }
}

/// One operator's state in one checkpoint, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Object name in the store.
    pub name: String,
    /// The operator it belongs to.
    pub op: String,
    /// The worker that wrote it.
    pub worker: usize,
    /// Size in bytes.
    pub bytes: u64,
    /// CRC-32 of the bytes.
    pub crc32: u32,
}

/// A file that becomes visible when its checkpoint completes: renamed from
/// `temp` to `path`, or, on an object store, its upload completed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PendingFile {
    /// The hidden name it was written under (for an upload: its final URL).
    pub temp: PathBuf,
    /// Its final name (for an upload: its URL).
    pub path: PathBuf,
    /// The multipart upload to complete, on an object store. (Always
    /// written: acknowledgements travel in bincode, which skips nothing.)
    #[serde(default)]
    pub upload: Option<PendingUpload>,
}

/// A multipart upload a checkpoint completes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PendingUpload {
    /// The URL of the location the file is below.
    pub root: String,
    /// The file's name below `root`.
    pub name: String,
    /// The object below `root` that records the upload until it completes
    /// (so that a run that resumes without it can abort it).
    pub marker: String,
    /// The upload.
    pub upload: Upload,
}

/// A worker's parts of one checkpoint, sent to worker 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The checkpoint.
    pub marker: Marker,
    /// The worker.
    pub worker: usize,
    /// Its parts.
    pub parts: Vec<PartInfo>,
    /// Files to make visible once the checkpoint is complete.
    pub files: Vec<PendingFile>,
}

/// The current format of checkpoints. 2: rule states carry the off-delay's
/// clear spell. 3: and chattering. 4: and combination rules' conditions.
/// 5: manifests carry their own checksum, and Parquet parts the files
/// their checkpoints made visible. 6: window rows in Parquet parts carry
/// their extra statistics.
pub const FORMAT: u32 = 6;

/// A checkpoint that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store could not be read or written.
    #[error("checkpoint store {location}: cannot {action}: {source}")]
    Io {
        /// The store.
        location: String,
        /// What failed.
        action: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A manifest or part is damaged or missing.
    #[error("checkpoint {id} in {location} is unusable: {problem}; start from scratch with --from-scratch (outputs will be written again)")]
    Corrupt {
        /// The store.
        location: String,
        /// The checkpoint.
        id: u64,
        /// What is wrong.
        problem: String,
    },
    /// Parts exist but no checkpoint ever completed.
    #[error("{location} holds parts of checkpoint(s) {ids:?} but no complete checkpoint, so the run cannot know where to resume; start from scratch with --from-scratch (outputs will be written again)")]
    NoComplete {
        /// The store.
        location: String,
        /// The incomplete checkpoints.
        ids: Vec<u64>,
    },
    /// The checkpoint belongs to another pipeline.
    #[error("checkpoint {id} in {location} was written by pipeline `{found}`, not `{expected}`")]
    OtherPipeline {
        /// The store.
        location: String,
        /// The checkpoint.
        id: u64,
        /// Its pipeline.
        found: String,
        /// This pipeline.
        expected: String,
    },
}

/// For crash tests, built with the `failpoints` feature only: the process
/// aborts where the fail point `checkpoint-<point>` is set to `return` (by
/// `FAILPOINTS`, e.g. `checkpoint-manifest=2*off->return` for the third
/// time). The points: `part` (a part written), `manifest` (a manifest
/// written, its files not yet renamed), `rename` (one file of a completed
/// checkpoint renamed) and `published` (every file of a completed
/// checkpoint that made some visible renamed). Does nothing otherwise.
pub(crate) fn crash_point(point: &str) {
    #[cfg(feature = "failpoints")]
    if fail::eval(&format!("checkpoint-{point}"), |_| ()).is_some() {
        eprintln!("failpoint: aborting at checkpoint-{point}");
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = point;
}

#[cfg(test)]
mod object_tests;

#[cfg(test)]
mod tests;
