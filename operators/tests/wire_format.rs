//! Every type that travels on a timely channel must read back exactly what was
//! written in the encoding timely uses between processes (bincode, through
//! `ContainerBytes`). bincode is not self-describing: a field skipped when
//! serializing (`skip_serializing_if`), an untagged or flattened enum, or a
//! `deserialize_any` would corrupt the stream at the first record that crosses
//! a process. Each case below sets every optional field both present and
//! absent, and sends several records in one container, so a misread record
//! shifts the ones after it.

use timely::bytes::arc::BytesMut;
use timely::dataflow::channels::ContainerBytes;
use weir_operators::alert::AlertState;
use weir_operators::{
    Alert, DeadLetter, DeadLetterReason, Percentile, Reading, Stat, WindowAggregate,
};

/// Encodes `records` as timely does for a remote worker, decodes them, and
/// requires the same records back.
fn round_trip<T>(records: Vec<T>)
where
    T: serde::Serialize + for<'a> serde::Deserialize<'a> + PartialEq + std::fmt::Debug,
{
    let mut bytes = Vec::new();
    records.into_bytes(&mut bytes);
    assert_eq!(bytes.len(), records.length_in_bytes(), "declared length");
    let decoded = Vec::<T>::from_bytes(BytesMut::from(bytes).freeze());
    assert_eq!(decoded, records);
}

#[test]
fn readings_round_trip() {
    round_trip(vec![
        Reading::new("press-001", "temperature", 1_700_000_000_000, 71.5, 0, 0),
        Reading::new(
            "a-device-name-longer-than-the-inline-limit",
            "s",
            0,
            -0.0,
            7,
            i64::MAX,
        ),
        Reading::new("", "", u64::MAX, f64::MIN_POSITIVE, i32::MAX, -1),
    ]);
}

#[test]
fn window_aggregates_round_trip() {
    let agg = |device: &str, count| WindowAggregate {
        device: device.into(),
        sensor: "pressure".into(),
        window_start: 60_000,
        window_end: 120_000,
        count,
        min: -1.5,
        max: 9.25,
        sum: 42.0,
        revision: 0,
        extra: Vec::new(),
    };
    // Rows with extra statistics, present and absent, between rows without.
    let p99 = Stat::Percentile(Percentile::new(990).unwrap());
    let with = |extra: Vec<(Stat, Option<f64>)>| WindowAggregate {
        extra,
        ..agg("press-003", 2)
    };
    round_trip(vec![
        agg("press-001", 1),
        with(vec![
            (Stat::Stddev, None),
            (Stat::First, Some(1.5)),
            (p99, Some(-0.0)),
        ]),
        agg("press-002", u64::MAX),
        with(vec![
            (Stat::Stddev, Some(0.5)),
            (Stat::Last, None),
            (p99, None),
        ]),
    ]);
}

#[test]
fn dead_letters_round_trip_with_and_without_a_key() {
    let letter = |reason: DeadLetterReason, key: Option<Vec<u8>>, payload: &[u8]| DeadLetter {
        detail: format!("detail of {}", reason.as_str()),
        reason,
        topic: "readings".into(),
        partition: 3,
        offset: 12_345,
        key,
        payload: payload.to_vec(),
    };
    let mut letters = Vec::new();
    for (i, reason) in DeadLetterReason::ALL.iter().copied().enumerate() {
        let key = (i % 2 == 0).then(|| b"press-001".to_vec());
        letters.push(letter(reason, key, b"{\"not\": json"));
    }
    letters.push(letter(
        DeadLetterReason::MalformedJson,
        Some(Vec::new()),
        &[],
    ));
    letters.push(letter(DeadLetterReason::MalformedJson, None, &[0xff, 0x00]));
    round_trip(letters);
}

#[test]
fn alerts_round_trip_with_and_without_a_window() {
    let alert = |state, window: Option<(u64, u64)>, values: Vec<f64>| Alert {
        rule: "overheat".into(),
        device: "press-001".into(),
        sensor: "temperature".into(),
        severity: "critical".into(),
        state,
        event_time: 1_700_000_060_000,
        value: 91.5,
        values,
        threshold: Some(90.0),
        clear_threshold: Some(85.0),
        window_start: window.map(|w| w.0),
        window_end: window.map(|w| w.1),
        last_seen: window.map(|w| w.0 / 2),
        rules_version: 3,
        labels: match window {
            Some(_) => vec![("site".into(), "north".into())],
            None => vec![],
        },
        shelved: window.is_some(),
        acked_by: window.map(|_| "ana".into()),
        acked_at: window.map(|w| w.1),
    };
    // A reading alert (no window) between window alerts: the case that broke
    // clusters when absent windows were skipped.
    round_trip(vec![
        alert(AlertState::Firing, None, vec![91.0, 91.5]),
        alert(AlertState::Resolved, None, vec![]),
        alert(AlertState::Firing, Some((0, 60_000)), vec![91.5]),
        alert(AlertState::Resolved, None, vec![84.0]),
        alert(AlertState::Resolved, Some((60_000, 120_000)), vec![80.0]),
    ]);
}

