//! Latency benchmark: event-to-alert latency of a Weir pipeline against a
//! real broker, beside a bare produce→consume hop on the same broker, in the
//! same run.
//!
//! `cargo bench --bench latency` (5 to 10 minutes). Method:
//!
//! 1. **Broker**: tansu (`$WEIR_TANSU`, else
//!    `~/.cache/weir/tansu-0.6.0/bin/tansu`; without it the bench says why it
//!    skips and exits 0), started with the integration tests' harness
//!    (`tests/support`) in a temporary directory on a free loopback port.
//!    Every run gets a fresh broker: tansu 0.6's SQLite store costs more per
//!    request the more it holds (its `header` table has no index, and every
//!    record fetched looks its headers up in it), so a run on the broker of
//!    the run before would measure that run's leftovers. Every topic has one
//!    partition.
//! 2. **Maximum rate**: the highest input rate at which the live pipeline
//!    keeps up ([`max_live_rate`]): runs as in 3, of [`PROBE_SECS`] each, from
//!    [`PROBE_START`] records/s doubling until one does not keep up, then
//!    bisecting. A run keeps up ([`Run::kept_up`]) when every reading and
//!    alert is delivered, its p99 is within [`SATURATED`], and its median
//!    latency grows by at most [`LAG_GROWTH`] from the first to the last
//!    quarter of its readings (a growing backlog, at the broker or in Weir,
//!    shows as growing latency). This is the rate of the whole setup on
//!    this machine (tansu, the pipeline, the bench's producer and consumer),
//!    not Weir's throughput alone.
//! 3. **Weir**, at 50% of that rate: a paced producer (this thread) sends
//!    readings to the pipeline's source topic while the pipeline runs live,
//!    and a consumer reads the alert topic. Every reading fires or resolves
//!    an alert (values alternate above and below the rule's threshold per
//!    device) and each alert's `value` names the reading that caused it, so
//!    latency = time the alert is received − time its reading was produced.
//!    A reading's event time (`ts`) is the wall clock at production in ms;
//!    latencies use the same clock in µs (a second table gives them against
//!    the event time itself, in whole ms, which adds up to 1 ms). An alert
//!    crosses the broker twice (reading in, alert out); the bare hop once.
//! 4. **Bare hop**, at the same rate: the same paced readings to a topic,
//!    read by a consumer; latency = receive time − send time.
//!
//! The pipeline is the file `pipeline.toml` printed at the start (source,
//! one-minute windows to Parquet, the alert rule, alert and dead-letter
//! sinks, 1 worker), loaded with `weir::config::load_pipeline` and run in
//! this process with `weir::pipeline::run_spec`, the code `weir run` runs (a
//! bench cannot rely on the `weir` binary being built). It serves `/ready`
//! (readings are produced once it answers) and ends by itself after the last
//! reading (`RunOptions::end_at`). It is measured with
//! `watermark_step = "1ms"` ([`SHORT_STEP`]) and with the default step
//! (100 ms), to show what the step costs. Settings as a latency-sensitive
//! user would choose them: `out_of_orderness = "0s"` (one in-order producer
//! per partition), `idle_timeout = "10s"` (it only matters when a partition
//! goes quiet; at 1 s, broker stalls on this machine made readings
//! `late_after_idle`), and for every client, the bench's and the
//! pipeline's ([`CLIENT`], [`CONSUMER`], [`PRODUCER`]), through the file's
//! `properties`: Nagle off, `fetch.wait.max.ms` 5 (tansu holds every fetch
//! for exactly this long and answers with what it had at the start, so a
//! hop takes one to two of it; shorter waits flood it with fetches),
//! `linger.ms` 1 (the sinks' default is 5 ms, which every alert would wait;
//! at 0 every record is its own request, which tansu cannot keep up with at
//! higher rates, and at the measured rate 0 made no difference to Weir's
//! p99). `WEIR_LATENCY_CONSUMER` / `WEIR_LATENCY_PRODUCER`
//! (`key=value,...`) override them.
//!
//! Samples of the first [`WARMUP`] and the last [`TAIL`] of each run are left
//! out (the last readings wait for the idle timeout or the end of the run,
//! since no later reading moves the watermark past them).
//!
//! `WEIR_LATENCY_SECS` sets each run's length (default 20 s) and
//! `WEIR_LATENCY_RATE` the input rate (then the maximum is not measured).
//! Without `--bench` (`cargo test --benches`) it runs briefly at 300
//! records/s.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use support::{unique_topic, Broker};
use weir::operators::kafka::EndOffset;
use weir::RunOptions;

