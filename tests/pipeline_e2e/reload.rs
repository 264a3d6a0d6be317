//! Reloading rules in a live run against a real broker: an invalid rules
//! file is refused (the rules in force stay), a valid one applies from the
//! event-time frontier `T` the run logs. The alerts must be exactly those of
//! a reference loop written here: the old rules before `T`, the new rules
//! from `T` on, an unchanged rule keeping its state across `T` and a changed
//! one starting afresh. An edit of the device registry is a reload too:
//! devices' new sites and limits apply from the logged frontier.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ops::{free_port, get, Killed};
use crate::support::{unique_topic, Broker};

pub(crate) const T0: u64 = 1_764_000_000_000;

/// Temperature of device `d` at second `t`: swings between about 70 and 96.
fn temperature(d: usize, t: u64) -> f64 {
    let x = t as f64 + 13.0 * d as f64;
    ((83.0 + 13.0 * (x / 9.0).sin()) * 100.0).round() / 100.0
}

/// A reading: (partition, device, event time, value).
pub(crate) type Reading = (i32, String, u64, f64);

/// One reading a second of devices 0..6 (device `d` on partition `d % 2`)
/// for seconds `from..to`.
pub(crate) fn readings(from: u64, to: u64) -> Vec<Reading> {
    let mut out = Vec::new();
    for t in from..to {
        for d in 0..6 {
            out.push((
                (d % 2) as i32,
                format!("dev-{d}"),
                T0 + t * 1_000,
                temperature(d, t),
            ));
        }
    }
    out
}

