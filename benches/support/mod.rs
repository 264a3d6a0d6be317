//! Input and timing shared by the benches (each bench uses part of it).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use weir::operators::memory::MemoryTopic;
use weir::simulate::{generate, SimulatorConfig};

/// About `readings` simulated readings of 200 devices with three sensors,
/// without bad or late records, on 8 partitions keyed by device.
pub fn input(readings: usize) -> MemoryTopic {
    let devices = 200;
    let sensors = 3;
    let config = SimulatorConfig {
        devices,
        duration_ms: (readings / (devices * sensors)) as u64 * 1_000,
        start_ms: 1_763_900_000_000,
        bad_record_rate: 0.0,
        late_rate: 0.0,
        ..SimulatorConfig::default()
    };
    let records: Vec<_> = generate(&config).collect();
    let partitions = 8;
    MemoryTopic::from_records(
        "bench",
        partitions,
        records.iter().map(|r| {
            let p = weir::operators::SensorKey::route_hash(&r.key, "") as usize % partitions;
            (
                p,
                Some(r.key.as_bytes()),
                r.payload.as_slice(),
                Some(r.timestamp_ms),
            )
        }),
    )
}

/// Produces the readings `config` simulates to `topic` on the Kafka
/// cluster at `brokers` (keyed by device, stamped with their event time),
/// and waits until every one is delivered. Returns how many.
pub fn produce_simulation(brokers: &str, topic: &str, config: &SimulatorConfig) -> usize {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let mut n = 0;
    for r in generate(config) {
        let mut record = BaseRecord::to(topic)
            .key(r.key.as_bytes())
            .payload(&r.payload)
            .timestamp(r.timestamp_ms);
        // A full queue: let the producer deliver, then try again.
        while let Err((_, back)) = producer.send(record) {
            producer.poll(Duration::from_millis(5));
            record = back;
        }
        n += 1;
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    n
}

/// The fastest of `runs` runs of `f`, with its output.
pub fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = None::<(Duration, T)>;
    for _ in 0..runs {
        let start = Instant::now();
        let out = f();
        let took = start.elapsed();
        if best.as_ref().is_none_or(|(b, _)| took < *b) {
            best = Some((took, out));
        }
    }
    best.expect("at least one run")
}
