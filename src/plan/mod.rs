//! The plan of a run: which connectors it uses ([`connect`]), decided once
//! from the run's options, for config pipelines and Rust pipelines alike.

pub mod connect;

pub use connect::{Connect, HEALTH_OUTPUT};
