//! Each health measure by hand, and the operator at 1 and 3 workers.

use std::sync::{Arc, Mutex};

use timely::dataflow::operators::{Input, Inspect, Probe};

use super::{alarm_health, AreaBy, AreaHealth, HealthConfig};
use crate::record::{Alert, AlertState, Health, HealthEvent, TopAlarm};
use crate::Env;

const S: u64 = 1_000;

fn fire(rule: &str, device: &str, t: u64) -> Alert {
    Alert::event(rule, device, "temp", AlertState::Firing, t)
}

fn resolve(rule: &str, device: &str, t: u64) -> Alert {
    Alert::event(rule, device, "temp", AlertState::Resolved, t)
}

/// Applies `alerts` (in order) to one area, then fires the timers before
/// `until`: the events, as (event time, health).
fn run(config: &HealthConfig, alerts: &[Alert], until: u64) -> Vec<(u64, Health)> {
    let mut area = AreaHealth::default();
    let mut out = Vec::new();
    for alert in alerts {
        area.fire_until(alert.event_time + 1, config, "a", &mut out);
        area.apply(alert, config, "a", &mut out);
    }
    area.fire_until(until, config, "a", &mut out);
    out.into_iter().map(|e| (e.event_time, e.health)).collect()
}

#[test]
fn a_flood_starts_at_the_activation_past_the_limit_and_ends_with_the_first_calm_window() {
    let config = HealthConfig {
        flood_window_ms: 60 * S,
        flood_limit: 2,
        ..HealthConfig::default()
    };
    // Window 0-60 s: 3 activations (flood from the third, at 3 s); 60-120
    // s: 4 (still a flood); 120-180 s: 1 (calm: the flood ended at 120 s,
    // known when that window closes at 180 s). 300-360 s: 3 again.
    let mut alerts: Vec<Alert> = [1, 2, 3, 61, 62, 63, 64, 130]
        .iter()
        .enumerate()
        .map(|(i, t)| fire("hot", &format!("d{i}"), t * S))
        .collect();
    alerts.extend([301, 302, 303].map(|t| fire("hot", "d9", t * S)));
    let events = run(&config, &alerts, 500 * S);
    let floods: Vec<_> = events
        .into_iter()
        .filter(|(_, h)| !matches!(h, Health::Rate { .. } | Health::Stale { .. }))
        .collect();
    assert_eq!(
        floods,
        vec![
            (3 * S, Health::FloodStarted { start: 0 }),
            (
                180 * S,
                Health::Flood {
                    start: 0,
                    end: 120 * S,
                    activations: 7,
                    peak: 4
                }
            ),
            (303 * S, Health::FloodStarted { start: 300 * S }),
            (
                420 * S,
                Health::Flood {
                    start: 300 * S,
                    end: 360 * S,
                    activations: 3,
                    peak: 3
                }
            ),
        ]
    );
    // Before the calm window closes, the flood is still under way.
    assert_eq!(run(&config, &alerts[..8], 180 * S).len(), 1);
}

#[test]
fn an_alarm_active_for_stale_after_is_stale_once_per_activation() {
    let config = HealthConfig {
        stale_after_ms: 100 * S,
        ..HealthConfig::default()
    };
    let alerts = [
        fire("hot", "d1", 10 * S),
        fire("hot", "d2", 20 * S),
        resolve("hot", "d2", 50 * S),
        // d1 is stale at 110 s; resolved at 200 s and fired again at 210 s,
        // it is stale again at 310 s.
        resolve("hot", "d1", 200 * S),
        fire("hot", "d1", 210 * S),
    ];
    let stale: Vec<_> = run(&config, &alerts, 400 * S)
        .into_iter()
        .filter(|(_, h)| matches!(h, Health::Stale { .. }))
        .collect();
    let at = |since: u64| Health::Stale {
        rule: "hot".into(),
        device: "d1".into(),
        sensor: "temp".into(),
        since,
    };
    assert_eq!(stale, vec![(110 * S, at(10 * S)), (310 * S, at(210 * S))]);
    // An alarm of a rule a reload changed is forgotten, never stale.
    let mut area = AreaHealth::default();
    let mut out = Vec::new();
    area.apply(&alerts[0], &config, "a", &mut out);
    area.forget(|rule, _, _| rule == "hot");
    area.fire_until(400 * S, &config, "a", &mut out);
    assert!(
        out.iter()
            .all(|e| !matches!(e.health, Health::Stale { .. })),
        "{out:?}"
    );
    // A stale timer fires only once the frontier passes it.
    assert!(run(&config, &alerts[..1], 110 * S).is_empty());
    assert_eq!(run(&config, &alerts[..1], 110 * S + 1).len(), 1);
}

