//! Silence rules through the real dataflow: a memory source (so the
//! partitions' progress comes from the source itself), the alert operator,
//! at 1 and 3 workers. Expected alerts come from a reference loop over the
//! input, written here from the rule's definition.

mod support;

use std::sync::Arc;

use weir_operators::alert::{Rule, RuleSet};

const AFTER_MS: u64 = 20_000;
const OUT_OF_ORDERNESS_MS: u64 = 2_000;

/// Device `d` on partition `d % 3` reads every 1 s for 10 minutes, except
/// in its gaps. Partition 2 stops altogether at 4 minutes (a stalled
/// producer): its devices must not look silent.
fn input() -> Vec<(usize, String, u64)> {
    let mut out = Vec::new();
    for s in 0..600u64 {
        for d in 0..9u64 {
            let p = (d % 3) as usize;
            let t = s * 1_000 + d * 37;
            let gap = match d {
                0 => (100..130).contains(&s), // 30 s: silent
                1 => (200..215).contains(&s), // 15 s: not silent
                3 => (300..360).contains(&s), // 60 s: silent
                4 => s >= 500,                // silent to the end
                _ => false,
            };
            if gap || (p == 2 && s >= 240) {
                continue;
            }
            out.push((p, format!("d{d}"), t));
        }
    }
    out
}

/// The silences the definition gives: for each gap of a device longer
/// than `AFTER_MS`, a firing at the end of the first second at or after
/// `last + AFTER_MS` in which its partition has a reading (or its own next
/// reading, if earlier), resolved at its next reading.
fn reference(input: &[(usize, String, u64)]) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for d in 0..9 {
        let device = format!("d{d}");
        let times: Vec<(usize, u64)> = input
            .iter()
            .filter(|(_, dev, _)| *dev == device)
            .map(|(p, _, t)| (*p, *t))
            .collect();
        let Some(&(p, _)) = times.first() else {
            continue;
        };
        let partition: Vec<u64> = input.iter().filter(|r| r.0 == p).map(|r| r.2).collect();
        for (i, &(_, last)) in times.iter().enumerate() {
            let deadline = last + AFTER_MS;
            let next = times.get(i + 1).map(|(_, t)| *t);
            if next.is_some_and(|n| n < deadline) {
                continue;
            }
            let first_bucket = deadline.div_ceil(1_000) * 1_000;
            let evidence = partition
                .iter()
                .filter(|t| **t >= first_bucket)
                .map(|t| t - t % 1_000 + 1_000)
                .min();
            let noticed = match (evidence, next) {
                (Some(e), Some(n)) => Some(e.min(n)),
                (e, n) => e.or(n),
            };
            if let Some(at) = noticed {
                out.push((device.clone(), "firing".to_owned(), at));
                if let Some(n) = next {
                    out.push((device.clone(), "resolved".to_owned(), n));
                }
            }
        }
    }
    out.sort_by(|a, b| (a.2, &a.0, &a.1).cmp(&(b.2, &b.0, &b.1)));
    out
}

fn weir(input: &[(usize, String, u64)], workers: usize) -> Vec<(String, String, u64)> {
    let payloads: Vec<(usize, String)> = input
        .iter()
        .map(|(p, device, t)| {
            let json = format!(r#"{{"device_id":"{device}","sensor":"temp","value":1,"ts":{t}}}"#);
            (*p, json)
        })
        .collect();
    let rule = Rule::new_silence("silent", "temp", AFTER_MS);
    let rules = Arc::new(RuleSet::new(vec![rule]));
    support::alerts_of(&payloads, rules, OUT_OF_ORDERNESS_MS, workers)
        .into_iter()
        .map(|(device, _, state, time)| (device, state, time))
        .collect()
}

#[test]
fn silences_match_the_definition_at_any_worker_count() {
    let input = input();
    let expected = reference(&input);
    // d0 and d3 are silent and come back; d4 stays silent to the end but
    // its partition goes on: it fires and never resolves. Partition 2's
    // devices (d2, d5, d8) stop with it: nothing.
    let devices: Vec<&str> = expected.iter().map(|(d, _, _)| d.as_str()).collect();
    assert_eq!(devices, ["d0", "d0", "d3", "d3", "d4"], "{expected:?}");
    for workers in [1, 3] {
        assert_eq!(weir(&input, workers), expected, "{workers} worker(s)");
    }
}
