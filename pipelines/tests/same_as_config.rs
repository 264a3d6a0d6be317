//! The line monitor written in Rust and its config-file twin,
//! `pipelines/line_monitor.toml`, read the same topic on a real broker and
//! must write the same alerts, dead letters, alarm health events and Parquet
//! bytes.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use support::{unique_topic, Broker};
use weir::simulate::SimulatorConfig;
use weir::RunOptions;
use weir_pipelines::{line_monitor, LineMonitor};

/// Output topics and directory of one run.
struct Outputs {
    alerts: String,
    dead: String,
    health: String,
    dir: tempfile::TempDir,
}

impl Outputs {
    fn new(broker: &Broker) -> Self {
        let outputs = Outputs {
            alerts: unique_topic("alerts"),
            dead: unique_topic("dead"),
            health: unique_topic("health"),
            dir: tempfile::tempdir().unwrap(),
        };
        broker.create_topic(&outputs.alerts, 2);
        broker.create_topic(&outputs.dead, 1);
        broker.create_topic(&outputs.health, 1);
        outputs
    }

    /// What the run wrote.
    fn read(&self, broker: &Broker) -> Written {
        let mut alerts: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
        for r in broker.consume_all(&self.alerts) {
            alerts.entry(r.key.unwrap()).or_default().push(r.payload);
        }
        let mut dead: Vec<Vec<u8>> = broker
            .consume_all(&self.dead)
            .into_iter()
            .map(|r| r.payload)
            .collect();
        dead.sort();
        let mut health: Vec<Vec<u8>> = broker
            .consume_all(&self.health)
            .into_iter()
            .map(|r| r.payload)
            .collect();
        health.sort();
        let mut files = BTreeMap::new();
        collect(self.dir.path(), self.dir.path(), &mut files);
        files.values_mut().for_each(|f| f.sort());
        Written {
            alerts,
            dead,
            health,
            files,
        }
    }
}

/// Everything one run wrote.
#[derive(Debug, PartialEq)]
struct Written {
    /// Alert payloads by key, in topic order per key.
    alerts: BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
    /// Dead-letter payloads, sorted.
    dead: Vec<Vec<u8>>,
    /// Alarm health payloads, sorted.
    health: Vec<Vec<u8>>,
    /// Parquet file contents by partition directory, sorted.
    files: BTreeMap<PathBuf, Vec<Vec<u8>>>,
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<Vec<u8>>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let partition = path
                .parent()
                .unwrap()
                .strip_prefix(root)
                .unwrap()
                .to_path_buf();
            out.entry(partition)
                .or_default()
                .push(std::fs::read(&path).unwrap());
        }
    }
}

#[test]
fn rust_pipeline_and_config_file_write_the_same_output() {
    let broker = Broker::start();
    let topic = unique_topic("readings");
    broker.create_topic(&topic, 3);
    let sim = SimulatorConfig {
        devices: 5,
        duration_ms: 5 * 60_000,
        start_ms: 1_763_900_000_000,
        seed: 3,
        anomaly_rate: 0.5,
        bad_record_rate: 0.01,
        late_rate: 0.01,
        ..SimulatorConfig::default()
    };
    let produced = broker.produce_simulation(&topic, &sim);
    // Control events: every device out of service for two minutes, and one
    // naming a rule the pipeline does not have (a dead letter).
    let control = unique_topic("control");
    broker.create_topic(&control, 1);
    let at = |s: u64| sim.start_ms + s * 1_000;
    let events = [
        format!(
            r#"{{"event_time":{},"action":"ack","rule":"nope","device":"d","sensor":"s","user":"ana"}}"#,
            at(30)
        ),
        format!(
            r#"{{"event_time":{},"action":"out_of_service","device":"*","user":"ana"}}"#,
            at(60)
        ),
        format!(
            r#"{{"event_time":{},"action":"in_service","device":"*","user":"ana"}}"#,
            at(180)
        ),
    ];
    let records: Vec<_> = events
        .iter()
        .map(|e| (None, e.as_bytes(), None, Some(0)))
        .collect();
    broker.produce(&control, &records);
    let options = RunOptions {
        workers: 2,
        bounded: true,
        ..RunOptions::default()
    };
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));

    let from_file = Outputs::new(&broker);
    let mut spec = weir::config::load_pipeline(&here.join("line_monitor.toml")).unwrap();
    spec.source.brokers = broker.bootstrap();
    spec.source.topic = topic.clone();
    for (sink, name) in [
        (spec.alerts.as_mut(), &from_file.alerts),
        (spec.dead_letters.as_mut(), &from_file.dead),
        (spec.alarm_health_sink.as_mut(), &from_file.health),
    ] {
        let sink = sink.unwrap();
        sink.brokers = broker.bootstrap();
        sink.topic = name.clone();
    }
    spec.windows[0].parquet.as_mut().unwrap().dir = from_file.dir.path().into();
    let mut control_source = spec.source.clone();
    control_source.topic = control.clone();
    spec.control = Some(control_source);
    let file_report = weir::pipeline::run_spec(&spec, &options).unwrap();

    let from_rust = Outputs::new(&broker);
    let settings = LineMonitor {
        brokers: broker.bootstrap(),
        readings_topic: topic,
        alerts_topic: from_rust.alerts.clone(),
        dead_letters_topic: from_rust.dead.clone(),
        health_topic: Some(from_rust.health.clone()),
        control_topic: Some(control),
        parquet_dir: from_rust.dir.path().to_path_buf(),
        rules: Arc::new(weir::config::load_rules(&here.join("rules/line_monitor.toml")).unwrap()),
    };
    let rust_report = weir::run(&options, move |_scope, ctx| line_monitor(ctx, &settings)).unwrap();

    // Records read: the readings and the control events.
    assert_eq!(file_report.records_read as usize, produced + events.len());
    assert!(
        file_report.alerts_delivered > 0,
        "the input must fire alerts"
    );
    assert!(
        file_report.dead_letters_delivered > 0,
        "the input must hold bad records"
    );
    let (file_out, rust_out) = (from_file.read(&broker), from_rust.read(&broker));
    assert_eq!(file_out.alerts, rust_out.alerts, "alerts differ");
    let shelved = file_out
        .alerts
        .values()
        .flatten()
        .filter(|a| String::from_utf8_lossy(a).contains(r#""shelved":true"#))
        .count();
    assert!(shelved > 0, "devices out of service shelve their alarms");
    assert_eq!(file_out.dead, rust_out.dead, "dead letters differ");
    assert!(
        !file_out.health.is_empty(),
        "the input must give health events"
    );
    assert_eq!(file_out.health, rust_out.health, "alarm health differs");
    assert!(!file_out.files.is_empty());
    assert_eq!(file_out.files, rust_out.files, "Parquet files differ");
    assert_eq!(file_report.windows, rust_report.windows);
}
