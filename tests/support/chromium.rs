//! A headless Chromium driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands on its fd 3, answers on fd 4, each a
//! JSON message ended by a NUL byte), with no crate beyond `serde_json`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The Chromium to drive: `$WEIR_CHROMIUM`, else `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
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
pub struct Chromium {
    child: Child,
    commands: ChildStdin,
    messages: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Chromium {
    pub fn start(width: u32, height: u32) -> Chromium {
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
    pub fn log_tail(&self) -> String {
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
    pub fn open(&mut self, url: &str, width: u32, height: u32) {
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
    pub fn eval(&mut self, expression: &str) -> Value {
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
    pub fn screenshot(&mut self) -> Vec<u8> {
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
