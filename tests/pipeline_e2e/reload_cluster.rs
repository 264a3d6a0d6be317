//! A rule reload in a cluster of two OS processes: process 0 watches the
//! rules file and sends the reload to every worker of both processes;
//! process 1 watches nothing and says so. The alerts both processes write
//! are exactly the reference's: the old rules before the frontier process 0
//! logs, the new ones from it on.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::ops::{free_port, Killed};
use crate::reload::{
    assert_exactly, metric, produce, readings, reference, rules_toml, versioned_alerts, wait_for,
    CUTOFF, NEW, OLD, T0,
};
use crate::support::{unique_topic, Broker};

/// `weir run` of `pipeline` as process `i` of the cluster in `hosts`, one
/// worker, logging to `log`, its metrics on `port`.
fn spawn_process(pipeline: &Path, hosts: &Path, i: usize, log: &Path, port: u16) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "--quiet", "--workers", "1", "--metrics-addr"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--process", &i.to_string(), "--hosts"])
            .arg(hosts)
            .arg(pipeline)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn every_process_of_a_cluster_applies_a_reload_from_the_same_frontier() {
    let broker = Broker::start();
    let (topic, alerts) = (unique_topic("cluster-in"), unique_topic("cluster-alerts"));
    broker.create_topic(&topic, 2);
    broker.create_topic(&alerts, 1);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, rules_toml(&OLD)).unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"cluster-reload\"\n[rules]\nfile = \"{}\"\n[source]\nbrokers = \"{}\"\n\
             topic = \"{topic}\"\nout_of_orderness = \"1s\"\n[sinks.alerts]\ntopic = \"{alerts}\"\n",
            rules.display(),
            broker.bootstrap(),
        ),
    )
    .unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, crate::free_addresses(2).join("\n")).unwrap();
    let ports = [free_port(), free_port()];
    let logs = [dir.path().join("weir-0.log"), dir.path().join("weir-1.log")];
    let mut processes: Vec<Killed> = (0..2)
        .map(|i| spawn_process(&pipeline, &hosts, i, &logs[i], ports[i]))
        .collect();
    let read = |ports: &[u16; 2]| -> f64 {
        ports
            .iter()
            .map(|p| metric(*p, "weir_records_read_total").unwrap_or(0.0))
            .sum()
    };

    let first = readings(0, 60);
    produce(&broker, &topic, &first);
    wait_for(
        "the first readings read",
        &mut processes[0].0,
        &logs[0],
        || read(&ports) == first.len() as f64,
    );
    std::fs::write(&rules, rules_toml(&NEW)).unwrap();
    let logged = |i: usize| std::fs::read_to_string(&logs[i]).unwrap_or_default();
    wait_for("the reload", &mut processes[0].0, &logs[0], || {
        logged(0).contains("Rules reloaded")
    });
    let t_from: u64 = logged(0)
        .split("applies from event time ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the reload logs its frontier");
    assert!((T0..T0 + 60_000).contains(&t_from), "{t_from}");

    let second = readings(60, 130);
    produce(&broker, &topic, &second);
    let total = (first.len() + second.len()) as f64;
    wait_for("every reading read", &mut processes[0].0, &logs[0], || {
        read(&ports) == total
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    for p in &processes {
        let killed = Command::new("kill")
            .args(["-TERM", &p.0.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }
    for (i, p) in processes.iter_mut().enumerate() {
        let exit = p.0.wait().unwrap();
        assert!(exit.success(), "process {i} failed:\n{}", logged(i));
    }
    // Process 1 watched nothing: it neither reloaded on its own nor logged
    // a reload it would not apply.
    assert!(logged(1).contains("Process 0 of the cluster watches the rules file"));
    assert!(!logged(1).contains("Reloading the rules"), "{}", logged(1));

    let all: Vec<_> = first.into_iter().chain(second).collect();
    let expected: BTreeSet<_> = reference(&all, t_from)
        .into_iter()
        .filter(|a| a.3 < CUTOFF)
        .collect();
    let docs: Vec<serde_json::Value> = broker
        .consume_all(&alerts)
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    let written = versioned_alerts(&docs);
    // The test means something: alerts on both sides of the frontier.
    assert!(expected.iter().any(|a| a.3 < t_from) && expected.iter().any(|a| a.3 >= t_from));
    assert_exactly(&expected, &written, "cluster reload", t_from);
}
