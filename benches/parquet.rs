//! Weir's Parquet sink against a bare `parquet::arrow::ArrowWriter` writing
//! the same rows (aim: the sink at least 0.9x the bare writer).
//!
//! The rows are one-minute window aggregates of 1,000 devices with three
//! sensors, with random values, in the order of (window_start, device,
//! sensor): the order in which `window_aggregate` emits them on one worker. Weir's sink gets them through a small timely dataflow, each
//! window's rows at its `window_end` as `window_aggregate` emits them; it
//! writes one file per hour (zstd level 3, row groups of 65,536 rows, each
//! file synced to disk). The bare writer builds Arrow arrays of the same
//! rows and writes them with the same schema and writer properties to one
//! file, synced at the end. Both start from the same `Vec` of rows; building
//! that `Vec` is not timed.
//!
//! `cargo bench --bench parquet` (`WEIR_BENCH_ROWS` sets the number of rows,
//! default 1,000,000; `WEIR_BENCH_RUNS` the runs of each, default 5, taken
//! in turn, of which the fastest counts; `WEIR_BENCH_ONLY=weir` or `bare`
//! runs one side, for profiling).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use support::parquet::{rows, weir_sink, DEVICES, SENSORS};
use weir::operators::parquet::{window_aggregate_schema, ParquetSinkConfig};
use weir::operators::WindowAggregate;

/// Files and their bytes below `dir`.
fn files(dir: &Path) -> (usize, u64) {
    let mut found = (0, 0);
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            let (n, bytes) = files(&path);
            found = (found.0 + n, found.1 + bytes);
        } else {
            found = (
                found.0 + 1,
                found.1 + path.metadata().expect("metadata").len(),
            );
        }
    }
    found
}

/// A bare `ArrowWriter`: the same rows as Arrow arrays, the same schema and
/// writer properties, one file.
fn bare_writer(rows: Vec<WindowAggregate>, dir: &Path) -> Duration {
    let start = Instant::now();
    let schema = window_aggregate_schema();
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level")))
        .set_max_row_group_row_count(Some(ParquetSinkConfig::DEFAULT_ROW_GROUP_ROWS))
        .build();
    let file = File::create(dir.join("bare.parquet")).expect("create");
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(properties)).expect("writer");
    let floats = |get: fn(&WindowAggregate) -> f64| {
        Arc::new(rows.iter().map(get).collect::<Float64Array>()) as ArrayRef
    };
    let times = |get: fn(&WindowAggregate) -> u64| {
        Arc::new(
            TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| get(r) as i64))
                .with_timezone("UTC"),
        ) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.device.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.sensor.as_str()),
        )),
        times(|r| r.window_start),
        times(|r| r.window_end),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.count as i64),
        )),
        floats(|r| r.min),
        floats(|r| r.max),
        floats(WindowAggregate::mean),
        floats(|r| r.sum),
    ];
    let batch = RecordBatch::try_new(schema, columns).expect("batch");
    drop(rows);
    writer.write(&batch).expect("write");
    writer
        .into_inner()
        .expect("close")
        .sync_all()
        .expect("sync");
    start.elapsed()
}

/// Weir's sink writing below `dir`.
fn weir_sink_to_dir(rows: Vec<WindowAggregate>, dir: &Path) -> Duration {
    weir_sink(rows, dir.into())
}

type Writer = fn(Vec<WindowAggregate>, &Path) -> Duration;

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n = env("WEIR_BENCH_ROWS", if quick { 30_000 } else { 1_000_000 });
    let runs = env("WEIR_BENCH_RUNS", if quick { 1 } else { 5 }).max(1);
    let only = std::env::var("WEIR_BENCH_ONLY").unwrap_or_default();
    let input = rows(n);
    let n = input.len();
    println!(
        "parquet: {n} window aggregates of {} keys, zstd(3), row groups of {} rows; \
         {runs} runs of each, alternating",
        DEVICES * SENSORS.len(),
        ParquetSinkConfig::DEFAULT_ROW_GROUP_ROWS
    );
    let sides: Vec<(&str, Writer)> = [
        ("bare ArrowWriter", bare_writer as Writer),
        ("weir parquet sink", weir_sink_to_dir as Writer),
    ]
    .into_iter()
    .filter(|(name, _)| only.is_empty() || name.contains(only.as_str()))
    .collect();
    // Runs alternate between the two, so that a busy spell of the machine
    // does not fall on one side only.
    let mut times = vec![Vec::new(); sides.len()];
    let mut written = vec![(0, 0); sides.len()];
    for _ in 0..runs {
        for (i, (_, write)) in sides.iter().enumerate() {
            let dir = tempfile::tempdir().expect("tempdir");
            times[i].push(write(input.clone(), dir.path()).as_secs_f64());
            written[i] = files(dir.path());
        }
    }
    let mut rates = Vec::new();
    for (i, (what, _)) in sides.iter().enumerate() {
        let best = times[i].iter().copied().fold(f64::INFINITY, f64::min);
        let worst = times[i].iter().copied().fold(0.0, f64::max);
        let rate = n as f64 / best;
        println!(
            "  {what:<18} {rate:>10.0} rows/s at best ({best:.3} s; worst {worst:.3} s), \
             {} file(s), {} bytes",
            written[i].0, written[i].1
        );
        rates.push(rate);
    }
    if let [bare, weir] = rates[..] {
        // The ratio of each pair of runs taken one after the other.
        let mut pairs: Vec<f64> = times[0].iter().zip(&times[1]).map(|(b, w)| b / w).collect();
        pairs.sort_by(f64::total_cmp);
        println!(
            "  weir parquet sink: {:.2}x the bare ArrowWriter, best against best \
             (run by run: {:.2}x to {:.2}x, median {:.2}x; aim: at least 0.9x)",
            weir / bare,
            pairs[0],
            pairs[pairs.len() - 1],
            pairs[pairs.len() / 2]
        );
    }
}
