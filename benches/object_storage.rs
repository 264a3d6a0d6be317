//! Object storage against local disk, on a moto S3 server on loopback
//! (started here, from the virtual environment `scripts/ensure-moto.sh`
//! caches):
//!
//! - Weir's Parquet sink writing the same window rows below a directory
//!   and below an `s3://` location (each file a multipart upload, completed
//!   at once: no checkpoints);
//! - a checkpoint part holding the open windows of 1,000,000 keys (as the
//!   `checkpoint` bench encodes it) put into a local checkpoint directory
//!   (written, synced, renamed) and into an `s3://` checkpoint location.
//!
//! Runs alternate between disk and S3, and the fastest of each counts.
//! moto is a Python server, so the S3 side measures Weir's path to a store
//! plus moto's own cost: a floor for what a real store costs, not a
//! forecast of it.
//!
//! `cargo bench --bench object_storage` (`WEIR_BENCH_ROWS`, default
//! 1,000,000 rows; `WEIR_BENCH_KEYS`, default 1,000,000 keys;
//! `WEIR_BENCH_RUNS`, default 5).

use std::time::Instant;

mod support;

#[path = "../tests/support/s3.rs"]
#[allow(dead_code)]
mod s3;

use support::parquet::{rows, weir_sink};
use weir::operators::checkpoint::{CheckpointStore, LocalDir};
use weir::operators::storage::Location;
use weir::operators::{Reading, WindowState};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The best and worst of `times`, in seconds.
fn best_worst(times: &[f64]) -> (f64, f64) {
    let best = times.iter().copied().fold(f64::INFINITY, f64::min);
    let worst = times.iter().copied().fold(0.0, f64::max);
    (best, worst)
}

/// The open one-minute windows of `n` keys, two readings each, encoded as a
/// checkpoint part is.
fn window_part(n: usize) -> Vec<u8> {
    const SENSORS: [&str; 3] = ["temperature", "pressure", "vibration"];
    let mut state = WindowState::new(60_000);
    for k in 0..n {
        let device = format!("device-{:07}", k / SENSORS.len());
        let sensor = SENSORS[k % SENSORS.len()];
        state.insert(&Reading::new(&device, sensor, 1_000, 20.0, 0, k as i64));
        state.insert(&Reading::new(&device, sensor, 2_000, 21.5, 0, k as i64));
    }
    bincode::serialize(&state).expect("a part serializes")
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = env("WEIR_BENCH_ROWS", if quick { 30_000 } else { 1_000_000 });
    let keys = env("WEIR_BENCH_KEYS", if quick { 10_000 } else { 1_000_000 });
    let runs = env("WEIR_BENCH_RUNS", if quick { 1 } else { 5 }).max(1);
    let server = s3::S3::start();
    server.create_bucket("bench");

    let input = rows(n);
    let n = input.len();
    println!("object storage: Parquet sink, {n} window rows; {runs} runs of each, alternating");
    let (mut disk, mut bucket) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let dir = tempfile::tempdir().expect("tempdir");
        disk.push(weir_sink(input.clone(), dir.path().into()).as_secs_f64());
        let url = format!("s3://bench/parquet-{run}");
        let location = Location::Object(server.location(&url));
        bucket.push(weir_sink(input.clone(), location).as_secs_f64());
    }
    let report = |what: &str, times: &[f64], unit: f64, per: &str| {
        let (best, worst) = best_worst(times);
        println!(
            "  {what:<22} {:>12.0} {per} at best ({best:.3} s; worst {worst:.3} s)",
            unit / best
        );
        best
    };
    let d = report("to disk", &disk, n as f64, "rows/s");
    let s = report("to S3 (moto)", &bucket, n as f64, "rows/s");
    println!("  S3: {:.2}x the rate to disk, best against best", d / s);

    let part = window_part(keys);
    let mb = part.len() as f64 / 1e6;
    println!("object storage: a checkpoint part of {keys} open window keys, {mb:.1} MB");
    let (mut disk, mut bucket) = (Vec::new(), Vec::new());
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalDir::open(dir.path().join("ck")).expect("checkpoint dir");
    let remote = server.location("s3://bench/checkpoints");
    for run in 0..runs {
        let name = format!("ckpt-{run:012}-windows.1-w0.part");
        disk.push(timed(|| local.put(&name, &part).expect("put to disk")));
        bucket.push(timed(|| {
            CheckpointStore::put(&remote, &name, &part).expect("put to S3")
        }));
    }
    let d = report("to disk", &disk, mb, "MB/s");
    let s = report("to S3 (moto)", &bucket, mb, "MB/s");
    println!("  S3: {:.2}x the time to disk, best against best", s / d);
}

fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}
