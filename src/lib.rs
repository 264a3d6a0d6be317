//! x
pub mod simulate;
