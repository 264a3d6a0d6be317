//! `weir demo`: the embedded default. Starts an in-process Kafka cluster,
//! simulates a plant into it, runs the demo pipeline bounded, and reports
//! what happened. Nothing to install.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::Message;

use crate::config::{self, PipelineSpec};
use crate::pipeline;
use crate::runtime::RunOptions;
use crate::simulate::{self, SimulatorConfig};
use weir_operators::Run;

/// The demo's pipeline file, embedded in the binary.
pub const DEMO_PIPELINE: &str = include_str!("../examples/pipelines/demo.toml");

/// What the demo simulates and where it writes.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// Directory for the Parquet output (replaced if it exists).
    pub out: PathBuf,
    /// Worker threads.
    pub workers: usize,
    /// Simulated devices.
    pub devices: usize,
    /// Event time simulated, in minutes.
    pub minutes: u64,
    /// Seed of the simulator.
    pub seed: u64,
    /// Where to serve the status page, `/metrics`, `/health` and `/ready`.
    pub addr: std::net::SocketAddr,
    /// Also replay the recording at 20x event time for the status page,
    /// then keep serving until Ctrl-C.
    pub serve: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            out: PathBuf::from("weir-demo"),
            workers: 2,
            devices: 20,
            minutes: 10,
            seed: 7,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 9464)),
            serve: false,
        }
    }
}

/// Runs the demo and prints what happened.
pub fn demo(options: &DemoOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.workers > 0,
        "the number of workers must be at least 1"
    );
    // The cluster lives until the demo ends.
    let (_cluster, brokers) = start_cluster()?;
    simulate_plant(&brokers, options)?;
    let windows_dir = options.out.join("windows");
    let spec = demo_spec(&brokers, options, &windows_dir)?;

    let recording = options.out.join("recording");
    let replay_out = options.out.join("replay");
    for dir in [&recording, &replay_out] {
        clear_dir(dir)?;
    }
    let (shown, server) = serve_status(options.addr)?;
    let run = run_live(&spec, options, &recording, &shown)?;
    let replay = replay_recording(&spec, run, &recording, &replay_out)?;
    compare_with_live(&brokers, &windows_dir, &replay_out)?;
    show_results(&brokers, &windows_dir)?;
    if options.serve {
        serve_paced(&spec, replay, options, server.addr, &shown)?;
    }
    Ok(())
}

/// Starts the in-process Kafka cluster with the demo's topics; returns it
/// and its bootstrap servers.
fn start_cluster() -> anyhow::Result<(MockCluster<'static, DefaultProducerContext>, String)> {
    let cluster = MockCluster::new(1).context("cannot start the in-process Kafka cluster")?;
    let brokers = cluster.bootstrap_servers();
    for (topic, partitions) in [("readings", 6), ("alerts", 3), ("readings.dead", 1)] {
        cluster
            .create_topic(topic, partitions, 1)
            .with_context(|| format!("cannot create topic {topic}"))?;
    }
    println!("Started an in-process Kafka cluster at {brokers}.");
    Ok((cluster, brokers))
}

/// Simulates the plant into topic `readings` and prints what it produced.
fn simulate_plant(brokers: &str, options: &DemoOptions) -> anyhow::Result<()> {
    let sim = SimulatorConfig {
        devices: options.devices,
        duration_ms: options.minutes * 60_000,
        seed: options.seed,
        ..SimulatorConfig::default()
    };
    let produced = simulate::produce(brokers, "readings", &sim, None, true)?;
    println!(
        "Simulated {} devices for {} min: {} records ({} readings, {} bad, {} very late, {} anomaly episodes).",
        options.devices, options.minutes, produced.records, produced.readings, produced.bad, produced.late, produced.anomalies
    );
    Ok(())
}