#[test]
fn an_hour_ends_with_its_average_and_peak_rates_chattering_and_top_alarms() {
    let config = HealthConfig::default(); // 10-minute windows
    let m = 60 * S;
    let mut chatter = Alert::event("hot", "d1", "temp", AlertState::Chattering, 5 * m);
    let alerts = [
        // Window 0-10 min: 4 activations; window 10-20 min: 2.
        fire("hot", "d1", m),
        resolve("hot", "d1", 2 * m),
        fire("hot", "d1", 3 * m),
        fire("cold", "d1", 4 * m),
        chatter.clone(),
        fire("hot", "d2", 6 * m),
        fire("hot", "d1", 12 * m),
        fire("cold", "d1", 15 * m),
        {
            chatter.event_time = 16 * m;
            chatter
        },
    ];
    let rates: Vec<_> = run(&config, &alerts, 61 * m)
        .into_iter()
        .filter(|(_, h)| matches!(h, Health::Rate { .. }))
        .collect();
    let top = |rule: &str, device: &str, activations| TopAlarm {
        rule: rule.into(),
        device: device.into(),
        sensor: "temp".into(),
        activations,
    };
    assert_eq!(
        rates,
        vec![(
            60 * m,
            Health::Rate {
                hour_start: 0,
                activations: 6,
                average: 1.0,
                peak: 4,
                chattering: 2,
                top: vec![
                    top("hot", "d1", 3),
                    top("cold", "d1", 2),
                    top("hot", "d2", 1)
                ],
            }
        )]
    );
}

#[test]
fn areas_come_from_the_registry_fields_alerts_carry() {
    let mut alert = fire("hot", "d1", 0);
    alert.labels = vec![
        ("team".into(), "maintenance".into()),
        ("site".into(), "north".into()),
        ("line".into(), "press".into()),
    ];
    let by = |area| HealthConfig {
        area,
        ..HealthConfig::default()
    };
    assert_eq!(by(AreaBy::Line).area_of(&alert), "north/press");
    assert_eq!(by(AreaBy::Site).area_of(&alert), "north");
    assert_eq!(by(AreaBy::All).area_of(&alert), "all");
    assert_eq!(by(AreaBy::Line).area_of(&fire("hot", "d2", 0)), "-/-");
}

/// The operator on `alerts` at `workers` workers (worker `i` sends the
/// alerts of devices `d{n}` with `n % workers == i`), until the input ends
/// at `end`.
fn operator(alerts: &[Alert], config: &HealthConfig, workers: usize, end: u64) -> Vec<HealthEvent> {
    let got: Arc<Mutex<Vec<HealthEvent>>> = Arc::default();
    let (sink, alerts, config) = (got.clone(), alerts.to_vec(), config.clone());
    timely::execute(timely::Config::process(workers), move |worker| {
        let (index, peers) = (worker.index(), worker.peers());
        let (sink, config) = (sink.clone(), config.clone());
        let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
            let env = Env::standalone(scope);
            let (input, stream) = scope.new_input::<Vec<Alert>>();
            let (probe, _) = alarm_health(
                &stream,
                &crate::rules::RuleSet::new(Vec::new()),
                config,
                &env,
            )
            .inspect(move |e| sink.lock().unwrap().push(e.clone()))
            .probe();
            (input, probe)
        });
        for a in alerts.iter() {
            if a.device[1..].parse::<usize>().unwrap() % peers == index {
                if a.event_time > *input.time() {
                    input.advance_to(a.event_time);
                    worker.step();
                }
                input.send(a.clone());
            }
        }
        input.advance_to(end);
        while probe.less_than(&end) {
            worker.step();
        }
    })
    .unwrap();
    let mut got = got.lock().unwrap().clone();
    got.sort_by_key(|e| (e.event_time, e.area.clone()));
    got
}

