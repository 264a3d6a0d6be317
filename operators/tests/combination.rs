//! Combination rules across workers: a device's readings of different
//! sensors, spread over partitions and workers, must meet in one place. The
//! alerts at 1 and 3 workers must equal a reference written from the
//! definition in README "Alert rules".

mod support;

use std::sync::Arc;

use weir_operators::alert::combination::{Combination, Condition, Mode};
use weir_operators::alert::{Direction, Rule, RuleSet};

const WITHIN_MS: u64 = 3_000;

/// (partition, device, sensor, time, value): 12 devices, temperature on
/// the whole second and vibration half a second later, with pseudo-random
/// values; a device's two sensors go to different partitions.
fn input() -> Vec<(usize, String, &'static str, u64, f64)> {
    let mut next = {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    };
    let mut out = Vec::new();
    for s in 0..400u64 {
        for d in 0..12u64 {
            let t = s * 1_000 + d * 7;
            // Some seconds have no temperature reading: breaches go stale.
            if next(4) != 0 {
                out.push((
                    (d % 3) as usize,
                    format!("d{d}"),
                    "temp",
                    t,
                    80.0 + next(20) as f64,
                ));
            }
            out.push((
                ((d + 1) % 3) as usize,
                format!("d{d}"),
                "vib",
                t + 500,
                next(10) as f64,
            ));
        }
    }
    out
}

/// The definition, step by step: after each reading of a device, a
/// condition counts when its sensor's latest reading breaches and lies
/// within the span; the rule holds when both count.
fn reference(input: &[(usize, String, &'static str, u64, f64)]) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for d in 0..12 {
        let device = format!("d{d}");
        let mut readings: Vec<_> = input.iter().filter(|r| r.1 == device).collect();
        readings.sort_by_key(|r| r.3);
        let (mut temp, mut vib): (Option<u64>, Option<u64>) = (None, None);
        let mut firing = false;
        for (_, _, sensor, t, v) in readings {
            match *sensor {
                "temp" => temp = (*v > 90.0).then_some(*t),
                _ => vib = (*v > 7.0).then_some(*t),
            }
            let counts = |b: Option<u64>| b.is_some_and(|b| t - b <= WITHIN_MS);
            let holds = counts(temp) && counts(vib);
            if holds != firing {
                firing = holds;
                let state = if holds { "firing" } else { "resolved" };
                out.push((device.clone(), state.to_owned(), *t));
            }
        }
    }
    out.sort_by(|a, b| (a.2, &a.0, &a.1).cmp(&(b.2, &b.0, &b.1)));
    out
}

fn weir(
    input: &[(usize, String, &'static str, u64, f64)],
    workers: usize,
) -> Vec<(String, String, u64)> {
    let payloads: Vec<(usize, String)> = input
        .iter()
        .map(|(p, device, sensor, t, v)| {
            let json =
                format!(r#"{{"device_id":"{device}","sensor":"{sensor}","value":{v},"ts":{t}}}"#);
            (*p, json)
        })
        .collect();
    let combination = Combination {
        mode: Mode::All,
        conditions: vec![
            Condition::new("temp", Direction::Above, 90.0),
            Condition::new("vib", Direction::Above, 7.0),
        ],
        within_ms: WITHIN_MS,
    };
    let rule = Rule::new_combination("hot-and-shaking", combination);
    let rules = Arc::new(RuleSet::new(vec![rule]));
    support::alerts_of(&payloads, rules, 2_000, workers)
        .into_iter()
        .map(|(device, sensor, state, time)| {
            assert_eq!(sensor, "temp+vib");
            (device, state, time)
        })
        .collect()
}

#[test]
fn combinations_match_the_definition_at_any_worker_count() {
    let input = input();
    let expected = reference(&input);
    assert!(
        expected.len() > 100,
        "too few alerts to mean much: {}",
        expected.len()
    );
    for workers in [1, 3] {
        assert_eq!(weir(&input, workers), expected, "{workers} worker(s)");
    }
}
