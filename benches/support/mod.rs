//! Input and timing shared by the benches (each bench uses part of it).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use weir::operators::memory::MemoryTopic;
use weir::simulate::{generate, SimulatorConfig};

pub mod parquet;

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

/// The system allocator, counting the bytes live. A bench that measures
/// the memory its state holds installs it:
/// `#[global_allocator] static ALLOCATOR: support::Counting = support::Counting;`
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is
// kept besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

/// The heap bytes `value` holds: what dropping it frees (with [`Counting`]
/// installed as the global allocator; 0 without).
pub fn held_by<T>(value: T) -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    drop(value);
    live.saturating_sub(LIVE.load(Ordering::Relaxed))
}

/// How long a bare rdkafka loop takes to read the `expected` records of
/// partitions `0..partitions` of `topic`, from the beginning. It fails when
/// no record comes for 10 s (the mock cluster deletes what exceeds about
/// 5 MB per partition).
pub fn bare_consume(brokers: &str, topic: &str, partitions: i32, expected: usize) -> Duration {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bare")
        .set("enable.auto.commit", "false")
        // As Weir's source sets it: without it librdkafka pauses a full
        // partition queue's fetching for 1 s and a fast loop starves.
        .set("fetch.queue.backoff.ms", "20")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let start = Instant::now();
    let (mut n, mut bytes) = (0, 0);
    let mut last = Instant::now();
    while n < expected {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            bytes += m.payload().map_or(0, <[u8]>::len);
            n += 1;
            last = Instant::now();
        }
        assert!(
            last.elapsed() < Duration::from_secs(10),
            "the mock cluster kept {n} of {expected} records: use more partitions"
        );
    }
    assert!(bytes > 0);
    start.elapsed()
}

/// The end-to-end benches' pipeline: `source` into one-minute windows to
/// Parquet files in `dir`, and two alert rules (one on readings, one on
/// window means) to the `alerts` topic. Returns the readings, for a bench
/// that also consumes them.
pub fn kafka_pipeline<'s>(
    ctx: &weir::Context<'s>,
    source: weir::operators::kafka::KafkaSourceConfig,
    dir: std::path::PathBuf,
) -> timely::dataflow::Stream<'s, u64, Vec<weir::operators::Reading>> {
    use std::sync::Arc;
    use timely::dataflow::operators::Concat;
    use weir::operators::alert::{Direction, Rule, RuleSet, Stat};
    use weir::operators::kafka::KafkaSinkConfig;
    use weir::operators::parquet::ParquetSinkConfig;
    use weir::operators::{Decoder, EvaluateAlerts, WindowAggregateOp};
    let rules = Arc::new(RuleSet::new(vec![
        Rule::new("overheat", "temperature", Direction::Above, 90.0)
            .clear_at(85.0)
            .with(|m| m.for_ms = 20_000),
        Rule::new("pressure-mean", "pressure", Direction::Above, 7.0).window(60_000, Stat::Mean),
    ]));
    let brokers = source.brokers.clone();
    let (readings, _dead) = ctx.source(source, Decoder::default());
    let windows = readings.clone().window_aggregate(60_000, ctx);
    ctx.parquet(windows.clone(), ParquetSinkConfig::new(dir));
    let alerts = readings
        .clone()
        .evaluate_alerts(rules.clone(), ctx)
        .concat(windows.evaluate_alerts(rules, ctx));
    ctx.sink(alerts, KafkaSinkConfig::new(&brokers, "alerts"));
    readings
}
