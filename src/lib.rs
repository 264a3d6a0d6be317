//! Weir: stream processing for industrial IoT telemetry, on timely dataflow.
//!
//! Sensors publish readings to Kafka; a Weir pipeline reads them, aggregates
//! tumbling event-time windows into Parquet files, and evaluates alert rules
//! whose events it writes back to Kafka. A pipeline is either a TOML file run
//! by the `weir` binary, or a Rust function that wires the operators of
//! [`weir_operators`] and hands them to [`run`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use weir::operators::{Decoder, KafkaSource, KafkaSourceConfig, ParquetSink, ParquetSinkConfig, WindowAggregateOp};
//!
//! let options = weir::RunOptions { bounded: true, ..weir::RunOptions::default() };
//! let report = weir::run(&options, |scope, ctx| {
//!     let mut source = KafkaSourceConfig::new("127.0.0.1:9092", "readings");
//!     source.bounded = ctx.bounded;
//!     let (readings, _dead) = scope.kafka_source(source, Decoder::default(), ctx);
//!     readings
//!         .window_aggregate(60_000, ctx)
//!         .parquet_sink(ParquetSinkConfig::new("out"), ctx);
//! })?;
//! println!("{}", report);
//! # Ok::<(), anyhow::Error>(())
//! ```

#![deny(missing_docs)]

pub mod backtest;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod explain;
pub mod figures;
pub mod http;
pub mod pipeline;
pub mod plan;
pub mod preflight;
pub mod prelude;
pub mod record;
pub mod registry;
pub mod reload;
pub mod rule_tests;
pub mod runtime;
pub mod secrets;
pub mod simulate;

pub use runtime::{run, Context, RunOptions, RunReport};
/// The operators a pipeline is built from.
pub use weir_operators as operators;
