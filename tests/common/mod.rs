//! What the in-memory window tests share: seeded input, the topic it is
//! read from, and the comparison of window rows with a reference.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use weir::prelude::MemoryTopic;

/// A reading as the tests produce it: partition, event time, device,
/// sensor, value.
pub type Record = (usize, u64, String, String, f64);

/// A deterministic generator: `next(n)` is in `0..n`.
pub fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |below: u64| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }
}

/// 3,000 seeded readings of `devices` devices with sensors `temp` and
/// `vib` on 4 partitions: one every 100 ms from `start` after a fixed base,
/// out of order within 4 s, and one in `one_in` a straggler 6 s to
/// `6 s + spread` behind.
pub fn readings_with_stragglers(
    seed: u64,
    devices: u64,
    start: u64,
    one_in: u64,
    spread: u64,
) -> Vec<Record> {
    let mut next = seeded(seed);
    let base = 1_700_000_000_000;
    (0..3_000u64)
        .map(|i| {
            let device = format!("d{}", next(devices));
            let sensor = ["temp", "vib"][next(2) as usize].to_owned();
            let mut time = base + start + i * 100 + next(4_000);
            if next(one_in) == 0 {
                time -= 6_000 + next(spread);
            }
            (
                next(4) as usize,
                time,
                device,
                sensor,
                next(1_000) as f64 / 8.0,
            )
        })
        .collect()
}

/// A topic of 4 partitions holding `input` as JSON readings, in order.
pub fn topic(input: &[Record]) -> Arc<MemoryTopic> {
    let payloads: Vec<(usize, String)> = input
        .iter()
        .map(|(p, t, d, s, v)| {
            (
                *p,
                format!(r#"{{"device_id":"{d}","sensor":"{s}","value":{v},"ts":{t}}}"#),
            )
        })
        .collect();
    Arc::new(MemoryTopic::from_records(
        "readings",
        4,
        payloads
            .iter()
            .map(|(p, json)| (*p, None, json.as_bytes(), None)),
    ))
}

/// `got` has the rows of `want`, no other: counts, minima and maxima
/// exactly, sums to 1e-9.
pub fn assert_rows<K: Ord + Debug>(
    got: &BTreeMap<K, (u64, f64, f64, f64)>,
    want: &BTreeMap<K, (u64, f64, f64, f64)>,
    label: &str,
) {
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
        "{label}: missing {missing:?}, unexpected {extra:?}"
    );
    for (key, w) in want {
        let g = got[key];
        assert_eq!((g.0, g.1, g.2), (w.0, w.1, w.2), "{label} {key:?}");
        assert!(
            (g.3 - w.3).abs() <= 1e-9 * w.3.abs().max(1.0),
            "{label}: sum of {key:?}"
        );
    }
}
