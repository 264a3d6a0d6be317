//! The timely harness the alert tests share.

use std::sync::{Arc, Mutex};

use timely::dataflow::operators::Inspect;
use weir_operators::alert::{EvaluateAlerts, RuleSet};
use weir_operators::memory::{MemorySource, MemoryTopic};
use weir_operators::{Decoder, Env};

/// One alert as the tests compare them: device, sensor, state, event time.
pub type Seen = (String, String, String, u64);

/// Runs `rules` on `workers` workers over the JSON `payloads`, each on
/// its partition of a topic of 3, read with `out_of_orderness_ms`; returns
/// every alert, by event time, then device, then state.
pub fn alerts_of(
    payloads: &[(usize, String)],
    rules: Arc<RuleSet>,
    out_of_orderness_ms: u64,
    workers: usize,
) -> Vec<Seen> {
    let topic = Arc::new(MemoryTopic::from_records(
        "readings",
        3,
        payloads
            .iter()
            .map(|(p, json)| (*p, None, json.as_bytes(), None)),
    ));
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let sink = alerts.clone();
    timely::execute(timely::Config::process(workers), move |worker| {
        let (topic, rules, sink) = (topic.clone(), rules.clone(), sink.clone());
        worker.dataflow::<u64, _, _>(move |scope| {
            let env = Env::standalone(scope);
            let (readings, _dead) =
                scope.memory_source(topic, Decoder::default(), out_of_orderness_ms, &env);
            let set = rules.clone();
            readings.evaluate_alerts(rules, &env).inspect(move |a| {
                // A silence or combination rule has no threshold: its
                // events carry none; the other kinds carry theirs.
                let rule = set
                    .rules
                    .iter()
                    .find(|r| r.name == a.rule)
                    .expect("its rule");
                let json = a.to_json();
                assert_eq!(
                    (
                        json.get("threshold").is_some(),
                        json.get("clear_threshold").is_some()
                    ),
                    (rule.threshold().is_some(), rule.threshold().is_some()),
                    "{json}"
                );
                sink.lock().unwrap().push((
                    a.device.to_string(),
                    a.sensor.to_string(),
                    a.state.as_str().to_owned(),
                    a.event_time,
                ));
            });
            env.finish();
        });
    })
    .unwrap();
    let mut got = alerts.lock().unwrap().clone();
    got.sort_by(|a, b| (a.3, &a.0, &a.2).cmp(&(b.3, &b.0, &b.2)));
    got
}
