//! Shelving against a real Alertmanager: an alarm shelved by a control
//! event is evaluated (its events are on the alert topic, marked
//! `shelved`) but never reaches Alertmanager while shelved, and arrives
//! once its shelve ends if it is still firing; an alarm not shelved
//! arrives as usual.

use std::time::{Duration, Instant};

use crate::delivery::Alertmanager;
use crate::restart::weir_run;
use crate::support::{unique_topic, Broker};

const T0: u64 = 1_764_000_000_000;

/// Readings of `temp` at 95 (the rule `hot` fires on the first) for d1 and
/// d2, seconds `from..to`.
fn readings(from: u64, to: u64) -> Vec<String> {
    (from..to)
        .flat_map(|s| {
            ["d1", "d2"].map(|d| {
                format!(
                    r#"{{"device_id":"{d}","sensor":"temp","value":95.0,"ts":{}}}"#,
                    T0 + s * 1_000
                )
            })
        })
        .collect()
}

fn produce(broker: &Broker, topic: &str, payloads: &[String]) {
    let records: Vec<crate::support::Record<'_>> = payloads
        .iter()
        .map(|p| (None, p.as_bytes(), None, Some(0)))
        .collect();
    broker.produce(topic, &records);
}

/// When Alertmanager says each alarm started (ms), by device.
fn starts(am: &Alertmanager) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = am
        .alerts()
        .iter()
        .map(|a| {
            let at = a["startsAt"].as_str().unwrap_or_default();
            let at = chrono::DateTime::parse_from_rfc3339(at)
                .unwrap_or_else(|e| panic!("startsAt {at}: {e}"));
            let device = a["labels"]["device"].as_str().unwrap_or_default();
            (device.to_owned(), at.timestamp_millis() as u64)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_shelved_alarm_never_reaches_alertmanager_and_arrives_once_unshelved() {
    let am = Alertmanager::start();
    let broker = Broker::start();
    let (input, alerts, control) = (
        unique_topic("readings"),
        unique_topic("alerts"),
        unique_topic("control"),
    );
    for topic in [&input, &alerts, &control] {
        broker.create_topic(topic, 1);
    }
    // d1 is shelved for a minute from T0, before it fires.
    let shelve = format!(
        r#"{{"event_time":{T0},"action":"shelve","rule":"hot","device":"d1","sensor":"temp","user":"ana","reason":"sensor swap","duration":"1m"}}"#
    );
    produce(&broker, &control, &[shelve]);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
name = "shelving"
[source]
brokers = "{brokers}"
topic = "{input}"
idle_timeout = "off"
out_of_orderness = "1s"
[sinks.alerts]
topic = "{alerts}"
[sinks.alertmanager]
url = "{am}"
[[rule]]
name = "hot"
sensor = "temp"
above = 90.0
[control]
topic = "{control}"
"#,
            brokers = broker.bootstrap(),
            am = am.url()
        ),
    )
    .unwrap();
    let log = dir.path().join("weir.log");
    let mut run = weir_run(&pipeline, 2, false, &log, None);

    // Up to 50 s of event time, within the shelve: d2 arrives, d1 does not.
    produce(&broker, &input, &readings(0, 50));
    let deadline = Instant::now() + Duration::from_secs(60);
    while starts(&am).is_empty() {
        assert!(
            Instant::now() < deadline,
            "d2 never reached Alertmanager:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The alert topic has d1's firing, shelved, by the time d2 arrived.
    let topic_events = || -> Vec<serde_json::Value> {
        broker
            .consume_all(&alerts)
            .iter()
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    };
    let events = topic_events();
    let d1: Vec<&serde_json::Value> = events.iter().filter(|e| e["device"] == "d1").collect();
    assert!(
        d1.len() == 1 && d1[0]["state"] == "firing" && d1[0]["shelved"] == true,
        "{events:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(starts(&am), vec![("d2".to_owned(), T0)]);

    // Past the shelve's end: d1, still firing, arrives from then on.
    produce(&broker, &input, &readings(50, 90));
    while starts(&am).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "d1 never reached Alertmanager after its shelve:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        starts(&am),
        vec![("d1".to_owned(), T0 + 60_000), ("d2".to_owned(), T0)]
    );
    let states: Vec<String> = topic_events()
        .iter()
        .filter(|e| e["device"] == "d1")
        .map(|e| format!("{}@{}", e["state"].as_str().unwrap(), e["event_time"]))
        .collect();
    assert_eq!(
        states,
        [format!("firing@{T0}"), format!("unshelved@{}", T0 + 60_000)]
    );
    let _ = run.kill();
    let _ = run.wait();
}
