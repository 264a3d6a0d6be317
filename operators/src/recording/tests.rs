use super::*;
use std::collections::BTreeMap;

fn record(partition: i32, offset: i64, value: &str) -> (i32, i64, String) {
    (partition, offset, value.to_owned())
}

fn write(dir: &Path, records: &[(i32, i64, String)]) {
    let mut recorder = Recorder::open(dir, "readings").unwrap();
    let headers = vec![("origin".to_owned(), Some(b"plant-1".to_vec()))];
    for (partition, offset, value) in records {
        recorder
            .push(&RecordRef {
                partition: *partition,
                offset: *offset,
                timestamp: Some(1_000 + offset),
                key: Some(b"k"),
                value: value.as_bytes(),
                headers: &headers,
            })
            .unwrap();
    }
    recorder.seal().unwrap();
}

fn read_all(dir: &Path) -> Vec<(i32, i64, String)> {
    let recording = Recording::open(dir).unwrap();
    let mut out = Vec::new();
    for &p in recording.segments.keys() {
        let mut reader = recording.reader(p, 0);
        while reader
            .read(3, |r| {
                assert_eq!(r.timestamp, Some(1_000 + r.offset));
                assert_eq!(r.key, Some(&b"k"[..]));
                out.push((
                    r.partition,
                    r.offset,
                    String::from_utf8(r.value.to_vec()).unwrap(),
                ))
            })
            .unwrap()
            > 0
        {}
    }
    out
}

#[test]
fn records_read_back_in_offset_order_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<_> = (0..10)
        .map(|i| record(i % 2, i as i64 * 3, &format!("v{i}")))
        .collect();
    write(dir.path(), &records);
    let mut expected = records.clone();
    expected.sort();
    assert_eq!(read_all(dir.path()), expected);
    let recording = Recording::open(dir.path()).unwrap();
    assert_eq!(recording.ends(), BTreeMap::from([(0, 25), (1, 28)]));
}

/// Recording again continues after what is recorded: records below each
/// partition's recorded end are skipped, a temporary segment left by an
/// interruption is discarded, and its records are recorded again.
#[test]
fn recording_again_continues_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<_> = (0..5).map(|i| record(0, i, &format!("a{i}"))).collect();
    write(dir.path(), &first);
    // An interrupted run: its open segment never became complete.
    let mut interrupted = Recorder::open(dir.path(), "readings").unwrap();
    for (p, o, v) in [record(0, 5, "a5"), record(0, 6, "a6")] {
        interrupted
            .push(&RecordRef {
                partition: p,
                offset: o,
                timestamp: Some(1_000 + o),
                key: Some(b"k"),
                value: v.as_bytes(),
                headers: &[],
            })
            .unwrap();
    }
    std::mem::forget(interrupted);
    let again: Vec<_> = (3..8).map(|i| record(0, i, &format!("a{i}"))).collect();
    write(dir.path(), &again);
    let expected: Vec<_> = (0..8).map(|i| record(0, i, &format!("a{i}"))).collect();
    assert_eq!(read_all(dir.path()), expected);
    let leftovers = std::fs::read_dir(dir.path().join("segments"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0, "no temporary segment remains");
}

#[test]
fn a_directory_recording_another_topic_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[record(0, 0, "x")]);
    let err = Recorder::open(dir.path(), "other").unwrap_err().to_string();
    assert!(err.contains("holds topic `readings`"), "{err}");
    let err = Recording::open(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a usable recording"), "{err}");
}

#[test]
fn idle_marks_are_kept_without_redundant_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut recorder = Recorder::open(dir.path(), "readings").unwrap();
    recorder.mark(2, 10, 5_000).unwrap();
    recorder.mark(2, 12, 4_000).unwrap(); // implied by the first
    recorder.mark(2, 20, 9_000).unwrap();
    // An idle partition: a later watermark at the same offset, again and
    // again; the latest says all the others do.
    for watermark in (10_000..=20_000).step_by(100) {
        recorder.mark(2, 30, watermark).unwrap();
    }
    recorder.seal().unwrap();
    let marks = std::fs::read(marks_path(dir.path(), 2)).unwrap();
    let marks: Vec<(i64, u64)> = serde_json::from_slice(&marks).unwrap();
    assert_eq!(marks, vec![(10, 5_000), (20, 9_000), (30, 20_000)]);
}
