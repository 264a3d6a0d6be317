//! The references of the end-to-end pipeline's hopping, session and
//! corrected outputs, from the README's definitions: the hopping window
//! ending at `E` (a multiple of the slide) holds the readings with
//! `E - size <= t < E`; a session is a key's run of readings, in event-time
//! order, each less than the gap after the one before, as the window
//! `[first, last + gap)`; a late reading (behind its partition's watermark
//! `wm`) is in the first emission of its window if that ends after `wm`,
//! in a correction at `wm` if its end plus the allowed lateness is after
//! `wm`, and a dead letter otherwise.

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMillisecondType};

use crate::reference::{files, Ref, Windows, WINDOW_MS};

/// The hopping output: 5 minutes every minute.
pub const HOPPING_MS: (u64, u64) = (300_000, 60_000);
/// The session output's gap: readings come every second, so a session
/// ends where readings went missing (late, bad or moved by disorder).
pub const GAP_MS: u64 = 1_500;

/// The corrected output's allowed lateness: the simulation's late readings
/// come 60 to 120 s late, so some are taken and some are not.
pub const LATENESS_MS: u64 = 90_000;

/// The pipeline's window outputs, below `out`: tumbling minutes in
/// `out/windows`, hopping windows in `out/hopping`, sessions in
/// `out/sessions`, and tumbling minutes that late readings correct in
/// `out/corrected`.
pub fn window_outputs(out: &std::path::Path) -> String {
    let (size, slide) = HOPPING_MS;
    format!(
        r#"
[[window]]
name = "windows"
size = "1m"
path = "{out}/windows"
[[window]]
name = "hopping"
size = "{size}ms"
slide = "{slide}ms"
path = "{out}/hopping"
[[window]]
name = "sessions"
gap = "{GAP_MS}ms"
path = "{out}/sessions"
[[window]]
name = "corrected"
size = "1m"
allowed_lateness = "{LATENESS_MS}ms"
path = "{out}/corrected"
"#,
        out = out.display()
    )
}

fn add(windows: &mut Windows, r: &Ref, start: u64) {
    let w = windows
        .entry((r.device.clone(), r.sensor.clone(), start))
        .or_insert((0, f64::INFINITY, f64::NEG_INFINITY, 0.0));
    w.0 += 1;
    w.1 = w.1.min(r.value);
    w.2 = w.2.max(r.value);
    w.3 += r.value;
}

pub fn reference_hopping(readings: &[Ref]) -> Windows {
    let (size, slide) = HOPPING_MS;
    let mut windows = Windows::new();
    for r in readings {
        let first_end = r.time - r.time % slide + slide;
        for end in (first_end..first_end + size).step_by(slide as usize) {
            add(&mut windows, r, end - size);
        }
    }
    windows
}

pub fn reference_sessions(readings: &[Ref]) -> Windows {
    let mut by_key: BTreeMap<(&str, &str), Vec<&Ref>> = BTreeMap::new();
    for r in readings {
        by_key.entry((&r.device, &r.sensor)).or_default().push(r);
    }
    let mut windows = Windows::new();
    for (_, mut rs) in by_key {
        rs.sort_by_key(|r| r.time);
        let mut start = rs[0].time;
        for (i, r) in rs.iter().enumerate() {
            if i > 0 && r.time - rs[i - 1].time >= GAP_MS {
                start = r.time;
            }
            add(&mut windows, r, start);
        }
    }
    windows
}

/// (device, sensor, window_start, window_end, revision) → (count, min, max, sum)
pub type Revised = BTreeMap<(String, String, u64, u64, u32), (u64, f64, f64, f64)>;

/// The rows of the corrected output, and the number of late readings it
/// does not take (dead letters).
pub fn reference_corrected(accepted: &[Ref], late: &[(Ref, u64)]) -> (Revised, usize) {
    type Window = (Vec<f64>, BTreeMap<u64, Vec<f64>>);
    let mut windows: BTreeMap<(String, String, u64), Window> = BTreeMap::new();
    let end_of = |r: &Ref| r.time - r.time % WINDOW_MS + WINDOW_MS;
    let key = |r: &Ref| (r.device.clone(), r.sensor.clone(), end_of(r));
    for r in accepted {
        windows.entry(key(r)).or_default().0.push(r.value);
    }
    let mut dead = 0;
    for (r, wm) in late {
        let (end, w) = (end_of(r), windows.entry(key(r)).or_default());
        if end > *wm {
            w.0.push(r.value);
        } else if end + LATENESS_MS > *wm {
            w.1.entry(*wm).or_default().push(r.value);
        } else {
            dead += 1;
        }
    }
    let mut rows = Revised::new();
    for ((device, sensor, end), (first, corrections)) in windows {
        let mut values = Vec::new();
        let mut revision = 0;
        for group in std::iter::once(first).chain(corrections.into_values()) {
            values.extend(group);
            if values.is_empty() {
                continue;
            }
            rows.insert(
                (
                    device.clone(),
                    sensor.clone(),
                    end - WINDOW_MS,
                    end,
                    revision,
                ),
                (
                    values.len() as u64,
                    values.iter().copied().fold(f64::INFINITY, f64::min),
                    values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    values.iter().sum(),
                ),
            );
            revision += 1;
        }
    }
    (rows, dead)
}

/// The rows of the Parquet files below `dir`, with their revision.
pub fn parquet_revised(dir: &Path) -> Revised {
    let mut rows = Revised::new();
    for b in crate::reference::batches(files(dir)) {
        let col = |name: &str| b.column(b.schema().index_of(name).unwrap()).clone();
        let ts = |name: &str, i| {
            col(name)
                .as_primitive::<TimestampMillisecondType>()
                .value(i) as u64
        };
        let float = |name: &str, i| col(name).as_primitive::<Float64Type>().value(i);
        for i in 0..b.num_rows() {
            let key = (
                col("device_id").as_string::<i32>().value(i).to_owned(),
                col("sensor").as_string::<i32>().value(i).to_owned(),
                ts("window_start", i),
                ts("window_end", i),
                col("revision").as_primitive::<Int32Type>().value(i) as u32,
            );
            let value = (
                col("count").as_primitive::<Int64Type>().value(i) as u64,
                float("min", i),
                float("max", i),
                float("sum", i),
            );
            assert!(
                rows.insert(key.clone(), value).is_none(),
                "{key:?} written twice"
            );
        }
    }
    rows
}

pub fn assert_revised(got: &Revised, want: &Revised, label: &str) {
    let missing: Vec<_> = want
        .keys()
        .filter(|k| !got.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = got
        .keys()
        .filter(|k| !want.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{label}, corrected: missing {missing:?}, unexpected {extra:?}"
    );
    for (key, w) in want {
        let g = got[key];
        assert_eq!(
            (g.0, g.1, g.2),
            (w.0, w.1, w.2),
            "{label}, corrected: {key:?}"
        );
        assert!(
            (g.3 - w.3).abs() <= 1e-9 * w.3.abs().max(1.0),
            "{label}, corrected: sum of {key:?}"
        );
    }
}
