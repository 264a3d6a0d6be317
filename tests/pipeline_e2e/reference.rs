//! The reference the end-to-end tests compare Weir with, computed
//! independently from the records as the broker stored them, and readers of
//! what a run wrote.
//!
//! The reference reads each partition in offset order with plain
//! `serde_json::Value` parsing, judges lateness per partition, sums windows in
//! a `BTreeMap`, and replays each sensor's readings in (time, partition,
//! offset) order through hand-written rule loops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir::simulate::SimulatorConfig;
use weir_operators::storage::ObjectLocation;
use weir_operators::SensorKey;

use crate::support::{unique_topic, Broker, ConsumedRecord};

pub const BOUND_MS: u64 = 5_000;
pub const WINDOW_MS: u64 = 60_000;
pub const MAX_FUTURE_MS: i64 = 3_600_000;

/// An accepted reading, as the reference sees it.
#[derive(Clone, Debug)]
pub struct Ref {
    pub device: String,
    pub sensor: String,
    pub time: u64,
    pub value: f64,
    pub partition: i32,
    pub offset: i64,
}

/// Classifies the records the broker holds: accepted readings, the number
/// of bad records, and the late readings, each with the partition
/// watermark it is behind.
pub fn reference_readings(records: &[ConsumedRecord]) -> (Vec<Ref>, usize, Vec<(Ref, u64)>) {
    let mut by_partition: BTreeMap<i32, Vec<&ConsumedRecord>> = BTreeMap::new();
    for r in records {
        by_partition.entry(r.partition).or_default().push(r);
    }
    let (mut accepted, mut bad, mut late) = (Vec::new(), 0, Vec::new());
    for (partition, mut recs) in by_partition {
        recs.sort_by_key(|r| r.offset);
        let mut max_time: Option<u64> = None;
        for r in recs {
            let Some(reading) = parse(r) else {
                bad += 1;
                continue;
            };
            if let Some(wm) = max_time
                .map(|m| m.saturating_sub(BOUND_MS))
                .filter(|wm| reading.time < *wm)
            {
                late.push((reading, wm));
                continue;
            }
            max_time = max_time.max(Some(reading.time));
            accepted.push(Ref {
                partition,
                ..reading
            });
        }
    }
    (accepted, bad, late)
}

pub fn parse(r: &ConsumedRecord) -> Option<Ref> {
    let v: serde_json::Value = serde_json::from_slice(&r.payload).ok()?;
    let device = v.get("device_id")?.as_str()?.to_owned();
    let sensor = v.get("sensor")?.as_str()?.to_owned();
    let value = v.get("value")?.as_f64().filter(|x| x.is_finite())?;
    // Without a timestamp field the Kafka record timestamp is the event time.
    let ts = match v.get("ts") {
        Some(ts) => ts.as_i64()?,
        None => r.timestamp?,
    };
    if ts < 0 || r.timestamp.is_some_and(|kt| ts > kt + MAX_FUTURE_MS) {
        return None;
    }
    Some(Ref {
        device,
        sensor,
        time: ts as u64,
        value,
        partition: r.partition,
        offset: r.offset,
    })
}

/// (device, sensor, window_start) → (count, min, max, sum)
pub type Windows = BTreeMap<(String, String, u64), (u64, f64, f64, f64)>;

pub fn reference_windows(readings: &[Ref]) -> Windows {
    let mut windows = Windows::new();
    for r in readings {
        let start = r.time / WINDOW_MS * WINDOW_MS;
        let w = windows
            .entry((r.device.clone(), r.sensor.clone(), start))
            .or_insert((0, f64::INFINITY, f64::NEG_INFINITY, 0.0));
        w.0 += 1;
        w.1 = w.1.min(r.value);
        w.2 = w.2.max(r.value);
        w.3 += r.value;
    }
    windows
}

/// (rule, device, sensor, state, event_time)
pub type AlertKey = (String, String, String, String, u64);

