//! What a pipeline author imports once: `use weir::prelude::*;`.
//!
//! The operator traits (so streams have their verbs), their configurations,
//! the records, the rules, and what runs a pipeline.
//!
//! # Examples
//! A pipeline over readings held in memory: one-minute windows and a rule.
//! ```
//! use std::sync::{Arc, Mutex};
//! use weir::prelude::*;
//!
//! let payload = |t: u64, v: f64| format!(r#"{{"device_id":"d1","sensor":"temp","value":{v},"ts":{t}}}"#);
//! let records = [payload(1_000, 95.0), payload(2_000, 96.0), payload(61_000, 20.0)];
//! let topic = Arc::new(MemoryTopic::from_records(
//!     "readings",
//!     1,
//!     records.iter().map(|p| (0, None, p.as_bytes(), None)),
//! ));
//! let rules = Arc::new(RuleSet::new(vec![Rule::new("hot", "temp", Direction::Above, 90.0)]));
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let out = seen.clone();
//! let options = RunOptions { bounded: true, progress: false, ..RunOptions::default() };
//! weir::run(&options, move |scope, ctx| {
//!     let (readings, _dead) = scope.memory_source(topic.clone(), Decoder::default(), 5_000, ctx);
//!     let windows = readings.clone().window_aggregate(60_000, ctx);
//!     let out = out.clone();
//!     alerts(&readings, &[windows], rules.clone(), ctx)
//!         .inspect(move |a: &Alert| out.lock().unwrap().push((a.state, a.event_time)));
//! })?;
//! assert_eq!(
//!     *seen.lock().unwrap(),
//!     vec![(AlertState::Firing, 1_000), (AlertState::Resolved, 61_000)]
//! );
//! # Ok::<(), anyhow::Error>(())
//! ```

pub use std::sync::Arc;

pub use timely::dataflow::operators::{Concat, Inspect, Probe};
pub use timely::dataflow::{Scope, Stream};
pub use weir_operators::alarm::health::{alarm_health, HealthConfig};
pub use weir_operators::alert::{
    alerts, Alert, AlertState, Direction, EvaluateAlerts, Rule, RuleInput, RuleSet, Stat,
};
pub use weir_operators::decode::ControlDecoder;
pub use weir_operators::kafka::{
    EndOffset, KafkaSink, KafkaSinkConfig, KafkaSource, KafkaSourceConfig, StartOffset,
};
pub use weir_operators::memory::{MemorySource, MemoryTopic};
pub use weir_operators::parquet::{ParquetSink, ParquetSinkConfig};
pub use weir_operators::{
    DeadLetter, DecodeConfig, Decoder, Env, Reading, Stats, TimeFormat, WindowAggregate,
    WindowAggregateOp, WindowKind, WindowSpec, Windows,
};

pub use crate::runtime::{run, Context, RunArgs, RunOptions, RunReport};
