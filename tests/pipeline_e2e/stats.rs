//! `[window] stats` of a pipeline file reach its output: the recording of
//! `fixture.rs` replayed through a pipeline that asks for extra statistics
//! writes Parquet files with exactly those columns, after the basic ones,
//! whose values equal a reference computed here from the recorded readings
//! (percentiles to their 1% relative accuracy), at 1 and 2 workers.

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMillisecondType};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::fixture::{recorded, FIXTURE};
use crate::reference::{files, pipeline_toml_at, reference_readings, Ref, WINDOW_MS};
use crate::replay::replay;

/// The extra columns asked for, in the order the files must have them.
const EXTRA: [&str; 5] = ["stddev", "first", "last", "p50", "p95"];

/// (device, sensor, window_start) → the values of `EXTRA`.
type Extra = BTreeMap<(String, String, u64), Vec<Option<f64>>>;

/// The extra statistics of each window, from its readings: the sample
/// standard deviation in two passes (none for one reading), the values of
/// the earliest and latest readings by (time, partition, offset), and the
/// values of rank ⌈q·n⌉ among the sorted values.
fn reference(readings: &[Ref]) -> Extra {
    let mut windows: BTreeMap<(String, String, u64), Vec<&Ref>> = BTreeMap::new();
    for r in readings {
        let start = r.time / WINDOW_MS * WINDOW_MS;
        windows
            .entry((r.device.clone(), r.sensor.clone(), start))
            .or_default()
            .push(r);
    }
    windows
        .into_iter()
        .map(|(key, rs)| {
            let n = rs.len();
            let mean = rs.iter().map(|r| r.value).sum::<f64>() / n as f64;
            let m2: f64 = rs.iter().map(|r| (r.value - mean).powi(2)).sum();
            let order = |r: &&&Ref| (r.time, r.partition, r.offset);
            let mut sorted: Vec<f64> = rs.iter().map(|r| r.value).collect();
            sorted.sort_by(f64::total_cmp);
            let at = |q_percent: usize| sorted[(q_percent * n).div_ceil(100).max(1) - 1];
            let values = vec![
                (n >= 2).then(|| (m2 / (n - 1) as f64).sqrt()),
                Some(rs.iter().min_by_key(order).unwrap().value),
                Some(rs.iter().max_by_key(order).unwrap().value),
                Some(at(50)),
                Some(at(95)),
            ];
            (key, values)
        })
        .collect()
}

/// The extra columns of the Parquet files below `dir`, after checking that
/// the files have the basic columns, then exactly `EXTRA`, nullable.
fn written(dir: &Path) -> Extra {
    let mut rows = Extra::new();
    for path in files(dir) {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let b = batch.unwrap();
            let schema = b.schema();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(
                names[9..],
                EXTRA,
                "columns of {}: {names:?}",
                path.display()
            );
            assert!(schema.fields()[9..].iter().all(|f| f.is_nullable()));
            let col = |name: &str| b.column(schema.index_of(name).unwrap()).clone();
            let (device, sensor, start) = (col("device_id"), col("sensor"), col("window_start"));
            let extra: Vec<_> = EXTRA.iter().map(|name| col(name)).collect();
            for i in 0..b.num_rows() {
                let key = (
                    device.as_string::<i32>().value(i).to_owned(),
                    sensor.as_string::<i32>().value(i).to_owned(),
                    start.as_primitive::<TimestampMillisecondType>().value(i) as u64,
                );
                let values = extra
                    .iter()
                    .map(|c| {
                        c.is_valid(i)
                            .then(|| c.as_primitive::<Float64Type>().value(i))
                    })
                    .collect();
                assert!(rows.insert(key, values).is_none(), "a window written twice");
            }
        }
    }
    rows
}

#[test]
fn window_stats_of_the_pipeline_file_are_the_parquet_columns() {
    let (accepted, _, _) = reference_readings(&recorded(Path::new(FIXTURE)));
    let want = reference(&accepted);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    let toml = pipeline_toml_at(
        "127.0.0.1:1",
        "readings",
        "alerts",
        "dead",
        Path::new("unused"),
    )
    .replacen(
        "size = \"1m\"",
        "size = \"1m\"\nstats = [\"p95\", \"last\", \"stddev\", \"first\", \"mean\", \"p50\"]",
        1,
    );
    std::fs::write(&pipeline, toml).unwrap();
    for workers in [1, 2] {
        let out = replay(Path::new(FIXTURE), &pipeline, workers, &[]);
        let got = written(&out.path().join("out/windows"));
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{workers} worker(s)"
        );
        for (key, want) in &want {
            let got = &got[key];
            let what = format!("{workers} worker(s), window {key:?}");
            match (got[0], want[0]) {
                (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9 * w.abs(), "{what}: stddev"),
                (g, w) => assert_eq!(g, w, "{what}: stddev"),
            }
            assert_eq!(got[1..3], want[1..3], "{what}: first, last");
            for (g, w) in got[3..].iter().zip(&want[3..]) {
                let (g, w) = (g.unwrap(), w.unwrap());
                assert!(
                    (g - w).abs() <= 0.01 * w.abs(),
                    "{what}: percentile {g} vs {w}"
                );
            }
        }
    }
}
