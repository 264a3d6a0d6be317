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

// ---- PROBES (temporary) ----
mod probes {
    use super::support::{unique_topic, Broker, Record};
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    use std::time::{Duration, Instant};

    #[test]
    fn probe_idempotent_producer() {
        let b = Broker::start();
        let t = unique_topic("idem");
        b.create_topic(&t, 2);
        let mut cfg = b.producer_config();
        cfg.set("enable.idempotence", "true");
        let keys: Vec<String> = (0..50).map(|i| format!("k{}", i % 5)).collect();
        let recs: Vec<Record> = keys
            .iter()
            .map(|k| (Some(k.as_bytes()), k.as_bytes(), None, None))
            .collect();
        let d = b.produce_with(&cfg, &t, &recs);
        let got = b.consume_all(&t);
        eprintln!("IDEMPOTENT: delivered={} consumed={}", d.len(), got.len());
        eprintln!("LOG:\n{}", b.log());
        assert_eq!(got.len(), 50);
    }

    #[test]
    fn probe_gzip_producer() {
        let b = Broker::start();
        let t = unique_topic("gzip");
        b.create_topic(&t, 1);
        let mut cfg = b.producer_config();
        cfg.set("compression.type", "gzip");
        let payloads: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
        let recs: Vec<Record> = payloads
            .iter()
            .map(|p| (None, p.as_bytes(), None, None))
            .collect();
        b.produce_with(&cfg, &t, &recs);
        let got = b.consume_all(&t);
        eprintln!("GZIP: consumed={}", got.len());
        assert_eq!(got.len(), 20);
        assert_eq!(got[7].payload, b"v7");
    }

    #[test]
    fn probe_group_commit() {
        let b = Broker::start();
        let t = unique_topic("grp");
        b.create_topic(&t, 2);
        let recs: Vec<Record> = (0..20)
            .map(|i| (None, &b"x"[..], None, Some(i % 2)))
            .collect();
        b.produce(&t, &recs);
        let group = unique_topic("g");
        struct Ctx;
        impl rdkafka::client::ClientContext for Ctx {
            fn log(&self, _l: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
                eprintln!("RDK {fac} {msg}");
            }
        }
        impl rdkafka::consumer::ConsumerContext for Ctx {}
        let mk = || -> BaseConsumer<Ctx> {
            b.client_config()
                .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug)
                .set("debug", "cgrp")
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .set("auto.offset.reset", "earliest")
                .set("session.timeout.ms", "6000")
                .create_with_context(Ctx)
                .unwrap()
        };
        let c = mk();
        c.subscribe(&[&t]).unwrap();
        let start = Instant::now();
        let mut n = 0;
        while n < 20 && start.elapsed() < Duration::from_secs(40) {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(_)) => n += 1,
                Some(Err(e)) => eprintln!("GROUP poll err: {e}"),
                None => {}
            }
        }
        eprintln!("GROUP: first consumer got {n} after {:?}", start.elapsed());
        let r = c.commit_consumer_state(CommitMode::Sync);
        eprintln!("GROUP: commit result {r:?}");
        let committed = c.committed(Duration::from_secs(10));
        eprintln!("GROUP: committed {committed:?}");
        let t0 = Instant::now();
        c.unsubscribe();
        eprintln!("GROUP: unsubscribed in {:?}", t0.elapsed());
        drop(c);
        eprintln!("GROUP: dropped consumer in {:?}", t0.elapsed());
        // explicit commit via assign-mode consumer + committed_offsets
        let c2 = mk();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&t, 0);
        tpl.add_partition(&t, 1);
        let co = c2.committed_offsets(tpl, Duration::from_secs(10));
        eprintln!("GROUP: committed_offsets from new consumer {co:?}");
        eprintln!("LOG:\n{}", b.log());
        // resume
        b.produce(&t, &recs[..4]);
        c2.subscribe(&[&t]).unwrap();
        let start = Instant::now();
        let mut m = vec![];
        while start.elapsed() < Duration::from_secs(20) && m.len() < 4 {
            if let Some(Ok(msg)) = c2.poll(Duration::from_millis(100)) {
                m.push((msg.partition(), msg.offset()));
            }
        }
        eprintln!(
            "GROUP: resumed consumer got {m:?} after {:?}",
            start.elapsed()
        );
        assert_eq!(n, 20);
        r.unwrap();
        assert_eq!(m.len(), 4);
        assert!(m.iter().all(|(_, o)| *o >= 10));
    }

    #[test]
    fn probe_offsets_for_times() {
        let b = Broker::start();
        let t = unique_topic("oft");
        b.create_topic(&t, 1);
        let base = 1_700_000_000_000i64;
        let recs: Vec<Record> = (0..100)
            .map(|i| (None, &b"x"[..], Some(base + i * 1000), Some(0)))
            .collect();
        b.produce(&t, &recs);
        let c: BaseConsumer = b.client_config().set("group.id", "oft").create().unwrap();
        for (q, want) in [
            (base + 50_000, 50),
            (base + 49_500, 50),
            (base, 0),
            (base - 1, 0),
            (base + 200_000, -1),
        ] {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&t, 0, Offset::Offset(q)).unwrap();
            let r = c.offsets_for_times(tpl, Duration::from_secs(10));
            let got = r.as_ref().map(|l| l.elements()[0].offset());
            eprintln!("OFT: ts={} want={want} got={got:?}", q - base);
        }
    }
}
