//! Helpers for tests of the operations server: a plain HTTP GET, a free
//! port, a recording of simulated devices to replay, and a child process
//! killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Child;
use std::time::Duration;

use weir::operators::recording::{RecordRef, Recorder};
use weir::simulate::{generate, SimulatorConfig};

/// GET `path`: (status, body).
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// POST `body` (JSON) to `path`, with `Authorization: Bearer <token>` if
/// given: (status, body).
#[allow(dead_code)] // not every test binary posts
pub fn post(port: u16, path: &str, token: Option<&str>, body: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A recording of 20 simulated devices over 10 minutes on 4 partitions.
pub fn record(dir: &Path) -> usize {
    let config = SimulatorConfig {
        devices: 20,
        duration_ms: 600_000,
        seed: 3,
        anomaly_rate: 0.5,
        ..SimulatorConfig::default()
    };
    let mut recorder = Recorder::open(dir, "readings").unwrap();
    let mut offsets = [0i64; 4];
    let mut n = 0;
    for r in generate(&config) {
        let p = weir::operators::SensorKey::route_hash(&r.key, "") as usize % 4;
        recorder
            .push(&RecordRef {
                partition: p as i32,
                offset: offsets[p],
                timestamp: Some(r.timestamp_ms),
                key: Some(r.key.as_bytes()),
                value: &r.payload,
                headers: &[],
            })
            .unwrap();
        offsets[p] += 1;
        n += 1;
    }
    recorder.seal().unwrap();
    n
}

pub struct Killed(pub Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
