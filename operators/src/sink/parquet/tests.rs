//! Tests of the Parquet sink: its config, its writer and its operator.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use ::parquet::basic::Compression;
use ::parquet::file::reader::{FileReader, SerializedFileReader};
use arrow_array::{
    Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, TimeUnit};
use timely::dataflow::operators::Input;

use super::writer::HOUR_MS;
use super::*;
use crate::reading::WindowAggregate;
use crate::run::Env;
use crate::Run;

#[test]
fn parses_every_documented_spelling() {
    let cases = [
        ("zstd", ParquetCompression::Zstd(3)),
        ("ZSTD", ParquetCompression::Zstd(3)),
        ("zstd(5)", ParquetCompression::Zstd(5)),
        ("zstd:5", ParquetCompression::Zstd(5)),
        (" zstd( 22 ) ", ParquetCompression::Zstd(22)),
        ("snappy", ParquetCompression::Snappy),
        ("none", ParquetCompression::Uncompressed),
        ("Uncompressed", ParquetCompression::Uncompressed),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<ParquetCompression>(), Ok(expected), "{text:?}");
    }
}

#[test]
fn rejects_unknown_names_and_bad_levels_listing_valid_values() {
    for text in [
        "gzip",
        "",
        "zstd(0)",
        "zstd:23",
        "zstd(x)",
        "zstd(5",
        "snappy(1)",
    ] {
        let error = text.parse::<ParquetCompression>().unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&format!("{text:?}")), "{message}");
        for valid in [
            "zstd",
            "zstd(LEVEL)",
            "zstd:LEVEL",
            "snappy",
            "none",
            "uncompressed",
        ] {
            assert!(message.contains(&format!("\"{valid}\"")), "{message}");
        }
    }
}

#[test]
fn display_parses_back() {
    for c in [
        ParquetCompression::Zstd(7),
        ParquetCompression::Snappy,
        ParquetCompression::Uncompressed,
    ] {
        assert_eq!(c.to_string().parse::<ParquetCompression>(), Ok(c));
    }
}

#[test]
fn new_has_the_documented_defaults() {
    let config = ParquetSinkConfig::new("/data/out");
    assert_eq!(config.dir, PathBuf::from("/data/out").into());
    assert_eq!(config.compression, ParquetCompression::Zstd(3));
    assert_eq!(config.row_group_rows, 65_536);
    assert_eq!(config.max_rows_per_file, 1_000_000);
}

/// 2026-11-22T10:00:00Z, worked out with `date -u -d 2026-11-22T10:00:00Z +%s`.
const H10: u64 = 1_795_341_600_000;
/// 2026-11-22T11:00:00Z.
const H11: u64 = H10 + HOUR_MS;
/// 2026-11-22T12:00:00Z.
const H12: u64 = H11 + HOUR_MS;
const MINUTE: u64 = 60_000;

fn agg(
    device: &str,
    sensor: &str,
    window_start: u64,
    count: u64,
    min: f64,
    max: f64,
    sum: f64,
) -> WindowAggregate {
    WindowAggregate {
        device: device.into(),
        sensor: sensor.into(),
        window_start,
        window_end: window_start + MINUTE,
        count,
        min,
        max,
        sum,
        revision: 0,
        extra: Vec::new(),
    }
}

fn writer(dir: &Path) -> ParquetWriter {
    ParquetWriter::new(ParquetSinkConfig::new(dir), "part-r1-w0".to_owned())
}

/// Every file below `dir`, as paths relative to it, sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The rows of a small file, which the reader returns as one batch.
fn read(path: &Path) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 1, "{}", path.display());
    batches.remove(0)
}

fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
    let column = batch.column_by_name(name).unwrap();
    let array = column.as_any().downcast_ref::<StringArray>().unwrap();
    array.iter().map(|s| s.unwrap().to_owned()).collect()
}

fn timestamps(batch: &RecordBatch, name: &str) -> Vec<i64> {
    let column = batch.column_by_name(name).unwrap();
    column
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap()
        .values()
        .to_vec()
}

fn floats(batch: &RecordBatch, name: &str) -> Vec<f64> {
    let column = batch.column_by_name(name).unwrap();
    column
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

#[test]
fn rows_of_two_hours_land_in_two_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    w.push(agg("d1", "temp", H11, 1, 1.0, 1.0, 1.0)); // 11:00
    w.push(agg("d1", "temp", H11 - MINUTE, 1, 1.0, 1.0, 1.0)); // 10:59
    w.push(agg("d2", "temp", H10, 1, 1.0, 1.0, 1.0)); // 10:00
    let files = w.finish().unwrap();
    let root = dir.path();
    assert_eq!(
        files,
        vec![
            root.join("date=2026-11-22/hour=10/part-r1-w0-000000.parquet"),
            root.join("date=2026-11-22/hour=11/part-r1-w0-000001.parquet"),
        ]
    );
    assert_eq!(
        tree(root),
        vec![
            "date=2026-11-22/hour=10/part-r1-w0-000000.parquet",
            "date=2026-11-22/hour=11/part-r1-w0-000001.parquet",
        ]
    );
    assert_eq!(read(&files[0]).num_rows(), 2);
    assert_eq!(read(&files[1]).num_rows(), 1);
    assert_eq!(w.rows_written(), 3);
    assert_eq!(w.pending_rows(), 0);
}

