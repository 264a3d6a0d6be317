//! A 10x burst: the input arrives ten times faster than the pipeline
//! processes it. Memory must stay bounded: the source stops reading while
//! downstream is behind.
//!
//! Backlogs of three sizes are produced to librdkafka's in-process mock
//! cluster, each on a topic of 256 partitions (the mock keeps only about
//! 5 MB per partition). A bare rdkafka consume loop measures how fast the
//! largest can be read. Then the pipeline of the end-to-end bench (Kafka source, one-minute windows to
//! Parquet, two alert rules to a Kafka topic, bounded) runs with a
//! deliberately slow sink on the readings (exchanged by key, a busy wait
//! per reading), set so that the pipeline processes a tenth of the bare
//! loop's rate: the whole backlog is there at once and can be read ten
//! times faster than it is processed.
//!
//! Each run is a child process of its own, so that its peak RSS
//! (`VmHWM` of `/proc/self/status`) is its own. The child samples every
//! 10 ms the records the source has read and those the slow sink has
//! processed: their difference is what the source read ahead of
//! downstream. Bounded memory shows as a peak RSS and a read-ahead that do
//! not grow with the backlog.
//!
//! The child also samples how far apart in event time the partitions'
//! watermarks are, counts the records read before the first window
//! closed, and how often partitions were held back. Each backlog runs with
//! watermark alignment at 30 s (`watermark_alignment_ms`: a partition more
//! than 30 s ahead of the readings' frontier is paused) on 1 and 2
//! workers, then without it (the default) on 1 worker. The last lines give
//! the peak RSS by backlog: with alignment it should not grow with the
//! backlog. `WEIR_BURST_ONLY` runs only the variants whose label contains
//! it; `WEIR_BURST_OPTIONS` adds a variant with source options
//! (`alignment=<ms>|off` or librdkafka `key=value`, comma-separated);
//! `WEIR_BURST_SPIN_NS` sets the slow sink's cost per reading (on one
//! worker; each of two workers gets twice that) instead of a tenth of the
//! bare loop's rate, so that runs whose bare loops measured differently
//! (from 0.4M to 1.9M records/s on one day here) compare at the same
//! processing rate.
//!
//! `cargo bench --bench burst` (`WEIR_BENCH_READINGS` sets the large
//! backlog, default 2,000,000; the others are a half and a twentieth of it).

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::mocking::MockCluster;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use weir::operators::kafka::KafkaSourceConfig;
use weir::operators::{Reading, Run};
use weir::RunOptions;

mod support;

const PARTITIONS: i32 = 256;
const DEVICES: usize = 400;

/// Produces about `readings` readings of `DEVICES` devices with three
/// sensors, one a second each, keyed by device.
fn produce(brokers: &str, topic: &str, readings: usize) -> usize {
    let config = weir::simulate::SimulatorConfig {
        devices: DEVICES,
        duration_ms: (readings / (DEVICES * 3)) as u64 * 1_000,
        start_ms: 1_763_900_000_000,
        bad_record_rate: 0.0,
        late_rate: 0.0,
        ..weir::simulate::SimulatorConfig::default()
    };
    support::produce_simulation(brokers, topic, &config)
}

/// A field of `/proc/self/status` in kB (`VmRSS`, `VmHWM`).
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Busy for about `ns` nanoseconds.
fn spin(ns: u64) {
    let start = Instant::now();
    while start.elapsed().as_nanos() < u128::from(ns) {
        std::hint::spin_loop();
    }
}

