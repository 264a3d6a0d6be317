//! Input and timing shared by the benches (each bench uses part of it).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
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
