//! Where each source partition stands.

use std::collections::BTreeMap;

use super::{lock, Metrics};

/// Where one source partition stands, for operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionStatus {
    /// Records read from it by this run.
    pub records: u64,
    /// Bytes of record values read from it by this run.
    pub bytes: u64,
    /// The next offset to read.
    pub position: i64,
    /// Its end offset, when known (bounded reads, replays).
    pub end: Option<i64>,
    /// The broker's end offset (high watermark) last reported, if any.
    pub high_watermark: Option<i64>,
    /// Its watermark (ms of event time), once it delivered a reading.
    pub watermark: Option<u64>,
    /// Declared idle: it no longer holds the watermark back.
    pub idle: bool,
    /// Held back by watermark alignment: too far ahead of the readings'
    /// frontier, it is not read until the frontier catches up.
    pub held: bool,
}

impl Metrics {
    /// Records where the partitions of `topic` stand.
    pub fn set_partitions(
        &self,
        topic: &str,
        status: impl IntoIterator<Item = (i32, PartitionStatus)>,
    ) {
        let mut partitions = lock(&self.partitions);
        for (p, s) in status {
            partitions.insert((topic.to_owned(), p), s);
        }
    }

    /// Where every source partition stands, by (topic, partition).
    pub fn partitions(&self) -> BTreeMap<(String, i32), PartitionStatus> {
        lock(&self.partitions).clone()
    }
}
