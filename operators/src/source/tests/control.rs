//! A control source: it follows the readings' frontier only once it has
//! read its topic, an event read behind that frontier applies there, and a
//! replay with the recorded marks judges each event as the live run did.

use super::*;
use crate::decode::ControlDecoder;

fn control(start: (PartitionStart, Vec<(i64, u64)>)) -> Ingest<ControlDecoder> {
    Ingest::new(
        ControlDecoder::default(),
        "control",
        0,
        [start],
        Run::default(),
    )
}

/// Feeds out-of-service events (offset, event time) at `cap_time`;
/// returns (offset, the time each applies at).
fn feed(
    ingest: &mut Ingest<ControlDecoder>,
    cap_time: u64,
    events: &[(i64, u64)],
) -> Vec<(i64, u64)> {
    let (mut out, mut dead) = (Vec::new(), Vec::new());
    for (offset, time) in events {
        let payload = format!(
            r#"{{"event_time":{time},"action":"out_of_service","device":"d*","user":"u"}}"#
        );
        let record = RecordRef {
            partition: 0,
            offset: *offset,
            key: None,
            value: payload.as_bytes(),
            timestamp: None,
            headers: &[],
        };
        ingest.accept(record, cap_time, &mut out, &mut dead);
    }
    assert!(dead.is_empty(), "{dead:?}");
    out.iter().map(|e| (e.offset, e.event_time)).collect()
}

#[test]
fn a_control_source_follows_the_readings_once_read_and_a_replay_as_it_did() {
    let mut live = control(PartitionStart::new(0, 0, None, None));
    let ends = BTreeMap::from([(0, 1)]);
    // One event waits to be read: the source holds, so that the event is
    // judged at its own time, not behind the readings.
    assert_eq!(live.following(None, Some(50_000), &ends), None);
    assert_eq!(feed(&mut live, 0, &[(0, 10_000)]), vec![(0, 10_000)]);
    // Read to the end: it follows the readings.
    assert_eq!(live.following(None, Some(50_000), &ends), Some(50_000));
    live.capability_moved(50_000);
    // An event that comes later, behind the readings, applies there.
    assert_eq!(feed(&mut live, 50_000, &[(1, 20_000)]), vec![(1, 50_000)]);

    // A replay of what was recorded (the two events and the mark) applies
    // each at the same time, although its readings run far ahead.
    let marks = live.partitions[0].idle_marks.clone();
    assert_eq!(marks, vec![(1, 50_000)]);
    let (start, _) = PartitionStart::new(0, 0, Some(2), None);
    let mut replay = control((start, marks));
    let none = BTreeMap::new();
    assert_eq!(replay.following(None, Some(90_000), &none), None);
    assert_eq!(feed(&mut replay, 0, &[(0, 10_000)]), vec![(0, 10_000)]);
    assert_eq!(replay.following(None, Some(90_000), &none), Some(50_000));
    replay.capability_moved(50_000);
    assert_eq!(feed(&mut replay, 50_000, &[(1, 20_000)]), vec![(1, 50_000)]);
}
