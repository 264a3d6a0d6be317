//! Window rows for the Parquet benches, and Weir's sink driven as
//! `window_aggregate` drives it.

use std::time::{Duration, Instant};

use timely::dataflow::InputHandleVec;
use weir::operators::parquet::{ParquetSink, ParquetSinkConfig};
use weir::operators::storage::Location;
use weir::operators::{Env, Run, WindowAggregate};

pub const DEVICES: usize = 1_000;
/// In name order: `window_aggregate` emits a window's rows by device and sensor.
pub const SENSORS: [&str; 3] = ["pressure", "temperature", "vibration"];
pub const WINDOW_MS: u64 = 60_000;
/// 2025-11-23T12:00:00Z: windows start on the hour.
pub const START_MS: u64 = 1_763_899_200_000;

/// `n` rows (rounded up to whole windows of every key), in the order of
/// (window_start, device, sensor).
pub fn rows(n: usize) -> Vec<WindowAggregate> {
    let keys = DEVICES * SENSORS.len();
    let windows = n.div_ceil(keys);
    let devices: Vec<String> = (0..DEVICES).map(|d| format!("dev-{d:05}")).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut rows = Vec::with_capacity(windows * keys);
    for w in 0..windows as u64 {
        let window_start = START_MS + w * WINDOW_MS;
        for device in &devices {
            for sensor in SENSORS {
                let count = 50 + (random() * 20.0) as u64;
                let min = 20.0 + random() * 40.0;
                let max = min + random() * 10.0;
                let mean = (min + max) / 2.0;
                rows.push(WindowAggregate {
                    device: device.as_str().into(),
                    sensor: sensor.into(),
                    window_start,
                    window_end: window_start + WINDOW_MS,
                    count,
                    min,
                    max,
                    sum: mean * count as f64,
                    revision: 0,
                    extra: Vec::new(),
                });
            }
        }
    }
    rows
}

/// Weir's sink, on one timely worker, writing below `dir` (a directory or
/// an object-store location).
pub fn weir_sink(rows: Vec<WindowAggregate>, dir: Location) -> Duration {
    let n = rows.len() as u64;
    let config = ParquetSinkConfig::new(dir);
    let run = Run::default();
    let sink_run = run.clone();
    let start = Instant::now();
    timely::execute_directly(move |worker| {
        let mut input = InputHandleVec::<u64, WindowAggregate>::new();
        worker.dataflow(|scope| {
            let env = Env::new(scope, sink_run, "bench", None);
            input.to_stream(scope).parquet_sink(config, &env);
            env.finish();
        });
        let mut batch = Vec::new();
        let mut rows = rows.into_iter().peekable();
        while let Some(first) = rows.next() {
            let end = first.window_end;
            batch.push(first);
            while let Some(row) = rows.next_if(|r| r.window_end == end) {
                batch.push(row);
            }
            input.advance_to(end);
            input.send_batch(&mut batch);
            batch.clear();
            worker.step();
        }
    });
    let took = start.elapsed();
    assert!(
        run.control.errors().is_empty(),
        "{:?}",
        run.control.errors()
    );
    assert_eq!(run.metrics.parquet_rows.get(), n);
    took
}