#[test]
fn the_day_changes_at_midnight_utc() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    // 2026-11-22T23:59:00Z and 2026-11-23T00:00:00Z.
    let midnight = H10 + 14 * HOUR_MS;
    w.push(agg("d", "s", midnight - MINUTE, 1, 0.0, 0.0, 0.0));
    w.push(agg("d", "s", midnight, 1, 0.0, 0.0, 0.0));
    w.finish().unwrap();
    assert_eq!(
        tree(dir.path()),
        vec![
            "date=2026-11-22/hour=23/part-r1-w0-000000.parquet",
            "date=2026-11-23/hour=00/part-r1-w0-000001.parquet",
        ]
    );
}

#[test]
fn flush_before_closes_only_hours_that_have_ended() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    w.push(agg("d", "s", H10 + 30 * MINUTE, 1, 0.0, 0.0, 0.0));
    w.push(agg("d", "s", H11 + 59 * MINUTE, 1, 0.0, 0.0, 0.0));
    assert_eq!(w.flush_before(H10).unwrap(), Vec::<PathBuf>::new());
    assert_eq!(w.flush_before(H11 - 1).unwrap(), Vec::<PathBuf>::new());
    assert!(tree(dir.path()).is_empty());

    let files = w.flush_before(H11).unwrap();
    assert_eq!(
        files,
        vec![dir
            .path()
            .join("date=2026-11-22/hour=10/part-r1-w0-000000.parquet")]
    );
    assert_eq!((w.rows_written(), w.pending_rows()), (1, 1));

    assert_eq!(w.flush_before(H12 - 1).unwrap(), Vec::<PathBuf>::new());
    let files = w.flush_before(H12).unwrap();
    assert_eq!(
        files,
        vec![dir
            .path()
            .join("date=2026-11-22/hour=11/part-r1-w0-000001.parquet")]
    );
    assert_eq!(w.finish().unwrap(), Vec::<PathBuf>::new());
}

#[test]
fn a_late_row_for_a_closed_hour_goes_to_an_extra_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    w.push(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
    w.flush_before(H11).unwrap();
    w.push(agg("d", "s", H10 + MINUTE, 1, 0.0, 0.0, 0.0));
    w.flush_before(H11).unwrap();
    assert_eq!(
        tree(dir.path()),
        vec![
            "date=2026-11-22/hour=10/part-r1-w0-000000.parquet",
            "date=2026-11-22/hour=10/part-r1-w0-000001.parquet",
        ]
    );
}

#[test]
fn reads_back_with_the_documented_schema_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    w.push(agg("press-7", "temp", H10 + MINUTE, 4, -1.5, 2.5, 3.0));
    w.push(agg("press-7", "rpm", H10, 2, 100.0, 300.0, 400.0));
    let files = w.finish().unwrap();
    let batch = read(&files[0]);

    let schema = batch.schema();
    let columns: Vec<(&str, &DataType, bool)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
        .collect();
    let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    assert_eq!(
        columns,
        vec![
            ("device_id", &DataType::Utf8, false),
            ("sensor", &DataType::Utf8, false),
            ("window_start", &utc, false),
            ("window_end", &utc, false),
            ("count", &DataType::Int64, false),
            ("min", &DataType::Float64, false),
            ("max", &DataType::Float64, false),
            ("mean", &DataType::Float64, false),
            ("sum", &DataType::Float64, false),
        ]
    );

    // Sorted by window_start: the 10:00 rpm window comes first.
    assert_eq!(strings(&batch, "device_id"), ["press-7", "press-7"]);
    assert_eq!(strings(&batch, "sensor"), ["rpm", "temp"]);
    assert_eq!(
        timestamps(&batch, "window_start"),
        [1_795_341_600_000, 1_795_341_660_000]
    );
    assert_eq!(
        timestamps(&batch, "window_end"),
        [1_795_341_660_000, 1_795_341_720_000]
    );
    let count = batch.column_by_name("count").unwrap();
    assert_eq!(
        count
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec(),
        [2, 4]
    );
    assert_eq!(floats(&batch, "min"), [100.0, -1.5]);
    assert_eq!(floats(&batch, "max"), [300.0, 2.5]);
    assert_eq!(floats(&batch, "mean"), [200.0, 0.75]);
    assert_eq!(floats(&batch, "sum"), [400.0, 3.0]);
    assert_eq!(batch.column_by_name("min").unwrap().null_count(), 0);
}

