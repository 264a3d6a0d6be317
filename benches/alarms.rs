//! The alarm ledger on its own: alert events of 10,000 alarms with control
//! events among them (70% acknowledgements, 15% shelves of a minute, 15%
//! unshelves; a group of devices out of service, or back, once in 1,000), applied in event-time order as the
//! ledger operator applies them, frontier by frontier.
//!
//! The alerts of a pipeline all pass through the ledger (`alerts()` wires
//! it), and every control event is applied on every worker. Printed: alert
//! and control events per second on one thread, best of several runs, and
//! what that costs per reading of `benches/workload.rs`, whose rule gives
//! one alert event per 13 readings.
//!
//! `cargo bench --bench alarms` (400,000 alert events and 40,000 control
//! events; `WEIR_BENCH_EVENTS` sets the number of alert events). Without
//! `--bench` (`cargo test --benches`) it runs on 20,000.

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use weir::operators::alarm::{Entry, Ledger};
use weir::operators::record::{Alert, AlertState, ControlAction, ControlEvent};

/// Alarms: (rule, device, sensor) keys.
const ALARMS: usize = 10_000;
/// Event time between two alert events (ms).
const STEP_MS: u64 = 10;
/// Alert events pushed between two frontier advances.
const BATCH: usize = 10_000;
/// How far the frontier trails the latest event pushed (ms).
const TRAIL_MS: u64 = 5_000;

fn device(i: usize) -> String {
    format!("d{:02}-{i:05}", i % 50)
}

/// The alert events and control events of the bench, in event-time order.
fn events(n: usize) -> (Vec<Alert>, Vec<ControlEvent>) {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut firing = vec![false; ALARMS];
    let mut alerts = Vec::with_capacity(n);
    let mut controls = Vec::with_capacity(n / 10);
    for i in 0..n {
        let at = i as u64 * STEP_MS;
        let k = rng.random_range(0..ALARMS);
        let state = if firing[k] {
            AlertState::Resolved
        } else {
            AlertState::Firing
        };
        firing[k] = !firing[k];
        alerts.push(Alert::event("hot", &device(k), "temp", state, at));
        if i % 10 == 0 {
            let k = rng.random_range(0..ALARMS);
            // Mostly acknowledgements; a group of devices goes out of
            // service (and another comes back) once in 1,000 control events.
            let group = format!("d{:02}-*", k % 50);
            let (action, glob, until) = match rng.random_range(0..1_000) {
                0 => (ControlAction::OutOfService, group, None),
                1 => (ControlAction::InService, group, None),
                2..=699 => (ControlAction::Ack, device(k), None),
                700..=849 => (ControlAction::Shelve, device(k), Some(at + 60_000)),
                _ => (ControlAction::Unshelve, device(k), None),
            };
            controls.push(ControlEvent {
                event_time: at,
                action,
                rule: "hot".into(),
                device: glob,
                sensor: "temp".into(),
                user: "bench".into(),
                reason: "bench".into(),
                until,
                partition: 0,
                offset: controls.len() as i64,
            });
        }
    }
    (alerts, controls)
}

/// Feeds the ledger as its operator does (the events moved in, as the
/// operator is handed them); returns the alert events it sent on.
fn run(alerts: Vec<Alert>, controls: Vec<ControlEvent>) -> usize {
    let mut ledger = Ledger::default();
    let mut out = Vec::new();
    let mut sent = 0;
    let mut controls = controls.into_iter().peekable();
    let mut alerts = alerts.into_iter().peekable();
    while alerts.peek().is_some() {
        let batch: Vec<Alert> = alerts.by_ref().take(BATCH).collect();
        let latest = batch.last().map_or(0, |a| a.event_time);
        ledger.push(batch);
        while let Some(control) = controls.next_if(|c| c.event_time <= latest) {
            ledger.push_control(control);
        }
        ledger.advance(Some(latest.saturating_sub(TRAIL_MS)), &mut out);
        sent += out.iter().filter(|e| matches!(e, Entry::Alert(_))).count();
        out.clear();
    }
    ledger.advance(None, &mut out);
    sent + out.iter().filter(|e| matches!(e, Entry::Alert(_))).count()
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let n = std::env::var("WEIR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20_000 } else { 400_000 });
    let runs = if quick { 1 } else { 5 };
    let (alerts, controls) = events(n);
    let mut best = Duration::MAX;
    let mut sent = 0;
    for _ in 0..runs {
        let (a, c) = (alerts.clone(), controls.clone());
        let start = Instant::now();
        sent = run(a, c);
        best = best.min(start.elapsed());
    }
    // Every alert event goes on (shelved ones marked so), with the notices
    // control events give (shelved, unshelved, out of service...).
    assert!(
        sent >= alerts.len(),
        "{sent} alert events out of {}",
        alerts.len()
    );
    let events = (alerts.len() + controls.len()) as f64;
    let rate = events / best.as_secs_f64();
    println!(
        "alarm ledger: {} alert events and {} control events on {ALARMS} alarms ({} events out, \
         notices included), best of {runs}: {:.0} events/s on one thread ({:.0} ns each); at the workload's one alert event per 13 \
         readings, {:.1} ns per reading",
        alerts.len(),
        controls.len(),
        sent,
        rate,
        1e9 / rate,
        1e9 / rate / 13.0,
    );
}
