//! Proves the test harness: a real tansu broker round-trips keyed records.

mod support;

use std::collections::HashMap;

use support::{unique_topic, Broker, ConsumedRecord};

#[test]
fn produce_and_consume_all_round_trip_through_real_broker() {
    let broker = Broker::start();
    eprintln!("tansu ready after {:?}", broker.startup_time());
    let topic = unique_topic("smoke");
    broker.create_topic(&topic, 3);

    let keys: Vec<String> = (0..30).map(|k| format!("sensor-{k}")).collect();
    let payloads: Vec<String> = (0..300)
        .map(|i| format!("{}:reading-{i}", keys[i % keys.len()]))
        .collect();
    let base_ts = 1_700_000_000_000_i64;
    let records: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let key = keys[i % keys.len()].as_bytes();
            (Some(key), p.as_bytes(), Some(base_ts + i as i64), None)
        })
        .collect();
    let delivered = broker.produce(&topic, &records);
    assert_eq!(delivered.len(), 300);

    let consumed = broker.consume_all(&topic);
    assert_eq!(consumed.len(), 300, "all records come back");

    // Per partition, offsets are contiguous from 0.
    let mut by_partition: HashMap<i32, Vec<i64>> = HashMap::new();
    for r in &consumed {
        by_partition.entry(r.partition).or_default().push(r.offset);
    }
    for (p, offsets) in &by_partition {
        assert!((0..3).contains(p), "unexpected partition {p}");
        let want: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &want, "partition {p} offsets");
    }
    assert!(by_partition.len() > 1, "keys spread over partitions");

    // Per key: same partition for all its records, payloads in produce order.
    let mut by_key: HashMap<Vec<u8>, Vec<&ConsumedRecord>> = HashMap::new();
    for r in &consumed {
        by_key
            .entry(r.key.clone().expect("key"))
            .or_default()
            .push(r);
    }
    assert_eq!(by_key.len(), keys.len());
    for (k, key) in keys.iter().enumerate() {
        let got = &by_key[key.as_bytes()];
        let want: Vec<&str> = (k..300)
            .step_by(keys.len())
            .map(|i| payloads[i].as_str())
            .collect();
        let got_payloads: Vec<&str> = got
            .iter()
            .map(|r| std::str::from_utf8(&r.payload).unwrap())
            .collect();
        assert_eq!(got_payloads, want, "payloads of {key}");
        assert!(
            got.iter().all(|r| r.partition == got[0].partition),
            "{key} stays in one partition"
        );
        for (r, i) in got.iter().zip((k..300).step_by(keys.len())) {
            assert_eq!(r.timestamp, Some(base_ts + i as i64), "timestamp of {key}");
        }
    }

    // Delivery reports agree with what was read back.
    for (i, (p, o)) in delivered.iter().enumerate() {
        let r = consumed
            .iter()
            .find(|r| r.partition == *p && r.offset == *o)
            .expect("delivered record is consumed");
        assert_eq!(r.payload, payloads[i].as_bytes());
    }
}
