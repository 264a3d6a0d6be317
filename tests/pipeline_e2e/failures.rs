//! Failures stop cleanly and never repeat output.
//!
//! - A full Parquet disk stops every kind of run (bounded and live, with and
//!   without checkpoints, 1 and 2 workers) with exit code 2 and the path in
//!   the error, within seconds of the failure; once space is freed, a
//!   resume with checkpoints writes everything exactly once.
//! - A lost newest manifest, whose checkpoint had made Parquet files
//!   visible, makes the resume refuse instead of writing those rows again;
//!   an edited manifest is refused too; with the manifest restored, the
//!   resume writes everything exactly once.
//!
//! The full disk is a 4 KB tmpfs mounted on the Parquet directory where the
//! test may mount one (as root); elsewhere the fail point
//! `parquet-full-disk` makes every Parquet write fail with the same `ENOSPC`
//! (a build with the `failpoints` feature, as `scripts/test.sh` makes).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::reference::{Input, Outputs};
use crate::restart::{abort_at, live_toml, wait, weir_command};
use crate::support::{unique_topic, Broker};

/// A Parquet directory whose file system is full.
struct FullDisk {
    dir: PathBuf,
    /// A tmpfs is mounted on `dir` (else the fail point is used).
    mounted: bool,
}

impl FullDisk {
    fn on(dir: &Path) -> FullDisk {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4k", "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            // Fill it: even the smallest Parquet file finds no room.
            let mut filler = std::fs::File::create(dir.join(".filler")).unwrap();
            while std::io::Write::write_all(&mut filler, &[0u8; 512]).is_ok() {}
        }
        eprintln!(
            "full disk: {}",
            if mounted {
                "a 4 KB tmpfs"
            } else {
                "the parquet-full-disk fail point (no tmpfs can be mounted here)"
            }
        );
        FullDisk {
            dir: dir.to_owned(),
            mounted,
        }
    }

    /// Sets up `cmd` to write on the full disk.
    fn apply(&self, cmd: &mut Command) {
        if !self.mounted {
            if !cfg!(feature = "failpoints") {
                panic!(
                    "no tmpfs can be mounted here, and the fail point needs --features failpoints"
                );
            }
            cmd.env("FAILPOINTS", "parquet-full-disk=return");
        }
    }

    /// Frees space: the filler goes and the tmpfs grows to 64 MB.
    fn free(&self) {
        if self.mounted {
            std::fs::remove_file(self.dir.join(".filler")).unwrap();
            let status = Command::new("mount")
                .args(["-o", "remount,size=64m"])
                .arg(&self.dir)
                .status()
                .unwrap();
            assert!(status.success(), "remount the tmpfs");
        }
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
    }
}

/// The end-to-end pipeline without an idle timeout (every partition has
/// readings), and with checkpoints every second in `checkpoints` if given.
fn pipeline(toml: &str, checkpoints: Option<&Path>) -> String {
    match checkpoints {
        Some(dir) => live_toml(toml, &dir.display().to_string()),
        None => crate::restart::with_idle_timeout(toml, "off"),
    }
}