#[test]
fn the_operator_gives_the_hand_worked_events_at_one_and_three_workers() {
    let config = HealthConfig {
        flood_window_ms: 60 * S,
        flood_limit: 2,
        stale_after_ms: 100 * S,
        ..HealthConfig::default()
    };
    let placed = |mut a: Alert, site: &str| {
        a.labels = vec![("site".into(), site.into()), ("line".into(), "l".into())];
        a
    };
    // North floods in its first minute (d0, d1, d2 on three workers), and
    // its alarms resolve; south has one alarm, stale at 105 s.
    let alerts = vec![
        placed(fire("hot", "d0", S), "north"),
        placed(fire("hot", "d1", 2 * S), "north"),
        placed(fire("hot", "d3", 5 * S), "south"),
        placed(fire("hot", "d2", 7 * S), "north"),
        placed(resolve("hot", "d0", 30 * S), "north"),
        placed(resolve("hot", "d1", 30 * S), "north"),
        placed(resolve("hot", "d2", 30 * S), "north"),
    ];
    let want = vec![
        (
            7 * S,
            "north/l".to_owned(),
            Health::FloodStarted { start: 0 },
        ),
        (
            105 * S,
            "south/l".to_owned(),
            Health::Stale {
                rule: "hot".into(),
                device: "d3".into(),
                sensor: "temp".into(),
                since: 5 * S,
            },
        ),
        (
            120 * S,
            "north/l".to_owned(),
            Health::Flood {
                start: 0,
                end: 60 * S,
                activations: 3,
                peak: 3,
            },
        ),
    ];
    // The input ends: all time passes, and the hour is summarized.
    let top = |device: &str| TopAlarm {
        rule: "hot".into(),
        device: device.into(),
        sensor: "temp".into(),
        activations: 1,
    };
    let rate = |activations: u64, top| Health::Rate {
        hour_start: 0,
        activations,
        average: activations as f64 / 60.0,
        peak: activations,
        chattering: 0,
        top,
    };
    let mut want = want;
    want.push((
        3_600 * S,
        "north/l".into(),
        rate(3, vec![top("d0"), top("d1"), top("d2")]),
    ));
    want.push((3_600 * S, "south/l".into(), rate(1, vec![top("d3")])));
    for workers in [1, 3] {
        let got: Vec<_> = operator(&alerts, &config, workers, 200 * S)
            .into_iter()
            .map(|e| (e.event_time, e.area, e.health))
            .collect();
        assert_eq!(got, want, "{workers} workers");
    }
}

#[test]
fn an_alarm_whose_device_moved_to_another_area_is_never_stale_in_the_old_one() {
    use crate::rules::{Device, Direction, Registry, Rule, RuleSet};
    let config = HealthConfig {
        stale_after_ms: 100 * S,
        ..HealthConfig::default()
    };
    let at = |site: &str| {
        let mut registry = Registry::default();
        registry.devices.insert(
            "d1".into(),
            Device {
                fields: vec![("site".into(), site.into()), ("line".into(), "l".into())],
                limits: Vec::new(),
            },
        );
        RuleSet::new(vec![Rule::new("hot", "temp", Direction::Above, 90.0)]).with_devices(registry)
    };
    let mut alert = fire("hot", "d1", 10 * S);
    alert.labels = vec![("site".into(), "north".into()), ("line".into(), "l".into())];
    assert_eq!(
        config.area_of(&alert),
        config.area_in(&at("north"), "hot", "d1")
    );
    let mut area = AreaHealth::default();
    let mut out = Vec::new();
    area.apply(&alert, &config, "north/l", &mut out);
    // Unmoved, it stays; moved south (where its resolve will go), it goes.
    let moved = at("south");
    area.forget(|rule, device, _| config.area_in(&at("north"), rule, device) != "north/l");
    area.fire_until(50 * S, &config, "north/l", &mut out);
    area.forget(|rule, device, _| config.area_in(&moved, rule, device) != "north/l");
    area.fire_until(400 * S, &config, "north/l", &mut out);
    assert!(
        out.iter()
            .all(|e| !matches!(e.health, Health::Stale { .. })),
        "{out:?}"
    );
    // Without the move it would have been stale at 110 s.
    let mut kept = AreaHealth::default();
    let mut out = Vec::new();
    kept.apply(&alert, &config, "north/l", &mut out);
    kept.forget(|rule, device, _| config.area_in(&at("north"), rule, device) != "north/l");
    kept.fire_until(400 * S, &config, "north/l", &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
}