/// The child: runs the pipeline with a slow sink costing `spin_ns` per
/// reading, and prints one line of figures.
fn child(brokers: &str, topic: &str, expected: u64, workers: usize, spin_ns: u64, property: &str) {
    let base_kb = status_kb("VmRSS");
    let run = Run::default();
    let processed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    // Samples (read - processed) and RSS while the pipeline runs.
    let sampler = {
        let (run, processed, done) = (run.clone(), processed.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut ahead_max, mut rss_max, mut spread_max) = (0u64, 0u64, 0u64);
            let mut before_window = 0;
            while !done.load(Ordering::Relaxed) {
                let m = &run.metrics;
                let read = m.records_read.get();
                let ahead = read.saturating_sub(processed.load(Ordering::Relaxed));
                ahead_max = ahead_max.max(ahead);
                rss_max = rss_max.max(status_kb("VmRSS"));
                if m.windows.get() == 0 {
                    before_window = read;
                }
                // How far apart in event time the partitions are.
                let marks: Vec<u64> = m
                    .partitions()
                    .values()
                    .filter_map(|p| p.watermark)
                    .collect();
                if let (Some(lo), Some(hi)) = (marks.iter().min(), marks.iter().max()) {
                    spread_max = spread_max.max(hi - lo);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (ahead_max, rss_max, spread_max, before_window)
        })
    };
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().to_path_buf();
    let options = RunOptions {
        workers,
        bounded: true,
        run: Some(run.clone()),
        ..RunOptions::default()
    };
    let (brokers, topic, property) = (brokers.to_owned(), topic.to_owned(), property.to_owned());
    let slow = processed.clone();
    let start = Instant::now();
    let report = weir::run(&options, move |_scope, ctx| {
        let mut source = KafkaSourceConfig::new(&brokers, &topic);
        source.bounded = true;
        for option in property.split(',').filter(|o| *o != "-") {
            match option.split_once('=') {
                Some(("alignment", "off")) => source.watermark_alignment_ms = None,
                Some(("alignment", ms)) => {
                    source.watermark_alignment_ms = Some(ms.parse().expect("alignment in ms"));
                }
                Some((k, v)) => source.properties.push((k.to_owned(), v.to_owned())),
                None => panic!("bad source option {option}"),
            }
        }
        let readings = support::kafka_pipeline(ctx, source, dir.clone());
        // The slow sink: a busy wait per reading, after an exchange by key.
        let slow = slow.clone();
        readings.sink(
            Exchange::new(|r: &Reading| r.route),
            "SlowSink",
            move |(input, _)| {
                input.for_each(|_, data| {
                    for _ in data.iter() {
                        spin(spin_ns);
                    }
                    slow.fetch_add(data.len() as u64, Ordering::Relaxed);
                });
            },
        );
    })
    .expect("pipeline runs");
    let took = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let (ahead_max, rss_max, spread_max, before_window) = sampler.join().expect("sampler");
    assert_eq!(
        report.records_read, expected,
        "the pipeline read every record"
    );
    assert_eq!(processed.load(Ordering::Relaxed), expected);
    println!(
        "RESULT {} {} {} {} {} {} {} {}",
        expected as f64 / took,
        base_kb,
        status_kb("VmHWM"),
        rss_max,
        ahead_max,
        spread_max,
        before_window,
        run.metrics.partitions_held.get()
    );
}

struct Figures {
    rate: f64,
    base_kb: u64,
    hwm_kb: u64,
    ahead_max: u64,
    spread_max: u64,
    before_window: u64,
    held: u64,
}