/// Runs `weir run` to its end (at most `limit`); returns its exit status,
/// its log, and how long after the first pipeline error it exited.
fn run_weir(
    cmd: &mut Command,
    log: &Path,
    limit: Duration,
) -> (Option<ExitStatus>, String, Duration) {
    let mut child = cmd.spawn().expect("start weir");
    let mut failed_at: Option<Instant> = None;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if failed_at.is_none()
            && std::fs::read_to_string(log).is_ok_and(|l| l.contains("Pipeline error"))
        {
            failed_at = Some(Instant::now());
        }
        if Instant::now() > deadline
            || failed_at.is_some_and(|at| at.elapsed() > Duration::from_secs(30))
        {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let after = failed_at.map_or(Duration::ZERO, |at| at.elapsed());
    (status, std::fs::read_to_string(log).unwrap(), after)
}

#[test]
fn a_full_parquet_disk_stops_every_kind_of_run_with_exit_2() {
    let broker = Broker::start();
    let input = Input::produce_spread(&broker);
    let logs = tempfile::tempdir().unwrap();
    for checkpoints in [false, true] {
        for bounded in [true, false] {
            for workers in [1, 2] {
                let label = format!(
                    "{} run, {}, {workers} worker(s)",
                    if bounded { "bounded" } else { "live" },
                    if checkpoints {
                        "with checkpoints"
                    } else {
                        "without checkpoints"
                    }
                );
                let out = Outputs::new(&broker);
                let disk = FullDisk::on(out.dir.path());
                let ckpt = logs
                    .path()
                    .join(format!("ckpt-{bounded}-{checkpoints}-{workers}"));
                let toml = pipeline(&out.toml(&broker, &input), checkpoints.then_some(&*ckpt));
                let file = logs.path().join("pipeline.toml");
                std::fs::write(&file, toml).unwrap();
                let log = logs.path().join("run.log");
                let mut cmd = weir_command(&file, workers, bounded, &log);
                disk.apply(&mut cmd);
                let (status, stderr, after) = run_weir(&mut cmd, &log, Duration::from_secs(120));
                assert!(
                    status.is_some_and(|s| s.code() == Some(2)),
                    "{label}: must exit 2 ({status:?}, {after:?} after the error):\n{stderr}"
                );
                assert!(
                    after <= Duration::from_secs(10),
                    "{label}: exited {after:?} after the error, not within 10 s"
                );
                let error = stderr
                    .lines()
                    .skip_while(|l| !l.starts_with("error:"))
                    .collect::<Vec<_>>()
                    .join("\n");
                assert!(
                    error.contains("Parquet sink")
                        && error.contains(&out.dir.path().display().to_string())
                        && error.contains("No space left on device"),
                    "{label}: the error must name the Parquet path and the cause:\n{stderr}"
                );
                if !checkpoints {
                    continue;
                }
                disk.free();
                let log = logs.path().join("resume.log");
                let mut cmd = weir_command(&file, workers, true, &log);
                let status = wait(&mut cmd.spawn().unwrap(), Duration::from_secs(120));
                let resumed = std::fs::read_to_string(&log).unwrap();
                // When the disk filled while the first checkpoint was under
                // way (a bounded run reads its input in well under a second),
                // no checkpoint completed; Kafka sinks had delivered what no
                // checkpoint records, so the resume refuses, saying so.
                if status.is_some_and(|s| s.code() == Some(2))
                    && resumed.contains("but no complete checkpoint")
                {
                    assert!(resumed.contains("--from-scratch"), "{label}: {resumed}");
                    eprintln!("{label}: no checkpoint completed before the disk filled; the resume refused");
                    continue;
                }
                assert!(
                    status.is_some_and(|s| s.success()),
                    "{label}: the resume after freeing space failed ({status:?}):\n{}\nthe run that failed:\n{stderr}",
                    std::fs::read_to_string(&log).unwrap()
                );
                out.check(&broker, &input, &format!("{label}, resumed"));
            }
        }
    }
}

/// The manifests in `dir`, oldest first.
fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    names.sort();
    names
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "aborts at a fail point: run with --features failpoints (scripts/test.sh does)"
)]
fn a_lost_or_edited_manifest_is_refused_and_nothing_is_written_twice() {
    let broker = Broker::start();
    let topic = unique_topic("readings");
    broker.create_topic(&topic, 4);
    let out = Outputs::new(&broker);
    let logs = tempfile::tempdir().unwrap();
    let ckpt = logs.path().join("checkpoints");
    let file = logs.path().join("pipeline.toml");
    std::fs::write(&file, pipeline(&out.toml_for(&broker, &topic), Some(&ckpt))).unwrap();

    // A live run dies right after the first checkpoint that made Parquet
    // files visible. Its input arrives after a first checkpoint completed,
    // so that there is an earlier one to resume from.
    let log = logs.path().join("live.log");
    let mut cmd = weir_command(&file, 2, false, &log);
    abort_at(&mut cmd, "published:1");
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Checkpoint complete")) {
        assert!(
            Instant::now() < deadline,
            "no checkpoint completed within 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Input::produce_spread_into(&broker, &topic);
    let status = wait(&mut child, Duration::from_secs(120));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.is_some_and(|s| !s.success()) && stderr.contains("failpoint: aborting"),
        "the live run must abort once files are published ({status:?}):\n{stderr}"
    );
    let input = Input::of(&broker, &topic);
    let mut visible = crate::reference::visible_files(out.dir.path());
    visible.sort();
    assert!(!visible.is_empty(), "the checkpoint made files visible");
    let all = manifests(&ckpt);
    assert!(
        all.len() >= 2,
        "an earlier checkpoint to resume from: {all:?}"
    );
    let newest = all.last().unwrap().clone();
    let previous = all[all.len() - 2]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let previous_id: u64 = previous[5..17].parse().unwrap();
    let original = std::fs::read(&newest).unwrap();

    let resume = |name: &str| {
        let log = logs.path().join(format!("{name}.log"));
        let mut cmd = weir_command(&file, 1, true, &log);
        let status = wait(&mut cmd.spawn().unwrap(), Duration::from_secs(120));
        (status, std::fs::read_to_string(&log).unwrap())
    };

    // The newest manifest is lost: resuming from the one before would write
    // the rows of the files it does not know again.
    std::fs::remove_file(&newest).unwrap();
    let (status, stderr) = resume("lost");
    assert!(
        status.is_some_and(|s| s.code() == Some(2)),
        "a resume without the newest manifest must be refused ({status:?}):\n{stderr}"
    );
    let shown = visible[0].display().to_string();
    assert!(
        stderr.contains(&format!("checkpoint {previous_id}"))
            && stderr.contains(&shown)
            && stderr.contains("--from-scratch"),
        "the error must name checkpoint {previous_id}, the file {shown} and --from-scratch:\n{stderr}"
    );
    // Nothing was written twice (the reader asserts it), nor anything new.
    // The first published checkpoint may have rolled files of any window
    // output (`visible` is not empty), so each output is read.
    for name in ["windows", "hopping", "sessions"] {
        let dir = out.dir.path().join(name);
        if dir.is_dir() {
            crate::reference::visible_rows(&dir);
        }
    }
    let mut now = crate::reference::visible_files(out.dir.path());
    now.sort();
    assert_eq!(now, visible, "the refused resume made no file visible");

    // The manifest is back, with its frontier moved 5 minutes later.
    let text = String::from_utf8(original.clone()).unwrap();
    let frontier: u64 = text
        .split("\"frontier\": ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("the manifest has a frontier");
    let edited = text.replacen(
        &format!("\"frontier\": {frontier}"),
        &format!("\"frontier\": {}", frontier + 300_000),
        1,
    );
    std::fs::write(&newest, edited).unwrap();
    let (status, stderr) = resume("edited");
    assert!(
        status.is_some_and(|s| s.code() == Some(2)) && stderr.contains("checksum"),
        "an edited manifest must be refused ({status:?}):\n{stderr}"
    );

    // Restored as it was: the resume writes everything exactly once.
    std::fs::write(&newest, original).unwrap();
    let (status, stderr) = resume("restored");
    assert!(
        status.is_some_and(|s| s.success()),
        "the resume with the manifest restored failed ({status:?}):\n{stderr}"
    );
    out.check(&broker, &input, "after a lost and an edited manifest");
}
