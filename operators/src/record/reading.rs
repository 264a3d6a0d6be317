//! The records that flow through a pipeline: readings and window aggregates.

use serde::{Deserialize, Serialize};

use super::stats::Stat;

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

/// The aggregate of one sensor's readings over one window
/// `[window_start, window_end)`: the basic statistics (count, min, max, sum,
/// and the mean derived from them), and the extra ones its window output
/// computes (see [`Stats`](super::stats::Stats)).
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
    /// The extra statistics of the window's output, in the order of
    /// [`Stats::extra`](super::stats::Stats::extra), each with its value (`None` where it has none: a
    /// sample standard deviation of one reading). Empty for the basic
    /// statistics alone.
    pub extra: Vec<(Stat, Option<f64>)>,
}

impl WindowAggregate {
    /// Arithmetic mean of the values.
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }

    /// The value of `stat`: `None` if the row does not carry it, or it has
    /// no value for this window.
    ///
    /// # Examples
    /// ```
    /// use weir_operators::record::{Stat, WindowAggregate};
    ///
    /// let row = WindowAggregate {
    ///     device: "d1".into(),
    ///     sensor: "temp".into(),
    ///     window_start: 0,
    ///     window_end: 60_000,
    ///     count: 1,
    ///     min: 20.0,
    ///     max: 20.0,
    ///     sum: 20.0,
    ///     extra: vec![(Stat::Stddev, None), (Stat::First, Some(20.0))],
    ///     revision: 0,
    /// };
    /// assert_eq!(row.value(Stat::Mean), Some(20.0));
    /// assert_eq!(row.value(Stat::First), Some(20.0));
    /// assert_eq!(row.value(Stat::Stddev), None); // one reading: no sample deviation
    /// assert_eq!(row.value(Stat::Last), None); // not computed
    /// ```
    pub fn value(&self, stat: Stat) -> Option<f64> {
        match stat {
            Stat::Mean => Some(self.mean()),
            Stat::Min => Some(self.min),
            Stat::Max => Some(self.max),
            Stat::Sum => Some(self.sum),
            Stat::Count => Some(self.count as f64),
            _ => self
                .extra
                .iter()
                .find(|(s, _)| *s == stat)
                .and_then(|(_, v)| *v),
        }
    }

    /// The row as one JSON object: device, sensor, window bounds, the basic
    /// statistics, and one field per extra statistic of its output (`null`
    /// where it has no value), named as in [`Stat::name`].
    ///
    /// # Examples
    /// ```
    /// use weir_operators::record::{Stat, WindowAggregate};
    ///
    /// let row = WindowAggregate {
    ///     device: "d1".into(),
    ///     sensor: "temp".into(),
    ///     window_start: 0,
    ///     window_end: 60_000,
    ///     count: 1,
    ///     min: 20.0,
    ///     max: 20.0,
    ///     sum: 20.0,
    ///     extra: vec![(Stat::Stddev, None), (Stat::StddevPop, Some(0.0))],
    ///     revision: 0,
    /// };
    /// let json = row.to_json();
    /// assert_eq!(json["mean"], 20.0);
    /// assert!(json["stddev"].is_null());
    /// assert_eq!(json["stddev_pop"], 0.0);
    /// assert!(json.get("p95").is_none());
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "device": self.device.as_str(),
            "sensor": self.sensor.as_str(),
            "window_start": self.window_start,
            "window_end": self.window_end,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "sum": self.sum,
            "mean": self.mean(),
        });
        for (stat, value) in &self.extra {
            json[stat.name().as_ref()] = value.map_or(serde_json::Value::Null, Into::into);
        }
        if self.revision > 0 {
            // A correction (see `revision`); first emissions leave it out.
            json["revision"] = self.revision.into();
        }
        json
    }
}
