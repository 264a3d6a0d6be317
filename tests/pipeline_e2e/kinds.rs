//! The references of the end-to-end pipeline's hopping and session
//! outputs, from the README's definitions: the hopping window ending at
//! `E` (a multiple of the slide) holds the readings with
//! `E - size <= t < E`; a session is a key's run of readings, in event-time
//! order, each less than the gap after the one before, as the window
//! `[first, last + gap)`.

use std::collections::BTreeMap;

use crate::reference::{Ref, Windows};

/// The hopping output: 5 minutes every minute.
pub const HOPPING_MS: (u64, u64) = (300_000, 60_000);
/// The session output's gap: readings come every second, so a session
/// ends where readings went missing (late, bad or moved by disorder).
pub const GAP_MS: u64 = 1_500;

/// The pipeline's window outputs, below `out`: tumbling minutes in
/// `out/windows`, hopping windows in `out/hopping`, sessions in
/// `out/sessions`.
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
