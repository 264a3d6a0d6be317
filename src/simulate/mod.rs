//! Device simulator: realistic, deterministic sensor readings for demos, tests and benchmarks.
//!
//! [`generate`] yields [`SimRecord`]s in *production order*: the order a fleet of devices would
//! hand them to Kafka. Every device samples each of its sensors once per
//! [`interval`](SimulatorConfig::interval_ms) of event time (devices are staggered inside the
//! interval); each reading is sent after a random delay of up to
//! [`out_of_order_ms`](SimulatorConfig::out_of_order_ms), a small fraction much later (60–120 s,
//! beyond any sane out-of-orderness bound), and a few bad records (truncated JSON, missing fields,
//! non-numeric values, absurd timestamps) are mixed in. Signals follow a per-series baseline with a
//! slow sine and noise; anomaly episodes (20–120 s) ramp a series well above normal so that rules
//! like "temperature > 90 for 30s" fire.
//!
//! The same [`SimulatorConfig`] (seed included) always gives the same records, byte for byte, on
//! a given platform (the generator is `rand`'s `SmallRng`, whose stream may change with the `rand`
//! version or pointer width). [`produce`] writes them to a Kafka topic.

use std::sync::Arc;

use anyhow::ensure;

mod generator;
mod producer;
mod send_queue;
#[cfg(test)]
mod tests;

pub use generator::{generate, Generator};
pub use producer::produce;

/// What to simulate. Every rate is a probability in `[0, 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// Number of devices; their ids (`press-000`, `pump-001`, …) are the Kafka keys. Default 20.
    pub devices: usize,
    /// Sensors every device carries. `temperature` (°C), `vibration` (mm/s) and `pressure` (bar)
    /// get realistic profiles; other names get a generic one. Default all three.
    pub sensors: Vec<String>,
    /// Event time between two readings of one sensor, in ms. Default 1000.
    pub interval_ms: u64,
    /// Event time span simulated, in ms: each sensor yields `duration_ms / interval_ms` readings.
    /// Default 10 minutes.
    pub duration_ms: u64,
    /// Event time (epoch ms) of the first reading. Default: the wall clock rounded down to the
    /// minute (the simulator is outside the dataflow, so the clock is fine here).
    pub start_ms: u64,
    /// Seed of the random generator: the same config gives the same records. Default 42.
    pub seed: u64,
    /// Probability, per sensor and per minute of event time, that an anomaly episode starts.
    /// Default 0.05.
    pub anomaly_rate: f64,
    /// Fraction of all records that are bad (malformed JSON, missing field, non-numeric value,
    /// absurd timestamp). Bad records come on top of the regular readings. Default 0.001.
    pub bad_record_rate: f64,
    /// Largest delay, in ms, between a reading's event time and the moment it is produced; it
    /// bounds how far out of event time order the records are. Default 2000.
    pub out_of_order_ms: u64,
    /// Fraction of readings delayed far beyond the out-of-order bound (by 60–120 s), which a
    /// pipeline must treat as late. Default 0.0005.
    pub late_rate: f64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        Self {
            devices: 20,
            sensors: ["temperature", "vibration", "pressure"]
                .map(String::from)
                .to_vec(),
            interval_ms: 1000,
            duration_ms: 10 * 60 * 1000,
            start_ms: now_ms - now_ms % 60_000,
            seed: 42,
            anomaly_rate: 0.05,
            bad_record_rate: 0.001,
            out_of_order_ms: 2000,
            late_rate: 0.0005,
        }
    }
}

impl SimulatorConfig {
    /// Checks that the config can be simulated: at least one device and sensor, a positive
    /// interval and rates in `[0, 1)` (`anomaly_rate` in `[0, 1]`).
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.devices > 0, "devices must be at least 1");
        ensure!(!self.sensors.is_empty(), "sensors must not be empty");
        ensure!(self.interval_ms > 0, "interval_ms must be positive");
        ensure!(
            (0.0..=1.0).contains(&self.anomaly_rate),
            "anomaly_rate must be in [0, 1]"
        );
        for (name, rate) in [
            ("bad_record_rate", self.bad_record_rate),
            ("late_rate", self.late_rate),
        ] {
            ensure!(
                (0.0..1.0).contains(&rate),
                "{name} must be in [0, 1), got {rate}"
            );
        }
        Ok(())
    }

    /// The exact number of regular readings: `devices * sensors * (duration_ms / interval_ms)`.
    pub fn expected_readings(&self) -> u64 {
        (self.devices * self.sensors.len()) as u64 * (self.duration_ms / self.interval_ms.max(1))
    }

    /// The expected number of records, bad ones included (the bad count itself is random).
    pub fn expected_records(&self) -> u64 {
        (self.expected_readings() as f64 / (1.0 - self.bad_record_rate)).round() as u64
    }
}

/// One Kafka record produced by the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRecord {
    /// The device id, used as the record key; shared by all records of one device, so it costs
    /// no allocation per record.
    pub key: Arc<str>,
    /// The JSON payload, e.g. `{"device_id":"press-007","sensor":"temperature","value":71.30,"ts":1763900000000}`.
    pub payload: Vec<u8>,
    /// The Kafka record timestamp: the simulated moment the record is sent, in epoch ms. For a
    /// regular reading it is at least the reading's `ts`.
    pub timestamp_ms: i64,
}

/// What a simulation produced; complete once the [`Generator`] is exhausted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimulateReport {
    /// Records yielded (readings plus bad records).
    pub records: u64,
    /// Regular, valid readings (late ones included).
    pub readings: u64,
    /// Bad records.
    pub bad: u64,
    /// Readings sent 60–120 s after their event time.
    pub late: u64,
    /// Anomaly episodes started.
    pub anomalies: u64,
    /// Event time of the first reading (epoch ms); 0 if there was none.
    pub first_event_ms: u64,
    /// Event time of the last reading (epoch ms); 0 if there was none.
    pub last_event_ms: u64,
}