/// The embedded pipeline pointed at `brokers`, writing Parquet into a
/// cleared `windows_dir`; prints what it will run.
fn demo_spec(
    brokers: &str,
    options: &DemoOptions,
    windows_dir: &Path,
) -> anyhow::Result<PipelineSpec> {
    let mut spec = config::parse_pipeline(DEMO_PIPELINE, Path::new("demo.toml"))
        .map_err(|e| anyhow::anyhow!("the embedded demo pipeline is invalid:\n{e}"))?;
    spec.source.brokers = brokers.to_owned();
    for sink in [spec.alerts.as_mut(), spec.dead_letters.as_mut()]
        .into_iter()
        .flatten()
    {
        sink.brokers = brokers.to_owned();
    }
    clear_dir(windows_dir)?;
    let several = spec.windows.len() > 1;
    for w in &mut spec.windows {
        if let Some(parquet) = w.parquet.as_mut() {
            parquet.dir = match several {
                true => windows_dir.join(&w.name).into(),
                false => windows_dir.into(),
            };
        }
    }
    spec.workers = options.workers;
    println!(
        "Running pipeline `{}` bounded on {} worker(s):\n{}",
        spec.name,
        options.workers,
        spec.summary()
    );
    Ok(spec)
}

/// Removes `dir` and everything in it, if it exists.
fn clear_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    Ok(())
}

/// Serves the status page at `addr` (or any free port if it is taken),
/// showing whichever run is put in the returned slot; prints where.
fn serve_status(
    addr: std::net::SocketAddr,
) -> anyhow::Result<(Arc<Mutex<Run>>, crate::http::Server)> {
    let shown = Arc::new(Mutex::new(Run::default()));
    let server = {
        let shown = shown.clone();
        let source: crate::http::MetricsSource =
            Arc::new(move || shown.lock().unwrap_or_else(|e| e.into_inner()).clone());
        // A busy port (another demo) must not stop the demo: any free one.
        crate::http::serve_from(addr, source.clone()).or_else(|e| {
            tracing::warn!(error = %e, "Serving the status page on another port");
            crate::http::serve_from(std::net::SocketAddr::new(addr.ip(), 0), source)
        })?
    };
    println!(
        "Status page: http://{}/ (also /metrics, /health, /ready)",
        server.addr
    );
    Ok((shown, server))
}

/// Runs the pipeline bounded on the live topics, recording into
/// `recording` and showing it on the status page; prints its report.
/// Returns the options it ran with.
fn run_live(
    spec: &PipelineSpec,
    options: &DemoOptions,
    recording: &Path,
    shown: &Mutex<Run>,
) -> anyhow::Result<RunOptions> {
    let live = Run::default();
    *shown.lock().unwrap_or_else(|e| e.into_inner()) = live.clone();
    let run = RunOptions {
        workers: options.workers,
        bounded: true,
        progress: true,
        stop_on_signal: true,
        name: spec.name.clone(),
        record: Some(recording.to_owned()),
        run: Some(live),
        operator_figures: true,
        ..RunOptions::default()
    };
    let report = pipeline::run_spec(spec, &run)?;
    println!("{report}");
    Ok(run)
}

/// Replays `recording` with the live run's options to local files in
/// `replay_out`. Returns the options it ran with.
fn replay_recording(
    spec: &PipelineSpec,
    run: RunOptions,
    recording: &Path,
    replay_out: &Path,
) -> anyhow::Result<RunOptions> {
    println!(
        "Replaying the recording of that run ({}) to local files ({})...",
        recording.display(),
        replay_out.display()
    );
    let replay = RunOptions {
        bounded: true,
        record: None,
        replay: Some(recording.to_owned()),
        out: Some(replay_out.to_owned()),
        run: None,
        ..run
    };
    pipeline::run_spec(spec, &replay)?;
    Ok(replay)
}

