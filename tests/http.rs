//! The operations server of a running pipeline: `/health`, `/ready`, and
//! Prometheus metrics on `/metrics`, read with a Prometheus text parser.
//! The run is a paced replay of a recording, so it needs no broker.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

#[path = "support/ops.rs"]
mod ops;

use ops::{free_port, get, record, Killed};

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
            // A histogram: its count of observations.
            prometheus_parse::Value::Histogram(ref buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
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
        "weir_checkpoints_enabled",
    ] {
        assert!(value(&s, family, None).is_some(), "{family} is exposed");
    }
}

/// A live run against a real broker, with every sink and checkpoints: the
/// per-partition lag falls to 0 once everything produced is read, and every
/// metric family holds what the input implies.
#[test]
fn a_live_run_exposes_every_metric_family_with_sensible_values() {
    let broker = support::Broker::start();
    let topic = support::unique_topic("readings");
    let alerts = support::unique_topic("alerts");
    let dead = support::unique_topic("dead");
    broker.create_topic(&topic, 3);
    broker.create_topic(&alerts, 1);
    broker.create_topic(&dead, 1);
    // 600 readings 10 s apart (100 minutes, so the first hour's Parquet file
    // is written), rising past the rule's limit at 500; then 2 malformed
    // records and one an hour late, on partition 0.
    const BASE: u64 = 1_763_900_000_000;
    let mut payloads: Vec<(String, i32)> = (0..600u64)
        .map(|i| {
            let p = format!(
                r#"{{"device_id":"d{}","sensor":"t","value":{i},"ts":{}}}"#,
                i % 3,
                BASE + i * 10_000
            );
            (p, (i % 3) as i32)
        })
        .collect();
    payloads.push(("{not json".to_owned(), 0));
    payloads.push((r#"{"device_id":"d0"}"#.to_owned(), 0));
    payloads.push((
        format!(r#"{{"device_id":"d0","sensor":"t","value":1,"ts":{BASE}}}"#),
        0,
    ));
    let batch: Vec<support::Record<'_>> = payloads
        .iter()
        .map(|(p, partition)| (None, p.as_bytes(), None, Some(*partition)))
        .collect();
    broker.produce(&topic, &batch);
    let total = payloads.len() as f64;
    let bytes: usize = payloads.iter().map(|(p, _)| p.len()).sum();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
name = "ops"
[source]
brokers = "{brokers}"
topic = "{topic}"
[sinks.parquet]
path = "out"
[sinks.alerts]
topic = "{alerts}"
[sinks.dead_letters]
topic = "{dead}"
[checkpoint]
dir = "state"
interval = "1s"
[[rule]]
name = "too-high"
severity = "critical"
sensor = "t"
above = 500.0
"#,
            brokers = broker.bootstrap()
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
    assert_eq!(get(port, "/health").map(|(s, _)| s), Some(200));
    wait_for(
        "every record read, the lag at 0, alerts delivered, a file written and a checkpoint",
        || {
            let s = scrape(port);
            value(&s, "weir_source_records_total", None) == Some(total)
                && (0..3).all(|p| {
                    value(&s, "weir_source_lag", Some(("partition", &p.to_string()))) == Some(0.0)
                })
                && value(&s, "weir_alerts_delivered_total", None).is_some_and(|v| v > 0.0)
                && value(&s, "weir_parquet_rows_total", None).is_some_and(|v| v > 0.0)
                && value(&s, "weir_checkpoints_total", None).is_some_and(|v| v > 0.0)
                && value(&s, "weir_dead_letters_delivered_total", None) == Some(3.0)
        },
    );
    let s = scrape(port);
    let v = |name: &str| value(&s, name, None).unwrap_or_else(|| panic!("{name} is missing"));
    assert_eq!(
        v("weir_checkpoints_enabled"),
        1.0,
        "this run takes checkpoints"
    );
    let with = |name: &str, label: (&str, &str)| {
        value(&s, name, Some(label)).unwrap_or_else(|| panic!("{name} {label:?} is missing"))
    };

    // Source, per partition.
    for p in 0..3 {
        let p = p.to_string();
        let records = with("weir_source_records_total", ("partition", &p));
        let expected = if p == "0" { 203.0 } else { 200.0 };
        assert_eq!(records, expected, "records of partition {p}");
        assert_eq!(with("weir_source_position", ("partition", &p)), expected);
        assert!(with("weir_source_watermark", ("partition", &p)) > BASE as f64);
        assert!(with("weir_source_idle", ("partition", &p)) <= 1.0);
    }
    assert_eq!(v("weir_source_bytes_total"), bytes as f64);
    assert_eq!(v("weir_records_read_total"), total);
    assert_eq!(v("weir_readings_total"), 600.0);

    // Operators.
    assert_eq!(v("weir_late_records_total"), 1.0);
    assert_eq!(with("weir_dead_letters_total", ("reason", "late")), 1.0);
    assert_eq!(v("weir_dead_letters_total"), 3.0);
    let windows_in = with(
        "weir_operator_records_in_total",
        ("operator", "WindowAggregate"),
    );
    assert!(
        windows_in >= 600.0,
        "the window operator received every reading: {windows_in}"
    );
    assert!(v("weir_operator_records_out_total") > 0.0);
    assert!(v("weir_operator_busy_seconds_total") > 0.0);
    assert!(value(&s, "weir_operator_exchanged_records_total", None).is_some());
    // The last minute's windows of each device are still open.
    assert!(v("weir_windows_open") >= 1.0);
    assert!(v("weir_window_state_bytes") > 0.0);
    assert_eq!(v("weir_rule_states"), 3.0, "one state per (device, rule)");
    assert!(v("weir_rule_state_bytes") > 0.0);
    assert!(
        v("weir_checkpoint_duration_seconds") >= 1.0,
        "checkpoints are timed"
    );
    assert!(v("weir_checkpoint_size_bytes") > 0.0);

    // Sinks.
    assert!(v("weir_parquet_files_total") >= 1.0);
    assert!(v("weir_parquet_written_bytes_total") > 0.0);
    assert_eq!(v("weir_sink_delivery_errors_total"), 0.0);
    assert!(value(&s, "weir_producer_queue_records", None).is_some());
    assert_eq!(v("weir_dead_letters_delivered_total"), 3.0);
    // Readings 501..599 are above 500: one firing event per device.
    let firing = value(&s, "weir_alerts_total", Some(("state", "firing")));
    assert_eq!(firing, Some(3.0));
    assert_eq!(
        with("weir_alerts_firing", ("severity", "critical")),
        3.0,
        "every device's alert is firing"
    );
    // Latency: one observation per alert delivered, and per window row
    // written, as far as the arrival of their input is remembered.
    assert!(v("weir_alert_latency_seconds") >= 1.0);
    assert!(v("weir_window_latency_seconds") >= 1.0);

    // The example dashboard and alerting rules use only metrics Weir exposes.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monitoring");
    for file in ["grafana-dashboard.json", "weir-alerts.yml"] {
        let text = std::fs::read_to_string(examples.join(file)).unwrap();
        for name in metric_names(&text) {
            let family = name.trim_end_matches("_total").trim_end_matches("_bucket");
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

/// The first event of `/events` (the status page's feed), read until its
/// data line is complete.
fn first_event(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("data:") || !text.split("data:").nth(1).unwrap().contains('\n') {
        let n = stream.read(&mut buf).expect("the event arrives");
        assert!(n > 0, "the stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text
}

/// A secret (with a quote and a backslash, which JSON and `{:?}` escape)
/// in a pipeline error: `/ready` and the status page show `***` for every
/// form the secret takes, and `/metrics` (which counts errors) none of them.
#[test]
fn metrics_and_the_status_page_never_show_a_secret() {
    let secret = r#"tok"en\x-5c2"#;
    weir::secrets::remember(secret);
    let run = weir_operators::Run::default();
    run.control.add_error(format!(
        "the client said: Invalid value {secret:?} for sasl.password"
    ));
    run.control.add_error(format!("plain: {secret}"));
    let server = weir::http::serve("127.0.0.1:0".parse().unwrap(), run).unwrap();
    let (status, metrics) = get(server.addr.port(), "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("weir_errors_total 2"), "{metrics}");
    let (_, ready) = get(server.addr.port(), "/ready").unwrap();
    let page = first_event(server.addr.port());
    for (what, text) in [
        ("/metrics", &metrics),
        ("/ready", &ready),
        ("/events", &page),
    ] {
        assert!(
            what == "/metrics" || text.contains("***"),
            "{what} shows the errors, hidden:\n{text}"
        );
        assert!(
            !text.contains("tok") && !text.contains("5c2"),
            "{what} shows the secret:\n{text}"
        );
    }
}
