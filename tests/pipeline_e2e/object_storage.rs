//! Parquet output and checkpoints on a real S3-compatible server (moto's,
//! in a process of its own): the restart test's kills and aborts, a cluster
//! of processes that share no disk, and the files read back with pyarrow.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::reference::{Input, Outputs};
use crate::replay::{replayed, run_ok, weir, Replayed};
use crate::restart::{killed_and_resumed, lose_processes, wait, weir_run, Scenario};
use crate::s3::S3;
use crate::support::proxy::Proxy;
use crate::support::{unique_topic, Broker};

/// What a replay with `--out DIR` wrote.
fn replayed_in(out: &std::path::Path) -> Replayed {
    // `replayed` takes the directory above `out`.
    let parent = tempfile::tempdir().unwrap();
    std::fs::rename(out, parent.path().join("out")).unwrap();
    replayed(parent.path())
}

/// The window rows below `url` as pyarrow reads them over S3: the number
/// of rows, and the sum of their counts.
fn read_with_pyarrow(s3: &S3, url: &str) -> (u64, u64) {
    let path = url.trim_start_matches("s3://");
    let script = format!(
        r#"
import os
import pyarrow.dataset as ds
import pyarrow.fs as fs
s3 = fs.S3FileSystem(endpoint_override=os.environ["S3_ENDPOINT"], scheme="http",
                     access_key=os.environ["S3_KEY"], secret_key=os.environ["S3_SECRET"],
                     region="us-east-1")
table = ds.dataset("{path}", filesystem=s3, format="parquet", partitioning="hive").to_table()
print(table.num_rows, sum(table.column("count").to_pylist()))
"#
    );
    let out = s3.python(&script);
    let mut numbers = out.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "aborts at fail points: run with --features failpoints (scripts/test.sh does)"
)]
fn parquet_and_checkpoints_on_s3_are_written_exactly_once_across_kills() {
    let s3 = S3::start();
    s3.create_bucket("weir");
    let scenario = Scenario::on_s3(&s3, "weir");
    let written = killed_and_resumed(&scenario);
    let root = scenario.remote_out().unwrap();
    let (rows, count) = read_with_pyarrow(&s3, &format!("{}/windows", root.url()));
    assert_eq!(rows, written.rows.len() as u64, "rows pyarrow reads");
    assert_eq!(
        count,
        written.rows.values().map(|r| r.0).sum::<u64>(),
        "readings counted in the rows pyarrow reads"
    );
}

#[test]
fn a_cluster_sharing_only_a_bucket_loses_a_process_and_resumes_on_one() {
    let s3 = S3::start();
    s3.create_bucket("weir");
    let scenario = Scenario::on_s3(&s3, "weir");
    let rounds = 2;
    lose_processes(&scenario, rounds);
    // Resume on one process, in a working directory of its own.
    let log = scenario.log("single-final");
    let mut child = weir_run(&scenario.pipeline, 2, true, &log, None);
    let status = wait(&mut child, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "the single-process resume failed ({status:?}):\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    scenario.check(rounds);
}

/// `weir record` (interrupted and continued) and `weir run --record` into
/// a bucket, and `weir replay` from it, with credentials and endpoint from
/// the environment: the replays write what the replay of the same
/// recording on disk writes.
#[test]
fn a_recording_on_s3_replays_like_the_same_recording_on_disk() {
    let s3 = S3::start();
    s3.create_bucket("recordings");
    let broker = Broker::start();
    let topic = unique_topic("readings");
    broker.create_topic(&topic, 4);
    let records: Vec<_> = weir::simulate::generate(&Input::simulation(5)).collect();
    broker.produce(&topic, &crate::reference::spread(&records));
    let outputs = Outputs::new(&broker);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, outputs.toml_for(&broker, &topic)).unwrap();
    let pipeline = pipeline.to_str().unwrap();
    let bucket = format!("s3://recordings/{}", unique_topic("rec"));
    let on_disk = dir.path().join("recording");
    let on_disk = on_disk.to_str().unwrap();

    let weir = |args: &[&str], name: &str| {
        let log = dir.path().join(format!("{name}.log"));
        let mut cmd = weir(args, &log);
        for (key, value) in s3.options() {
            cmd.env(key.to_uppercase(), value);
        }
        run_ok(cmd, &log, name);
    };
    weir(&["record", pipeline, on_disk, "--quiet"], "record-disk");
    let recorded = format!("{bucket}/recorded");
    weir(
        &["record", pipeline, &recorded, "--quiet", "--to", "40"],
        "record-s3-part",
    );
    weir(&["record", pipeline, &recorded, "--quiet"], "record-s3");
    let live = format!("{bucket}/live");
    let live_args = ["run", pipeline, "--bounded", "--quiet", "--record", &live];
    weir(&live_args, "run-record-s3");

    let replay = |recording: &str, name: &str| {
        let out = dir.path().join(name);
        let out_str = out.to_str().unwrap();
        let args = [
            "replay",
            recording,
            "--pipeline",
            pipeline,
            "--out",
            out_str,
            "--quiet",
            "--workers",
            "2",
        ];
        weir(&args, name);
        replayed_in(&out)
    };
    let disk = replay(on_disk, "replay-disk");
    assert!(!disk.rows.is_empty() && !disk.alerts.is_empty());
    for (recording, name) in [(&recorded, "replay-recorded"), (&live, "replay-live")] {
        let from_s3 = replay(recording, name);
        assert_eq!(from_s3.rows, disk.rows, "{name}: window rows");
        assert_eq!(from_s3.alerts, disk.alerts, "{name}: alert events");
        assert_eq!(from_s3.dead, disk.dead, "{name}: dead letters");
    }
}