pub(crate) fn produce(broker: &Broker, topic: &str, readings: &[Reading]) {
    let payloads: Vec<(i32, String)> = readings
        .iter()
        .map(|(p, d, t, v)| {
            let json =
                format!(r#"{{"device_id":"{d}","sensor":"temperature","value":{v},"ts":{t}}}"#);
            (*p, json)
        })
        .collect();
    let batch: Vec<_> = payloads
        .iter()
        .map(|(p, payload)| (None, payload.as_bytes(), None, Some(*p)))
        .collect();
    broker.produce(topic, &batch);
}

/// A threshold rule: (name, breaches above (or below), threshold).
pub(crate) type RuleDef = (&'static str, bool, f64);

pub(crate) const OLD: [RuleDef; 3] = [
    ("hot", true, 90.0),
    ("warm", true, 86.0),
    ("cool", false, 74.0),
];
pub(crate) const NEW: [RuleDef; 3] = [
    ("hot", true, 90.0),
    ("warm", true, 80.0),
    ("cold", false, 77.0),
];

pub(crate) fn rules_toml(rules: &[RuleDef]) -> String {
    rules
        .iter()
        .map(|(name, above, threshold)| {
            let side = if *above { "above" } else { "below" };
            format!(
                "[[rule]]\nname = \"{name}\"\nsensor = \"temperature\"\n{side} = {threshold}\n\n"
            )
        })
        .collect()
}

/// The reference state machine of one rule on one device's readings, fed
/// in event-time order: `old` judges the readings before `t_from`, `new`
/// those from `t_from` on (`None`: not judged), and at `t_from` the state
/// starts afresh ("not firing") when they differ. Its state changes: (the
/// rule in force, state, event time, rules version).
fn reference_changes<R: Copy + PartialEq>(
    readings: &[Reading],
    device: &str,
    t_from: u64,
    (old, new): (Option<R>, Option<R>),
    breaches: impl Fn(R, f64) -> bool,
) -> Vec<(R, &'static str, u64, u64)> {
    let mut series: Vec<(u64, f64)> = readings
        .iter()
        .filter(|r| r.1 == device)
        .map(|r| (r.2, r.3))
        .collect();
    series.sort_by_key(|s| s.0);
    let mut firing = false;
    let mut switched = false;
    let mut changes = Vec::new();
    for (t, v) in series {
        let (rule, version) = if t < t_from { (old, 1) } else { (new, 2) };
        if t >= t_from && !switched {
            switched = true;
            firing &= old == new;
        }
        let Some(rule) = rule else {
            continue;
        };
        let breaching = breaches(rule, v);
        let state = match (firing, breaching) {
            (false, true) => "firing",
            (true, false) => "resolved",
            _ => continue,
        };
        firing = breaching;
        changes.push((rule, state, t, version));
    }
    changes
}

/// The alert events the reference expects of the rules test: (rule,
/// device, state, event time, rules version). Each rule is a plain
/// threshold state machine per device; at `t_from` the new rules take
/// over, a rule whose definition changed (or is new) starting from "not
/// firing".
pub(crate) fn reference(
    readings: &[Reading],
    t_from: u64,
) -> BTreeSet<(String, String, String, u64, u64)> {
    let devices: BTreeSet<&str> = readings.iter().map(|r| r.1.as_str()).collect();
    let names: BTreeSet<&str> = OLD.iter().chain(&NEW).map(|r| r.0).collect();
    let mut out = BTreeSet::new();
    for name in names {
        let old = OLD.iter().find(|r| r.0 == name).copied();
        let new = NEW.iter().find(|r| r.0 == name).copied();
        for device in &devices {
            let breaches = |(_, above, threshold): RuleDef, v: f64| {
                if above {
                    v > threshold
                } else {
                    v < threshold
                }
            };
            for (_, state, t, version) in
                reference_changes(readings, device, t_from, (old, new), breaches)
            {
                out.insert((name.into(), device.to_string(), state.into(), t, version));
            }
        }
    }
    out
}

/// Alerts before this event time (120 s into the readings) are complete
/// whatever the stop's frontier.
pub(crate) const CUTOFF: u64 = T0 + 120_000;

/// Asserts that the alerts written are exactly those of the reference.
pub(crate) fn assert_exactly<A: Ord + Debug>(
    expected: &BTreeSet<A>,
    written: &BTreeSet<A>,
    what: &str,
    t_from: u64,
) {
    let missing: Vec<_> = expected.difference(written).collect();
    let extra: Vec<_> = written.difference(expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what} at {t_from}: missing {missing:?}, unexpected {extra:?}"
    );
}

/// A counter or gauge of the run's `/metrics`.
pub(crate) fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = get(port, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until `done` holds, at most 60 s.
pub(crate) fn wait_for(what: &str, child: &mut Child, log: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "weir exited while waiting for {what}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "no {what} within 60 s:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `weir run` of `pipeline` on `workers` workers, logging at info level to
/// `log`, with its metrics on `port`.
pub(crate) fn spawn_weir(pipeline: &Path, log: &Path, port: u16, workers: usize) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args([
                "run",
                "--quiet",
                "--workers",
                &workers.to_string(),
                "--metrics-addr",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .arg(pipeline)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Waits for the run to apply a reload, and returns the event time it
/// logs the new rules applying from (within the first minute of input).
fn reload_frontier(weir: &mut Killed, log: &Path) -> u64 {
    let logged = || std::fs::read_to_string(log).unwrap_or_default();
    wait_for("the reload", &mut weir.0, log, || {
        logged().contains("Rules reloaded")
    });
    let t_from: u64 = logged()
        .split("applies from event time ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the reload logs its frontier");
    assert!(
        (T0..T0 + 60_000).contains(&t_from),
        "the reload applies within the first readings' time: {t_from}"
    );
    t_from
}

/// Stops the run with SIGTERM; it must exit cleanly.
fn stop(mut weir: Killed, log: &Path) {
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-TERM", &weir.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = weir.0.wait().unwrap();
    assert!(
        exit.success(),
        "weir failed:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A live run of the tests: a broker with the run's input topic (2
/// partitions) and alert topic, and a directory for its files (rules,
/// pipeline, log).
struct LiveRun {
    /// The pipeline's name, and the prefix of its topics.
    name: &'static str,
    broker: Broker,
    topic: String,
    alerts: String,
    dir: tempfile::TempDir,
    /// Where the run serves its metrics.
    port: u16,
}

impl LiveRun {
    fn new(name: &'static str) -> LiveRun {
        let broker = Broker::start();
        let topic = unique_topic(&format!("{name}-in"));
        let alerts = unique_topic(&format!("{name}-alerts"));
        broker.create_topic(&topic, 2);
        broker.create_topic(&alerts, 1);
        LiveRun {
            name,
            broker,
            topic,
            alerts,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
        }
    }

    /// A file in the run's directory.
    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The run's log.
    fn log(&self) -> PathBuf {
        self.file("weir.log")
    }

    /// Waits until the run has read `n` records.
    fn wait_read(&self, what: &str, weir: &mut Killed, n: usize) {
        wait_for(what, &mut weir.0, &self.log(), || {
            metric(self.port, "weir_records_read_total") == Some(n as f64)
        });
    }

    /// Writes the pipeline, its rules in `rules_file`, starts `weir run` on
    /// it and produces the first minute of readings: the running process,
    /// once it has read them, and those readings.
    fn start(&self, rules_file: &str) -> (Killed, Vec<Reading>) {
        let pipeline = self.file("pipeline.toml");
        std::fs::write(
            &pipeline,
            format!(
                "name = \"{name}\"\n[rules]\nfile = \"{rules_file}\"\n[source]\nbrokers = \"{brokers}\"\n\
                 topic = \"{topic}\"\nout_of_orderness = \"1s\"\n[sinks.alerts]\ntopic = \"{alerts}\"\n",
                name = self.name,
                brokers = self.broker.bootstrap(),
                topic = self.topic,
                alerts = self.alerts,
            ),
        )
        .unwrap();
        let mut weir = spawn_weir(&pipeline, &self.log(), self.port, 2);
        let first = readings(0, 60);
        produce(&self.broker, &self.topic, &first);
        self.wait_read("the first readings read", &mut weir, first.len());
        (weir, first)
    }

    /// After the reload: produces the readings of 60 s to 130 s, calls
    /// `check` with the run and every reading once it has read them, stops
    /// it, and returns all the readings.
    fn finish_checking(
        &self,
        mut weir: Killed,
        first: Vec<Reading>,
        check: impl FnOnce(&mut Killed, &[Reading]),
    ) -> Vec<Reading> {
        let second = readings(60, 130);
        produce(&self.broker, &self.topic, &second);
        let total = first.len() + second.len();
        self.wait_read("every reading read", &mut weir, total);
        let all: Vec<Reading> = first.into_iter().chain(second).collect();
        check(&mut weir, &all);
        stop(weir, &self.log());
        all
    }

    /// The alert documents written to the alert topic.
    fn written_alerts(&self) -> Vec<serde_json::Value> {
        self.broker
            .consume_all(&self.alerts)
            .iter()
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    }
}

#[test]
fn a_reload_applies_the_new_rules_from_the_frontier_it_logs() {
    let run = LiveRun::new("reload");
    let rules = run.file("rules.toml");
    std::fs::write(&rules, rules_toml(&OLD)).unwrap();
    let (mut weir, first) = run.start(&rules.display().to_string());
    let log = run.log();

    // An invalid file: refused with its line, the old rules stay.
    std::fs::write(
        &rules,
        format!(
            "{}[[rule]]\nname = \"bad\"\nsensor = \"temperature\"\nabove = \"hot\"\n",
            rules_toml(&NEW)
        ),
    )
    .unwrap();
    wait_for("the refusal", &mut weir.0, &log, || {
        metric(run.port, "weir_rule_reloads_refused_total") == Some(1.0)
    });
    let refusal = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        refusal.contains("are not reloaded") && refusal.contains("rules.toml:19"),
        "the refusal names the file and line:\n{refusal}"
    );

    std::fs::write(&rules, rules_toml(&NEW)).unwrap();
    let t_from = reload_frontier(&mut weir, &log);
    // The active alarms after the reload: the alarms of "warm" (changed)
    // and "cool" (removed) ended at T; those of "hot" (unchanged) went on.
    let all = run.finish_checking(weir, first, |weir, all| {
        let (as_of, alarms) = crate::alarms::alarms_after(weir, &log, run.port, T0 + 120_000);
        let mut last = std::collections::BTreeMap::new();
        let mut at_t = std::collections::BTreeMap::new();
        let mut events: Vec<_> = reference(all, t_from).into_iter().collect();
        events.sort_by_key(|e| e.3);
        for (rule, device, state, t, version) in events {
            if t < t_from {
                at_t.insert((rule.clone(), device.clone()), state.clone());
            }
            if t < as_of {
                last.insert((rule, device), (state, version));
            }
        }
        // The test means something: alarms of "warm" or "cool" were active
        // when the reload came, and no resolve will come for them.
        assert!(
            at_t.iter()
                .any(|((rule, _), state)| rule != "hot" && state == "firing"),
            "no alarm of a changed rule was active at {t_from}: {at_t:?}"
        );
        let want: BTreeSet<(String, String)> = last
            .into_iter()
            .filter(|((rule, _), (state, version))| {
                state == "firing" && (*version == 2 || rule == "hot")
            })
            .map(|(key, _)| key)
            .collect();
        assert_eq!(
            alarms, want,
            "active alarms after the reload, before {as_of}"
        );
    });

    let expected: BTreeSet<_> = reference(&all, t_from)
        .into_iter()
        .filter(|a| a.3 < CUTOFF)
        .collect();
    let written = versioned_alerts(&run.written_alerts());
    // The test means something: every rule alerts, on both sides of T.
    for name in ["hot", "warm", "cool", "cold"] {
        assert!(
            expected.iter().any(|a| a.0 == name),
            "rule {name} never alerts"
        );
    }
    assert!(expected.iter().any(|a| a.3 < t_from) && expected.iter().any(|a| a.3 >= t_from));
    assert_exactly(&expected, &written, "reload", t_from);
}

/// The alerts of `docs` before [`CUTOFF`] as the reference has them: (rule,
/// device, state, event time, rules version).
pub(crate) fn versioned_alerts(
    docs: &[serde_json::Value],
) -> BTreeSet<(String, String, String, u64, u64)> {
    docs.iter()
        .map(|v| {
            let s = |f: &str| v[f].as_str().unwrap().to_owned();
            (
                s("rule"),
                s("device"),
                s("state"),
                v["event_time"].as_u64().unwrap(),
                v["rules_version"].as_u64().unwrap(),
            )
        })
        .filter(|a| a.3 < CUTOFF)
        .collect()
}

/// The registry of the registry-change test, before (`false`) and after
/// (`true`) the edit: each device's site and own threshold for "hot".
/// dev-1's limit changes, dev-3 moves to the south site (no longer
/// selected), dev-4 moves to the north (now selected); dev-0 and dev-2 keep
/// theirs, and dev-5 stays in the south.
fn registry(edited: bool) -> Vec<(&'static str, Option<f64>)> {
    vec![
        ("north", None),
        ("north", Some(if edited { 80.0 } else { 86.0 })),
        ("north", Some(93.0)),
        (if edited { "south" } else { "north" }, None),
        (if edited { "north" } else { "south" }, None),
        ("south", None),
    ]
}

fn registry_csv(edited: bool) -> String {
    let mut csv = "device,site,threshold.hot\n".to_owned();
    for (d, (site, own)) in registry(edited).into_iter().enumerate() {
        let own = own.map_or(String::new(), |t| t.to_string());
        csv.push_str(&format!("dev-{d},{site},{own}\n"));
    }
    csv
}

/// A registry edit in a live run: from the logged frontier `T`, the
/// devices' new sites and limits apply; a device whose limit or selection
/// is unchanged keeps its state, the others start afresh. The alerts
/// (rule "hot", above 90 on north-site devices, unless a device has its own
/// threshold) must be exactly those of a reference loop, each labelled with
/// the device's site at its time.
#[test]
fn a_registry_edit_applies_the_new_sites_and_limits_from_the_frontier_it_logs() {
    let run = LiveRun::new("registry");
    let devices = run.file("devices.csv");
    std::fs::write(&devices, registry_csv(false)).unwrap();
    std::fs::write(
        run.file("rules.toml"),
        "[devices]\nfile = \"devices.csv\"\n\n[[rule]]\nname = \"hot\"\nsensor = \"temperature\"\n\
         above = 90.0\nwhere = { site = \"north\" }\nlabels = { team = \"ops\" }\n",
    )
    .unwrap();
    let (mut weir, first) = run.start("rules.toml");
    std::fs::write(&devices, registry_csv(true)).unwrap();
    let t_from = reload_frontier(&mut weir, &run.log());
    // The active alarms are placed by the edited registry.
    let all = run.finish_checking(weir, first, |weir, _| {
        let log = run.log();
        let (_, alarms) = crate::alarms::alarms_after(weir, &log, run.port, T0 + 120_000);
        assert!(!alarms.is_empty(), "the test means something");
        let (_, body) = crate::ops::get(run.port, "/api/alarms").unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        for alarm in json["alarms"].as_array().unwrap() {
            let device = alarm["device"].as_str().unwrap();
            let d: usize = device[4..].parse().unwrap();
            assert_eq!(alarm["site"], registry(true)[d].0, "{alarm}");
        }
    });

    // The reference: per device, a threshold state machine on the limit of
    // the registry in force; at T a device whose selection or limit
    // changed starts afresh (and one no longer selected is not judged).
    let mut expected = BTreeSet::new();
    for d in 0..6 {
        let judged = |edited: bool| {
            let (site, own) = registry(edited)[d];
            (site == "north").then(|| (own.unwrap_or(90.0), site))
        };
        let device = format!("dev-{d}");
        let above = |(threshold, _): (f64, &str), v: f64| v > threshold;
        let changes =
            reference_changes(&all, &device, t_from, (judged(false), judged(true)), above);
        for ((_, site), state, t, version) in changes {
            expected.insert((
                device.clone(),
                state.to_owned(),
                t,
                version,
                site.to_owned(),
            ));
        }
    }
    let expected: BTreeSet<_> = expected.into_iter().filter(|a| a.2 < CUTOFF).collect();
    let written: BTreeSet<_> = run
        .written_alerts()
        .iter()
        .inspect(|v| assert_eq!(v["labels"]["team"], "ops", "{v}"))
        .map(|v| {
            let s = |f: &str| v[f].as_str().unwrap().to_owned();
            (
                s("device"),
                s("state"),
                v["event_time"].as_u64().unwrap(),
                v["rules_version"].as_u64().unwrap(),
                v["labels"]["site"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|a| a.2 < CUTOFF)
        .collect();
    // The test means something: the changed devices alert on their side of
    // T only, the unchanged ones on both.
    let alerts_of = |d: &str, after: bool| {
        expected
            .iter()
            .any(|a| a.0 == d && (a.2 >= t_from) == after)
    };
    for (d, before, after) in [
        ("dev-0", true, true),
        ("dev-1", true, true),
        ("dev-3", true, false),
        ("dev-4", false, true),
    ] {
        assert_eq!(
            (alerts_of(d, false), alerts_of(d, true)),
            (before, after),
            "{d}"
        );
    }
    assert!(!expected.iter().any(|a| a.0 == "dev-5"));
    assert_exactly(&expected, &written, "registry edit", t_from);
}
