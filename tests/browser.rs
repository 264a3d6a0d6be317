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
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
#[path = "support/ops.rs"]
mod ops;

use ops::{free_port, get, record, Killed};

/// How long the page has to show what the test waits for.
const DEADLINE: Duration = Duration::from_secs(60);

/// The Chromium to drive: `$WEIR_CHROMIUM`, else `/usr/bin/chromium`.
fn chromium_path() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "WEIR_CHROMIUM={} is not a file; run `bash scripts/ensure-chromium.sh` \
             to find or install Chromium",
            path.display()
        );
        return path;
    }
    let default = PathBuf::from("/usr/bin/chromium");
    assert!(
        default.is_file(),
        "no Chromium for the status page test: WEIR_CHROMIUM is unset and \
         /usr/bin/chromium is missing. `bash scripts/test.sh` installs it \
         (through scripts/ensure-chromium.sh), or set WEIR_CHROMIUM to a Chromium"
    );
    default
}

/// A headless Chromium spoken to over the DevTools protocol, with one page
/// attached; killed (with its helper processes) on drop.
struct Chromium {
    child: Child,
    commands: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn start(width: u32, height: u32) -> Chromium {
        let profile = tempfile::tempdir().unwrap();
        let log = profile.path().join("chromium.log");
        let user_data = profile.path().join("profile");
        let mut child = Command::new("sh")
            // Chromium reads the protocol on fd 3 and writes on fd 4: hand
            // it our stdin and stdout pipes there. Its own output goes to
            // the log.
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg(chromium_path())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", user_data.display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            // Its own process group, so that drop ends its helpers too.
            .process_group(0)
            .spawn()
            .expect("cannot start chromium");
        let commands = child.stdin.take().unwrap();
        let mut from = BufReader::new(child.stdout.take().unwrap());
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            while from.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(message) = serde_json::from_slice(&buf) {
                    if tx.send(message).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        Chromium {
            child,
            commands,
            messages,
            next_id: 0,
            session: None,
            log,
            _profile: profile,
        }
    }

    /// The end of Chromium's own output, for failure messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Sends a DevTools command (to the attached page, once there is one)
    /// and waits for its result; events in between are dropped.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            command["sessionId"] = json!(session);
        }
        let mut bytes = command.to_string().into_bytes();
        bytes.push(0);
        if let Err(e) = self.commands.write_all(&bytes) {
            panic!(
                "chromium does not take commands ({e}); its log:\n{}",
                self.log_tail()
            );
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(message) if message["id"] == id => {
                    if let Some(error) = message.get("error") {
                        panic!("{method} failed: {error}");
                    }
                    return message["result"].clone();
                }
                Ok(_event) => {}
                Err(e) => panic!(
                    "no answer from chromium to {method} ({e}); its log:\n{}",
                    self.log_tail()
                ),
            }
        }
    }

    /// Opens `url` in a new page of `width` x `height` and attaches to it.
    fn open(&mut self, url: &str, width: u32, height: u32) {
        let target = self.call("Target.createTarget", json!({ "url": url }));
        let attached = self.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        self.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
        );
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let answer = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        if let Some(exception) = answer.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        answer["result"]["value"].clone()
    }

    /// The page as a PNG.
    fn screenshot(&mut self) -> Vec<u8> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }));
        base64_decode(shot["data"].as_str().expect("screenshot data"))
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // Ask it to close (it then ends its helper processes itself)...
        let close = json!({ "id": 0, "method": "Browser.close" }).to_string();
        if self
            .commands
            .write_all(format!("{close}\0").as_bytes())
            .is_ok()
        {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // ... and kill whatever is left: its renderer and utility processes
        // share its process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64, as DevTools sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let digit = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | digit(c) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

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
    // rule, severity, site, line, device, sensor, since
    assert_eq!(overheat.len(), 7, "{overheat:?}");
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