pub fn reference_alerts(readings: &[Ref], windows: &Windows) -> BTreeSet<AlertKey> {
    let mut series: BTreeMap<(String, String), Vec<&Ref>> = BTreeMap::new();
    for r in readings {
        series
            .entry((r.device.clone(), r.sensor.clone()))
            .or_default()
            .push(r);
    }
    let mut alerts = BTreeSet::new();
    let mut push = |rule: &str, d: &str, s: &str, state: &str, t: u64| {
        alerts.insert((
            rule.to_owned(),
            d.to_owned(),
            s.to_owned(),
            state.to_owned(),
            t,
        ));
    };
    for ((device, sensor), mut rs) in series {
        rs.sort_by_key(|r| (r.time, r.partition, r.offset));
        if sensor == "temperature" {
            // hot: above 90 for 2 readings in a row; resolves at or below 85.
            let (mut firing, mut streak) = (false, 0);
            for r in &rs {
                if !firing {
                    streak = if r.value > 90.0 { streak + 1 } else { 0 };
                    if streak >= 2 {
                        firing = true;
                        push("hot", &device, &sensor, "firing", r.time);
                    }
                } else if r.value <= 85.0 {
                    firing = false;
                    streak = 0;
                    push("hot", &device, &sensor, "resolved", r.time);
                }
            }
        }
        if sensor == "vibration" {
            // shaking: above 7.5 continuously for 10 s; resolves at or below 7.5.
            let (mut firing, mut since) = (false, None::<u64>);
            for r in &rs {
                if let Some(t0) = since.filter(|t0| !firing && t0 + 10_000 <= r.time) {
                    firing = true;
                    push("shaking", &device, &sensor, "firing", t0 + 10_000);
                }
                if firing {
                    if r.value <= 7.5 {
                        firing = false;
                        since = None;
                        push("shaking", &device, &sensor, "resolved", r.time);
                    }
                } else if r.value > 7.5 {
                    since.get_or_insert(r.time);
                } else {
                    since = None;
                }
            }
            // At the end of input a breach still short of 10 s is dropped.
        }
    }
    // pressure-mean: one-minute mean above 7; resolves at or below 7.
    let mut firing = BTreeSet::new();
    for ((device, sensor, start), (count, _, _, sum)) in windows {
        if sensor != "pressure" {
            continue;
        }
        let mean = sum / *count as f64;
        let key = (device.clone(), sensor.clone());
        let end = start + WINDOW_MS;
        if !firing.contains(&key) && mean > 7.0 {
            firing.insert(key);
            push("pressure-mean", device, sensor, "firing", end);
        } else if firing.contains(&key) && mean <= 7.0 {
            firing.remove(&key);
            push("pressure-mean", device, sensor, "resolved", end);
        }
    }
    alerts
}

pub fn pipeline_toml(broker: &Broker, topic: &str, alerts: &str, dead: &str, out: &Path) -> String {
    pipeline_toml_at(&broker.bootstrap(), topic, alerts, dead, out)
}

/// The pipeline of the end-to-end tests, on the brokers at `brokers`.
pub fn pipeline_toml_at(
    brokers: &str,
    topic: &str,
    alerts: &str,
    dead: &str,
    out: &Path,
) -> String {
    format!(
        r#"
name = "e2e"
[source]
brokers = "{brokers}"
topic = "{topic}"
out_of_orderness = "5s"
{windows}
[sinks.alerts]
topic = "{alerts}"
[sinks.dead_letters]
topic = "{dead}"

[[rule]]
name = "hot"
sensor = "temperature"
above = 90.0
clear = 85.0
consecutive = 2

[[rule]]
name = "shaking"
sensor = "vibration"
above = 7.5
for = "10s"

[[rule]]
name = "pressure-mean"
sensor = "pressure"
window = "1m"
above = 7.0
"#,
        windows = crate::kinds::window_outputs(out)
    )
}

/// Asserts that `rows` are the windows `want`: the same keys, counts,
/// minima and maxima, and sums equal but for rounding (Weir's sums are
/// compensated, the reference's are not).
pub fn assert_windows(rows: &Windows, want: &Windows, label: &str) {
    assert_eq!(
        rows.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{label}: windows"
    );
    for (key, want) in want {
        let got = rows[key];
        assert_eq!(
            (got.0, got.1, got.2),
            (want.0, want.1, want.2),
            "{label}: {key:?}"
        );
        assert!(
            (got.3 - want.3).abs() <= 1e-9 * want.3.abs().max(1.0),
            "{label}: sum of {key:?}"
        );
    }
}

pub fn parquet_rows(dir: &Path) -> Windows {
    rows_of(files(dir))
}

