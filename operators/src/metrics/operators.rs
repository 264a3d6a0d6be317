//! The per-operator figures of timely's logging.

use std::collections::BTreeMap;

use super::{lock, Metrics};

/// What timely's logging tells of one operator, summed over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OperatorFigures {
    /// Records it received.
    pub records_in: u64,
    /// Records it sent.
    pub records_out: u64,
    /// Records it received from another worker.
    pub records_exchanged: u64,
    /// Seconds spent in it.
    pub busy_seconds: f64,
}

impl Metrics {
    /// Adds timely's figures for the operator `name` at address `addr`.
    pub fn add_operator_figures(&self, name: &str, addr: &str, figures: OperatorFigures) {
        let mut operators = lock(&self.operators);
        let entry = operators
            .entry((name.to_owned(), addr.to_owned()))
            .or_default();
        entry.records_in += figures.records_in;
        entry.records_out += figures.records_out;
        entry.records_exchanged += figures.records_exchanged;
        entry.busy_seconds += figures.busy_seconds;
    }

    /// Timely's figures per operator, by (name, address), when collected.
    pub fn operator_figures(&self) -> BTreeMap<(String, String), OperatorFigures> {
        lock(&self.operators).clone()
    }
}
