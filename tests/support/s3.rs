//! A real S3-compatible server for the tests: moto's, in a separate
//! process on a loopback port, from the virtual environment that
//! `scripts/ensure-moto.sh` installs and caches (which also holds pyarrow,
//! to read Parquet back with a reader nobody here wrote).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir_operators::storage::{Location, ObjectLocation};

/// A running moto S3 server; killed on drop.
pub struct S3 {
    child: Child,
    /// `http://127.0.0.1:PORT`: where clients are told the server is (a
    /// proxy in front of it, if the test puts one there).
    pub endpoint: String,
    /// The server's own port.
    pub port: u16,
    venv: PathBuf,
}

/// The credentials the tests give moto (it accepts any).
pub const KEY_ID: &str = "weir-test-key";
/// See [`KEY_ID`].
pub const SECRET: &str = "weir-test-secret";

/// The virtual environment with moto and pyarrow, installed if missing.
pub fn moto_venv() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/ensure-moto.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/ensure-moto.sh");
    assert!(out.status.success(), "scripts/ensure-moto.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

impl S3 {
    /// Starts a server and waits until it answers.
    pub fn start() -> S3 {
        let venv = moto_venv();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let s3 = S3 {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            venv,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while s3.request("GET", "/").is_none() {
            assert!(Instant::now() < deadline, "moto did not start within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        s3
    }

    /// One plain HTTP request; the status code, if the server answered.
    fn request(&self, method: &str, path: &str) -> Option<u16> {
        let addr = format!("127.0.0.1:{}", self.port);
        let mut stream = TcpStream::connect(&addr).ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_whitespace().nth(1)?.parse().ok()
    }

    /// Creates bucket `name`.
    pub fn create_bucket(&self, name: &str) {
        let status = self.request("PUT", &format!("/{name}"));
        assert_eq!(status, Some(200), "create bucket {name}");
    }

    /// The options a pipeline file gives in `[storage] properties`.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", KEY_ID),
            ("aws_secret_access_key", SECRET),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// `[storage.properties]` for a pipeline file.
    pub fn storage_toml(&self) -> String {
        let mut toml = String::from("\n[storage.properties]\n");
        for (key, value) in self.options() {
            toml.push_str(&format!("{key} = \"{value}\"\n"));
        }
        toml
    }

    /// A client for `url`.
    pub fn location(&self, url: &str) -> ObjectLocation {
        match Location::parse(url, Path::new(""), &self.options()).unwrap() {
            Location::Object(object) => object,
            Location::Local(_) => panic!("{url} is not an object-store URL"),
        }
    }

    /// Runs `script` with the venv's Python, with `S3_ENDPOINT`,
    /// `S3_KEY` and `S3_SECRET` set; its standard output.
    pub fn python(&self, script: &str) -> String {
        let out = Command::new(self.venv.join("bin/python"))
            .args(["-c", script])
            .env("S3_ENDPOINT", &self.endpoint)
            .env("S3_KEY", KEY_ID)
            .env("S3_SECRET", SECRET)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "python failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