/// The window rows of the files a reader sees below `dir`, after a run that
/// was killed while it wrote (see [`visible_files`]).
pub fn visible_rows(dir: &Path) -> Windows {
    rows_of(visible_files(dir))
}

fn rows_of(paths: Vec<PathBuf>) -> Windows {
    let mut rows = Windows::new();
    for b in batches(paths) {
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        let (device, sensor) = (col("device_id"), col("sensor"));
        let (start, count) = (col("window_start"), col("count"));
        let (min, max, sum) = (col("min"), col("max"), col("sum"));
        for i in 0..b.num_rows() {
            let key = (
                device.as_string::<i32>().value(i).to_owned(),
                sensor.as_string::<i32>().value(i).to_owned(),
                start.as_primitive::<TimestampMillisecondType>().value(i) as u64,
            );
            let value = (
                count.as_primitive::<Int64Type>().value(i) as u64,
                min.as_primitive::<Float64Type>().value(i),
                max.as_primitive::<Float64Type>().value(i),
                sum.as_primitive::<Float64Type>().value(i),
            );
            assert!(
                rows.insert(key.clone(), value).is_none(),
                "window {key:?} written twice"
            );
        }
    }
    rows
}

/// The record batches of the Parquet files `paths`, in order.
pub fn batches(paths: impl IntoIterator<Item = PathBuf>) -> Vec<arrow_array::RecordBatch> {
    let mut out = Vec::new();
    for path in paths {
        let file = std::fs::File::open(&path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        out.extend(reader.map(|batch| batch.unwrap()));
    }
    out
}

/// The Parquet files a reader sees below `dir`: hidden names (a leading `.`
/// or `_`, as pyarrow, Spark and DuckDB skip them) are left out, so the files
/// a killed run was still writing do not count.
pub fn visible_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if path.is_dir() {
            out.extend(visible_files(&path));
        } else {
            assert!(name.ends_with(".parquet"), "unexpected file {name}");
            out.push(path);
        }
    }
    out
}

/// Every file below `dir`, each of which must be a visible Parquet file: a
/// run that finished leaves nothing half-written behind.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.ends_with(".parquet") && !name.starts_with('.'),
                "unexpected file {name}"
            );
            out.push(path);
        }
    }
    out
}