fn run_child(
    brokers: &str,
    topic: &str,
    n: usize,
    workers: usize,
    spin_ns: u64,
    property: &str,
) -> Figures {
    let output = Command::new(std::env::current_exe().expect("current exe"))
        .env("WEIR_BURST_CHILD", "1")
        .args([
            brokers,
            topic,
            &n.to_string(),
            &workers.to_string(),
            &spin_ns.to_string(),
            property,
        ])
        .output()
        .expect("child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
        panic!(
            "child failed: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let f: Vec<f64> = line
        .split(' ')
        .map(|v| v.parse().expect("number"))
        .collect();
    Figures {
        rate: f[0],
        base_kb: f[1] as u64,
        hwm_kb: f[2] as u64,
        ahead_max: f[4] as u64,
        spread_max: f[5] as u64,
        before_window: f[6] as u64,
        held: f[7] as u64,
    }
}

fn main() {
    if std::env::var_os("WEIR_BURST_CHILD").is_some() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let num = |i: usize| args[i].parse::<u64>().expect("number");
        child(
            &args[0],
            &args[1],
            num(2),
            num(3) as usize,
            num(4),
            &args[5],
        );
        return;
    }
    let quick = !std::env::args().any(|a| a == "--bench");
    let large: usize = std::env::var("WEIR_BENCH_READINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 60_000 } else { 2_000_000 });
    let cluster = MockCluster::new(1).expect("mock cluster");
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("alerts", 4, 1).expect("topic");
    let mut backlogs = Vec::new();
    for (topic, size) in [("small", large / 20), ("half", large / 2), ("large", large)] {
        cluster.create_topic(topic, PARTITIONS, 1).expect("topic");
        let n = produce(&brokers, topic, size);
        backlogs.push((topic, n));
    }
    let (_, n_large) = backlogs[2];
    let bare = n_large as f64
        / support::bare_consume(&brokers, "large", PARTITIONS, n_large).as_secs_f64();
    println!(
        "burst: backlogs of {} records on {PARTITIONS} partitions of an in-process mock cluster",
        backlogs
            .iter()
            .map(|(_, n)| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  bare rdkafka loop reads the large backlog at {bare:.0} records/s");
    let report = |topic: &str, n: usize, f: &Figures| {
        println!(
            "    {topic:>5} backlog {n:>8}: {:>6.0} records/s ({:.1}x slower than the bare loop), \
             peak RSS {:>4.0} MB ({:>4.0} MB above the process at start); \
             source ahead of the slow sink by at most {} records; \
             partitions up to {:.0} s of event time apart; {} records read before the first window closed; \
             partitions held back {} times",
            f.rate,
            bare / f.rate,
            f.hwm_kb as f64 / 1024.0,
            f.hwm_kb.saturating_sub(f.base_kb) as f64 / 1024.0,
            f.ahead_max,
            f.spread_max as f64 / 1000.0,
            f.before_window,
            f.held
        );
    };
    // `WEIR_BURST_ONLY` runs only the variants whose label contains it.
    let only = std::env::var("WEIR_BURST_ONLY").unwrap_or_default();
    // (label, workers, source options)
    let variants = [
        ("1 worker(s), watermark alignment 30s", 1, "alignment=30000"),
        ("2 worker(s), watermark alignment 30s", 2, "alignment=30000"),
        (
            "1 worker(s), without watermark alignment (the default)",
            1,
            "-",
        ),
    ];
    let extra = std::env::var("WEIR_BURST_OPTIONS").ok();
    let extra_variant = extra
        .as_deref()
        .map(|o| ("1 worker(s), options from WEIR_BURST_OPTIONS", 1, o));
    let mut peaks = Vec::new();
    for (label, workers, options) in variants.into_iter().chain(extra_variant) {
        if !label.contains(&only) {
            continue;
        }
        // The slow sink's cost per reading: the pipeline processes a tenth
        // of what the bare loop reads.
        // `WEIR_BURST_SPIN_NS` sets it, to compare runs whose bare loops
        // measured differently.
        let spin_ns = std::env::var("WEIR_BURST_SPIN_NS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or((10.0 * workers as f64 / bare * 1e9) as u64, |ns: u64| {
                ns * workers as u64
            });
        println!("  {label} ({options}), slow sink busy {spin_ns} ns per reading on each worker:");
        let mut row = Vec::new();
        for &(topic, n) in &backlogs {
            let f = run_child(&brokers, topic, n, workers, spin_ns, options);
            report(topic, n, &f);
            row.push(f.hwm_kb as f64 / 1024.0);
        }
        peaks.push((label, row));
    }
    println!(
        "  peak RSS (MB) by backlog ({}):",
        backlogs
            .iter()
            .map(|(_, n)| n.to_string())
            .collect::<Vec<_>>()
            .join(" / ")
    );
    for (label, row) in peaks {
        println!(
            "    {label}: {} (largest / smallest: {:.2})",
            row.iter()
                .map(|mb| format!("{mb:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            row[row.len() - 1] / row[0]
        );
    }
}