/// Extra statistics are nullable `Float64` columns after the basic ones,
/// only those chosen, in their order, null where a window has no value.
#[test]
fn extra_statistics_are_nullable_columns_of_the_chosen_stats_only() {
    use crate::record::{Stat, Stats};
    let dir = tempfile::tempdir().unwrap();
    let p95: Stat = "p95".parse().unwrap();
    let stats: Stats = [p95, Stat::Stddev].into_iter().collect();
    let mut config = ParquetSinkConfig::new(dir.path());
    config.stats = stats;
    let mut w = ParquetWriter::new(config, "part-r1-w0".to_owned());
    let mut one = agg("press-7", "temp", H10, 1, 2.0, 2.0, 2.0);
    one.extra = vec![(Stat::Stddev, None), (p95, Some(2.0))];
    let mut two = agg("press-7", "temp", H10 + MINUTE, 2, 1.0, 3.0, 4.0);
    two.extra = vec![(Stat::Stddev, Some(2f64.sqrt())), (p95, Some(3.0))];
    w.push(two);
    w.push(one);
    let batch = read(&w.finish().unwrap()[0]);
    let schema = batch.schema();
    let names: Vec<(&str, bool)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().as_str(), f.is_nullable()))
        .skip(9)
        .collect();
    assert_eq!(names, [("stddev", true), ("p95", true)]);
    let stddev = batch.column_by_name("stddev").unwrap();
    assert_eq!((stddev.is_null(0), stddev.is_null(1)), (true, false));
    assert_eq!(floats(&batch, "stddev")[1], 2f64.sqrt());
    assert_eq!(floats(&batch, "p95"), [2.0, 3.0]);
}

#[test]
fn rows_are_sorted_and_bytes_do_not_depend_on_arrival_order() {
    let rows = [
        agg("b", "temp", H10 + MINUTE, 1, 1.0, 1.0, 1.0),
        agg("a", "temp", H10 + MINUTE, 1, 2.0, 2.0, 2.0),
        agg("b", "rpm", H10, 1, 3.0, 3.0, 3.0),
        agg("a", "temp", H10, 1, 4.0, 4.0, 4.0),
        agg("a", "rpm", H10, 1, 5.0, 5.0, 5.0),
    ];
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let mut w1 = writer(first.path());
    let mut w2 = writer(second.path());
    rows.iter().cloned().for_each(|r| w1.push(r));
    rows.iter().rev().cloned().for_each(|r| w2.push(r));
    let f1 = w1.finish().unwrap();
    let f2 = w2.finish().unwrap();
    assert_eq!((f1.len(), f2.len()), (1, 1));

    let batch = read(&f1[0]);
    assert_eq!(strings(&batch, "device_id"), ["a", "a", "b", "a", "b"]);
    assert_eq!(
        strings(&batch, "sensor"),
        ["rpm", "temp", "rpm", "temp", "temp"]
    );
    assert_eq!(floats(&batch, "sum"), [5.0, 4.0, 3.0, 2.0, 1.0]);
    assert_eq!(fs::read(&f1[0]).unwrap(), fs::read(&f2[0]).unwrap());
}

#[test]
fn a_big_partition_is_split_into_files_and_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ParquetSinkConfig::new(dir.path());
    config.max_rows_per_file = 3;
    config.row_group_rows = 2;
    config.compression = ParquetCompression::Snappy;
    let mut w = ParquetWriter::new(config, "p".to_owned());
    for i in 0..7 {
        w.push(agg("d", "s", H10 + i * MINUTE, 1, 0.0, 0.0, i as f64));
    }
    let files = w.finish().unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["p-000000.parquet", "p-000001.parquet", "p-000002.parquet"]
    );
    let shape = |path: &Path| {
        let metadata = SerializedFileReader::new(File::open(path).unwrap())
            .unwrap()
            .metadata()
            .clone();
        let groups: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
        (groups, metadata.row_group(0).column(0).compression())
    };
    assert_eq!(shape(&files[0]), (vec![2, 1], Compression::SNAPPY));
    assert_eq!(shape(&files[2]), (vec![1], Compression::SNAPPY));
    // The split keeps the sort order across files.
    assert_eq!(floats(&read(&files[1]), "sum"), [3.0, 4.0, 5.0]);
}

