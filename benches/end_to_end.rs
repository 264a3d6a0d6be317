//! End-to-end benchmark: Kafka in, Parquet and Kafka out. Simulated readings
//! are produced to librdkafka's in-process mock cluster (spread over 32
//! partitions, since the mock keeps only about 5 MB per partition); then, on
//! the same topic and cluster, a bare rdkafka consume loop and Weir (Kafka
//! source, one-minute windows to Parquet, alert rules to a Kafka topic,
//! bounded) read it all. Prints records per second per worker and Weir's
//! ratio to the bare loop.
//!
//! Then `weir record` copies the topic into a recording (beside the bare
//! loop), and the same pipeline replays that recording to local files.
//!
//! The bare loop and Weir on 1 and 2 workers each keep the fastest of
//! `WEIR_BENCH_RUNS` runs (default 3): one run varies by 15-20% here.
//!
//! `cargo bench --bench end_to_end` (`WEIR_BENCH_READINGS` sets the input
//! size, default 1,000,000).

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use weir::operators::kafka::KafkaSourceConfig;
use weir::record::{Position, RecordOptions};
use weir::simulate::SimulatorConfig;
use weir::RunOptions;

mod support;

const PARTITIONS: i32 = 32;

fn produce(brokers: &str, topic: &str, readings: usize) -> usize {
    let devices = 400;
    let config = SimulatorConfig {
        devices,
        duration_ms: (readings / (devices * 3)) as u64 * 1_000,
        start_ms: 1_763_900_000_000,
        ..SimulatorConfig::default()
    };
    support::produce_simulation(brokers, topic, &config)
}

/// Weir on `workers` threads; with `replay`, reading that recording
/// instead of the topic and writing local files (as `weir replay` does).
fn weir(brokers: &str, topic: &str, workers: usize, replay: Option<&Path>) -> (Duration, u64) {
    let out = tempfile::tempdir().expect("tempdir");
    let local = tempfile::tempdir().expect("tempdir");
    let dir = out.path().to_path_buf();
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    let options = RunOptions {
        workers,
        bounded: true,
        replay: replay.map(Path::to_path_buf),
        out: replay.map(|_| local.path().to_path_buf()),
        ..RunOptions::default()
    };
    let start = Instant::now();
    let report = weir::run(&options, move |_scope, ctx| {
        let mut source = KafkaSourceConfig::new(&brokers, &topic);
        source.bounded = true;
        support::kafka_pipeline(ctx, source, dir.clone());
    })
    .expect("pipeline runs");
    (start.elapsed(), report.records_read)
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let readings: usize = std::env::var("WEIR_BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 30_000 } else { 1_000_000 });
    let runs: usize = std::env::var("WEIR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster
        .create_topic("readings", PARTITIONS, 1)
        .expect("topic");
    cluster.create_topic("alerts", 4, 1).expect("topic");
    let n = produce(&brokers, "readings", readings);
    println!("end to end: {n} records on {PARTITIONS} partitions of an in-process mock cluster; best of {runs} runs");

    let (_, bare) = support::best_of(runs, || {
        support::bare_consume(&brokers, "readings", PARTITIONS, n)
    });
    let bare_rate = n as f64 / bare.as_secs_f64();
    println!("  bare rdkafka loop  {bare_rate:>12.0} records/s");
    for workers in [1, 2] {
        let (_, (took, read)) =
            support::best_of(runs, || weir(&brokers, "readings", workers, None));
        assert_eq!(read as usize, n, "Weir read every record");
        let rate = n as f64 / took.as_secs_f64();
        let per_worker = rate / workers as f64;
        let met = |ok: bool| if ok { "met" } else { "missed" };
        println!(
            "  weir, {workers} worker(s)   {rate:>12.0} records/s, {per_worker:.0} per worker ({}: at least 1,000,000): \
             {:.2}x the bare loop per worker ({}: at least 0.9x)",
            met(per_worker >= 1e6),
            per_worker / bare_rate,
            met(per_worker / bare_rate >= 0.9)
        );
    }

    // `weir record` of the same topic, beside the bare loop; then replays
    // of that recording to local files.
    let recording = tempfile::tempdir().expect("tempdir");
    let options = RecordOptions {
        partitions: Vec::new(),
        from: Position::Edge,
        to: Position::Edge,
        progress: false,
    };
    let source = KafkaSourceConfig::new(&brokers, "readings");
    let report = weir::record::record(&source, recording.path(), &options).expect("records");
    assert_eq!(report.records as usize, n, "every record recorded");
    let rate = n as f64 / report.elapsed.as_secs_f64();
    println!(
        "  weir record        {rate:>12.0} records/s: {:.2}x the bare loop",
        rate / bare_rate
    );
    for workers in [1, 2] {
        let (took, read) = weir(&brokers, "readings", workers, Some(recording.path()));
        assert_eq!(read as usize, n, "the replay read every record");
        let rate = n as f64 / took.as_secs_f64();
        println!(
            "  weir replay, {workers} worker(s) {rate:>12.0} records/s, {:.0} per worker",
            rate / workers as f64
        );
    }
}
