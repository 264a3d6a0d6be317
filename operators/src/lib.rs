//! Timely dataflow operators for Weir: the Kafka source and sink, decoding,
//! event-time windows, alert rules and the Parquet sink, plus the records that
//! flow between them.
//!
//! Every operator is an extension trait on timely's `Stream` with one verb
//! method, so a pipeline reads as a chain of verbs:
//!
//! ```text
//! kafka source ─► readings ─► window_aggregate ─► parquet_sink
//!                          └► evaluate_alerts   ─► kafka_sink
//! ```
//!
//! Time is event time in milliseconds (`u64`). A record travels under a
//! capability no later than its own event time, and operators close windows and
//! fire duration rules only when the input frontier passes the moment in
//! question, never on the wall clock.

#![deny(missing_docs)]

pub mod alarm;
pub mod alert;
pub mod checkpoint;
pub mod connect;
pub mod decode;
pub mod kafka;
pub mod metrics;
pub mod record;
pub mod recording;
pub mod rules;
pub mod run;
pub mod sink;
pub mod source;
pub mod storage;
pub mod window_aggregate;

// The paths of modules before they moved into their floors.
pub use record::{dead_letter, hash, reading};
pub use run::control;
pub use sink as output;
pub use sink::parquet;
pub use source::memory;

pub use alert::{Alert, AlertState, EvaluateAlerts, Rule, RuleInput, RuleSet};
pub use checkpoint::CheckpointConfig;
pub use connect::RunIo;
pub use dead_letter::{DeadLetter, DeadLetterReason};
pub use decode::{DecodeConfig, Decoder, TimeFormat};
pub use kafka::{KafkaSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig, StartOffset};
pub use memory::{MemorySource, MemoryTopic};
pub use metrics::Metrics;
pub use parquet::{ParquetSink, ParquetSinkConfig};
pub use reading::{Name, Reading, SensorKey, WindowAggregate};
pub use record::{Percentile, Stat, Stats};
pub use run::{Env, Reload, Run, RunControl};
pub use source::SourceStreams;
pub use window_aggregate::{
    WindowAggregate as WindowAggregateOp, WindowKind, WindowSpec, WindowState, Windows,
};

/// A seeded xorshift64* generator for tests: each call gives a number below
/// its argument.
#[cfg(test)]
pub(crate) fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |below| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }
}