#[test]
fn no_temporary_file_remains() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    for hour in 0..3 {
        w.push(agg("d", "s", H10 + hour * HOUR_MS, 1, 0.0, 0.0, 0.0));
    }
    w.flush_before(H11).unwrap();
    w.finish().unwrap();
    let files = tree(dir.path());
    assert_eq!(files.len(), 3);
    assert!(
        files
            .iter()
            .all(|f| !f.contains("/.") && !f.ends_with(".inprogress")),
        "{files:?}"
    );
}

#[test]
fn an_io_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, b"").unwrap();
    let mut w = writer(&blocker);
    w.push(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
    let error = w.finish().unwrap_err();
    assert!(
        matches!(
            &error,
            ParquetSinkError::Io {
                action: "create directory",
                ..
            }
        ),
        "{error:?}"
    );
    let expected = format!(
        "cannot create directory {}",
        blocker.join("date=2026-11-22/hour=10").display()
    );
    assert_eq!(error.to_string(), expected);
}

#[test]
fn a_bad_zstd_level_is_an_error_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ParquetSinkConfig::new(dir.path());
    config.compression = ParquetCompression::Zstd(99);
    let mut w = ParquetWriter::new(config, "p".to_owned());
    w.push(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
    assert!(matches!(w.finish(), Err(ParquetSinkError::Parquet { .. })));
    assert!(tree(dir.path()).is_empty());
}

#[test]
fn flush_at_frontier_waits_for_the_last_window_of_the_hour() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = writer(dir.path());
    // One-minute windows, which travel at their window_end.
    w.push(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
    // The window [10:59, 11:00) may still come at time 11:00.
    assert_eq!(w.flush_at_frontier(H11).unwrap(), Vec::<PathBuf>::new());
    w.push(agg("d", "s", H11 - MINUTE, 1, 0.0, 0.0, 0.0));
    assert_eq!(
        w.flush_at_frontier(H11 + MINUTE - 1).unwrap(),
        Vec::<PathBuf>::new()
    );
    let files = w.flush_at_frontier(H11 + MINUTE).unwrap();
    assert_eq!(
        files,
        vec![dir
            .path()
            .join("date=2026-11-22/hour=10/part-r1-w0-000000.parquet")]
    );
    assert_eq!(read(&files[0]).num_rows(), 2);
}

#[test]
fn the_operator_writes_an_hour_once_its_last_window_has_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let config = ParquetSinkConfig::new(dir.path());
    let run = Run::default();
    let (m, r) = (Arc::clone(&run.metrics), run.clone());
    let root = dir.path().to_owned();
    timely::execute_directly(move |worker| {
        let mut input = worker.dataflow(|scope| {
            let (input, stream) = scope.new_input::<Vec<WindowAggregate>>();
            stream.parquet_sink(config, &Env::new(scope, r.clone(), "r1", None));
            input
        });
        // Each aggregate at its window_end, as `window_aggregate` sends it.
        input.advance_to(H10 + MINUTE);
        input.send(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
        input.advance_to(H11);
        for _ in 0..20 {
            worker.step();
        }
        assert!(
            m.files().is_empty(),
            "hour 10 closed before its last window"
        );
        input.send(agg("d", "s", H11 - MINUTE, 1, 0.0, 0.0, 0.0));
        input.advance_to(H11 + MINUTE);
        input.send(agg("d", "s", H11, 1, 0.0, 0.0, 0.0));
        input.advance_to(H11 + 2 * MINUTE);
        for _ in 0..100 {
            if !m.files().is_empty() {
                break;
            }
            worker.step();
        }
        // Hour 10 is complete, hour 11 is still open.
        assert_eq!(
            m.files(),
            vec![root.join("date=2026-11-22/hour=10/part-r1-w0-000000.parquet")]
        );
        assert_eq!(m.parquet_rows.get(), 2);
    });
    // The input has ended: the rest is written.
    assert!(run.control.errors().is_empty());
    assert_eq!(run.metrics.files().len(), 2);
    assert!(run.metrics.files()[1].ends_with("date=2026-11-22/hour=11/part-r1-w0-000001.parquet"));
    assert_eq!(run.metrics.parquet_rows.get(), 3);
}

#[test]
fn the_operator_records_a_failure_and_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    fs::write(&blocker, b"").unwrap();
    let config = ParquetSinkConfig::new(blocker.clone());
    let run = Run::default();
    let r = run.clone();
    timely::execute_directly(move |worker| {
        let mut input = worker.dataflow(|scope| {
            let (input, stream) = scope.new_input::<Vec<WindowAggregate>>();
            stream.parquet_sink(config, &Env::new(scope, r, "p", None));
            input
        });
        input.send(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
        input.advance_to(H11);
        input.send(agg("d", "s", H11, 1, 0.0, 0.0, 0.0));
    });
    let errors = run.control.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("Parquet sink: cannot create directory "),
        "{errors:?}"
    );
    assert!(run.metrics.files().is_empty());
}
