//! What a Parquet sink writes: rows of a [`ParquetRow`] type, each placed in
//! the hour of its start time, sorted in a total order so that a file's
//! bytes depend only on its rows. Window aggregates are one such type; the
//! alarm system's health events another.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::ParquetSinkError;
use super::ParquetSinkConfig;
use crate::reading::WindowAggregate;
use crate::record::Stats;

/// A row a Parquet sink writes.
pub trait ParquetRow: Clone + std::fmt::Debug + Serialize + DeserializeOwned + 'static {
    /// Whether rows are window aggregates, whose end is observed as the
    /// windows' latency.
    const WINDOWS: bool = false;
    /// The event time (ms) that places the row in its hour
    /// (`date=YYYY-MM-DD/hour=HH/`).
    fn start(&self) -> u64;
    /// The event time the row is complete at: it travels at no later time,
    /// and `end - start` bounds how long after its hour it can arrive.
    fn end(&self) -> u64;
    /// The schema of the files of `config`; `revised` adds a revision
    /// column (window outputs that late readings correct).
    fn schema(config: &ParquetSinkConfig, revised: bool) -> SchemaRef;
    /// The columns of `rows`, in the order of [`ParquetRow::schema`];
    /// `path` names the file in errors.
    fn columns(
        rows: &[Self],
        config: &ParquetSinkConfig,
        revised: bool,
        path: &Path,
    ) -> Result<Vec<ArrayRef>, ParquetSinkError>;
    /// The order of rows in a file: total, so that the bytes never depend
    /// on arrival order.
    fn order(a: &Self, b: &Self) -> Ordering;
}

/// An event time as an `Int64` for a timestamp column, or an error naming
/// `field` and `path`.
pub(super) fn to_i64(
    field: &'static str,
    value: u64,
    path: &Path,
) -> Result<i64, ParquetSinkError> {
    i64::try_from(value).map_err(|_| ParquetSinkError::OutOfRange {
        field,
        value,
        path: path.to_owned(),
    })
}

/// A timestamp column (ms, UTC) of `values`.
pub(super) fn timestamps(
    field: &'static str,
    values: impl Iterator<Item = u64>,
    path: &Path,
) -> Result<ArrayRef, ParquetSinkError> {
    let values = values
        .map(|v| to_i64(field, v, path))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(
        TimestampMillisecondArray::from(values).with_timezone("UTC"),
    ))
}

/// The type of timestamp columns: ms in UTC.
pub(super) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// The Arrow schema of the files of the basic statistics: one row per
/// (device, sensor, window), no nullable column. Timestamps are
/// milliseconds in UTC and `count` is an `Int64`, so that DuckDB, pyarrow
/// and Spark read the files without help.
pub fn window_aggregate_schema() -> SchemaRef {
    window_aggregate_schema_with(&Stats::basic())
}

/// The Arrow schema of the files of rows with `stats`: the columns of
/// [`window_aggregate_schema`], then one nullable `Float64` column per
/// extra statistic, named as the statistic (`stddev`, `first`, `p95`,
/// `p99.9`), in the order of [`Stats::extra`]. A value is null where the
/// window has none (the sample standard deviation of one reading).
pub fn window_aggregate_schema_with(stats: &Stats) -> SchemaRef {
    window_schema(stats, false)
}

/// The schema of the files of rows with `stats`, and a `revision` column
/// (`Int32`) last for outputs whose windows late readings correct.
fn window_schema(stats: &Stats, revision: bool) -> SchemaRef {
    let timestamp = timestamp_type();
    let extra = stats
        .extra()
        .iter()
        .map(|s| Field::new(s.name(), DataType::Float64, true));
    Arc::new(Schema::new(
        [
            Field::new("device_id", DataType::Utf8, false),
            Field::new("sensor", DataType::Utf8, false),
            Field::new("window_start", timestamp.clone(), false),
            Field::new("window_end", timestamp, false),
            Field::new("count", DataType::Int64, false),
            Field::new("min", DataType::Float64, false),
            Field::new("max", DataType::Float64, false),
            Field::new("mean", DataType::Float64, false),
            Field::new("sum", DataType::Float64, false),
        ]
        .into_iter()
        .chain(extra)
        .chain(revision.then(|| Field::new("revision", DataType::Int32, false)))
        .collect::<Vec<_>>(),
    ))
}

impl ParquetRow for WindowAggregate {
    const WINDOWS: bool = true;

    fn start(&self) -> u64 {
        self.window_start
    }

    fn end(&self) -> u64 {
        self.window_end
    }

    fn schema(config: &ParquetSinkConfig, revised: bool) -> SchemaRef {
        window_schema(&config.stats, revised)
    }

    fn columns(
        rows: &[Self],
        config: &ParquetSinkConfig,
        revised: bool,
        path: &Path,
    ) -> Result<Vec<ArrayRef>, ParquetSinkError> {
        let floats = |get: fn(&WindowAggregate) -> f64| {
            Arc::new(rows.iter().map(get).collect::<Float64Array>()) as ArrayRef
        };
        let counts = rows
            .iter()
            .map(|r| to_i64("count", r.count, path))
            .collect::<Result<Vec<_>, _>>()?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.device.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.sensor.as_str()),
            )),
            timestamps("window_start", rows.iter().map(|r| r.window_start), path)?,
            timestamps("window_end", rows.iter().map(|r| r.window_end), path)?,
            Arc::new(Int64Array::from(counts)),
            floats(|r| r.min),
            floats(|r| r.max),
            floats(WindowAggregate::mean),
            floats(|r| r.sum),
        ];
        for &stat in config.stats.extra() {
            let values: Float64Array = rows.iter().map(|r| r.value(stat)).collect();
            columns.push(Arc::new(values));
        }
        if revised {
            columns.push(Arc::new(Int32Array::from_iter_values(
                rows.iter().map(|r| r.revision as i32),
            )));
        }
        Ok(columns)
    }

    /// (window_start, device, sensor, window_end, revision), then every
    /// other field.
    fn order(a: &Self, b: &Self) -> Ordering {
        fn key(r: &WindowAggregate) -> (u64, &str, &str, u64, u32, u64) {
            (
                r.window_start,
                &r.device,
                &r.sensor,
                r.window_end,
                r.revision,
                r.count,
            )
        }
        key(a)
            .cmp(&key(b))
            .then(a.min.total_cmp(&b.min))
            .then(a.max.total_cmp(&b.max))
            .then(a.sum.total_cmp(&b.sum))
    }
}