/// The S3 server is unreachable for 30 s in the middle of a live run (a
/// proxy in front of it drops every connection and refuses new ones): Weir
/// retries and carries on, or stops with an error naming the location, and
/// a resume writes everything exactly once. Meanwhile, every file listed
/// under a final name is a complete Parquet file.
#[test]
fn an_s3_outage_loses_and_repeats_nothing_and_never_shows_a_partial_file() {
    let mut s3 = S3::start();
    s3.create_bucket("weir");
    let proxy = Proxy::start();
    proxy.set_upstream(s3.port);
    let direct = s3.endpoint.clone();
    s3.endpoint = format!("http://127.0.0.1:{}", proxy.port());
    let scenario = Scenario::on_s3(&s3, "weir");
    scenario.produce(1, Duration::ZERO);
    let log = scenario.log("outage");
    let mut child = weir_run(&scenario.pipeline, 2, false, &log, None);
    crate::restart::started(&log, &mut child);
    // After a first checkpoint: a run that never completed one cannot be
    // resumed (see the checkpoint module), whatever the store.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("Checkpoint complete")
    {
        assert!(Instant::now() < deadline, "no checkpoint within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.outage(Duration::from_secs(30));
    // Look at the bucket directly (not through the proxy) all along.
    let root = scenario.remote_out().unwrap().url().to_owned();
    s3.endpoint = direct;
    let deadline = Instant::now() + Duration::from_secs(35);
    let mut looked = 0;
    while Instant::now() < deadline {
        looked += assert_complete_files(&s3, &root);
        std::thread::sleep(Duration::from_millis(500));
    }
    if child.try_wait().unwrap().is_none() {
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let status = wait(&mut child, Duration::from_secs(120));
    let stderr = std::fs::read_to_string(&log).unwrap();
    let carried_on = status.is_some_and(|s| s.success());
    assert!(
        carried_on || (stderr.contains("error") && stderr.contains("s3://weir/")),
        "the run neither carried on nor stopped with an error naming the location \
         ({status:?}):\n{stderr}"
    );
    eprintln!(
        "S3 outage test: the live run {}; {looked} file listings checked",
        if carried_on {
            "retried and carried on"
        } else {
            "stopped with an error"
        }
    );
    let log = scenario.log("outage-final");
    let mut child = weir_run(&scenario.pipeline, 1, true, &log, None);
    // The resume completes the files: look at them while it does.
    while child.try_wait().unwrap().is_none() {
        looked += assert_complete_files(&s3, &root);
    }
    looked += assert_complete_files(&s3, &root);
    assert!(looked > 0, "no file was ever listed");
    let status = wait(&mut child, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "the bounded resume after the outage failed ({status:?}):\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    scenario.check(1);
}

/// Checks that every Parquet file below `root` is complete (its footer
/// parses and its rows read); returns how many there were.
fn assert_complete_files(s3: &S3, root: &str) -> usize {
    let root = s3.location(root);
    let mut checked = 0;
    for (name, _) in root.list().unwrap() {
        if !name.ends_with(".parquet") {
            continue;
        }
        let bytes = bytes::Bytes::from(root.get(&name).unwrap());
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap_or_else(|e| panic!("{name} is listed and not a complete Parquet file: {e}"))
            .build()
            .unwrap();
        for batch in reader {
            batch.unwrap_or_else(|e| panic!("{name} does not read: {e}"));
        }
        checked += 1;
    }
    checked
}

/// A bucket that does not exist, and a store nobody answers at, are errors
/// at the start of a run that name the location, before anything is read.
#[test]
fn a_missing_bucket_or_an_unreachable_store_is_an_error_at_start() {
    let s3 = S3::start();
    s3.create_bucket("weir");
    let broker = Broker::start();
    let topic = unique_topic("readings");
    broker.create_topic(&topic, 1);
    let outputs = Outputs::new(&broker);
    let dir = tempfile::tempdir().unwrap();
    let unreachable = format!("http://{}", crate::free_addresses(1)[0]);
    let cases = [
        (
            "parquet",
            "s3://no-such-bucket/windows",
            "s3://weir/ck",
            &s3.endpoint,
        ),
        (
            "checkpoint",
            "s3://weir/windows",
            "s3://no-such-bucket/ck",
            &s3.endpoint,
        ),
        (
            "unreachable",
            "s3://weir/windows",
            "s3://weir/ck",
            &unreachable,
        ),
    ];
    for (name, parquet, checkpoints, endpoint) in cases {
        let toml = outputs
            .toml_for(&broker, &topic)
            .replace(&outputs.dir.path().display().to_string(), "s3://weir/out");
        let toml = toml.replacen("s3://weir/out/windows", parquet, 1);
        let storage = s3.storage_toml().replace(&s3.endpoint, endpoint);
        let pipeline = dir.path().join(format!("{name}.toml"));
        let toml = format!("{toml}{storage}\n[checkpoint]\ndir = \"{checkpoints}\"\n");
        std::fs::write(&pipeline, toml).unwrap();
        let log = dir.path().join(format!("{name}.log"));
        let started = Instant::now();
        let status = weir(&["run", pipeline.to_str().unwrap(), "--bounded"], &log)
            .status()
            .unwrap();
        let stderr = std::fs::read_to_string(&log).unwrap();
        let named = if name == "checkpoint" {
            checkpoints
        } else {
            parquet
        };
        assert!(
            !status.success() && stderr.contains(named) && stderr.contains("not writable"),
            "{name}: the run must stop at once naming {named}:\n{stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name}: took {:?}",
            started.elapsed()
        );
        eprintln!("{name}: {}", stderr.lines().last().unwrap_or_default());
    }
}
