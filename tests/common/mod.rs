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
