//! Restart without loss or duplicates: a live run with checkpoints every
//! second is killed again and again while its input is still being produced
//! (SIGKILL at random moments, aborts right after a checkpoint's manifest
//! and in the middle of its file renames, SIGTERM, Ctrl-C), each time
//! resumed at another worker count, and finished by a bounded run. Every
//! window row, alert and dead letter must then be written exactly once: the
//! outputs equal the independent reference and an uninterrupted bounded run.
//!
//! `WEIR_CRASH_KILLS=N` adds N more random kills (default 2).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::reference::{Input, Outputs};
use crate::support::{unique_topic, Broker};

/// How a round of the live run ends.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGKILL after this long.
    Kill(Duration),
    /// The process aborts itself at a checkpoint step (`WEIR_ABORT_AT`).
    Abort(&'static str),
    /// A signal after this long: a clean stop with a final checkpoint.
    Signal(&'static str, Duration),
}

/// A small deterministic generator for kill times (xorshift).
struct Rng(u64);

impl Rng {
    fn below_ms(&mut self, low: u64, high: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(low + self.0 % (high - low))
    }
}

#[test]
fn killed_and_resumed_live_runs_write_everything_exactly_once() {
    let broker = Broker::start();
    let topic = unique_topic("readings");
    broker.create_topic(&topic, 4);
    let records: Vec<_> = weir::simulate::generate(&Input::simulation(20)).collect();
    let out = Outputs::new(&broker);
    let checkpoints = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let pipeline = logs.path().join("pipeline.toml");
    let toml = live_toml(&out.toml_for(&broker, &topic), checkpoints.path());
    std::fs::write(&pipeline, toml).unwrap();

    let mut rng = Rng(0x5eed_cafe);
    let mut rounds = vec![
        Stop::Abort("rename:1"),
        Stop::Abort("manifest:2"),
        Stop::Kill(rng.below_ms(500, 3_000)),
        Stop::Signal("TERM", rng.below_ms(1_000, 3_000)),
        Stop::Kill(rng.below_ms(500, 3_000)),
        Stop::Signal("INT", rng.below_ms(1_000, 3_000)),
    ];
    let extra: usize = std::env::var("WEIR_CRASH_KILLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    rounds.extend((0..extra).map(|_| Stop::Kill(rng.below_ms(300, 3_000))));

    // The input arrives while the pipeline runs, in 40 batches over ~6 s.
    std::thread::scope(|scope| {
        let producer = scope.spawn(|| {
            for chunk in records.chunks(records.len().div_ceil(40)) {
                let batch: Vec<_> = chunk
                    .iter()
                    .map(|r| {
                        (
                            Some(r.key.as_bytes()),
                            r.payload.as_slice(),
                            Some(r.timestamp_ms),
                            // Every partition gets devices: with no idle
                            // timeout, an empty one would hold every window open.
                            r.key
                                .rsplit('-')
                                .next()
                                .and_then(|n| n.parse::<i32>().ok())
                                .map(|n| n % 4),
                        )
                    })
                    .collect();
                broker.produce(&topic, &batch);
                std::thread::sleep(Duration::from_millis(150));
            }
        });
        interrupt(&pipeline, logs.path(), &rounds, || producer.is_finished());
        producer.join().unwrap();
    });

    // Finish: a bounded resume reads to the end and flushes everything.
    let log = logs.path().join("final.log");
    let mut child = weir_run(&pipeline, 2, true, &log, Stop::Kill(Duration::ZERO));
    let status = wait(&mut child, Duration::from_secs(120));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "the final bounded resume failed ({status:?}):\n{stderr}"
    );

    let input = Input::of(&broker, &topic);
    let kills = rounds.len();
    let written = out.check(&broker, &input, &format!("after {kills} interruptions"));
    eprintln!(
        "restart test: {kills} interruptions; {} window rows, {} alerts, {} dead letters, each exactly once",
        written.rows.len(),
        written.alerts.len(),
        written.dead.len()
    );

    // The same as one uninterrupted bounded run, to the byte of each payload.
    let once = Outputs::new(&broker);
    let once_file = logs.path().join("once.toml");
    std::fs::write(&once_file, once.toml_for(&broker, &topic)).unwrap();
    let log = logs.path().join("once.log");
    let mut child = weir_run(&once_file, 2, true, &log, Stop::Kill(Duration::ZERO));
    assert!(wait(&mut child, Duration::from_secs(120)).is_some_and(|s| s.success()));
    let uninterrupted = once.check(&broker, &input, "uninterrupted");
    assert!(
        written == uninterrupted,
        "the interrupted runs wrote other payloads than one uninterrupted run"
    );
}

/// Runs the live pipeline once per round, at 2, 1, 3, 2, ... workers, and
/// interrupts each run as the round says.
fn interrupt(pipeline: &Path, logs: &Path, rounds: &[Stop], input_complete: impl Fn() -> bool) {
    let mut produced = false;
    for (i, stop) in rounds.iter().enumerate() {
        let workers = [2, 1, 3][i % 3];
        let log = logs.join(format!("round-{i}.log"));
        let mut child = weir_run(pipeline, workers, false, &log, *stop);
        match *stop {
            Stop::Kill(after) => {
                std::thread::sleep(after);
                child.kill().unwrap();
                child.wait().unwrap();
            }
            Stop::Abort(point) => {
                let status = wait(&mut child, Duration::from_secs(60));
                let stderr = std::fs::read_to_string(&log).unwrap();
                assert!(
                    status.is_some_and(|s| !s.success()) && stderr.contains("WEIR_ABORT_AT"),
                    "round {i}: the run did not abort at {point} ({status:?}):\n{stderr}"
                );
            }
            Stop::Signal(signal, after) => {
                std::thread::sleep(after);
                let sent = Command::new("kill")
                    .args([&format!("-{signal}"), &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(sent.success());
                let status = wait(&mut child, Duration::from_secs(60));
                let stderr = std::fs::read_to_string(&log).unwrap();
                assert!(
                    status.is_some_and(|s| s.success()),
                    "round {i}: SIG{signal} must stop the run cleanly ({status:?}):\n{stderr}"
                );
            }
        }
        if !produced && input_complete() {
            produced = true;
            eprintln!("restart test: input complete after round {i}");
        }
    }
}

/// The end-to-end pipeline as a live run: checkpoints every second, and no
/// idle timeout, whose wall-clock decisions would make a live run's results
/// depend on timing.
fn live_toml(toml: &str, checkpoints: &Path) -> String {
    let with_source = toml.replacen("[window]", "idle_timeout = \"off\"\n[window]", 1);
    format!(
        "{with_source}\n[checkpoint]\ndir = \"{}\"\ninterval = \"1s\"\n",
        checkpoints.display()
    )
}

/// Starts `weir run` on `pipeline`, its standard error in `log`.
fn weir_run(pipeline: &Path, workers: usize, bounded: bool, log: &Path, stop: Stop) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("run")
        .arg(pipeline)
        .args(["--quiet", "--workers", &workers.to_string()]);
    if bounded {
        cmd.arg("--bounded");
    }
    if let Stop::Abort(point) = stop {
        cmd.env("WEIR_ABORT_AT", point);
    }
    cmd.env("RUST_LOG", "info,weir_operators::checkpoint=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start weir")
}

/// Waits for `child` to exit, for at most `limit` (then kills it).
fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
