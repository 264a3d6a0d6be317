//! The status page as a user sees it: headless Chromium loads `/` from a
//! paced replay of a recording (no broker needed) and the test reads the
//! rendered DOM until live figures, partitions with watermarks and a firing
//! alert appear.
//!
//! Chromium is driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands on its fd 3, answers on fd 4, each a
//! JSON message ended by a NUL byte), so the test polls the page as its
//! server-sent events arrive instead of dumping it once, and needs no crate
//! beyond `serde_json`.
//!
//! The browser is `$WEIR_CHROMIUM` (`bash scripts/test.sh` sets it after
//! `scripts/ensure-chromium.sh` installed Debian's `chromium` if needed),
//! else `/usr/bin/chromium`; without either the test fails and says so.
//!
//! `WEIR_SCREENSHOT=path.png` also saves a 1280x900 screenshot of the page
//! once alerts fire and the first windows have closed: the README's
//! `docs/status-page.png` is made with
//! `WEIR_SCREENSHOT=$PWD/docs/status-page.png cargo test --test browser`.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
#[path = "support/chromium.rs"]
mod chromium;
#[path = "support/ops.rs"]
mod ops;
#[path = "support/mod.rs"]
mod support;

use chromium::{chromium_path, Chromium};
use ops::{free_port, get, record, Killed};

/// How long the page has to show what the test waits for.
const DEADLINE: Duration = Duration::from_secs(60);

/// What the page shows: the state line, the figure cards by id, and the
/// cells of each table's rows; null until the page has loaded.
const READ_PAGE: &str = r##"(() => {
  if (!document.getElementById("firing")) return null; // not loaded yet
  const rows = (id) => [...document.querySelectorAll("#" + id + " tr")]
    .map((tr) => [...tr.cells].map((td) => td.textContent));
  const text = (id) => document.getElementById(id).textContent;
  // Each chart: its lines (name and number of points) and its legend.
  const chart = (id) => ({
    lines: [...document.querySelectorAll("#" + id + " polyline")].map((p) => ({
      name: p.dataset.name,
      points: p.getAttribute("points").split(" ").filter((x) => x).length,
    })),
    legend: document.querySelector("#" + id + " .legend").textContent,
    now: document.querySelector("#" + id + " .now").textContent,
  });
  return {
    state: text("state"), rate: text("rate"), records_read: text("records_read"),
    readings: text("readings"), windows: text("windows"), partitions: rows("partitions"),
    firing: rows("firing"), recent: rows("recent"), alarm_counts: rows("alarm_counts"),
    charts: { rate: chart("chart-rate"), lag: chart("chart-lag"), trail: chart("chart-trail"),
              firing: chart("chart-firing") },
    actions: { bar: !document.getElementById("actions").hidden,
               buttons: document.querySelectorAll("#firing button").length },
  };
})()"##;

/// A number as the page formats it ("12,345").
fn number(text: &str) -> Option<f64> {
    text.replace(',', "").parse().ok()
}