#[test]
fn alert_json_omits_absent_windows_only() {
    let mut alert = Alert {
        rule: "r".into(),
        device: "d".into(),
        sensor: "s".into(),
        severity: "warning".into(),
        state: AlertState::Firing,
        event_time: 5,
        value: 1.0,
        values: vec![1.0],
        threshold: Some(0.5),
        clear_threshold: Some(0.5),
        window_start: None,
        window_end: None,
        last_seen: None,
        rules_version: 1,
        labels: vec![],
        shelved: false,
        acked_by: None,
        acked_at: None,
    };
    let json = alert.to_json();
    assert_eq!(json["state"], "firing");
    assert_eq!(json["event_time"], 5);
    assert!(json.get("window_start").is_none() && json.get("window_end").is_none());
    alert.window_start = Some(0);
    alert.window_end = Some(60_000);
    let json = alert.to_json();
    assert_eq!(
        (json["window_start"].as_u64(), json["window_end"].as_u64()),
        (Some(0), Some(60_000))
    );
}

#[test]
fn checkpoint_markers_and_acknowledgements_round_trip() {
    use weir_operators::alert::{Chattering, Direction, Rule, RuleSet, Stat};
    use weir_operators::checkpoint::{Ack, Marker, PartInfo, PendingFile, PendingUpload};
    use weir_operators::storage::Upload;
    let marker = Marker {
        id: 7,
        frontier: 1_700_000_000_000,
        last: false,
        rules_version: 1,
        reload: None,
    };
    let stop = Marker {
        id: 0,
        frontier: 0,
        last: true,
        rules_version: 1,
        reload: None,
    };
    // A reload carries whole rules, with every optional part present or not.
    let rules = RuleSet::new(vec![
        Rule::new("hot", "temperature", Direction::Above, 90.0),
        Rule::new("warm", "x", Direction::Below, -1.5)
            .every_sensor()
            .devices("press-*")
            .unwrap()
            .window(60_000, Stat::Mean)
            .rate_of_change(5_000)
            .with(|m| {
                m.escalation = Some((30_000, "critical".into()));
                m.chattering = Some(Chattering {
                    changes: 3,
                    within_ms: 60_000,
                    calm_ms: 60_000,
                });
            }),
        Rule::new_silence("quiet", "speed", 60_000),
        Rule::new("tail", "vibration", Direction::Above, 3.0)
            .window(60_000, Stat::Percentile(Percentile::new(999).unwrap())),
    ]);
    let reload = Marker {
        id: 8,
        frontier: 1_700_000_005_000,
        last: false,
        rules_version: 2,
        reload: Some(rules.to_reload()),
    };
    // The rules come back whole from the reload.
    assert_eq!(
        RuleSet::from_reload(reload.reload.as_ref().unwrap()).unwrap(),
        rules
    );
    round_trip(vec![marker.clone(), reload, stop]);
    let part = PartInfo {
        name: "ckpt-000000000007-alerts.1-w1.part".into(),
        op: "alerts.1".into(),
        worker: 1,
        bytes: 123,
        crc32: 0xdead_beef,
    };
    round_trip(vec![
        Ack {
            marker: marker.clone(),
            worker: 1,
            parts: vec![part.clone(), part],
            files: vec![
                PendingFile {
                    temp: "out/date=2026-11-23/hour=10/.part-x-w1-000000.parquet.inprogress".into(),
                    path: "out/date=2026-11-23/hour=10/part-x-w1-000000.parquet".into(),
                    upload: None,
                },
                PendingFile {
                    temp: "s3://b/out/date=2026-11-23/hour=10/part-x-w1-000001.parquet".into(),
                    path: "s3://b/out/date=2026-11-23/hour=10/part-x-w1-000001.parquet".into(),
                    upload: Some(PendingUpload {
                        root: "s3://b/out".into(),
                        name: "date=2026-11-23/hour=10/part-x-w1-000001.parquet".into(),
                        marker: "_weir_uploads/part-x-w1-000001.parquet.json".into(),
                        upload: Upload {
                            id: "upload-7".into(),
                            parts: vec!["etag-1".into(), "etag-2".into()],
                        },
                    }),
                },
            ],
        },
        Ack {
            marker,
            worker: 0,
            parts: Vec::new(),
            files: Vec::new(),
        },
    ]);
}