/// librdkafka properties of every client here and in the pipeline: Nagle
/// off (small requests leave at once).
const CLIENT: &[(&str, &str)] = &[("socket.nagle.disable", "true")];
/// And of every consumer: how long a fetch waits at the broker for data.
const CONSUMER: &[(&str, &str)] = &[("fetch.wait.max.ms", "5")];
/// And of every producer: how long a record may wait for others to share
/// its request.
const PRODUCER: &[(&str, &str)] = &[("linger.ms", "1")];

/// Samples left out at the start of a run.
const WARMUP: Duration = Duration::from_secs(3);
/// Samples left out at the end of a run.
const TAIL: Duration = Duration::from_secs(1);
/// Devices the readings are spread over (one sensor each).
const DEVICES: u64 = 100;
/// How long the readings of a run may take to be delivered after the last
/// one is sent; a broker that needs longer is saturated.
const FLUSH: Duration = Duration::from_secs(20);
/// A paced producer this far behind its schedule stops: the broker does
/// not take its readings.
const BEHIND: Duration = Duration::from_secs(5);
/// A run with a p99 above this did not keep up: its latencies are a
/// backlog growing at the broker.
const SATURATED: Duration = Duration::from_millis(250);
/// The input rate without `--bench` (a smoke test; no maximum measured).
const QUICK_RATE: f64 = 300.0;
/// The rule's threshold; readings alternate around it per device.
const THRESHOLD: f64 = 50.0;
/// The source's watermark step in the measured pipeline file.
const SHORT_STEP: &str = "1ms";
/// The first rate tried when looking for the maximum, records/s.
const PROBE_START: f64 = 250.0;
/// Length of each run looking for the maximum.
const PROBE_SECS: f64 = 12.0;
/// Bisections between the last rate kept up with and the first one not.
const PROBE_BISECTIONS: u32 = 3;
/// A run whose median latency grows by more than this from the first to
/// the last quarter of its measured readings did not keep up: a backlog
/// grows somewhere.
const LAG_GROWTH: Duration = Duration::from_millis(20);

