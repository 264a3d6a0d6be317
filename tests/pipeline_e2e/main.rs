//! End to end against a real broker: simulated readings (out of order, with
//! late and bad records) go into a tansu topic, the pipeline runs bounded on
//! 1 and 3 workers, and the alert topic, the dead-letter topic and the Parquet
//! files are compared with a reference computed here, independently, from
//! the records as the broker stored them (see `reference.rs`). `restart.rs`
//! kills and resumes live runs and requires the same outputs.

#[path = "../support/mod.rs"]
mod support;

#[path = "../support/ops.rs"]
#[allow(dead_code)]
mod ops;

#[path = "../support/s3.rs"]
mod s3;

#[path = "../support/receiver.rs"]
mod receiver;

mod alarms;
mod delivery;
mod failures;
mod fixture;
mod health;
mod kinds;
mod object_storage;
mod reference;
mod reload;
mod reload_cluster;
mod replay;
mod restart;
mod shelving;
mod stats;

use reference::{Input, Outputs};
use support::Broker;
use weir::RunOptions;

#[test]
fn aggregates_and_alerts_match_the_reference_on_one_and_three_workers() {
    let broker = Broker::start();
    let input = Input::produce(&broker);
    input.assert_alerts_cross_processes(2, 2);

    let mut outputs = Vec::new();
    // 1 and 3 worker threads, and a timely cluster of 2 processes with 2
    // threads each (run here as two clusters members in one test process).
    for (processes, threads) in [(1, 1), (1, 3), (2, 2)] {
        let label = format!("{processes} process(es) x {threads} thread(s)");
        let out = Outputs::new(&broker);
        let (records_read, readings) = run_cluster(&out.spec(&broker, &input), processes, threads);
        assert_eq!(records_read, input.stored.len(), "{label}");
        assert_eq!(readings, input.accepted.len(), "{label}");
        outputs.push(out.check(&broker, &input, &label));
    }
    assert_eq!(
        outputs[0], outputs[1],
        "outputs differ between 1 and 3 workers"
    );
    assert_eq!(
        outputs[0], outputs[2],
        "outputs differ between 1 worker and 2 processes"
    );
}

/// The `weir` binary run as two OS processes of a timely cluster, with 1 and
/// 2 workers each, writes exactly what one process writes, and both match the
/// reference. Reading rules fire and resolve, and window rules fire, in one
/// process while their alerts are written by the other.
#[test]
fn two_os_processes_write_what_one_process_writes() {
    let broker = Broker::start();
    let input = Input::produce(&broker);
    input.assert_alerts_cross_processes(2, 1);
    input.assert_alerts_cross_processes(2, 2);

    let single = Outputs::new(&broker);
    run_weir_processes(&single.toml(&broker, &input), 1, 2);
    let expected = single.check(&broker, &input, "1 process x 2 threads");
    for threads in [1, 2] {
        let label = format!("2 OS processes x {threads} thread(s)");
        let out = Outputs::new(&broker);
        run_weir_processes(&out.toml(&broker, &input), 2, threads);
        let written = out.check(&broker, &input, &label);
        assert!(
            written == expected,
            "{label}: outputs differ from one process"
        );
    }
}

/// Runs `weir run --bounded` on `pipeline` as `processes` OS processes of one
/// timely cluster on loopback (a single plain process when 1), and requires
/// every process to exit 0 within two minutes.
fn run_weir_processes(pipeline: &str, processes: usize, threads: usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, pipeline).unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, free_addresses(processes).join("\n")).unwrap();
    let children: Vec<_> = (0..processes)
        .map(|i| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
            cmd.arg("run").arg(&file).args([
                "--bounded",
                "--quiet",
                "--workers",
                &threads.to_string(),
            ]);
            if processes > 1 {
                cmd.args(["--process", &i.to_string(), "--hosts"])
                    .arg(&hosts);
            }
            let stderr = std::fs::File::create(dir.path().join(format!("stderr-{i}"))).unwrap();
            cmd.stdout(std::process::Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("start weir")
        })
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for (i, mut child) in children.into_iter().enumerate() {
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let stderr = std::fs::read_to_string(dir.path().join(format!("stderr-{i}"))).unwrap();
        assert!(
            status.is_some_and(|s| s.success()),
            "process {i} of {processes} ended with {status:?}:\n{stderr}"
        );
    }
}

/// `processes` loopback addresses with ports that were free a moment ago.
pub(crate) fn free_addresses(processes: usize) -> Vec<String> {
    (0..processes)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("127.0.0.1:{}", listener.local_addr().unwrap().port())
        })
        .collect()
}

/// Runs `spec` bounded as a timely cluster of `processes` members with
/// `threads` workers each (a single process without a cluster when 1), and
/// returns the records read and readings accepted over all members.
fn run_cluster(
    spec: &weir::config::PipelineSpec,
    processes: usize,
    threads: usize,
) -> (usize, usize) {
    let options = |cluster| RunOptions {
        workers: threads,
        bounded: true,
        cluster,
        ..RunOptions::default()
    };
    if processes == 1 {
        let report = weir::pipeline::run_spec(spec, &options(None)).unwrap();
        return (report.records_read as usize, report.readings as usize);
    }
    let hosts = free_addresses(processes);
    let members: Vec<_> = (0..processes)
        .map(|i| {
            let (spec, options) = (spec.clone(), options(Some((i, hosts.clone()))));
            std::thread::spawn(move || weir::pipeline::run_spec(&spec, &options).unwrap())
        })
        .collect();
    members
        .into_iter()
        .map(|m| m.join().unwrap())
        .fold((0, 0), |(r, a), report| {
            (
                r + report.records_read as usize,
                a + report.readings as usize,
            )
        })
}
