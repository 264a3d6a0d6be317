//! The records that flow through a pipeline: readings and window aggregates.

use serde::{Deserialize, Serialize};

/// A device or sensor name. Names of up to 24 bytes are stored inline, so a
/// reading costs no heap allocation for ordinary names.
pub type Name = compact_str::CompactString;

/// The identity of one sensor on one device: the key of all per-sensor state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SensorKey {
    /// Device id, as it appears in the payload.
    pub device: Name,
    /// Sensor name, as it appears in the payload.
    pub sensor: Name,
}

impl SensorKey {
    /// A stable 64-bit hash of (device, sensor), used only to route records
    /// between workers. It is never used as a key of state: two sensors whose
    /// hashes collide still have separate state.
    pub fn route_hash(device: &str, sensor: &str) -> u64 {
        // Stable across processes, runs and Rust versions (see `crate::hash`),
        // so every process of a cluster routes a key to the same worker.
        crate::hash::route_hash(&[device, sensor])
    }
}

/// A borrowed (device, sensor) key, to look up state keyed by [`SensorKey`]
/// without cloning names. It hashes exactly as `SensorKey` does: two `str`s in
/// the same order.
#[derive(Hash, PartialEq, Eq)]
pub(crate) struct KeyRef<'a> {
    device: &'a str,
    sensor: &'a str,
}

impl<'a> KeyRef<'a> {
    pub(crate) fn new(device: &'a str, sensor: &'a str) -> Self {
        KeyRef { device, sensor }
    }
}

impl hashbrown::Equivalent<SensorKey> for KeyRef<'_> {
    fn equivalent(&self, key: &SensorKey) -> bool {
        self.device == key.device && self.sensor == key.sensor
    }
}

/// Event time is cut into buckets of this many ms to tell how far each
/// source partition's readings have come: sources send (partition, bucket)
/// pairs, which silence rules follow.
pub const PROGRESS_BUCKET_MS: u64 = 1_000;

/// One decoded sensor reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Device id.
    pub device: Name,
    /// Sensor name.
    pub sensor: Name,
    /// Event time, milliseconds since the Unix epoch (UTC).
    pub time: u64,
    /// The measured value; always finite.
    pub value: f64,
    /// Kafka partition the reading came from.
    pub partition: i32,
    /// Offset of the reading in its partition.
    pub offset: i64,
    /// [`SensorKey::route_hash`] of (device, sensor), computed once at decode.
    pub route: u64,
}

impl Reading {
    /// Builds a reading and computes its routing hash.
    pub fn new(
        device: &str,
        sensor: &str,
        time: u64,
        value: f64,
        partition: i32,
        offset: i64,
    ) -> Self {
        Reading {
            device: Name::new(device),
            sensor: Name::new(sensor),
            time,
            value,
            partition,
            offset,
            route: SensorKey::route_hash(device, sensor),
        }
    }

    /// The (device, sensor) key of this reading.
    pub fn key(&self) -> SensorKey {
        SensorKey {
            device: self.device.clone(),
            sensor: self.sensor.clone(),
        }
    }

    /// The order in which a key's readings are applied to stateful rules:
    /// event time, then origin. It depends only on the input.
    pub fn order(&self) -> (u64, i32, i64) {
        (self.time, self.partition, self.offset)
    }
}

/// The aggregate of one sensor's readings over one tumbling window
/// `[window_start, window_end)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowAggregate {
    /// Device id.
    pub device: Name,
    /// Sensor name.
    pub sensor: Name,
    /// Inclusive start of the window, ms since the epoch.
    pub window_start: u64,
    /// Exclusive end of the window, ms since the epoch.
    pub window_end: u64,
    /// Number of readings in the window (at least 1).
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Sum of the values.
    pub sum: f64,
    /// 0 for a window's first emission; one higher for each correction by
    /// late readings (outputs with an allowed lateness).
    #[serde(default)]
    pub revision: u32,
}

impl WindowAggregate {
    /// Arithmetic mean of the values.
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}
