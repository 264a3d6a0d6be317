//! A pipeline whose broker, topics or output directory are missing fails
//! before it starts, naming what is missing.

mod support;

use std::path::Path;

use support::{unique_topic, Broker};

#[test]
fn missing_topics_and_unwritable_directories_fail_before_start() {
    let broker = Broker::start();
    let readings = unique_topic("readings");
    broker.create_topic(&readings, 1);
    let out = tempfile::tempdir().unwrap();
    let blocker = out.path().join("file");
    std::fs::write(&blocker, b"").unwrap();

    let pipeline = |alerts: &str, parquet: &Path| {
        let toml = format!(
            "name = \"p\"\n[source]\nbrokers = \"{}\"\ntopic = \"{readings}\"\n[sinks.parquet]\npath = \"{}\"\n[sinks.alerts]\ntopic = \"{alerts}\"\n[[rule]]\nname = \"hot\"\nsensor = \"t\"\nabove = 1.0\n",
            broker.bootstrap(),
            parquet.display()
        );
        weir::config::parse_pipeline(&toml, Path::new("p.toml")).unwrap()
    };
    let options = weir::RunOptions {
        bounded: true,
        ..Default::default()
    };

    let missing = unique_topic("alerts");
    let err = weir::pipeline::run_spec(&pipeline(&missing, out.path()), &options).unwrap_err();
    assert!(format!("{err:#}").contains(&missing), "{err:#}");

    let alerts = unique_topic("alerts");
    broker.create_topic(&alerts, 1);
    // A directory below a regular file cannot be created.
    let err =
        weir::pipeline::run_spec(&pipeline(&alerts, &blocker.join("sub")), &options).unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot create the output directory"),
        "{err:#}"
    );

    // With everything in place the same pipeline runs (over an empty topic).
    let report = weir::pipeline::run_spec(&pipeline(&alerts, out.path()), &options).unwrap();
    assert_eq!(report.records_read, 0);
}

#[test]
fn an_unreachable_broker_is_named() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let brokers = format!("127.0.0.1:{port}");
    let err = weir::preflight::check_topics(&brokers, &[], &["readings"]).unwrap_err();
    assert!(
        format!("{err:#}").contains(&format!("cannot reach Kafka at {brokers}")),
        "{err:#}"
    );
}
