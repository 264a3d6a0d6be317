//! Restart without loss or duplicates: a live run with checkpoints every
//! second is killed again and again while its input is still being produced
//! (SIGKILL at random moments, aborts right after a checkpoint's manifest
//! and in the middle of its file renames, SIGTERM, Ctrl-C), each time
//! resumed at another worker count, and finished by a bounded run. Every
//! window row, alert and dead letter must then be written exactly once: the
//! outputs equal the independent reference and an uninterrupted bounded run.
//!
//! `WEIR_CRASH_KILLS=N` adds N more random kills (default 2).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::reference::{Input, Outputs};
use crate::support::proxy::Proxy;
use crate::support::{unique_topic, Broker};
use weir_operators::storage::Location;

/// How a round of the live run ends.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGKILL after this long.
    Kill(Duration),
    /// The process aborts itself at a checkpoint step (see [`abort_at`]).
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

/// A live pipeline with checkpoints, its input topic, and its outputs.
pub(crate) struct Scenario {
    broker: Broker,
    topic: String,
    out: Outputs,
    /// Where the checkpoints are: a local directory or an object-store URL.
    checkpoints: Location,
    /// Keeps a local checkpoint directory alive.
    _checkpoint_dir: tempfile::TempDir,
    pub(crate) logs: tempfile::TempDir,
    pub(crate) pipeline: PathBuf,
}

/// When a test fails, what each run did (where it resumed from, the
/// checkpoints it completed) is printed, so a failure in CI can be read.
impl Drop for Scenario {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.logs.path())
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        for log in logs
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
        {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            eprintln!("--- {}", log.display());
            for line in text.lines().filter(|l| {
                [
                    "Resuming",
                    "Checkpoint complete",
                    "failpoint",
                    "error",
                    "Stopping",
                    "stopping",
                    "Offsets skipped",
                ]
                .iter()
                .any(|k| l.contains(k))
                    || (l.contains(" WARN ") && !l.contains("Bad record"))
            }) {
                eprintln!("{line}");
            }
        }
        eprintln!(
            "--- checkpoints:\n{}",
            weir::runtime::checkpoint_table(&self.checkpoints).unwrap_or_default()
        );
    }
}

impl Scenario {
    fn new() -> Scenario {
        Scenario::on(Broker::start())
    }

    fn on(broker: Broker) -> Scenario {
        let out = Outputs::new(&broker);
        let dir = tempfile::tempdir().unwrap();
        Scenario::with(broker, out, dir.path().into(), dir)
    }

    /// A scenario whose Parquet files and checkpoints are on the S3 server
    /// `s3`, below a prefix of its own in bucket `bucket`.
    pub(crate) fn on_s3(s3: &crate::s3::S3, bucket: &str) -> Scenario {
        let broker = Broker::start();
        let root = format!("s3://{bucket}/{}", unique_topic("run"));
        let out = Outputs::on_s3(&broker, s3, &format!("{root}/out"));
        let checkpoints = Location::Object(s3.location(&format!("{root}/checkpoints")));
        Scenario::with(broker, out, checkpoints, tempfile::tempdir().unwrap())
    }

