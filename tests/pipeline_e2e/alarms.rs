//! The alarm views of a live run against a real broker: `GET /api/alarms`
//! holds exactly the alarms a reference loop finds active before the
//! event-time frontier it reports (`as_of`), placed by the device registry,
//! with their counts by site, line, severity and rule; and still exactly
//! those after a SIGKILL and a resume at another worker count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::ops::{free_port, get, Killed};
use crate::reload::{
    produce, readings, reference, rules_toml, spawn_weir, wait_for, Reading, OLD, T0,
};
use crate::support::{unique_topic, Broker};

/// Where each device sits: dev-5 is not in the registry.
fn place(device: &str) -> (String, String) {
    match device {
        "dev-0" | "dev-1" => ("north".into(), "press".into()),
        "dev-2" => ("north".into(), "paint".into()),
        "dev-3" | "dev-4" => ("south".into(), "press".into()),
        _ => (String::new(), String::new()),
    }
}

/// An active alarm as the API shows it: (rule, device, site, line, since).
type Alarm = (String, String, String, String, u64);

/// The alarms the reference finds active before `cut`: the last state
/// change of each (rule, device) before it is a firing.
fn active_before(readings: &[Reading], cut: u64) -> BTreeSet<Alarm> {
    let mut last: BTreeMap<(String, String), (String, u64)> = BTreeMap::new();
    for (rule, device, state, t, _) in reference(readings, u64::MAX) {
        if t < cut {
            let entry = last.entry((rule, device)).or_insert((state.clone(), t));
            if t >= entry.1 {
                *entry = (state, t);
            }
        }
    }
    last.into_iter()
        .filter(|(_, (state, _))| state == "firing")
        .map(|((rule, device), (_, since))| {
            let (site, line) = place(&device);
            (rule, device, site, line, since)
        })
        .collect()
}

/// `/api/alarms` once its frontier has reached `until`: its frontier, the
/// alarms and the counts.
fn views_after(
    weir: &mut Killed,
    log: &Path,
    port: u16,
    until: u64,
) -> (u64, BTreeSet<Alarm>, serde_json::Value) {
    let fetch = || {
        let (status, body) = get(port, "/api/alarms")?;
        assert_eq!(status, 200, "{body}");
        Some(serde_json::from_str::<serde_json::Value>(&body).unwrap())
    };
    wait_for(
        "the alarm views to pass the readings",
        &mut weir.0,
        log,
        || fetch().is_some_and(|v| v["as_of"].as_u64().is_some_and(|t| t >= until)),
    );
    let json = fetch().unwrap();
    let oldest: BTreeSet<(String, String, u64, String, String)> = json["oldest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let s = |k: &str| o[k].as_str().unwrap().to_owned();
            (
                s("site"),
                s("line"),
                o["since"].as_u64().unwrap(),
                s("rule"),
                s("device"),
            )
        })
        .collect();
    let alarms = json["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap().to_owned();
            assert_eq!(s("severity"), "warning");
            assert_eq!(s("state"), "firing");
            (
                s("rule"),
                s("device"),
                s("site"),
                s("line"),
                a["since"].as_u64().unwrap(),
            )
        })
        .collect();
    let alarms: BTreeSet<Alarm> = alarms;
    assert_eq!(oldest, oldest_of(&alarms), "the oldest alarm of each place");
    (
        json["as_of"].as_u64().unwrap(),
        alarms,
        json["counts"].clone(),
    )
}

/// `/api/alarms` once its frontier has reached `until`: its frontier, and
/// the (rule, device) of each active alarm.
pub(crate) fn alarms_after(
    weir: &mut Killed,
    log: &Path,
    port: u16,
    until: u64,
) -> (u64, BTreeSet<(String, String)>) {
    let (as_of, alarms, _) = views_after(weir, log, port, until);
    (as_of, alarms.into_iter().map(|a| (a.0, a.1)).collect())
}

/// The longest-standing of `alarms` in each place, as `/api/alarms` lists
/// them: (site, line, since, rule, device), by place.
fn oldest_of(alarms: &BTreeSet<Alarm>) -> BTreeSet<(String, String, u64, String, String)> {
    let mut oldest: BTreeMap<(String, String), (u64, String, String)> = BTreeMap::new();
    for (rule, device, site, line, since) in alarms {
        let candidate = (*since, rule.clone(), device.clone());
        let entry = oldest
            .entry((site.clone(), line.clone()))
            .or_insert(candidate.clone());
        if candidate < *entry {
            *entry = candidate;
        }
    }
    oldest
        .into_iter()
        .map(|((site, line), (since, rule, device))| (site, line, since, rule, device))
        .collect()
}

