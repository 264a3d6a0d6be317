//! Record and replay against a real broker: a live run that ends at given
//! offsets records its input while one partition goes idle and then wakes
//! with records behind the watermark; replays of the recording must give
//! exactly the live results, at any worker count, and after a crash.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::reference::{parquet_rows, Outputs};
use crate::support::{unique_topic, Broker};

/// One reading of device `d` of partition `p` at second `t`; the values
/// cross the rules' thresholds now and then.
fn reading(p: i32, d: usize, sensor: &str, t: u64) -> String {
    let x = t as f64 + 17.0 * (p as f64 * 3.0 + d as f64);
    let value = match sensor {
        "temperature" => 82.0 + 12.0 * (x / 23.0).sin(),
        "vibration" => 6.0 + 2.5 * (x / 11.0).sin(),
        _ => 6.6 + 0.8 * (x / 47.0).sin(),
    };
    format!(
        r#"{{"device_id":"dev-{p}{d}","sensor":"{sensor}","value":{value:.2},"ts":{}}}"#,
        T0 + t * 1_000
    )
}

const T0: u64 = 1_763_900_000_000;

/// Control events, in event-time order: a shelve, acknowledgements, devices
/// out of service and back, and two bad ones (no event time; a rule the
/// pipeline does not have).
fn control_events() -> Vec<(i32, String)> {
    let at = |s: u64| T0 + s * 1_000;
    let alarm = |action: &str, device: &str, s: u64, extra: &str| {
        format!(
            r#"{{"event_time":{},"action":"{action}","rule":"hot","device":"{device}","sensor":"temperature","user":"ana","reason":"test"{extra}}}"#,
            at(s)
        )
    };
    let service = |action: &str, s: u64| {
        format!(
            r#"{{"event_time":{},"action":"{action}","device":"dev-*","user":"ana"}}"#,
            at(s)
        )
    };
    let mut events = vec![alarm("shelve", "dev-00", 10, r#","duration":"2m""#)];
    for s in (30..300).step_by(30) {
        events.push(alarm("ack", "dev-01", s, ""));
    }
    events.push(service("out_of_service", 100));
    events.push(service("in_service", 200));
    events.push(r#"{"action":"ack","rule":"hot","device":"dev-01","user":"ana"}"#.to_owned());
    events.push(alarm("ack", "dev-02", 250, "").replace(r#""rule":"hot""#, r#""rule":"nope""#));
    events.sort_by_key(|e| {
        e.split("event_time\":")
            .nth(1)
            .map(|r| r.split(',').next().unwrap().to_owned())
    });
    events.into_iter().map(|e| (0, e)).collect()
}

/// Readings of every device of partition `p` for seconds `from..to`, with a
/// bad record every 97th.
fn phase(p: i32, from: u64, to: u64) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for t in from..to {
        for d in 0..3 {
            for sensor in ["temperature", "vibration", "pressure"] {
                out.push((p, reading(p, d, sensor, t)));
                if out.len() % 97 == 0 {
                    out.push((p, format!(r#"{{"device_id":"dev-{p}{d}","sensor":"#)));
                }
            }
        }
    }
    out
}

fn produce(broker: &Broker, topic: &str, records: &[(i32, String)]) {
    let batch: Vec<_> = records
        .iter()
        .map(|(p, payload)| (None, payload.as_bytes(), None, Some(*p)))
        .collect();
    broker.produce(topic, &batch);
}

pub(crate) fn weir(args: &[&str], log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.args(args)
        .env("RUST_LOG", "info")
        .stdout(std::fs::File::create(log.with_extension("stdout")).unwrap())
        .stderr(std::fs::File::create(log).unwrap());
    cmd
}

pub(crate) fn run_ok(mut cmd: Command, log: &Path, what: &str) {
    let status = cmd.status().expect("start weir");
    assert!(
        status.success(),
        "{what} failed:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Every file below `dir` as (name without the run's id, bytes), sorted.
fn parquet_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = crate::reference::files(dir)
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // .../part-<run>-w<worker>-<seq>.parquet
            let (head, name) = relative.rsplit_once("part-").unwrap();
            let (_, rest) = name.split_once('-').unwrap();
            (format!("{head}{rest}"), std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

pub(crate) fn sorted_lines(path: &Path) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| l.as_bytes().to_vec())
        .collect();
    lines.sort();
    lines
}

fn payloads(broker: &Broker, topic: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = broker
        .consume_all(topic)
        .into_iter()
        .map(|r| r.payload)
        .collect();
    out.sort();
    out
}

pub(crate) fn reasons(letters: &[Vec<u8>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for l in letters {
        let doc: serde_json::Value = serde_json::from_slice(l).unwrap();
        *counts
            .entry(doc["reason"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    counts
}

/// Replays `recording` with `pipeline` on `workers` workers into a new
/// directory, with extra arguments.
pub(crate) fn replay(
    recording: &Path,
    pipeline: &Path,
    workers: usize,
    extra: &[&str],
) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("replay.log");
    let dir = out.path().join("out");
    let mut args = vec![
        "replay",
        recording.to_str().unwrap(),
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--quiet",
    ];
    let w = workers.to_string();
    args.extend(["--workers", &w]);
    args.extend(extra);
    run_ok(weir(&args, &log), &log, "weir replay");
    out
}

pub(crate) struct Replayed {
    pub(crate) rows: crate::reference::Windows,
    pub(crate) alerts: Vec<Vec<u8>>,
    pub(crate) dead: Vec<Vec<u8>>,
    pub(crate) health: Vec<Vec<u8>>,
    pub(crate) health_rows: Vec<String>,
}

pub(crate) fn replayed(out: &Path) -> Replayed {
    let out = out.join("out");
    Replayed {
        rows: parquet_rows(&out.join("windows")),
        alerts: sorted_lines(&out.join("alerts.jsonl")),
        dead: sorted_lines(&out.join("dead_letters.jsonl")),
        // Only where the pipeline writes them.
        health: match out.join("alarm_health.jsonl") {
            path if path.exists() => sorted_lines(&path),
            _ => Vec::new(),
        },
        health_rows: crate::health::health_rows(&out.join("alarm_health")),
    }
}

#[test]
fn a_replay_of_a_recorded_live_run_gives_exactly_its_results() {
    let broker = Broker::start();
    let topic = unique_topic("readings");
    broker.create_topic(&topic, 3);
    let live = Outputs::new(&broker);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    let toml = crate::restart::with_idle_timeout(&live.toml_for(&broker, &topic), "1s");
    // The alarm system's health too, with limits the input reaches.
    let health = unique_topic("health");
    broker.create_topic(&health, 1);
    // Control events: recorded with the readings, and replayed.
    let control = unique_topic("control");
    broker.create_topic(&control, 1);
    let toml = format!(
        "{toml}\n[sinks.alarm_health]\ntopic = \"{health}\"\n\n[alarm_health]\n\
         flood_window = \"1m\"\nflood_limit = 2\nstale_after = \"1m\"\npath = \"{health_dir}\"\n\n\
         [control]\ntopic = \"{control}\"\n",
        health_dir = dir.path().join("health").display()
    );
    std::fs::write(&pipeline, toml).unwrap();
    let controls = control_events();
    produce(&broker, &control, &controls);

    // The input, in three phases: every partition, then partitions 0 and 1
    // only (partition 2 goes idle), then partition 2 wakes with records
    // behind the watermark, and every partition goes on.
    let a: Vec<_> = (0..3).flat_map(|p| phase(p, 0, 120)).collect();
    let b: Vec<_> = (0..2).flat_map(|p| phase(p, 120, 240)).collect();
    let mut c = phase(2, 100, 130);
    c.extend((0..3).flat_map(|p| phase(p, 240, 300)));
    let mut ends = [0usize; 3];
    for (p, _) in a.iter().chain(&b).chain(&c) {
        ends[*p as usize] += 1;
    }
    let end_at = format!("0={},1={},2={}", ends[0], ends[1], ends[2]);

    let recording = dir.path().join("recording");
    let log = dir.path().join("live.log");
    let mut live_run = weir(
        &[
            "run",
            pipeline.to_str().unwrap(),
            "--workers",
            "2",
            "--quiet",
            "--record",
            recording.to_str().unwrap(),
            "--end-at",
            &end_at,
        ],
        &log,
    )
    .spawn()
    .unwrap();
    produce(&broker, &topic, &a);
    std::thread::sleep(Duration::from_secs(3));
    produce(&broker, &topic, &b);
    std::thread::sleep(Duration::from_secs(4));
    produce(&broker, &topic, &c);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = live_run.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the live run did not end at its end offsets"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let live_log = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "live run failed:\n{live_log}");
    assert!(
        live_log.contains("Partition is idle"),
        "partition 2 must go idle in the live run:\n{live_log}"
    );

    let outputs = ["windows", "hopping", "sessions", "corrected"];
    let live_files: Vec<_> = outputs
        .iter()
        .map(|o| parquet_files(&live.dir.path().join(o)))
        .collect();
    let live_rows = parquet_rows(&live.dir.path().join("windows"));
    let live_alerts = payloads(&broker, &live.alerts);
    let live_dead = payloads(&broker, &live.dead);
    let live_health = payloads(&broker, &health);
    // The health events as Parquet files too: the same events.
    let live_health_rows = crate::health::health_rows(&dir.path().join("health"));
    assert_eq!(
        live_health_rows,
        crate::health::health_keys(&live_health),
        "the health Parquet files hold the events of the health topic"
    );
    let measures = |events: &[Vec<u8>]| -> BTreeSet<String> {
        events
            .iter()
            .map(|e| serde_json::from_slice::<serde_json::Value>(e).unwrap()["measure"].to_string())
            .collect()
    };
    assert_eq!(
        measures(&live_health).len(),
        4,
        "floods, their starts, stale alarms and hours: {:?}",
        measures(&live_health)
    );
    let live_reasons = reasons(&live_dead);
    assert!(
        !live_rows.is_empty() && !live_alerts.is_empty(),
        "the live run wrote windows and alerts"
    );
    // The records behind the watermark after the idle spell correct
    // windows of the corrected output, or are dead letters beyond its
    // lateness.
    let corrections = crate::kinds::parquet_revised(&live.dir.path().join("corrected"))
        .keys()
        .filter(|k| k.4 > 0)
        .count();
    assert!(
        corrections > 0 || live_reasons.get("late_after_idle").is_some_and(|n| *n > 0),
        "records behind the watermark after the idle spell: {live_reasons:?}"
    );
    assert_eq!(
        live_dead.len(),
        a.iter()
            .chain(&b)
            .chain(&c)
            .filter(|(_, r)| !r.ends_with('}'))
            .count()
            + live_reasons.get("late_after_idle").unwrap_or(&0)
            + live_reasons.get("late").unwrap_or(&0)
            + 2,
        "every bad record is a dead letter, and the two bad control events"
    );
    assert_eq!(
        live_reasons.get("unknown_alarm"),
        Some(&1),
        "{live_reasons:?}"
    );
    // The control events acted: shelved events, notices and acknowledgements.
    let docs: Vec<serde_json::Value> = live_alerts
        .iter()
        .map(|a| serde_json::from_slice(a).unwrap())
        .collect();
    let count = |f: &dyn Fn(&serde_json::Value) -> bool| docs.iter().filter(|d| f(d)).count();
    assert!(count(&|d| d["shelved"] == true && d["state"] == "firing") > 0);
    assert!(count(&|d| d["state"] == "shelved") > 0 && count(&|d| d["state"] == "unshelved") > 0);
    assert!(count(&|d| d["acked_by"] == "ana") > 0);

    // The same worker count: the same Parquet bytes, alerts and dead letters.
    let same = replay(&recording, &pipeline, 2, &[]);
    for (output, live_files) in outputs.iter().zip(&live_files) {
        assert!(!live_files.is_empty(), "the live run wrote {output}");
        assert!(
            parquet_files(&same.path().join("out").join(output)) == *live_files,
            "Parquet files of {output} differ from the live run's"
        );
    }
    let r = replayed(same.path());
    assert_eq!(r.alerts, live_alerts, "alert events");
    assert_eq!(r.dead, live_dead, "dead letters");
    assert_eq!(r.health, live_health, "alarm health events");
    assert_eq!(r.health_rows, live_health_rows, "alarm health Parquet rows");

    // Other worker counts: the same rows and events.
    for workers in [1, 3] {
        let r = replayed(replay(&recording, &pipeline, workers, &[]).path());
        assert_eq!(r.rows, live_rows, "{workers} worker(s): window rows");
        assert_eq!(r.alerts, live_alerts, "{workers} worker(s): alert events");
        assert_eq!(r.dead, live_dead, "{workers} worker(s): dead letters");
        assert_eq!(r.health, live_health, "{workers} worker(s): alarm health");
        assert_eq!(
            r.health_rows, live_health_rows,
            "{workers} worker(s): alarm health Parquet rows"
        );
    }

    // An event-time range: exactly the live windows and alerts inside it.
    let (from, to) = (T0 + 60_000, T0 + 200_000);
    let iso = |ms: u64| {
        chrono::DateTime::from_timestamp_millis(ms as i64)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let r = replayed(
        replay(
            &recording,
            &pipeline,
            2,
            &["--from", &iso(from), "--to", &iso(to)],
        )
        .path(),
    );
    let rows_in: crate::reference::Windows = live_rows
        .iter()
        .filter(|((_, _, start), _)| *start >= from && start + 60_000 <= to)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let alerts_in: Vec<Vec<u8>> = live_alerts
        .iter()
        .filter(|a| {
            let t = serde_json::from_slice::<serde_json::Value>(a).unwrap()["event_time"]
                .as_u64()
                .unwrap();
            (from..to).contains(&t)
        })
        .cloned()
        .collect();
    assert!(!rows_in.is_empty() && !alerts_in.is_empty() && alerts_in.len() < live_alerts.len());
    assert_eq!(r.rows, rows_in, "event-time range: window rows");
    let text = |v: &[Vec<u8>]| {
        v.iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        text(&r.alerts),
        text(&alerts_in),
        "event-time range: alert events"
    );

    // The idle marks are what makes this exact: without them, the records
    // that came behind the watermark are judged as a bounded run judges them.
    let unmarked = dir.path().join("unmarked");
    copy_dir(&recording, &unmarked);
    std::fs::remove_dir_all(unmarked.join("marks")).unwrap();
    let unmarked_out = replayed(replay(&unmarked, &pipeline, 2, &[]).path());
    assert!(
        !reasons(&unmarked_out.dead).contains_key("late_after_idle"),
        "a replay without marks makes no idle decision"
    );

    // `weir record` of the topic, interrupted after 50 records of each
    // partition and run again: the recording holds every record once, and
    // replays as a bounded run judges the topic (no idle decisions).
    let recorded = dir.path().join("recorded");
    for extra in [&["--to", "50"][..], &[]] {
        let log = dir.path().join("record.log");
        let mut args = vec![
            "record",
            pipeline.to_str().unwrap(),
            recorded.to_str().unwrap(),
            "--quiet",
        ];
        args.extend(extra);
        run_ok(weir(&args, &log), &log, "weir record");
    }
    let report = std::fs::read_to_string(dir.path().join("record.stdout")).unwrap();
    let total: usize = ends.iter().sum();
    assert!(
        report.contains(&format!("Recorded {} records", total - 150)),
        "the second recording continues after the first 50 of each partition: {report}"
    );
    let r = replayed(replay(&recorded, &pipeline, 2, &[]).path());
    assert_eq!(r.rows, unmarked_out.rows, "weir record: window rows");
    assert_eq!(r.alerts, unmarked_out.alerts, "weir record: alert events");
    assert_eq!(r.dead, unmarked_out.dead, "weir record: dead letters");

    // A replay that crashes after a checkpoint and resumes writes exactly
    // what an uninterrupted replay writes.
    if !cfg!(feature = "failpoints") {
        eprintln!("skipping the crashed replay: it needs --features failpoints (scripts/test.sh)");
        return;
    }
    let checkpoints = dir.path().join("replay-checkpoints");
    let crashed = tempfile::tempdir().unwrap();
    let out = crashed.path().join("out");
    let args = |extra: &[&str]| {
        let mut args = vec![
            "replay".to_owned(),
            recording.display().to_string(),
            "--pipeline".into(),
            pipeline.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--quiet".into(),
            "--workers".into(),
            "2".into(),
            "--checkpoint-dir".into(),
            checkpoints.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let log = crashed.path().join("crash.log");
    let first = args(&["--speed", "100", "--checkpoint-interval", "200ms"]);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let mut crashing = weir(&first, &log);
    crate::restart::abort_at(&mut crashing, "manifest:3");
    let status = crashing.status().unwrap();
    let crash_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        !status.success() && crash_log.contains("failpoint: aborting"),
        "the replay must crash at its third checkpoint:\n{crash_log}"
    );
    let log = crashed.path().join("resume.log");
    let again = args(&[]);
    let again: Vec<&str> = again.iter().map(String::as_str).collect();
    run_ok(weir(&again, &log), &log, "resumed replay");
    let report = std::fs::read_to_string(log.with_extension("stdout")).unwrap();
    assert!(
        report.contains("Resumed from checkpoint"),
        "the second replay resumes:\n{report}"
    );
    let r = replayed(crashed.path());
    assert_eq!(r.rows, live_rows, "resumed replay: window rows");
    assert_eq!(r.alerts, live_alerts, "resumed replay: alert events");
    assert_eq!(r.dead, live_dead, "resumed replay: dead letters");
}

fn copy_dir(from: &Path, to: &PathBuf) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
