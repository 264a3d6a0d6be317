//! The alarm health's Parquet files as a reader sees them.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::Array;

/// Every health row below `dir` (none if it does not exist), as
/// `measure|area|event_time|rule|device|sensor`, sorted.
pub fn health_rows(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for b in crate::reference::batches(crate::reference::files(dir)) {
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        let (measure, area, time) = (col("measure"), col("area"), col("event_time"));
        let (rule, device, sensor) = (col("rule"), col("device"), col("sensor"));
        let text = |a: &arrow_array::ArrayRef, i: usize| match a.is_null(i) {
            true => String::new(),
            false => a.as_string::<i32>().value(i).to_owned(),
        };
        for i in 0..b.num_rows() {
            rows.push(format!(
                "{}|{}|{}|{}|{}|{}",
                text(&measure, i),
                text(&area, i),
                time.as_primitive::<TimestampMillisecondType>().value(i),
                text(&rule, i),
                text(&device, i),
                text(&sensor, i),
            ));
        }
    }
    rows.sort();
    rows
}

/// The same key of each health event on a topic or in a JSON lines file.
pub fn health_keys(events: &[Vec<u8>]) -> Vec<String> {
    let mut keys: Vec<String> = events
        .iter()
        .map(|e| {
            let e: serde_json::Value = serde_json::from_slice(e).unwrap();
            let text = |f: &str| e[f].as_str().unwrap_or_default().to_owned();
            format!(
                "{}|{}|{}|{}|{}|{}",
                text("measure"),
                text("area"),
                e["event_time"],
                text("rule"),
                text("device"),
                text("sensor")
            )
        })
        .collect();
    keys.sort();
    keys
}
