//! The alarm system's health events as Parquet rows ([`HealthRow`]): one
//! row per event, in the hour of its event time, with nullable columns for
//! the fields of each measure.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::error::ParquetSinkError;
use super::row::{timestamp_type, timestamps, to_i64, ParquetRow};
use super::ParquetSinkConfig;
use crate::record::HealthRow;

impl ParquetRow for HealthRow {
    fn start(&self) -> u64 {
        self.event_time
    }

    fn end(&self) -> u64 {
        self.event_time
    }

    /// `event_time`, `area`, `measure`, then the nullable fields of the
    /// measures: `start`, `end`, `activations`, `peak`, `average`,
    /// `chattering`, `hour_start`, `rule`, `device`, `sensor`, `since` and
    /// `top` (JSON).
    fn schema(_config: &ParquetSinkConfig, _revised: bool) -> SchemaRef {
        let time = timestamp_type();
        let field = |name: &str, t: DataType| Field::new(name, t, true);
        Arc::new(Schema::new(vec![
            Field::new("event_time", time.clone(), false),
            Field::new("area", DataType::Utf8, false),
            Field::new("measure", DataType::Utf8, false),
            field("start", time.clone()),
            field("end", time.clone()),
            field("activations", DataType::Int64),
            field("peak", DataType::Int64),
            field("average", DataType::Float64),
            field("chattering", DataType::Int64),
            field("hour_start", time.clone()),
            field("rule", DataType::Utf8),
            field("device", DataType::Utf8),
            field("sensor", DataType::Utf8),
            field("since", time),
            field("top", DataType::Utf8),
        ]))
    }

    fn columns(
        rows: &[Self],
        _config: &ParquetSinkConfig,
        _revised: bool,
        path: &Path,
    ) -> Result<Vec<ArrayRef>, ParquetSinkError> {
        let times = |name: &'static str, get: fn(&HealthRow) -> Option<u64>| {
            let values = rows
                .iter()
                .map(|r| get(r).map(|v| to_i64(name, v, path)).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<ArrayRef, ParquetSinkError>(Arc::new(
                arrow_array::TimestampMillisecondArray::from(values).with_timezone("UTC"),
            ))
        };
        let counts = |name: &'static str, get: fn(&HealthRow) -> Option<u64>| {
            let values = rows
                .iter()
                .map(|r| get(r).map(|v| to_i64(name, v, path)).transpose())
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<ArrayRef, ParquetSinkError>(Arc::new(Int64Array::from(values)))
        };
        let texts = |get: fn(&HealthRow) -> Option<&str>| -> ArrayRef {
            Arc::new(rows.iter().map(get).collect::<StringArray>())
        };
        Ok(vec![
            timestamps("event_time", rows.iter().map(|r| r.event_time), path)?,
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.area.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.measure.as_str()),
            )),
            times("start", |r| r.start)?,
            times("end", |r| r.end)?,
            counts("activations", |r| r.activations)?,
            counts("peak", |r| r.peak)?,
            Arc::new(rows.iter().map(|r| r.average).collect::<Float64Array>()),
            counts("chattering", |r| r.chattering)?,
            times("hour_start", |r| r.hour_start)?,
            texts(|r| r.rule.as_deref()),
            texts(|r| r.device.as_deref()),
            texts(|r| r.sensor.as_deref()),
            times("since", |r| r.since)?,
            texts(|r| r.top.as_deref()),
        ])
    }

    /// (event time, area, measure, rule, device, sensor): an event's
    /// identity.
    fn order(a: &Self, b: &Self) -> Ordering {
        let key = |r: &HealthRow| {
            (
                r.event_time,
                r.area.clone(),
                r.measure.clone(),
                r.rule.clone(),
                r.device.clone(),
                r.sensor.clone(),
            )
        };
        key(a).cmp(&key(b))
    }
}