    fn with(
        broker: Broker,
        out: Outputs,
        checkpoints: Location,
        checkpoint_dir: tempfile::TempDir,
    ) -> Scenario {
        let topic = unique_topic("readings");
        broker.create_topic(&topic, 4);
        let logs = tempfile::tempdir().unwrap();
        let pipeline = logs.path().join("pipeline.toml");
        let toml = live_toml(&out.toml_for(&broker, &topic), &checkpoints.to_string());
        std::fs::write(&pipeline, toml).unwrap();
        Scenario {
            broker,
            topic,
            out,
            checkpoints,
            _checkpoint_dir: checkpoint_dir,
            logs,
            pipeline,
        }
    }

    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.logs.path().join(format!("{name}.log"))
    }

    /// Produces 20 minutes of simulated input in 40 batches over ~6 s while
    /// `interrupt` runs, which is told whether the input is complete.
    pub(crate) fn while_producing(&self, interrupt: impl FnOnce(&dyn Fn() -> bool)) {
        std::thread::scope(|scope| {
            let producer = scope.spawn(|| self.produce(40, Duration::from_millis(150)));
            interrupt(&|| producer.is_finished());
            producer.join().unwrap();
        });
    }

    /// Produces 20 minutes of simulated input in `batches`, `pause` apart.
    /// Every partition gets devices (device `n` goes to partition `n % 4`):
    /// with no idle timeout, an empty one would hold every window open.
    pub(crate) fn produce(&self, batches: usize, pause: Duration) {
        let records: Vec<_> = weir::simulate::generate(&Input::simulation(20)).collect();
        for chunk in records.chunks(records.len().div_ceil(batches)) {
            self.broker
                .produce(&self.topic, &crate::reference::spread(chunk));
            std::thread::sleep(pause);
        }
    }

    /// Checks what the interrupted runs wrote against the reference and
    /// against one uninterrupted bounded run, to the byte of each payload.
    pub(crate) fn check(&self, interruptions: usize) -> crate::reference::Written {
        let input = Input::of(&self.broker, &self.topic);
        let label = format!("after {interruptions} interruptions");
        let written = self.out.check(&self.broker, &input, &label);
        eprintln!(
            "restart test: {interruptions} interruptions; {} window rows, {} alerts, {} dead letters, each exactly once",
            written.rows.len(),
            written.alerts.len(),
            written.dead.len()
        );
        let once = Outputs::new(&self.broker);
        let once_file = self.logs.path().join("once.toml");
        std::fs::write(&once_file, once.toml_for(&self.broker, &self.topic)).unwrap();
        let mut child = weir_run(&once_file, 2, true, &self.log("once"), None);
        assert!(wait(&mut child, Duration::from_secs(120)).is_some_and(|s| s.success()));
        let uninterrupted = once.check(&self.broker, &input, "uninterrupted");
        if written != uninterrupted {
            let show = |what: &str, a: &[Vec<u8>], b: &[Vec<u8>]| {
                for (tag, x, y) in [("interrupted only", a, b), ("uninterrupted only", b, a)] {
                    for p in x.iter().filter(|p| !y.contains(p)).take(5) {
                        eprintln!("{what}, {tag}: {}", String::from_utf8_lossy(p));
                    }
                }
            };
            show("alert", &written.alerts, &uninterrupted.alerts);
            show("dead letter", &written.dead, &uninterrupted.dead);
            for (k, v) in &written.rows {
                if uninterrupted.rows.get(k) != Some(v) {
                    eprintln!("window row {k:?}: {v:?} vs {:?}", uninterrupted.rows.get(k));
                }
            }
            panic!("the interrupted runs wrote other payloads than one uninterrupted run");
        }
        written
    }
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "aborts at fail points: run with --features failpoints (scripts/test.sh does)"
)]
fn killed_and_resumed_live_runs_write_everything_exactly_once() {
    killed_and_resumed(&Scenario::new());
}

