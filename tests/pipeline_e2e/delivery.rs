//! Alert events delivered to where people get paged: a webhook receiver
//! inside the test that fails its first deliveries and refuses one event
//! always, and a real Alertmanager (Debian's `prometheus-alertmanager`,
//! from `scripts/ensure-alertmanager.sh`) with a silence. Each live run is
//! killed mid-delivery and resumed; the expected alarms come from the
//! independent reference.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::receiver::Receiver;
use crate::reference::{AlertKey, Input, Outputs};
use crate::restart::{live_toml, started, wait, weir_run};
use crate::support::Broker;

/// The id of a reference alert, as Weir writes it.
fn id((rule, device, sensor, state, time): &AlertKey) -> String {
    format!("{rule}|{device}|{sensor}|{state}|{time}")
}

/// Writes the live pipeline (checkpoints every second) with `extra` TOML,
/// runs it until it completed a checkpoint and `delivered` says enough went
/// out, kills it, and resumes it bounded to the end. Returns the directory of its files.
fn killed_and_resumed(
    broker: &Broker,
    input: &Input,
    out: &Outputs,
    extra: &str,
    delivered: impl Fn() -> bool,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let toml = live_toml(&out.toml(broker, input), &checkpoints.display().to_string());
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(&pipeline, format!("{toml}\n{extra}")).unwrap();
    let log = dir.path().join("live.log");
    let mut live = weir_run(&pipeline, 2, false, &log, None);
    started(&log, &mut live);
    // Killed after a first checkpoint (a run that never completed one
    // cannot be resumed) and once some events went out.
    let checkpointed =
        || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Checkpoint complete"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(checkpointed() && delivered()) {
        assert!(
            Instant::now() < deadline,
            "nothing delivered within 60 s:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    live.kill().unwrap();
    live.wait().unwrap();
    let log = dir.path().join("resume.log");
    let mut resume = weir_run(&pipeline, 1, true, &log, None);
    let status = wait(&mut resume, Duration::from_secs(180));
    assert!(
        status.is_some_and(|s| s.success()),
        "the bounded resume failed ({status:?}):\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    dir
}

/// A webhook that fails its first two deliveries (HTTP 500) and refuses
/// one event every time (HTTP 422): across a SIGKILL and a resume it gets
/// every other event, each id at least once and, deduplicated by its
/// `Idempotency-Key`, exactly once, in the alert topic's order per device;
/// the refused event is a dead letter with its reason after 3 attempts.
#[test]
fn a_webhook_gets_every_alert_once_by_id_across_a_kill_and_refusals_become_dead_letters() {
    let broker = Broker::start();
    let input = Input::produce_spread(&broker);
    let out = Outputs::new(&broker);
    let wanted: BTreeSet<String> = input.alerts.iter().map(id).collect();
    let refused = wanted.iter().nth(wanted.len() / 2).unwrap().clone();
    let refused_key = refused.clone();
    let receiver = Receiver::start(move |request, before| {
        let key = request
            .headers
            .get("idempotency-key")
            .cloned()
            .unwrap_or_default();
        match () {
            _ if before.len() < 2 => 500,
            _ if key == refused_key => 422,
            _ => 200,
        }
    });
    let extra = format!(
        "[sinks.webhook]\nurl = \"{}\"\nmax_attempts = 3\nbackoff = \"50ms\"\nmax_backoff = \"200ms\"\nheaders = {{ Authorization = \"Bearer test-token\" }}\n",
        receiver.url()
    );
    let ok = |r: &crate::receiver::Request| r.status == 200;
    let _dir = killed_and_resumed(&broker, &input, &out, &extra, || {
        receiver.requests().iter().filter(|r| ok(r)).count() >= wanted.len() / 4
    });
    let requests = receiver.requests();
    assert!(requests
        .iter()
        .all(|r| r.method == "POST" && r.path == "/hook"));
    assert!(requests
        .iter()
        .all(|r| r.headers.get("authorization").map(String::as_str) == Some("Bearer test-token")));
    let mut first: Vec<String> = Vec::new();
    for r in requests.iter().filter(|r| ok(r)) {
        let key = r.headers["idempotency-key"].clone();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["id"], key, "the body is the event the key names");
        if !first.contains(&key) {
            first.push(key);
        }
    }
    let got: BTreeSet<String> = first.iter().cloned().collect();
    let mut expected = wanted.clone();
    expected.remove(&refused);
    assert_eq!(got, expected, "every event but the refused one, once by id");
    let attempts = requests
        .iter()
        .filter(|r| r.headers.get("idempotency-key") == Some(&refused))
        .count();
    assert!(
        attempts >= 3,
        "the refused event was tried 3 times ({attempts})"
    );

    // Per device, in the order of the alert topic.
    let mut topic_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in broker.consume_all(&out.alerts) {
        let event: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
        let key = event["id"].as_str().unwrap().to_owned();
        if key != refused {
            let device = event["device"].as_str().unwrap().to_owned();
            topic_order.entry(device).or_default().push(key);
        }
    }
    let mut delivered_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in &first {
        let device = key.split('|').nth(1).unwrap().to_owned();
        delivered_order.entry(device).or_default().push(key.clone());
    }
    assert_eq!(delivered_order, topic_order, "per device, in topic order");

    let letters: Vec<serde_json::Value> = broker
        .consume_all(&out.dead)
        .iter()
        .map(|r| serde_json::from_slice(&r.payload).unwrap())
        .filter(|l: &serde_json::Value| l["reason"] == "undeliverable")
        .collect();
    assert!(!letters.is_empty(), "the refused event is a dead letter");
    for letter in &letters {
        let event: serde_json::Value =
            serde_json::from_str(letter["payload"].as_str().unwrap()).unwrap();
        assert_eq!(event["id"], refused.as_str());
        let detail = letter["detail"].as_str().unwrap();
        assert!(
            detail.contains("422") && detail.contains("3 times"),
            "{detail}"
        );
    }
}

/// A real Alertmanager on a loopback port; killed on drop.
pub(crate) struct Alertmanager {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub(crate) fn start() -> Alertmanager {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-alertmanager.sh");
        let out = Command::new("bash").arg(&script).output().unwrap();
        assert!(
            out.status.success(),
            "ensure-alertmanager.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nobody\n  group_wait: 1h\nreceivers:\n  - name: nobody\n",
        )
        .unwrap();
        let port = crate::free_addresses(1)[0]
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("am.log")).unwrap())
            .spawn()
            .unwrap();
        let am = Alertmanager {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while crate::ops::get(port, "/-/ready").is_none_or(|(s, _)| s != 200) {
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not start:\n{}",
                std::fs::read_to_string(am._dir.path().join("am.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends a request (HTTP/1.0: the answer is never chunked); the status
    /// and the answer.
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split(' ').nth(1).unwrap().parse().unwrap();
        (
            status,
            response.split_once("\r\n\r\n").unwrap().1.to_owned(),
        )
    }

    /// POSTs `body` to `path`.
    fn post(&self, path: &str, body: &serde_json::Value) -> (u16, String) {
        self.http("POST", path, &body.to_string())
    }

    /// Every alert Alertmanager holds, active, silenced or not processed yet.
    pub(crate) fn alerts(&self) -> Vec<serde_json::Value> {
        let path = "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true";
        let (status, body) = self.http("GET", path, "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The alarms firing at the end of the reference alerts, with the event
/// time they fired at.
fn firing_at_end(alerts: &BTreeSet<AlertKey>) -> BTreeMap<(String, String, String), u64> {
    let mut by_time: Vec<&AlertKey> = alerts.iter().collect();
    by_time.sort_by_key(|(_, _, _, _, time)| *time);
    let mut firing = BTreeMap::new();
    for (rule, device, sensor, state, time) in by_time {
        let alarm = (rule.clone(), device.clone(), sensor.clone());
        match state.as_str() {
            "resolved" => firing.remove(&alarm),
            _ => firing.insert(alarm, *time),
        };
    }
    firing
}

/// Against a real Alertmanager: the alarms firing at the end of the input
/// are there with their labels and start times, the resolved ones ended,
/// the one a silence matches is suppressed, and a SIGKILL and resume of
/// Weir neither loses nor adds an alarm.
#[test]
fn alertmanager_holds_exactly_the_firing_alarms_across_a_kill_with_a_silence() {
    let am = Alertmanager::start();
    let broker = Broker::start();
    let input = Input::produce_spread(&broker);
    let out = Outputs::new(&broker);
    let firing = firing_at_end(&input.alerts);
    assert!(firing.len() >= 2, "the input leaves alarms firing");
    let ((s_rule, s_device, s_sensor), _) = firing.iter().next().unwrap();
    let now = chrono::Utc::now();
    let matcher = |name: &str, value: &str| serde_json::json!({"name": name, "value": value, "isRegex": false, "isEqual": true});
    let (status, answer) = am.post(
        "/api/v2/silences",
        &serde_json::json!({
            "matchers": [matcher("alertname", s_rule), matcher("device", s_device), matcher("sensor", s_sensor)],
            "startsAt": now.to_rfc3339(),
            "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "createdBy": "weir-test", "comment": "press in maintenance"
        }),
    );
    assert_eq!(status, 200, "{answer}");

    let extra = format!("[sinks.alertmanager]\nurl = \"{}\"\n", am.url());
    let dir = killed_and_resumed(&broker, &input, &out, &extra, || am.alerts().len() >= 2);

    let deadline = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let alerts = am.alerts();
        let pending = alerts.iter().any(|a| a["status"]["state"] == "unprocessed");
        if !pending || Instant::now() > deadline {
            break alerts;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut held: BTreeMap<(String, String, String), serde_json::Value> = BTreeMap::new();
    for alert in alerts {
        let label = |name: &str| {
            alert["labels"][name]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let alarm = (label("alertname"), label("device"), label("sensor"));
        assert!(!label("severity").is_empty(), "{alert}");
        assert!(held.insert(alarm, alert).is_none(), "one alert per alarm");
    }
    if held.keys().collect::<Vec<_>>() != firing.keys().collect::<Vec<_>>() {
        for log in ["live.log", "resume.log"] {
            let text = std::fs::read_to_string(dir.path().join(log)).unwrap_or_default();
            for line in text.lines().filter(|l| l.contains("delivery")) {
                eprintln!("{log}: {line}");
            }
        }
        let topic = broker.consume_all(&out.alerts);
        for alarm in held
            .keys()
            .filter(|k| !firing.contains_key(*k))
            .chain(firing.keys().filter(|k| !held.contains_key(*k)))
            .take(3)
        {
            eprintln!("alarm {alarm:?}: held {:?}", held.get(alarm));
            for r in &topic {
                let e: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
                if e["rule"] == alarm.0.as_str()
                    && e["device"] == alarm.1.as_str()
                    && e["sensor"] == alarm.2.as_str()
                {
                    eprintln!(
                        "   p{} o{} {} {}",
                        r.partition, r.offset, e["state"], e["event_time"]
                    );
                }
            }
        }
    }
    assert_eq!(
        held.keys().collect::<Vec<_>>(),
        firing.keys().collect::<Vec<_>>(),
        "Alertmanager holds exactly the alarms firing at the end"
    );
    for (alarm, alert) in &held {
        let fired = chrono::DateTime::from_timestamp_millis(firing[alarm] as i64).unwrap();
        let starts =
            chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap()).unwrap();
        assert_eq!(starts, fired, "{alarm:?} starts when it fired");
        let silenced = alarm.0 == *s_rule && alarm.1 == *s_device && alarm.2 == *s_sensor;
        let state = alert["status"]["state"].as_str().unwrap();
        assert_eq!(
            state,
            if silenced { "suppressed" } else { "active" },
            "{alarm:?}"
        );
    }
}

/// A webhook receiver that is unreachable for a minute of a live run (a
/// proxy in front of it refuses every connection): the alert topic still
/// gets every alert while it is down (the bounded resume adds none), Weir
/// is killed while it is down, and
/// once it is back the resumed run delivers every event, each id once, in
/// the alert topic's order per device.
#[test]
fn a_receiver_down_for_a_minute_holds_up_nothing_and_gets_everything_after() {
    let broker = Broker::start();
    let input = Input::produce_spread(&broker);
    // One reading per partition well after the input, of a sensor no rule
    // watches: every partition's watermark passes every window, so a live
    // run writes every alert without waiting for more input.
    let last = input
        .stored
        .iter()
        .filter_map(|r| r.timestamp)
        .max()
        .unwrap();
    let flush: Vec<String> = (0..4)
        .map(|p| {
            let t = last + 1_200_000;
            format!(r#"{{"device_id":"flush-{p}","sensor":"flush","value":0,"ts":{t}}}"#)
        })
        .collect();
    let records: Vec<crate::support::Record<'_>> = flush
        .iter()
        .enumerate()
        .map(|(p, f)| (None, f.as_bytes(), Some(last + 1_200_000), Some(p as i32)))
        .collect();
    broker.produce(&input.topic, &records);
    let out = Outputs::new(&broker);
    let receiver = Receiver::start(|_, _| 200);
    let proxy = crate::support::proxy::Proxy::start();
    proxy.set_upstream(receiver.port);
    proxy.outage(Duration::from_secs(60));
    let down_until = Instant::now() + Duration::from_secs(60);
    let extra = format!(
        "[sinks.webhook]\nurl = \"http://127.0.0.1:{}/hook\"\nmax_attempts = 10000\nbackoff = \"100ms\"\nmax_backoff = \"1s\"\n",
        proxy.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let toml = live_toml(
        &out.toml(&broker, &input),
        &checkpoints.display().to_string(),
    );
    let pipeline = dir.path().join("pipeline.toml");
    let http = crate::free_addresses(1).remove(0);
    let port: u16 = http.rsplit(':').next().unwrap().parse().unwrap();
    let serve = format!("[http]\naddr = \"{http}\"\n");
    std::fs::write(&pipeline, format!("{toml}\n{extra}\n{serve}")).unwrap();
    let log = dir.path().join("live.log");
    let mut live = weir_run(&pipeline, 2, false, &log, None);
    started(&log, &mut live);
    // The alert topic keeps pace while the receiver is down: its count
    // settles (and the resume below adds nothing to it).
    let deadline = Instant::now() + Duration::from_secs(45);
    let (mut written, mut steady) = (0, 0);
    while steady < 6 {
        let now = broker.consume_all(&out.alerts).len();
        steady = if now == written && now > 0 {
            steady + 1
        } else {
            0
        };
        written = now;
        assert!(Instant::now() < deadline, "the alert topic did not settle");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(Instant::now() < down_until && receiver.requests().is_empty());
    // So do the windows: the hour the input ends in is complete (the
    // flush readings are 20 minutes later), and its file is visible once a
    // checkpoint covers it.
    let parquet = || visible_parquet_files(&out.dir.path().join("windows"));
    while parquet() == 0 {
        assert!(
            Instant::now() < down_until,
            "no Parquet file while the receiver was down"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The metrics say how far behind the receiver is.
    let (_, metrics) = crate::ops::get(port, "/metrics").unwrap();
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert_eq!(
        value("weir_webhook_queue_events ") as usize,
        written,
        "{metrics}"
    );
    assert!(
        value("weir_webhook_oldest_undelivered_seconds ") >= 1.0,
        "{metrics}"
    );
    assert_eq!(value("weir_webhook_sent_total "), 0.0);
    live.kill().unwrap();
    live.wait().unwrap();
    std::thread::sleep(down_until.saturating_duration_since(Instant::now()));
    let log = dir.path().join("resume.log");
    let mut resume = weir_run(&pipeline, 1, true, &log, None);
    let status = wait(&mut resume, Duration::from_secs(180));
    assert!(
        status.is_some_and(|s| s.success()),
        "the bounded resume failed ({status:?}):\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let mut delivered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in receiver.requests() {
        let key = r.headers["idempotency-key"].clone();
        let device = key.split('|').nth(1).unwrap().to_owned();
        let seen = delivered.entry(device).or_default();
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    let mut topic_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in broker.consume_all(&out.alerts) {
        let event: serde_json::Value = serde_json::from_slice(&record.payload).unwrap();
        let device = event["device"].as_str().unwrap().to_owned();
        let key = event["id"].as_str().unwrap().to_owned();
        topic_order.entry(device).or_default().push(key);
    }
    if delivered != topic_order {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("elivery")) {
            eprintln!("resume: {line}");
        }
        eprintln!("{} requests", receiver.requests().len());
    }
    assert_eq!(
        delivered, topic_order,
        "every event, per device in topic order"
    );
    let total: usize = topic_order.values().map(Vec::len).sum();
    assert_eq!(
        total, written,
        "the live run wrote every alert while the receiver was down"
    );
}

/// The visible Parquet files below `dir`.
fn visible_parquet_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                visible_parquet_files(&path)
            } else {
                usize::from(name.ends_with(".parquet") && !name.starts_with('.'))
            }
        })
        .sum()
}