/// Compares the replay's Parquet files, alerts and dead letters with the
/// live run's, printing each; an error unless all are identical.
fn compare_with_live(brokers: &str, windows_dir: &Path, replay_out: &Path) -> anyhow::Result<()> {
    let same = |what: &str, live: usize, identical: bool| {
        if identical {
            println!("  {what}: identical ({live})");
        } else {
            println!("  {what}: DIFFERENT from the live run");
        }
        identical
    };
    let live_files = parquet_files(windows_dir)?;
    let live_alerts = read_all(brokers, "alerts")?;
    let live_dead = read_all(brokers, "readings.dead")?;
    let identical = [
        same(
            "Parquet files (bytes)",
            live_files.len(),
            live_files == parquet_files(&replay_out.join("windows"))?,
        ),
        same(
            "alert events",
            live_alerts.len(),
            live_alerts == read_lines(&replay_out.join("alerts.jsonl"))?,
        ),
        same(
            "dead letters",
            live_dead.len(),
            live_dead == read_lines(&replay_out.join("dead_letters.jsonl"))?,
        ),
    ];
    anyhow::ensure!(
        identical.iter().all(|&same| same),
        "the replay did not give the live run's results"
    );
    println!("The replay gave exactly the live run's results.");
    Ok(())
}

/// Prints the first alerts and how to read the Parquet files.
fn show_results(brokers: &str, windows_dir: &Path) -> anyhow::Result<()> {
    let samples = read_topic(brokers, "alerts", 3)?;
    if !samples.is_empty() {
        println!("First alerts on topic `alerts`:");
        for alert in samples {
            println!("  {alert}");
        }
    }
    println!(
        "Parquet files are under {}/ (partitioned by date= and hour=). Read them with, for example:\n  duckdb -c \"SELECT * FROM read_parquet('{}/**/*.parquet', hive_partitioning=true) LIMIT 5\"",
        windows_dir.display(),
        windows_dir.display()
    );
    Ok(())
}

/// Replays the recording again at 20x event time for the status page at
/// `addr`, then keeps serving until Ctrl-C.
fn serve_paced(
    spec: &PipelineSpec,
    replay: RunOptions,
    options: &DemoOptions,
    addr: std::net::SocketAddr,
    shown: &Mutex<Run>,
) -> anyhow::Result<()> {
    println!("Replaying the recording at 20x event time for the status page at http://{addr}/ ...");
    let paced_run = Run::default();
    *shown.lock().unwrap_or_else(|e| e.into_inner()) = paced_run.clone();
    let paced = RunOptions {
        speed: Some(20.0),
        out: Some(options.out.join("replay-paced")),
        run: Some(paced_run),
        ..replay
    };
    pipeline::run_spec(spec, &paced)?;
    println!("Done. Still serving http://{addr}/; Ctrl-C to quit.");
    crate::runtime::wait_for_signal()?;
    Ok(())
}

/// Every file below `dir` as (path without the run's name, bytes), sorted.
fn parquet_files(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir)?.to_string_lossy().into_owned();
                // part-<run>-w<worker>-<seq>.parquet: the run differs.
                let name: Vec<&str> = relative.rsplitn(2, "part-").collect();
                let without_run = name[0].split_once('-').map_or(name[0], |(_, rest)| rest);
                let key = format!("{}{without_run}", name.get(1).unwrap_or(&""));
                files.push((key, std::fs::read(&path)?));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The lines of a file, sorted.
fn read_lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    Ok(lines)
}

/// Every payload of a topic, as text, sorted.
fn read_all(brokers: &str, topic: &str) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "weir-demo-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut remaining = 0;
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), timeout)?;
        remaining += high - low;
        assignment.add_partition_offset(topic, p.id(), rdkafka::Offset::Offset(low))?;
    }
    consumer.assign(&assignment)?;
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (out.len() as i64) < remaining {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "cannot read topic `{topic}` to its end"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8_lossy(m?.payload().unwrap_or(&[])).into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// The first `limit` payloads of a topic, as text.
fn read_topic(brokers: &str, topic: &str, limit: usize) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "weir-demo-reader")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while out.len() < limit && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or(&[])).into_owned());
        }
    }
    Ok(out)
}