/// The pipeline file's watermark step.
#[derive(Clone, Copy)]
enum Step {
    /// `watermark_step = SHORT_STEP`.
    Short,
    /// Not set: the default, 100 ms.
    Default,
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let Some(tansu) = find_tansu() else {
        println!(
            "latency: skipped: no tansu broker (set WEIR_TANSU, or run `bash scripts/ensure-tansu.sh` \
             to install it into ~/.cache/weir/tansu-0.6.0)"
        );
        return;
    };
    let secs = env_f64("WEIR_LATENCY_SECS").unwrap_or(if quick { 6.0 } else { 20.0 });
    println!(
        "latency: tansu ({}), a fresh broker per run, every topic 1 partition, pipeline on 1 worker, {} cores",
        tansu.display(),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    let settings = Settings::from_env();
    println!(
        "  consumers (bench and pipeline): {}",
        list(&settings.consumer)
    );
    println!(
        "  producers (bench and pipeline): {}",
        list(&settings.producer)
    );

    let show = |run: &Run| {
        let s = run.stats();
        println!(
            "  {}: sent {} at {:.0}/s, {} of {} measured records received{}; p50 {:.2} ms, p99 {:.2} ms, median grew {:.2} ms",
            run.label,
            run.sent,
            run.achieved_rate,
            run.received,
            run.expected,
            run.note,
            ms(s.p50),
            ms(s.p99),
            ms(run.growth)
        );
    };
    let (rate, max) = match env_f64("WEIR_LATENCY_RATE") {
        Some(rate) => {
            println!("  input rate {rate:.0} records/s (WEIR_LATENCY_RATE; maximum not measured)");
            (rate, None)
        }
        None if quick => (QUICK_RATE, None),
        None => {
            let max = max_live_rate(&settings);
            (max / 2.0, Some(max))
        }
    };
    match max {
        Some(_) => println!(
            "  input rate {rate:.0} records/s = 50% of the maximum; {secs:.0} s per run, \
             the first {WARMUP:?} and the last {TAIL:?} left out"
        ),
        None => println!("  input rate {rate:.0} records/s; {secs:.0} s per run"),
    }
    // The three runs at that rate, one broker each, one after another.
    let bare = with_broker(|broker| bare_hop(broker, &settings, rate, secs));
    show(&bare);
    let short = with_broker(|broker| weir_latency(broker, &settings, rate, secs, Step::Short));
    show(&short);
    let default = with_broker(|broker| weir_latency(broker, &settings, rate, secs, Step::Default));
    show(&default);
    let runs = [bare, short, default];

    println!();
    println!(
        "  {:<44} {:>8} {:>8} {:>8} {:>8} {:>8}  {:>9}",
        "latency (ms)", "samples", "p50", "p95", "p99", "max", "p99/bare"
    );
    let bare_p99 = runs[0].stats().p99;
    for run in &runs {
        let s = run.stats();
        println!(
            "  {:<44} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {:>8.2}x",
            run.label,
            s.n,
            ms(s.p50),
            ms(s.p95),
            ms(s.p99),
            ms(s.max),
            s.p99 as f64 / bare_p99.max(1) as f64
        );
    }
    for run in &runs {
        let e = run.event_stats();
        println!(
            "  {:<44} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.2}   against event time (whole ms)",
            run.label,
            e.n,
            ms(e.p50),
            ms(e.p95),
            ms(e.p99),
            ms(e.max)
        );
    }
    match max {
        Some(max) => println!(
            "  input {rate:.0} records/s: 50% of the maximum rate the live pipeline kept up with, \
             {max:.0} records/s"
        ),
        None => println!("  input {rate:.0} records/s (WEIR_LATENCY_RATE, or without --bench)"),
    }
    for run in runs.iter().filter(|r| !r.kept_up()) {
        println!(
            "  {} did not keep up (readings or alerts undelivered, p99 over {:?}, \
             or the median grew by over {:?}): its figures are backlog, not latency",
            run.label, SATURATED, LAG_GROWTH
        );
    }
    for run in &runs[1..] {
        let s = run.stats();
        let yes = |ok: bool| if ok { "yes" } else { "no" };
        println!(
            "  aim, {}: p99 {:.2} ms; within 10 ms: {}; within 2x the bare hop's {:.2} ms: {}",
            run.label,
            ms(s.p99),
            yes(s.n > 0 && s.p99 <= 10_000),
            ms(bare_p99),
            yes(s.n > 0 && s.p99 <= 2 * bare_p99)
        );
    }
}

/// Runs `f` against a fresh broker, then stops the broker and waits until
/// it has exited (a busy tansu takes a while), so that one run's broker
/// does not compete with the next for the CPU.
fn with_broker<T>(f: impl FnOnce(&Broker) -> T) -> T {
    let broker = Broker::start();
    let out = f(&broker);
    let addr: SocketAddr = broker.bootstrap().parse().expect("a socket address");
    drop(broker);
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
        if Instant::now() > deadline {
            println!("  (the broker on {addr} had not stopped 2 minutes after it was asked to)");
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    out
}

/// librdkafka properties of the consumers and of the producers (the
/// benchmark's and the pipeline's): [`CLIENT`] with [`CONSUMER`] or
/// [`PRODUCER`], then `WEIR_LATENCY_CONSUMER` / `WEIR_LATENCY_PRODUCER`.
struct Settings {
    consumer: Vec<(String, String)>,
    producer: Vec<(String, String)>,
}

impl Settings {
    fn from_env() -> Self {
        let props = |own: &[(&str, &str)], var: &str| {
            let mut all: Vec<(String, String)> = Vec::new();
            let mut set = |k: &str, v: &str| match all.iter_mut().find(|(key, _)| key == k) {
                Some(entry) => entry.1 = v.to_owned(),
                None => all.push((k.to_owned(), v.to_owned())),
            };
            for (k, v) in CLIENT.iter().chain(own) {
                set(k, v);
            }
            if let Ok(extra) = std::env::var(var) {
                for kv in extra.split(',').filter(|s| !s.trim().is_empty()) {
                    let (k, v) = kv
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{var}: `{kv}` is not key=value"));
                    set(k.trim(), v.trim());
                }
            }
            all
        };
        Settings {
            consumer: props(CONSUMER, "WEIR_LATENCY_CONSUMER"),
            producer: props(PRODUCER, "WEIR_LATENCY_PRODUCER"),
        }
    }

    fn consumer(&self, broker: &Broker) -> ClientConfig {
        let mut config = broker.client_config();
        for (k, v) in &self.consumer {
            config.set(k, v);
        }
        config
    }

    fn producer(&self, broker: &Broker) -> ClientConfig {
        let mut config = broker.client_config();
        for (k, v) in &self.producer {
            config.set(k, v);
        }
        config
    }
}

/// `k=v, ...`
fn list(props: &[(String, String)]) -> String {
    props
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A TOML inline table of `props`.
fn toml_table(props: &[(String, String)]) -> String {
    let mut s = String::from("{ ");
    for (i, (k, v)) in props.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(s, "{sep}\"{k}\" = \"{v}\"");
    }
    s.push_str(" }");
    s
}

fn find_tansu() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WEIR_TANSU") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let cached = home.join(".cache/weir/tansu-0.6.0/bin/tansu");
    cached.is_file().then_some(cached)
}

fn env_f64(name: &str) -> Option<f64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

/// Reading number `seq`, produced at `ts_ms`: device `seq % DEVICES`, its
/// value above the threshold on the device's even readings and at or below
/// it on odd ones, so each reading fires or resolves an alert. The value
/// encodes `seq` (see [`seq_of`]).
fn reading(seq: u64, ts_ms: u64) -> (String, Vec<u8>) {
    let device = format!("press-{:03}", seq % DEVICES);
    let value = if (seq / DEVICES) % 2 == 0 {
        1_000.0 + seq as f64
    } else {
        -(seq as f64)
    };
    let payload = format!(
        r#"{{"device_id":"{device}","sensor":"temperature","value":{value},"ts":{ts_ms}}}"#
    );
    (device, payload.into_bytes())
}

/// The reading number a reading's or an alert's `value` encodes.
fn seq_of(payload: &[u8]) -> Option<u64> {
    let json: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let value = json.get("value")?.as_f64()?;
    Some(if value >= 1_000.0 {
        (value - 1_000.0) as u64
    } else {
        (-value) as u64
    })
}

/// Writes the pipeline file into `dir` and loads it.
fn pipeline_toml(
    broker: &Broker,
    settings: &Settings,
    topics: &Topics,
    dir: &Path,
    step: Step,
) -> (String, weir::config::PipelineSpec) {
    let (source_props, sink_props) = (
        toml_table(&settings.consumer),
        toml_table(&settings.producer),
    );
    let step_line = match step {
        Step::Short => format!("watermark_step = \"{SHORT_STEP}\"\n"),
        Step::Default => String::new(),
    };
    let text = format!(
        r#"name = "latency"

[source]
brokers = "{brokers}"
topic = "{readings}"
start = "earliest"
out_of_orderness = "0s"
idle_timeout = "10s"
{step_line}properties = {source_props}

[window]
size = "1m"

[[rule]]
name = "flip"
sensor = "temperature"
above = {THRESHOLD:?}

[sinks.parquet]
path = "windows"

[sinks.alerts]
topic = "{alerts}"
properties = {sink_props}

[sinks.dead_letters]
topic = "{dead}"
properties = {sink_props}

[runtime]
workers = 1
"#,
        brokers = broker.bootstrap(),
        readings = topics.readings,
        alerts = topics.alerts,
        dead = topics.dead,
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, &text).expect("write the pipeline file");
    let spec = weir::config::load_pipeline(&path).unwrap_or_else(|e| panic!("{e}"));
    (text, spec)
}

/// A pipeline's topics, fresh for each run.
struct Topics {
    readings: String,
    alerts: String,
    dead: String,
}

impl Topics {
    fn create(broker: &Broker, prefix: &str) -> Self {
        let topics = Topics {
            readings: unique_topic(&format!("{prefix}-readings")),
            alerts: unique_topic(&format!("{prefix}-alerts")),
            dead: unique_topic(&format!("{prefix}-dead")),
        };
        for t in [&topics.readings, &topics.alerts, &topics.dead] {
            broker.create_topic(t, 1);
        }
        topics
    }
}

#[allow(clippy::result_large_err)] // rdkafka's send hands the record back with its error
fn send(producer: &BaseProducer, topic: &str, key: &str, payload: &[u8]) {
    let record = BaseRecord::to(topic).key(key).payload(payload);
    weir::operators::kafka::send_retrying(
        record,
        |r| producer.send(r),
        || {
            producer.poll(Duration::from_millis(1));
        },
    )
    .unwrap_or_else(|e| panic!("produce to {topic}: {e}"));
}

/// The highest input rate at which the live pipeline (the file with
/// `watermark_step = SHORT_STEP`) keeps up ([`Run::kept_up`]): runs of
/// [`PROBE_SECS`], each on a fresh broker, from [`PROBE_START`] doubling
/// until one does not keep up, then [`PROBE_BISECTIONS`] bisections
/// (geometric) between the last rate kept up with and the first one not.
fn max_live_rate(settings: &Settings) -> f64 {
    println!("  maximum rate: live runs of {PROBE_SECS:.0} s, doubling, then bisecting");
    let probe = |rate: f64| {
        let run =
            with_broker(|broker| weir_latency(broker, settings, rate, PROBE_SECS, Step::Short));
        let s = run.stats();
        let kept_up = run.kept_up();
        println!(
            "    {rate:>7.0} records/s: {}; p50 {:.2} ms, p99 {:.2} ms, median grew {:.2} ms, {} of {} received{}",
            if kept_up { "kept up" } else { "did not keep up" },
            ms(s.p50),
            ms(s.p99),
            ms(run.growth),
            run.received,
            run.expected,
            run.note
        );
        kept_up
    };
    let (mut good, mut bad) = (0.0, PROBE_START);
    while probe(bad) {
        good = bad;
        bad *= 2.0;
    }
    assert!(
        good > 0.0,
        "the pipeline did not keep up even at {PROBE_START} records/s"
    );
    for _ in 0..PROBE_BISECTIONS {
        let mid = (good * bad).sqrt();
        if probe(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    println!("  maximum rate kept up with: {good:.0} records/s");
    good
}

/// What one latency run measured.
struct Run {
    label: String,
    /// Latency of each measured record, µs.
    latencies: Vec<u64>,
    /// The same against the event time (whole ms), µs.
    event_latencies: Vec<u64>,
    sent: u64,
    achieved_rate: f64,
    received: usize,
    expected: usize,
    /// Growth of the median latency over the run ([`lag_growth`]), µs.
    growth: u64,
    /// Every reading delivered, every measured record received, and the
    /// pipeline (if any) read every reading.
    complete: bool,
    note: String,
}

#[derive(Clone, Copy, Default)]
struct Stats {
    n: usize,
    p50: u64,
    p95: u64,
    p99: u64,
    max: u64,
}

fn stats(values: &[u64]) -> Stats {
    let mut v = values.to_vec();
    v.sort_unstable();
    let at = |p: f64| {
        if v.is_empty() {
            0
        } else {
            // Nearest rank.
            v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
        }
    };
    Stats {
        n: v.len(),
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
        max: v.last().copied().unwrap_or(0),
    }
}

impl Run {
    /// Complete, and latency not backlog: p99 within [`SATURATED`], and
    /// the median not growing by more than [`LAG_GROWTH`].
    fn kept_up(&self) -> bool {
        self.complete
            && self.stats().p99 <= SATURATED.as_micros() as u64
            && self.growth <= LAG_GROWTH.as_micros() as u64
    }

    fn stats(&self) -> Stats {
        stats(&self.latencies)
    }
    fn event_stats(&self) -> Stats {
        stats(&self.event_latencies)
    }
}

/// Reads `topic` from its start until `stop`, noting when each record
/// arrives: `(seq, µs)`, and the consumer errors (counted, with the first).
/// `measured` counts records of `range`.
fn receive(
    config: ClientConfig,
    topic: String,
    range: std::ops::Range<u64>,
    measured: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<(Vec<(u64, u64)>, String)> {
    let mut config = config;
    config
        .set("group.id", unique_topic("latency-reader"))
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    thread::spawn(move || {
        let mut got = Vec::new();
        let (mut errors, mut first) = (0, None);
        while !stop.load(Ordering::Relaxed) {
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => {
                    let at = now_us();
                    if let Some(seq) = m.payload().and_then(seq_of) {
                        if range.contains(&seq) {
                            measured.fetch_add(1, Ordering::Relaxed);
                        }
                        got.push((seq, at));
                    }
                }
                Some(Err(e)) => {
                    errors += 1;
                    first.get_or_insert(e);
                }
                None => {}
            }
        }
        drop(tpl);
        let note = first.map_or_else(String::new, |e| {
            format!("; {errors} errors consuming {topic}, the first: {e}")
        });
        (got, note)
    })
}

/// Produces readings to `topic` at `rate` for `secs`, from this thread;
/// returns each one's send time (µs), by number, the rate they were sent
/// at, and a note if they could not all be delivered.
fn produce_paced(
    producer: &BaseProducer,
    topic: &str,
    rate: f64,
    secs: f64,
) -> (Vec<u64>, f64, String) {
    let total = (rate * secs) as u64;
    let mut sent = Vec::with_capacity(total as usize);
    let started = Instant::now();
    let mut seq = 0;
    let mut behind = None;
    while seq < total {
        let elapsed = started.elapsed().as_secs_f64();
        if elapsed - seq as f64 / rate > BEHIND.as_secs_f64() {
            // Blocked on a full queue: the broker does not take them.
            behind = Some(format!(
                "; the producer fell {BEHIND:?} behind and stopped after {seq} readings"
            ));
            break;
        }
        let due = ((elapsed * rate) as u64 + 1).min(total);
        while seq < due {
            let at = now_us();
            let (device, payload) = reading(seq, at / 1_000);
            send(producer, topic, &device, &payload);
            sent.push(at);
            seq += 1;
        }
        producer.poll(Duration::ZERO);
        let next = Duration::from_secs_f64(seq as f64 / rate);
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
    }
    let achieved = seq as f64 / started.elapsed().as_secs_f64();
    let flushed = producer.flush(FLUSH);
    let mut note = behind.unwrap_or_default();
    if let Err(e) = flushed {
        let _ = write!(
            note,
            "; {} readings undelivered {FLUSH:?} after the last was sent ({e})",
            producer.in_flight_count()
        );
    }
    (sent, achieved, note)
}

/// The measured readings of a run of `secs` at `rate`: the warm-up and the
/// tail are left out.
fn measured_range(rate: f64, secs: f64) -> std::ops::Range<u64> {
    let from = (rate * WARMUP.as_secs_f64()) as u64;
    let to = (rate * (secs - TAIL.as_secs_f64())).max(0.0) as u64;
    from..to.max(from)
}

/// Latencies of the records of `range`: `(receive − send, receive − event
/// time)`, µs; how many were received.
fn latencies(
    sent: &[u64],
    got: &[(u64, u64)],
    range: &std::ops::Range<u64>,
) -> (Vec<u64>, Vec<u64>, usize) {
    let mut seen = vec![false; sent.len()];
    let (mut lat, mut event) = (Vec::new(), Vec::new());
    for &(seq, at) in got {
        let i = seq as usize;
        if !range.contains(&seq) || i >= sent.len() || std::mem::replace(&mut seen[i], true) {
            continue;
        }
        lat.push(at.saturating_sub(sent[i]));
        event.push(at.saturating_sub(sent[i] / 1_000 * 1_000));
    }
    let n = lat.len();
    (lat, event, n)
}

/// How much the median latency grew from the first to the last quarter of
/// the measured readings (by number), µs: a backlog growing somewhere.
fn lag_growth(sent: &[u64], got: &[(u64, u64)], range: &std::ops::Range<u64>) -> u64 {
    let quarter = (range.end - range.start) / 4;
    let median_of = |part: std::ops::Range<u64>| stats(&latencies(sent, got, &part).0).p50;
    let first = median_of(range.start..range.start + quarter);
    let last = median_of(range.end - quarter..range.end);
    last.saturating_sub(first)
}

/// Waits until `measured` reaches `want` or `timeout` passes.
fn wait_for(measured: &AtomicUsize, want: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while measured.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
}

/// Paced readings to a topic and a consumer of it: the broker's own hop.
fn bare_hop(broker: &Broker, settings: &Settings, rate: f64, secs: f64) -> Run {
    let topic = unique_topic("bare");
    broker.create_topic(&topic, 1);
    let range = measured_range(rate, secs);
    let measured = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = receive(
        settings.consumer(broker),
        topic.clone(),
        range.clone(),
        measured.clone(),
        stop.clone(),
    );
    let producer: BaseProducer = settings.producer(broker).create().expect("producer");
    let (sent, achieved_rate, mut note) = produce_paced(&producer, &topic, rate, secs);
    let expected = (range.end - range.start) as usize;
    wait_for(&measured, expected, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let (got, errors) = reader.join().expect("reader");
    note.push_str(&errors);
    let (latencies, event_latencies, received) = latencies(&sent, &got, &range);
    let growth = lag_growth(&sent, &got, &range);
    Run {
        label: "bare hop: produce -> consume".to_owned(),
        latencies,
        event_latencies,
        sent: sent.len() as u64,
        achieved_rate,
        received,
        expected,
        growth,
        complete: note.is_empty() && received == expected,
        note,
    }
}

/// Paced readings into the pipeline, running live; a consumer of its alert
/// topic.
///
/// The run serves `/ready` (as `weir run --metrics-addr` does); readings are
/// produced once it answers 200. It ends by itself after the last reading
/// (`RunOptions::end_at`, the live form of `--end-at`).
fn weir_latency(broker: &Broker, settings: &Settings, rate: f64, secs: f64, step: Step) -> Run {
    let topics = Topics::create(broker, "weir");
    let dir = tempfile::tempdir().expect("tempdir");
    let (text, spec) = pipeline_toml(broker, settings, &topics, dir.path(), step);
    static PRINTED: AtomicBool = AtomicBool::new(false);
    if !PRINTED.swap(true, Ordering::Relaxed) {
        println!("  pipeline.toml (topics, brokers and watermark_step differ per run):");
        for line in text.lines().filter(|l| !l.is_empty()) {
            println!("    {line}");
        }
    }
    let label = match step {
        Step::Short => format!("weir, pipeline file, watermark_step = {SHORT_STEP}"),
        Step::Default => format!(
            "weir, pipeline file, default step ({} ms)",
            spec.source.watermark_step_ms
        ),
    };
    let total = (rate * secs) as u64;
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let options = RunOptions {
        workers: 1,
        name: spec.name.clone(),
        end_at: Some(EndOffset::Offsets(BTreeMap::from([(0, total as i64)]))),
        metrics_addr: Some(addr),
        ..RunOptions::default()
    };
    let pipeline = thread::spawn(move || weir::pipeline::run_spec(&spec, &options));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(addr) {
        if pipeline.is_finished() {
            match pipeline.join().expect("pipeline thread") {
                Ok(_) => panic!("the pipeline ended before it was ready"),
                Err(e) => panic!("the pipeline failed: {e:#}"),
            }
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline was not ready within a minute"
        );
        thread::sleep(Duration::from_millis(10));
    }

    let range = measured_range(rate, secs);
    let measured = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = receive(
        settings.consumer(broker),
        topics.alerts.clone(),
        range.clone(),
        measured.clone(),
        stop.clone(),
    );
    let producer: BaseProducer = settings.producer(broker).create().expect("producer");
    let (sent, achieved_rate, mut note) = produce_paced(&producer, &topics.readings, rate, secs);
    let expected = (range.end - range.start) as usize;
    wait_for(&measured, expected, Duration::from_secs(15));
    stop.store(true, Ordering::Relaxed);
    let (got, errors) = reader.join().expect("reader");
    let (latencies, event_latencies, received) = latencies(&sent, &got, &range);
    let growth = lag_growth(&sent, &got, &range);
    let delivered = note.is_empty();
    note.push_str(&errors);
    let deadline = Instant::now() + FLUSH;
    while !pipeline.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let finished = pipeline.is_finished();
    if finished {
        let report = pipeline
            .join()
            .expect("pipeline thread")
            .expect("the pipeline runs");
        let _ = write!(
            note,
            "; the pipeline read {} and delivered {} alerts, {} dead letters",
            report.records_read,
            report.alerts_delivered,
            report.dead_letters_total()
        );
        for (reason, n) in &report.dead_letters {
            let _ = write!(note, " ({reason}: {n})");
        }
    } else {
        // Left running (it ends with the process): readings were lost.
        let _ = write!(
            note,
            "; the pipeline had not read its last reading {FLUSH:?} after it was sent"
        );
    }
    let complete = delivered && finished && received == expected;
    Run {
        label,
        latencies,
        event_latencies,
        sent: sent.len() as u64,
        achieved_rate,
        received,
        expected,
        growth,
        complete,
        note,
    }
}

/// Whether the run's `/ready` answers 200.
fn ready(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}
