//! The Kafka source's fetch thread, against librdkafka's mock cluster: what
//! the worker takes from it is what the topic holds, record for record.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use super::{KafkaPoller, KafkaSourceConfig};
use crate::decode::Decoder;
use crate::run::Run;
use crate::source::Poller;

/// A record as the worker should see it: `Ok((value, time))` for a reading,
/// `Err((key, payload))` for a record that is not JSON.
type Seen = Result<(f64, u64), (String, String)>;

/// Records read and decoded on the fetch thread, in batches much smaller
/// than the topic, reach the worker in each partition's offset order, each
/// with its own bytes: the readings are exactly those produced, the
/// records that are not JSON are dead letters with their own key and
/// payload, and the bounded source ends only once every record up to the
/// end offsets was taken.
#[test]
fn every_record_reaches_the_worker_in_order_with_its_own_bytes() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("fetched", 3, 1).expect("topic");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .expect("producer");
    // What each partition holds, in order.
    let mut want: BTreeMap<i32, Vec<Seen>> = BTreeMap::new();
    for i in 0..1_500u64 {
        let partition = (i % 3) as i32;
        let key = format!("key-{i}");
        let payload = match i % 97 {
            0 => format!("not json {i}"),
            _ => format!(
                r#"{{"device_id":"d{i}","sensor":"s","ts":{},"value":{i}.5}}"#,
                1_000 + i
            ),
        };
        let expected = match i % 97 {
            0 => Err((key.clone(), payload.clone())),
            _ => Ok((i as f64 + 0.5, 1_000 + i)),
        };
        want.entry(partition).or_default().push(expected);
        producer
            .send(
                BaseRecord::to("fetched")
                    .partition(partition)
                    .key(&key)
                    .payload(&payload),
            )
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");

    let mut config = KafkaSourceConfig::new(&cluster.bootstrap_servers(), "fetched");
    config.bounded = true;
    config.max_batch = 64;
    config.out_of_orderness_ms = u64::MAX / 2;
    let (mut poller, mut ingest) = KafkaPoller::open(
        config,
        Decoder::default(),
        0,
        1,
        BTreeMap::new(),
        Run::default(),
    )
    .expect("source opens");
    let (mut readings, mut dead) = (Vec::new(), Vec::new());
    let started = Instant::now();
    while ingest.partitions.iter().any(|p| !p.done) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the source never ended"
        );
        if poller.poll(&mut ingest, 0, &mut readings, &mut dead) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    let mut got: BTreeMap<i32, Vec<(i64, Seen)>> = BTreeMap::new();
    for r in &readings {
        got.entry(r.partition)
            .or_default()
            .push((r.offset, Ok((r.value, r.time))));
    }
    for d in &dead {
        let key = String::from_utf8(d.key.clone().expect("keyed")).expect("utf-8");
        let payload = String::from_utf8(d.payload.clone()).expect("utf-8");
        got.entry(d.partition)
            .or_default()
            .push((d.offset, Err((key, payload))));
    }
    for (partition, records) in &mut got {
        // Readings and dead letters are kept apart: their offsets interleave.
        records.sort_by_key(|(offset, _)| *offset);
        let offsets: Vec<i64> = records.iter().map(|(o, _)| *o).collect();
        let n = want[partition].len() as i64;
        assert_eq!(offsets, (0..n).collect::<Vec<_>>(), "partition {partition}");
    }
    let got: BTreeMap<_, Vec<_>> = got
        .into_iter()
        .map(|(p, records)| (p, records.into_iter().map(|(_, r)| r).collect()))
        .collect();
    assert_eq!(got, want);
    // Readings of one partition were taken in offset order.
    for partition in 0..3 {
        let offsets: Vec<i64> = (readings.iter().filter(|r| r.partition == partition))
            .map(|r| r.offset)
            .collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "partition {partition}"
        );
    }
}
