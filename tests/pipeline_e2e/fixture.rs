//! A recording made by an earlier version of Weir (recording format 1,
//! committed in `tests/fixtures/recording-v1`, imported with `weir import`
//! from 1,808 kcat envelopes on two partitions, bad and late records among
//! them) replays with this version to exactly the windows, alerts and dead
//! letters the reference computes from the records it holds.
//!
//! The reference reads the recording's segments with the `parquet` crate
//! directly, not with Weir's recording reader.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::reference::{
    alerts_of, assert_windows, pipeline_toml_at, reference_alerts, reference_readings,
    reference_windows,
};
use crate::replay::{reasons, replay, replayed};
use crate::support::ConsumedRecord;

pub(crate) const FIXTURE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/recording-v1");

/// The records of every segment of the recording at `dir`.
pub(crate) fn recorded(dir: &Path) -> Vec<ConsumedRecord> {
    let mut records = Vec::new();
    let mut segments: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    for segment in segments {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&segment).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = |name: &str| batch.column_by_name(name).unwrap().clone();
            let (partitions, offsets) = (column("partition"), column("offset"));
            let (timestamps, keys, values) = (column("timestamp"), column("key"), column("value"));
            let partitions = partitions.as_primitive::<Int32Type>();
            let offsets = offsets.as_primitive::<Int64Type>();
            let timestamps = timestamps.as_primitive::<TimestampMillisecondType>();
            let (keys, values) = (keys.as_binary::<i32>(), values.as_binary::<i32>());
            for i in 0..batch.num_rows() {
                records.push(ConsumedRecord {
                    partition: partitions.value(i),
                    offset: offsets.value(i),
                    key: keys.is_valid(i).then(|| keys.value(i).to_vec()),
                    payload: values.value(i).to_vec(),
                    timestamp: timestamps.is_valid(i).then(|| timestamps.value(i)),
                });
            }
        }
    }
    records
}

#[test]
fn a_recording_made_by_an_earlier_version_replays_to_the_reference() {
    let records = recorded(Path::new(FIXTURE));
    assert_eq!(records.len(), 1_808, "the fixture's records");
    let (accepted, bad, late) = reference_readings(&records);
    assert!(
        bad > 0 && !late.is_empty(),
        "the fixture has bad and late records"
    );
    // Late readings the corrected output does not take are dead letters.
    let (_, late) = crate::kinds::reference_corrected(&accepted, &late);
    let windows = reference_windows(&accepted);
    let alerts = reference_alerts(&accepted, &windows);
    assert!(!alerts.is_empty(), "the fixture fires alerts");

    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    // A replay reads no broker, and writes to local files.
    let toml = pipeline_toml_at(
        "127.0.0.1:1",
        "readings",
        "alerts",
        "dead",
        Path::new("unused"),
    );
    std::fs::write(&pipeline, toml).unwrap();
    for workers in [1, 2] {
        let out = replay(Path::new(FIXTURE), &pipeline, workers, &[]);
        let got = replayed(out.path());
        assert_windows(&got.rows, &windows, &format!("{workers} worker(s)"));
        let as_records: Vec<ConsumedRecord> = got
            .alerts
            .iter()
            .map(|line| {
                let doc: serde_json::Value = serde_json::from_slice(line).unwrap();
                ConsumedRecord {
                    partition: 0,
                    offset: 0,
                    key: Some(doc["device"].as_str().unwrap().as_bytes().to_vec()),
                    payload: line.clone(),
                    timestamp: None,
                }
            })
            .collect();
        assert_eq!(
            alerts_of(&as_records),
            alerts,
            "alerts, {workers} worker(s)"
        );
        assert_eq!(as_records.len(), alerts.len(), "each alert once");
        let reasons = reasons(&got.dead);
        assert_eq!(
            (
                reasons.get("malformed_json").copied().unwrap_or(0),
                reasons.get("late").copied().unwrap_or(0)
            ),
            (bad, late),
            "dead letters, {workers} worker(s): {reasons:?}"
        );
    }
}
