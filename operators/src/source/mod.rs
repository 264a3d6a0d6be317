//! Sources: where readings come from. One source operator drives a poller
//! for each kind of source: Kafka ([`kafka`]), a topic held in memory
//! ([`memory`]) and a recording ([`recording`]). Every poller hands its raw
//! records to the same ingest: decoding, lateness judged against each
//! partition's own watermark, idle partitions, watermark alignment and the
//! resume bookkeeping of checkpoints. So a recording replays through
//! exactly the logic the live run used.
//!
//! The parts: `operator.rs` (the timely operator and the `Poller` it
//! drives), `ingest.rs` (decoding, lateness, the watermark), `idle.rs`,
//! `align.rs` and `resume.rs`.

mod align;
pub mod control;
mod idle;
mod ingest;
mod item;
pub mod kafka;
pub mod memory;
mod operator;
pub mod recording;
mod resume;

use timely::dataflow::Stream;

use crate::dead_letter::DeadLetter;
use crate::reading::Reading;

pub(crate) use align::Alignment;
pub use control::{kafka_control, recorded_control};
pub(crate) use ingest::Ingest;
pub(crate) use item::Decode;
pub use item::CONTROL_RECORDING;
pub use kafka::{EndOffset, KafkaSource, KafkaSourceConfig, StartOffset};
pub use memory::{MemorySource, MemoryTopic};
pub(crate) use operator::{ingest_source, Poller};
pub use recording::RecordingSource;
pub(crate) use resume::{restored_positions, PartitionResume, PartitionStart};

/// What a source returns: the readings, and the dead letters (undecodable
/// or late records, with reason and origin).
pub type SourceStreams<'scope> = Items<'scope, Reading>;

/// What a source of `T` returns: its items and its dead letters.
pub type Items<'scope, T> = (
    Stream<'scope, u64, Vec<T>>,
    Stream<'scope, u64, Vec<DeadLetter>>,
);

#[cfg(test)]
mod tests;
