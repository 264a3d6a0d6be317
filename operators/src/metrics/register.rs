//! Registering the metrics under the names Prometheus shows. Each metric is
//! registered where it is made ([`Maker`], in `Metrics::default`), with the
//! exposition's name, help text and unit beside it: a new metric is one
//! line there.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::collector::StatusCollector;
use super::{IntGauge, Metrics};

/// Registers one metric in a registry.
type Registration = Box<dyn Fn(&mut Registry) + Send + Sync>;

/// How each metric of a run is registered, in the order they were made.
#[derive(Default)]
pub(super) struct Registrations(Vec<Registration>);

impl std::fmt::Debug for Registrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} registrations", self.0.len())
    }
}

/// Makes metrics, and notes how each is registered.
#[derive(Default)]
pub(super) struct Maker {
    pub(super) registrations: Registrations,
}

impl Maker {
    /// A counter (the exposition adds `_total`).
    pub(super) fn counter(&mut self, name: &'static str, help: &'static str) -> Counter {
        let counter = Counter::default();
        let registered = counter.clone();
        self.registrations.0.push(Box::new(move |registry| {
            registry.register(name, help, registered.clone())
        }));
        counter
    }

    /// A gauge, with its unit if it has one.
    pub(super) fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
    ) -> IntGauge {
        let gauge = IntGauge::default();
        let registered = gauge.clone();
        self.registrations
            .0
            .push(Box::new(move |registry| match &unit {
                Some(unit) => {
                    registry.register_with_unit(name, help, unit.clone(), registered.clone())
                }
                None => registry.register(name, help, registered.clone()),
            }));
        gauge
    }

    /// A histogram of seconds with `buckets`.
    pub(super) fn histogram(
        &mut self,
        name: &'static str,
        help: &'static str,
        buckets: impl Iterator<Item = f64>,
    ) -> Histogram {
        let histogram = Histogram::new(buckets);
        let registered = histogram.clone();
        self.registrations.0.push(Box::new(move |registry| {
            registry.register_with_unit(name, help, Unit::Seconds, registered.clone())
        }));
        histogram
    }
}

impl Metrics {
    /// Registers every metric of the run in `registry`, under the names
    /// Prometheus shows (with the registry's prefix, `weir_`).
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        for register in &self.registrations.0 {
            register(registry);
        }
        registry.register_collector(Box::new(StatusCollector(self.clone())));
    }
}