pub fn alerts_of(records: &[ConsumedRecord]) -> BTreeSet<AlertKey> {
    records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            assert_eq!(
                r.key.as_deref(),
                Some(v["device"].as_str().unwrap().as_bytes()),
                "alerts are keyed by device"
            );
            let s = |f: &str| v[f].as_str().unwrap().to_owned();
            (
                s("rule"),
                s("device"),
                s("sensor"),
                s("state"),
                v["event_time"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Records to produce, with device `n` (the number ending its key) on
/// partition `n % 4`.
pub fn spread(records: &[weir::simulate::SimRecord]) -> Vec<crate::support::Record<'_>> {
    records
        .iter()
        .map(|r| {
            let device = r.key.rsplit('-').next().and_then(|n| n.parse::<i32>().ok());
            (
                Some(r.key.as_bytes()),
                r.payload.as_slice(),
                Some(r.timestamp_ms),
                device.map(|n| n % 4),
            )
        })
        .collect()
}

/// A seeded input topic on the broker, and what the reference makes of it.
pub struct Input {
    pub topic: String,
    pub stored: Vec<ConsumedRecord>,
    pub accepted: Vec<Ref>,
    pub bad: usize,
    pub late: usize,
    pub windows: Windows,
    pub hopping: Windows,
    pub sessions: Windows,
    pub corrected: crate::kinds::Revised,
    pub alerts: BTreeSet<AlertKey>,
}

impl Input {
    /// Produces a simulation with out-of-order, late and bad records to a new
    /// 4-partition topic and computes the reference outputs from what the
    /// broker stored.
    pub fn produce(broker: &Broker) -> Input {
        let topic = unique_topic("readings");
        broker.create_topic(&topic, 4);
        let produced = broker.produce_simulation(&topic, &Input::simulation(6));
        let input = Input::of(broker, &topic);
        assert_eq!(input.stored.len(), produced);
        input
    }

    /// As [`Input::produce`], with device `n` on partition `n % 4` (see
    /// [`Input::produce_spread_into`]).
    pub fn produce_spread(broker: &Broker) -> Input {
        let topic = unique_topic("readings");
        broker.create_topic(&topic, 4);
        let produced = Input::produce_spread_into(broker, &topic);
        let input = Input::of(broker, &topic);
        assert_eq!(input.stored.len(), produced);
        input
    }

    /// Produces the simulation of [`Input::produce`] into `topic` (4
    /// partitions), with device `n` on partition `n % 4`, so that every
    /// partition has readings: for live runs without an idle timeout, where
    /// an empty partition would hold the watermark back for ever. Returns
    /// the number of records.
    pub fn produce_spread_into(broker: &Broker, topic: &str) -> usize {
        let records: Vec<_> = weir::simulate::generate(&Input::simulation(6)).collect();
        broker.produce(topic, &spread(&records));
        records.len()
    }

    /// The seeded simulation of `minutes` of event time behind every input:
    /// 12 devices, anomalies, bad, late and out-of-order records, spanning an
    /// hour boundary.
    pub fn simulation(minutes: u64) -> SimulatorConfig {
        SimulatorConfig {
            devices: 12,
            duration_ms: minutes * 60_000,
            start_ms: 1_763_900_000_000 - 1_763_900_000_000 % 3_600_000 + 3_540_000, // spans an hour boundary
            seed: 42,
            anomaly_rate: 0.5,
            bad_record_rate: 0.01,
            late_rate: 0.01,
            // Beyond the 5 s bound: some readings are late only by the bound's measure.
            out_of_order_ms: 8_000,
            ..SimulatorConfig::default()
        }
    }

    /// The reference outputs of what `topic` holds now.
    pub fn of(broker: &Broker, topic: &str) -> Input {
        let stored = broker.consume_all(topic);
        let (accepted, bad, late) = reference_readings(&stored);
        let (corrected, late) = crate::kinds::reference_corrected(&accepted, &late);
        assert!(
            bad > 0 && late > 0,
            "the input must exercise bad and late records"
        );
        assert!(
            corrected.keys().any(|k| k.4 > 0),
            "the input must correct windows"
        );
        let windows = reference_windows(&accepted);
        let alerts = reference_alerts(&accepted, &windows);
        for (rule, state) in [
            ("hot", "firing"),
            ("hot", "resolved"),
            ("shaking", "firing"),
            ("shaking", "resolved"),
            ("pressure-mean", "firing"),
        ] {
            assert!(
                alerts.iter().any(|a| a.0 == rule && a.3 == state),
                "the input must make `{rule}` go {state}"
            );
        }
        Input {
            topic: topic.to_owned(),
            stored,
            hopping: crate::kinds::reference_hopping(&accepted),
            corrected,
            sessions: crate::kinds::reference_sessions(&accepted),
            accepted,
            bad,
            late,
            windows,
            alerts,
        }
    }

    /// Requires that on a cluster of `processes` x `threads` workers, alerts
    /// of each kind of rule are made in one process and written by the other:
    /// a rule's state lives on the worker its (device, sensor) hashes to, the
    /// alert sink on the worker its device hashes to.
    pub fn assert_alerts_cross_processes(&self, processes: usize, threads: usize) {
        let workers = (processes * threads) as u64;
        let process = |hash: u64| (hash % workers) as usize / threads;
        let crossing: BTreeSet<(&str, &str)> = self
            .alerts
            .iter()
            .filter(|(_, device, sensor, _, _)| {
                process(SensorKey::route_hash(device, sensor))
                    != process(SensorKey::route_hash(device, ""))
            })
            .map(|(rule, _, _, state, _)| (rule.as_str(), state.as_str()))
            .collect();
        for kind in [
            ("hot", "firing"),
            ("hot", "resolved"),
            ("pressure-mean", "firing"),
        ] {
            assert!(
                crossing.contains(&kind),
                "{processes}x{threads}: no {kind:?} alert crosses processes"
            );
        }
    }
}

/// Output topics and directory of one run.
pub struct Outputs {
    pub alerts: String,
    pub dead: String,
    pub dir: tempfile::TempDir,
    /// Where the Parquet files go instead of `dir`, on an object store, and
    /// the pipeline file's `[storage]` section that reaches it.
    pub remote: Option<(ObjectLocation, String)>,
}

/// Everything one run wrote: window rows, alert payloads and dead-letter
/// payloads (both sorted, since only their order within a key is defined).
#[derive(Debug, PartialEq)]
pub struct Written {
    pub rows: Windows,
    pub hopping: Windows,
    pub sessions: Windows,
    pub corrected: crate::kinds::Revised,
    pub alerts: Vec<Vec<u8>>,
    pub dead: Vec<Vec<u8>>,
}

impl Outputs {
    pub fn new(broker: &Broker) -> Outputs {
        let outputs = Outputs {
            alerts: unique_topic("alerts"),
            dead: unique_topic("dead"),
            dir: tempfile::tempdir().unwrap(),
            remote: None,
        };
        broker.create_topic(&outputs.alerts, 2);
        broker.create_topic(&outputs.dead, 1);
        outputs
    }

    pub fn spec(&self, broker: &Broker, input: &Input) -> weir::config::PipelineSpec {
        let toml = self.toml(broker, input);
        weir::config::parse_pipeline(&toml, Path::new("e2e.toml")).unwrap()
    }

    pub fn toml(&self, broker: &Broker, input: &Input) -> String {
        self.toml_for(broker, &input.topic)
    }

    /// The pipeline file reading `topic` and writing these outputs.
    pub fn toml_for(&self, broker: &Broker, topic: &str) -> String {
        match &self.remote {
            None => pipeline_toml(broker, topic, &self.alerts, &self.dead, self.dir.path()),
            Some((root, storage)) => {
                let out = Path::new(root.url());
                let toml = pipeline_toml(broker, topic, &self.alerts, &self.dead, out);
                format!("{toml}{storage}")
            }
        }
    }

    /// Outputs whose Parquet files go below `url` on the S3 server `s3`.
    pub fn on_s3(broker: &Broker, s3: &crate::s3::S3, url: &str) -> Outputs {
        Outputs {
            remote: Some((s3.location(url), s3.storage_toml())),
            ..Outputs::new(broker)
        }
    }

    /// Reads what the run wrote and checks it against the reference.
    pub fn check(&self, broker: &Broker, input: &Input, label: &str) -> Written {
        if let Some((root, _)) = &self.remote {
            // Every object below the root: a file of a partial upload, or a
            // record of an open one, fails `files` below.
            for (name, _) in root.list().unwrap() {
                let path = self.dir.path().join(&name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, root.get(&name).unwrap()).unwrap();
            }
        }
        let dead_records = broker.consume_all(&self.dead);
        // Dead letters written more than once, by origin, to name them if
        // the count is off.
        let mut origins = BTreeMap::new();
        for r in &dead_records {
            let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
            let origin = format!("{}/{}/{}", v["topic"], v["partition"], v["offset"]);
            *origins.entry(origin).or_insert(0) += 1;
        }
        let twice: Vec<_> = origins.iter().filter(|(_, n)| **n > 1).collect();
        assert_eq!(
            dead_records.len(),
            input.bad + input.late,
            "{label}: dead letters (written more than once: {twice:?})"
        );
        let late_letters = dead_records
            .iter()
            .filter(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()["reason"] == "late"
            })
            .count();
        assert_eq!(late_letters, input.late, "{label}: late records");

        let rows = parquet_rows(&self.dir.path().join("windows"));
        assert_windows(&rows, &input.windows, label);
        let hopping = parquet_rows(&self.dir.path().join("hopping"));
        assert_windows(&hopping, &input.hopping, &format!("{label}, hopping"));
        let sessions = parquet_rows(&self.dir.path().join("sessions"));
        assert_windows(&sessions, &input.sessions, &format!("{label}, sessions"));
        let corrected = crate::kinds::parquet_revised(&self.dir.path().join("corrected"));
        crate::kinds::assert_revised(&corrected, &input.corrected, label);

        let alert_records = broker.consume_all(&self.alerts);
        assert_eq!(alerts_of(&alert_records), input.alerts, "{label}: alerts");
        assert_eq!(alert_records.len(), input.alerts.len(), "{label}: alerts");
        let sorted = |records: Vec<ConsumedRecord>| {
            let mut payloads: Vec<Vec<u8>> = records.into_iter().map(|r| r.payload).collect();
            payloads.sort();
            payloads
        };
        Written {
            rows,
            hopping,
            sessions,
            corrected,
            alerts: sorted(alert_records),
            dead: sorted(dead_records),
        }
    }
}