/// An event time as the page formats it: "2026-11-24 00:54:25".
fn is_time(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b' ',
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Cells of a table row, as strings.
fn cells(row: &Value) -> Vec<&str> {
    row.as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect()
}

/// Whether the page shows what a user running this pipeline should see:
/// records read, every partition with a watermark, and an overheat alert
/// firing.
fn shows_the_run(page: &Value, partitions: usize) -> bool {
    if page.is_null() {
        return false;
    }
    let read = page["records_read"]
        .as_str()
        .and_then(number)
        .unwrap_or(0.0);
    let rows = page["partitions"].as_array().unwrap();
    let watermarks = rows.iter().filter(|r| {
        let c = cells(r);
        c.len() == 7 && is_time(c[5])
    });
    let firing = page["firing"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| cells(r).first() == Some(&"overheat"));
    read > 0.0 && watermarks.count() == partitions && firing
}

#[test]
fn the_status_page_shows_live_figures_and_a_firing_alert_in_chromium() {
    let (width, height) = (1280, 900);
    // Fail on a missing browser before spending time on the recording.
    chromium_path();
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec");
    let records = record(&recording);
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        r#"
name = "plant"
[source]
brokers = "127.0.0.1:1"
topic = "readings"
[sinks.parquet]
path = "out"
[sinks.alerts]
topic = "alerts"
[sinks.dead_letters]
topic = "dead"
[[rule]]
name = "overheat"
sensor = "temperature"
above = 90.0
clear = 85.0
severity = "critical"
[[rule]]
name = "vibration-spikes"
sensor = "vibration"
above = 7.5
consecutive = 3
severity = "warning"
"#,
    )
    .unwrap();
    let port = free_port();
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "replay",
            recording.to_str().unwrap(),
            "--pipeline",
            pipeline.to_str().unwrap(),
        ])
        .args(["--out", dir.path().join("out").to_str().unwrap(), "--quiet"])
        .args([
            "--speed",
            "15",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _run = Killed(run);
    let deadline = Instant::now() + DEADLINE;
    while get(port, "/health").is_none() {
        assert!(Instant::now() < deadline, "weir never served /health");
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut chromium = Chromium::start(width, height);
    chromium.open(&format!("http://127.0.0.1:{port}/"), width, height);
    let mut page = chromium.eval(READ_PAGE);
    while !shows_the_run(&page, 4) {
        assert!(
            Instant::now() < deadline,
            "after {DEADLINE:?} the page still lacks records read, a watermark on \
             each of the 4 partitions or a firing overheat alert; it shows:\n{page:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
        page = chromium.eval(READ_PAGE);
    }

    assert_eq!(page["state"], "live", "{page:#}");
    let read = number(page["records_read"].as_str().unwrap()).unwrap();
    assert!(
        read > 0.0 && read <= records as f64,
        "records read: {read} of {records}"
    );
    assert!(number(page["readings"].as_str().unwrap()).is_some_and(|n| n > 0.0));
    let partitions: Vec<Vec<&str>> = page["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(cells)
        .collect();
    let numbers: Vec<&str> = partitions.iter().map(|p| p[1]).collect();
    assert_eq!(numbers, ["0", "1", "2", "3"], "{page:#}");
    for p in &partitions {
        assert_eq!(p[0], "readings");
        assert!(number(p[2]).is_some_and(|n| n > 0.0), "records of {p:?}");
    }
    let firing: Vec<Vec<&str>> = page["firing"]
        .as_array()
        .unwrap()
        .iter()
        .map(cells)
        .collect();
    let overheat = firing.iter().find(|a| a[0] == "overheat").unwrap();
    // rule, severity, site, line, device, sensor, since, handled, actions
    assert_eq!(overheat.len(), 9, "{overheat:?}");
    // No alarm actions without a token: the page offers none.
    assert_eq!(
        page["actions"],
        json!({ "bar": false, "buttons": 0 }),
        "{page:#}"
    );
    // The counts by rule and severity hold as many as the table lists.
    let listed = |col: usize, value: &str| firing.iter().filter(|a| a[col] == value).count();
    let counts: Vec<Vec<&str>> = page["alarm_counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(cells)
        .collect();
    let count = |by: &str, value: &str| {
        counts
            .iter()
            .find(|c| c[0] == by && c[1] == value)
            .and_then(|c| number(c[2]))
    };
    assert_eq!(
        count("rule", "overheat"),
        Some(listed(0, "overheat") as f64),
        "{counts:?}"
    );
    assert_eq!(
        count("severity", "critical"),
        Some(listed(1, "critical") as f64),
        "{counts:?}"
    );
    assert_eq!(overheat[1], "critical", "{overheat:?}");
    assert!(!overheat[4].is_empty(), "{overheat:?}");
    assert_eq!(overheat[5], "temperature", "{overheat:?}");
    assert!(is_time(overheat[6]), "{overheat:?}");
    let recent: Vec<Vec<&str>> = page["recent"]
        .as_array()
        .unwrap()
        .iter()
        .map(cells)
        .collect();
    assert!(
        recent
            .iter()
            .any(|e| e.len() == 6 && e[1] == "overheat" && e[4] == "firing"),
        "recent alert events show the overheat firing: {recent:?}"
    );

    // The charts of the last minutes fill in: records/s, a lag line per
    // partition, the watermark's delay, and the alarms firing by severity.
    let charted = |page: &Value| {
        let lines = |c: &str| {
            page["charts"][c]["lines"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        let points = |c: &str| {
            lines(c)
                .iter()
                .map(|l| l["points"].as_u64().unwrap_or(0))
                .max()
                .unwrap_or(0)
        };
        points("rate") >= 3
            && lines("lag").len() == 4
            && points("trail") >= 3
            && lines("firing")
                .iter()
                .any(|l| l["name"] == "critical" && l["points"].as_u64() >= Some(3))
    };
    let mut rated = number(page["rate"].as_str().unwrap_or("")).is_some_and(|r| r > 0.0);
    while !charted(&page) || !rated {
        assert!(
            Instant::now() < deadline,
            "the charts or the records/s card did not fill in: {page:#}"
        );
        std::thread::sleep(Duration::from_millis(250));
        page = chromium.eval(READ_PAGE);
        rated |= number(page["rate"].as_str().unwrap_or("")).is_some_and(|r| r > 0.0);
    }
    let legend = page["charts"]["lag"]["legend"].as_str().unwrap();
    for p in 0..4 {
        assert!(legend.contains(&format!("readings/{p}")), "{legend}");
    }
    assert!(
        number(page["charts"]["firing"]["now"].as_str().unwrap()).is_some_and(|n| n >= 1.0),
        "{page:#}"
    );

    if let Some(path) = std::env::var_os("WEIR_SCREENSHOT") {
        // Let the records/s card get its second snapshot, and the first
        // windows close, so that every card has a figure.
        let filled = |page: &Value| {
            number(page["rate"].as_str().unwrap_or("")).is_some()
                && number(page["windows"].as_str().unwrap_or("")).is_some_and(|n| n > 0.0)
        };
        while !filled(&page) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250));
            page = chromium.eval(READ_PAGE);
        }
        let png = chromium.screenshot();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        std::fs::write(&path, png).unwrap();
        eprintln!("status page screenshot in {}", Path::new(&path).display());
    }
}

/// A live run with alarm actions on (`[http] token_env`), on a real broker.
struct ActionsRun {
    // Dropped first: the run, then its broker.
    _run: Killed,
    port: u16,
    control: String,
    broker: support::Broker,
    _dir: tempfile::TempDir,
}

const TOKEN: &str = "s3cret-t0ken";

/// Starts a live run whose rule `hot` fires on d1 and d2, with a control
/// topic and alarm actions that take [`TOKEN`]; returns once
/// `/api/alarms` lists both alarms.
fn actions_run() -> ActionsRun {
    let broker = support::Broker::start();
    let (readings, alerts, control) = (
        support::unique_topic("readings"),
        support::unique_topic("alerts"),
        support::unique_topic("control"),
    );
    for topic in [&readings, &alerts, &control] {
        broker.create_topic(topic, 1);
    }
    let t0: u64 = 1_764_000_000_000;
    let payloads: Vec<String> = (0..20u64)
        .flat_map(|s| {
            ["d1", "d2"].map(|d| {
                format!(
                    r#"{{"device_id":"{d}","sensor":"temp","value":95.0,"ts":{}}}"#,
                    t0 + s * 1_000
                )
            })
        })
        .collect();
    let records: Vec<support::Record<'_>> = payloads
        .iter()
        .map(|p| (None, p.as_bytes(), None, Some(0)))
        .collect();
    broker.produce(&readings, &records);
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    let port = free_port();
    std::fs::write(
        &pipeline,
        format!(
            r#"
name = "actions"
[source]
brokers = "{brokers}"
topic = "{readings}"
idle_timeout = "1s"
[sinks.alerts]
topic = "{alerts}"
[[rule]]
name = "hot"
sensor = "temp"
above = 90.0
[control]
topic = "{control}"
[http]
addr = "127.0.0.1:{port}"
token_env = "WEIR_TEST_ALARM_TOKEN"
"#,
            brokers = broker.bootstrap()
        ),
    )
    .unwrap();
    let log = dir.path().join("weir.log");
    let run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", pipeline.to_str().unwrap(), "--quiet"])
        .env("WEIR_TEST_ALARM_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let run = Killed(run);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let alarms = get(port, "/api/alarms")
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok())
            .unwrap_or(Value::Null);
        if alarms["alarms"].as_array().is_some_and(|a| a.len() == 2) {
            assert_eq!(alarms["actions"], true, "{alarms}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the two alarms never showed in /api/alarms: {alarms}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ActionsRun {
        port,
        control,
        broker,
        _run: run,
        _dir: dir,
    }
}

/// The active alarms as the page lists them (rule, ..., handled, actions)
/// and how many action buttons it offers.
const READ_ALARMS: &str = r##"(() => {
  if (!document.getElementById("firing")) return null;
  const rows = [...document.querySelectorAll("#firing tr")].map((tr) => [...tr.cells].map((td) => td.textContent));
  return { rows, buttons: document.querySelectorAll("#firing button").length,
           bar: !document.getElementById("actions").hidden, msg: document.getElementById("action_msg").textContent };
})()"##;

#[test]
fn an_alarm_is_acknowledged_on_the_status_page_with_the_token_and_not_without() {
    chromium_path();
    let run = actions_run();
    let port = run.port;
    let ack = r#"{"rule":"hot","device":"d2","sensor":"temp","user":"mallory"}"#;
    // Without the token, or with a wrong one, the endpoints refuse.
    for token in [None, Some("wrong")] {
        let (status, body) = ops::post(port, "/api/alarms/ack", token, ack).unwrap();
        assert_eq!(status, 401, "{token:?}: {body}");
    }

    let (width, height) = (1280, 900);
    let mut chromium = Chromium::start(width, height);
    chromium.open(&format!("http://127.0.0.1:{port}/"), width, height);
    let deadline = Instant::now() + DEADLINE;
    let mut page = chromium.eval(READ_ALARMS);
    while page.is_null()
        || page["rows"]
            .as_array()
            .is_none_or(|r| r.len() != 2 || r[0].as_array().is_none_or(|c| c.len() != 9))
    {
        assert!(
            Instant::now() < deadline,
            "the page never listed the two alarms: {page:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
        page = chromium.eval(READ_ALARMS);
    }
    // Without the token the page offers the token field, and no action.
    assert_eq!(page["bar"], true, "{page:#}");
    assert_eq!(page["buttons"], 0, "{page:#}");

    // With it: an ack button per alarm; acknowledge d1 as "ana".
    chromium.eval(&format!(
        r#"(() => {{ document.getElementById("user").value = "ana";
             document.getElementById("user").onchange();
             document.getElementById("token").value = "{TOKEN}";
             document.getElementById("unlock").click(); return true; }})()"#
    ));
    let clicked = r##"(() => { const row = [...document.querySelectorAll("#firing tr")].find((tr) => tr.cells[4] && tr.cells[4].textContent === "d1");
        const b = row && row.querySelector("button[data-action=ack]"); if (!b) return false; b.click(); return true; })()"##;
    while chromium.eval(clicked) != true {
        assert!(
            Instant::now() < deadline,
            "no ack button for d1: {:#}",
            chromium.eval(READ_ALARMS)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The acknowledgement comes back through the control topic, on event
    // time: the page and /api/alarms show it on d1, not on d2.
    let handled = |page: &Value, device: &str| {
        page["rows"].as_array().and_then(|rows| {
            rows.iter()
                .map(cells)
                .find(|c| c.get(4) == Some(&device))
                .map(|c| c[7].to_owned())
        })
    };
    page = chromium.eval(READ_ALARMS);
    while handled(&page, "d1").as_deref() != Some("acked by ana") {
        assert!(
            Instant::now() < deadline,
            "d1 never showed acknowledged: {page:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
        page = chromium.eval(READ_ALARMS);
    }
    assert_eq!(handled(&page, "d2").as_deref(), Some(""), "{page:#}");
    let (_, body) = get(port, "/api/alarms").unwrap();
    let alarms: Value = serde_json::from_str(&body).unwrap();
    let by = |device: &str| {
        alarms["alarms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["device"] == device)
            .map(|a| a["acked_by"].clone())
    };
    assert_eq!(
        (by("d1"), by("d2")),
        (Some(json!("ana")), Some(Value::Null)),
        "{alarms}"
    );
    // It is durable: one control event on the topic, from ana.
    let events: Vec<Value> = run
        .broker
        .consume_all(&run.control)
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["action"].as_str(), events[0]["user"].as_str()),
        (Some("ack"), Some("ana"))
    );
}