/// The counts the reference implies for `alarms`.
fn counts_of(alarms: &BTreeSet<Alarm>) -> serde_json::Value {
    let mut counts: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for (rule, _, site, line, _) in alarms {
        let mut add =
            |dim, value: String| *counts.entry(dim).or_default().entry(value).or_default() += 1;
        add("rule", rule.clone());
        add("severity", "warning".into());
        if !site.is_empty() {
            add("site", site.clone());
            add("line", format!("{site}/{line}"));
        }
    }
    serde_json::to_value(counts).unwrap()
}

#[test]
fn the_active_alarms_equal_a_reference_across_a_kill_and_a_resume_at_another_worker_count() {
    let broker = Broker::start();
    let topic = unique_topic("alarms-in");
    let alerts = unique_topic("alarms-out");
    broker.create_topic(&topic, 2);
    broker.create_topic(&alerts, 1);
    let dir = tempfile::tempdir().unwrap();
    let mut csv = "device,site,line\n".to_owned();
    for d in 0..5 {
        let (site, line) = place(&format!("dev-{d}"));
        csv.push_str(&format!("dev-{d},{site},{line}\n"));
    }
    std::fs::write(dir.path().join("devices.csv"), csv).unwrap();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"alarms\"\n[source]\nbrokers = \"{brokers}\"\ntopic = \"{topic}\"\n\
             out_of_orderness = \"1s\"\n[sinks.alerts]\ntopic = \"{alerts}\"\n\
             [devices]\nfile = \"devices.csv\"\n[checkpoint]\ndir = \"checkpoints\"\ninterval = \"1s\"\n\n{rules}",
            brokers = broker.bootstrap(),
            rules = rules_toml(&OLD),
        ),
    )
    .unwrap();

    // A first run on 2 workers sees the first minute.
    let (port, log) = (free_port(), dir.path().join("first.log"));
    let mut weir = spawn_weir(&pipeline, &log, port, 2);
    let mut input = readings(0, 60);
    produce(&broker, &topic, &input);
    let (as_of, alarms, counts) = views_after(&mut weir, &log, port, T0 + 55_000);
    let want = active_before(&input, as_of);
    assert!(want.len() >= 3, "the test means something: {want:?}");
    assert_eq!(alarms, want, "active alarms before {as_of}");
    assert_eq!(counts, counts_of(&want), "counts before {as_of}");

    // Killed once a checkpoint past the first alarms completed.
    wait_for("a checkpoint", &mut weir.0, &log, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Checkpoint complete"))
    });
    weir.0.kill().unwrap();
    weir.0.wait().unwrap();

    // Resumed on 1 worker, with two more seconds: the alarms active at the
    // checkpoint are still there (those before it only because the resumed
    // run restored them: it judges no reading before the checkpoint again).
    let more = readings(60, 62);
    produce(&broker, &topic, &more);
    input.extend(more);
    let (port, log) = (free_port(), dir.path().join("resumed.log"));
    let mut weir = spawn_weir(&pipeline, &log, port, 1);
    let (as_of, alarms, counts) = views_after(&mut weir, &log, port, T0 + 60_000);
    let want = active_before(&input, as_of);
    assert!(
        want.iter().any(|a| a.4 < T0 + 55_000),
        "an alarm fired well before the checkpoint is still active: {want:?}"
    );
    assert_eq!(
        alarms, want,
        "active alarms after the resume, before {as_of}"
    );
    assert_eq!(
        counts,
        counts_of(&want),
        "counts after the resume, before {as_of}"
    );
    assert!(
        std::fs::read_to_string(&log).unwrap().contains("Resuming"),
        "the second run resumed from a checkpoint"
    );

    // The rest of a second minute resolves them and fires others.
    let more = readings(62, 120);
    produce(&broker, &topic, &more);
    input.extend(more);
    let (as_of, alarms, counts) = views_after(&mut weir, &log, port, T0 + 115_000);
    let want = active_before(&input, as_of);
    assert_eq!(
        alarms, want,
        "active alarms in the second minute, before {as_of}"
    );
    assert_eq!(
        counts,
        counts_of(&want),
        "counts in the second minute, before {as_of}"
    );
}