/// The restart test's rounds on `scenario`: aborts right after a manifest
/// and between the renames (or upload completions) of a checkpoint, SIGKILLs
/// at random moments, SIGTERM and SIGINT, at 2, 1 and 3 workers, then a
/// bounded resume; every output exactly once.
pub(crate) fn killed_and_resumed(scenario: &Scenario) -> crate::reference::Written {
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

    scenario.while_producing(|complete| interrupt(scenario, &rounds, complete));

    // Finish: a bounded resume reads to the end and flushes everything.
    let log = scenario.log("final");
    let mut child = weir_run(&scenario.pipeline, 2, true, &log, None);
    let status = wait(&mut child, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "the final bounded resume failed ({status:?}):\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    scenario.check(rounds.len())
}

/// The outputs' location on an object store, if they are on one.
impl Scenario {
    pub(crate) fn remote_out(&self) -> Option<&weir_operators::storage::ObjectLocation> {
        self.out.remote.as_ref().map(|(root, _)| root)
    }
}

/// A timely cluster of two OS processes loses one of them (SIGKILL at a
/// random moment): the other stops at once with an error naming it, and the
/// cluster restarted, at other worker counts, resumes with nothing lost or
/// repeated.
#[test]
fn a_cluster_that_loses_a_process_resumes_exactly() {
    let scenario = Scenario::new();
    let rounds = 3;
    lose_processes(&scenario, rounds);
    let mut members = weir_cluster(&scenario, 2, true, "cluster-final");
    for (i, member) in members.iter_mut().enumerate() {
        let status = wait(member, Duration::from_secs(120));
        assert!(
            status.is_some_and(|s| s.success()),
            "final bounded resume, process {i}: {status:?}\n{}",
            std::fs::read_to_string(scenario.log(&format!("cluster-final-{i}"))).unwrap()
        );
    }
    scenario.check(rounds);
}

/// While the input is produced, `rounds` times: a cluster of two processes
/// (1 or 2 workers each) starts from the latest checkpoint, one of them is
/// killed at a random moment, and the other must stop naming it.
pub(crate) fn lose_processes(scenario: &Scenario, rounds: usize) {
    let mut rng = Rng(0xc1a5_7e12);
    scenario.while_producing(|_| {
        for round in 0..rounds {
            let threads = [1, 2][round % 2];
            let name = format!("cluster-{round}");
            let mut members = weir_cluster(scenario, threads, false, &name);
            // Kill once the cluster has formed: before, a process only waits
            // for its peers to start.
            for (i, member) in members.iter_mut().enumerate() {
                started(&scenario.log(&format!("{name}-{i}")), member);
            }
            std::thread::sleep(rng.below_ms(300, 2_500));
            let (victim, survivor) = (round % 2, 1 - round % 2);
            members[victim].kill().unwrap();
            members[victim].wait().unwrap();
            let status = wait(&mut members[survivor], Duration::from_secs(30));
            let stderr =
                std::fs::read_to_string(scenario.log(&format!("cluster-{round}-{survivor}")))
                    .unwrap();
            assert!(
                status.is_some_and(|s| !s.success())
                    && stderr.contains(&format!("lost cluster process {victim}")),
                "round {round}: process {survivor} must stop naming the lost process {victim} ({status:?}):\n{stderr}"
            );
        }
    });
}

/// The broker is unreachable for 30 s in the middle of a live run (a proxy
/// in front of it drops every connection and refuses new ones): Weir waits
/// and carries on, or stops with an error and resumes from its checkpoint.
/// Either way nothing is lost, repeated or written partial.
#[test]
fn a_broker_outage_loses_and_repeats_nothing() {
    let proxy = Proxy::start();
    let scenario = Scenario::on(Broker::start_behind(&proxy));
    scenario.produce(1, Duration::ZERO);
    let log = scenario.log("outage");
    let mut child = weir_run(&scenario.pipeline, 2, false, &log, None);
    std::thread::sleep(Duration::from_millis(1_500));
    proxy.outage(Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(35));
    if child.try_wait().unwrap().is_none() {
        // Still running: it waited. Stop it cleanly.
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    let status = wait(&mut child, Duration::from_secs(90));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        status.is_some_and(|s| s.success() || stderr.contains("error:")),
        "the run neither carried on nor stopped with an error ({status:?}):\n{stderr}"
    );
    eprintln!(
        "outage test: the live run {}",
        if status.is_some_and(|s| s.success()) {
            "waited for the broker and carried on"
        } else {
            "stopped with an error"
        }
    );
    let log = scenario.log("outage-final");
    let mut child = weir_run(&scenario.pipeline, 1, true, &log, None);
    let status = wait(&mut child, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "the bounded resume after the outage failed ({status:?}):\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    scenario.check(1);
}

/// Starts the live pipeline as a cluster of two `weir` processes with
/// `threads` workers each, logging to `<name>-<process>.log`.
/// Each process runs in a working directory of its own: they share only
/// what the pipeline file names.
pub(crate) fn weir_cluster(
    scenario: &Scenario,
    threads: usize,
    bounded: bool,
    name: &str,
) -> Vec<Child> {
    let hosts = scenario.logs.path().join(format!("{name}.hosts"));
    std::fs::write(&hosts, crate::free_addresses(2).join("\n")).unwrap();
    (0..2)
        .map(|i| {
            let log = scenario.log(&format!("{name}-{i}"));
            let mut cmd = weir_command(&scenario.pipeline, threads, bounded, &log);
            let cwd = scenario.logs.path().join(format!("{name}-{i}.cwd"));
            std::fs::create_dir_all(&cwd).unwrap();
            cmd.args(["--process", &i.to_string(), "--hosts"])
                .arg(&hosts)
                .current_dir(cwd);
            cmd.spawn().expect("start weir")
        })
        .collect()
}

/// Runs the live pipeline once per round, at 2, 1, 3, 2, ... workers, and
/// interrupts each run as the round says.
fn interrupt(scenario: &Scenario, rounds: &[Stop], input_complete: &dyn Fn() -> bool) {
    let mut produced = false;
    for (i, stop) in rounds.iter().enumerate() {
        let workers = [2, 1, 3][i % 3];
        let log = scenario.log(&format!("round-{i}"));
        let abort = match stop {
            Stop::Abort(point) => Some(*point),
            _ => None,
        };
        let mut child = weir_run(&scenario.pipeline, workers, false, &log, abort);
        if !matches!(stop, Stop::Abort(_)) {
            // Time from when the pipeline runs: a signal before that only
            // finds a process still starting.
            started(&log, &mut child);
        }
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
                    status.is_some_and(|s| !s.success()) && stderr.contains("failpoint: aborting"),
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
pub(crate) fn live_toml(toml: &str, checkpoints: &str) -> String {
    let with_source = with_idle_timeout(toml, "off");
    format!("{with_source}\n[checkpoint]\ndir = \"{checkpoints}\"\ninterval = \"1s\"\n")
}

/// The end-to-end pipeline `toml` with `[source] idle_timeout` set.
pub(crate) fn with_idle_timeout(toml: &str, timeout: &str) -> String {
    let bound = "out_of_orderness = \"5s\"\n";
    assert!(toml.contains(bound), "the pipeline has a bound");
    toml.replacen(bound, &format!("{bound}idle_timeout = \"{timeout}\"\n"), 1)
}

/// Starts `weir run` on `pipeline`, its standard error in `log`, aborting at
/// the checkpoint step `abort` if given (see [`abort_at`]).
pub(crate) fn weir_run(
    pipeline: &Path,
    workers: usize,
    bounded: bool,
    log: &Path,
    abort: Option<&str>,
) -> Child {
    let mut cmd = weir_command(pipeline, workers, bounded, log);
    if let Some(point) = abort {
        abort_at(&mut cmd, point);
    }
    cmd.spawn().expect("start weir")
}

/// Makes `cmd` abort the `n`-th time a checkpoint reaches a step, given as
/// `step:n` (`manifest:2`): the fail point `checkpoint-<step>`, which only
/// a build with the `failpoints` feature has (`scripts/test.sh` enables it).
/// The aborting process logs `failpoint: aborting at checkpoint-<step>`.
pub(crate) fn abort_at(cmd: &mut Command, point: &str) {
    let (step, n) = point.split_once(':').expect("step:n");
    let n: usize = n.parse().expect("step:n");
    let skip = match n {
        0 | 1 => String::new(),
        n => format!("{}*off->", n - 1),
    };
    cmd.env("FAILPOINTS", format!("checkpoint-{step}={skip}return"));
}

/// The `weir run` command line, its standard error in `log`.
pub(crate) fn weir_command(pipeline: &Path, workers: usize, bounded: bool, log: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("run")
        .arg(pipeline)
        .args(["--quiet", "--workers", &workers.to_string()]);
    if bounded {
        cmd.arg("--bounded");
    }
    cmd.env("RUST_LOG", "info,weir_operators::checkpoint=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd
}

/// Waits until the run logged in `log` has started its sources.
pub(crate) fn started(log: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(log).is_ok_and(|l| l.contains("Kafka source started")) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "weir exited while starting:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "weir did not start within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` to exit, for at most `limit` (then kills it).
pub(crate) fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
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
