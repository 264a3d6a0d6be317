//! The operations server of a running pipeline: `/health`, `/ready`, and
//! Prometheus metrics on `/metrics`, read with a Prometheus text parser.
//! The run is a paced replay of a recording, so it needs no broker.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use weir::operators::recording::{RecordRef, Recorder};
use weir::simulate::{generate, SimulatorConfig};

/// A scrape, parsed with a Prometheus text parser.
fn scrape(port: u16) -> prometheus_parse::Scrape {
    let (status, body) = get(port, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("the exposition parses")
}

/// The sum of the samples of `name` (with `label`, if given).
fn value(s: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .reduce(|a, b| a + b)
}

fn wait_for(what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET `path`: (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A recording of 20 simulated devices over 10 minutes on 4 partitions.
fn record(dir: &Path) -> usize {
    let config = SimulatorConfig {
        devices: 20,
        duration_ms: 600_000,
        seed: 3,
        anomaly_rate: 0.5,
        ..SimulatorConfig::default()
    };
    let mut recorder = Recorder::open(dir, "readings").unwrap();
    let mut offsets = [0i64; 4];
    let mut n = 0;
    for r in generate(&config) {
        let p = weir::operators::SensorKey::route_hash(&r.key, "") as usize % 4;
        recorder
            .push(&RecordRef {
                partition: p as i32,
                offset: offsets[p],
                timestamp: Some(r.timestamp_ms),
                key: Some(r.key.as_bytes()),
                value: &r.payload,
                headers: &[],
            })
            .unwrap();
        offsets[p] += 1;
        n += 1;
    }
    recorder.seal().unwrap();
    n
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_pipeline_serves_health_readiness_and_prometheus_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let records = record(&recording);
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        r#"
name = "ops"
[source]
brokers = "127.0.0.1:1"
topic = "readings"
[sinks.parquet]
path = "out"
[sinks.alerts]
topic = "alerts"
[sinks.dead_letters]
topic = "dead"
[[rule]]
name = "overheat"
sensor = "temperature"
above = 90.0
clear = 85.0
"#,
    )
    .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "replay",
            recording.to_str().unwrap(),
            "--pipeline",
            pipeline.to_str().unwrap(),
        ])
        .args(["--out", dir.path().join("out").to_str().unwrap(), "--quiet"])
        .args(["--speed", "20", "--metrics-addr", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _run = Killed(run);

    wait_for("/health", || {
        get(port, "/health").is_some_and(|(s, b)| s == 200 && b == "ok\n")
    });
    wait_for("/ready", || {
        get(port, "/ready").is_some_and(|(s, _)| s == 200)
    });

    // Once an alert fired, every family is there with sensible values.
    wait_for("a firing alert in the metrics", || {
        value(
            &scrape(port),
            "weir_alerts_total",
            Some(("state", "firing")),
        )
        .is_some_and(|v| v > 0.0)
    });
    let s = scrape(port);
    let read = value(&s, "weir_records_read_total", None).unwrap();
    assert!(read > 0.0 && read <= records as f64, "records read: {read}");
    let per_partition = value(&s, "weir_source_records_total", None).unwrap();
    // Partitions publish where they stand four times a second.
    assert!(
        per_partition > 0.0 && per_partition <= read,
        "per-partition records ({per_partition}) add up to at most the total ({read})"
    );
    for p in 0..4 {
        let p = p.to_string();
        let wm = value(&s, "weir_source_watermark", Some(("partition", &p)));
        assert!(
            wm.is_some_and(|wm| wm > 1.7e12),
            "partition {p} has a watermark in event time: {wm:?}"
        );
        assert!(value(&s, "weir_source_remaining", Some(("partition", &p))).is_some());
    }
    assert!(value(&s, "weir_readings_total", None).unwrap() > 0.0);
    assert_eq!(
        value(&s, "weir_alerts_total", Some(("rule", "overheat"))).map(|v| v > 0.0),
        Some(true)
    );
    for family in [
        "weir_dead_letters_total",
        "weir_windows_emitted_total",
        "weir_parquet_rows_total",
        "weir_checkpoints_total",
    ] {
        assert!(value(&s, family, None).is_some(), "{family} is exposed");
    }
}

/// A live run against a real broker: the per-partition lag falls to 0 once
/// everything produced is read, and the record counts match.
#[test]
fn a_live_run_reports_lag_and_positions_per_partition() {
    let broker = support::Broker::start();
    let topic = support::unique_topic("readings");
    broker.create_topic(&topic, 3);
    let payloads: Vec<String> = (0..600)
        .map(|i| {
            format!(
                r#"{{"device_id":"d{}","sensor":"t","value":{i},"ts":{}}}"#,
                i % 3,
                1_763_900_000_000u64 + i * 100
            )
        })
        .collect();
    let batch: Vec<support::Record<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (None, p.as_bytes(), None, Some((i % 3) as i32)))
        .collect();
    broker.produce(&topic, &batch);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"lag\"\n[source]\nbrokers = \"{}\"\ntopic = \"{topic}\"\n[sinks.parquet]\npath = \"out\"\n",
            broker.bootstrap()
        ),
    )
    .unwrap();
    let port = free_port();
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "run",
            pipeline.to_str().unwrap(),
            "--quiet",
            "--workers",
            "2",
        ])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _run = Killed(run);
    wait_for("/ready", || {
        get(port, "/ready").is_some_and(|(s, _)| s == 200)
    });
    wait_for("every record read and the lag at 0", || {
        let s = scrape(port);
        value(&s, "weir_source_records_total", None) == Some(600.0)
            && (0..3).all(|p| {
                value(&s, "weir_source_lag", Some(("partition", &p.to_string()))) == Some(0.0)
            })
    });
    let s = scrape(port);
    for p in 0..3 {
        let p = p.to_string();
        assert_eq!(
            value(&s, "weir_source_position", Some(("partition", &p))),
            Some(200.0)
        );
        assert_eq!(
            value(&s, "weir_source_idle", Some(("partition", &p))).map(|v| v <= 1.0),
            Some(true)
        );
    }
    assert_eq!(value(&s, "weir_records_read_total", None), Some(600.0));

    // The example dashboard and alerting rules use only metrics Weir exposes.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monitoring");
    for file in ["grafana-dashboard.json", "weir-alerts.yml"] {
        let text = std::fs::read_to_string(examples.join(file)).unwrap();
        for name in metric_names(&text) {
            let family = name.trim_end_matches("_total");
            assert!(
                s.docs.contains_key(&name) || s.docs.contains_key(family),
                "{file} uses {name}, which /metrics does not expose"
            );
        }
    }
}

/// The `weir_...` identifiers in a text.
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("weir_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        names.push(name);
    }
    assert!(!names.is_empty());
    names
}
