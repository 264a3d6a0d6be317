//! Control events on the ledger, by hand: acknowledge, shelve (and its
//! end), unshelve, out of service and back, in event-time order with the
//! alert events.

use super::ledger::{Entry, Ledger};
use crate::record::{Alert, AlertState, ControlAction, ControlEvent};

fn event(device: &str, state: AlertState, at: u64) -> Alert {
    Alert::event("hot", device, "temp", state, at)
}

fn control(action: ControlAction, device: &str, at: u64, until: Option<u64>) -> ControlEvent {
    ControlEvent {
        event_time: at,
        action,
        rule: "hot".into(),
        device: device.into(),
        sensor: "temp".into(),
        user: "ana".into(),
        reason: "test".into(),
        until,
        partition: 0,
        offset: at as i64,
    }
}

/// The alert events a ledger sent: (device, state, time, shelved, acked
/// by, acked at).
type Seen = (String, &'static str, u64, bool, Option<String>, Option<u64>);

fn alerts(out: &mut Vec<Entry>) -> Vec<Seen> {
    out.drain(..)
        .filter_map(|e| match e {
            Entry::Alert(a) => Some((
                a.device.to_string(),
                a.state.as_str(),
                a.event_time,
                a.shelved,
                a.acked_by,
                a.acked_at,
            )),
            Entry::Change(_) => None,
        })
        .collect()
}

fn seen(device: &str, state: &'static str, at: u64, shelved: bool, acked: Option<u64>) -> Seen {
    let by = acked.map(|_| "ana".to_owned());
    (device.into(), state, at, shelved, by, acked)
}

#[test]
fn an_acknowledgement_rides_on_the_alarms_later_events_until_it_resolves() {
    let mut ledger = Ledger::default();
    ledger.push([
        event("d1", AlertState::Firing, 1_000),
        event("d1", AlertState::Escalated, 3_000),
        event("d1", AlertState::Resolved, 4_000),
        event("d1", AlertState::Firing, 5_000),
    ]);
    ledger.push_control(control(ControlAction::Ack, "d1", 2_000, None));
    // An acknowledgement of an alarm that is not active changes nothing.
    ledger.push_control(control(ControlAction::Ack, "d9", 2_000, None));
    let mut out = Vec::new();
    ledger.advance(Some(4_500), &mut out);
    assert_eq!(ledger.snapshot().active, vec![]);
    assert_eq!(
        alerts(&mut out),
        vec![
            seen("d1", "firing", 1_000, false, None),
            seen("d1", "escalated", 3_000, false, Some(2_000)),
            seen("d1", "resolved", 4_000, false, Some(2_000)),
        ]
    );
    ledger.advance(None, &mut out);
    // A new activation starts unacknowledged.
    assert_eq!(
        alerts(&mut out),
        vec![seen("d1", "firing", 5_000, false, None)]
    );
    let active = ledger.snapshot().active;
    assert_eq!(
        (active[0].acked_by.clone(), active[0].shelved),
        (None, false)
    );
}

#[test]
fn a_shelved_alarm_is_marked_until_its_shelve_ends_and_comes_back_if_still_active() {
    let mut ledger = Ledger::default();
    ledger.push([
        event("d1", AlertState::Firing, 1_000),
        event("d1", AlertState::Resolved, 3_000),
        event("d1", AlertState::Firing, 4_000),
    ]);
    ledger.push_control(control(ControlAction::Shelve, "d1", 2_000, Some(10_000)));
    let mut out = Vec::new();
    ledger.advance(Some(9_000), &mut out);
    assert_eq!(
        alerts(&mut out),
        vec![
            seen("d1", "firing", 1_000, false, None),
            // Shelved while active: receivers end it.
            seen("d1", "shelved", 2_000, true, None),
            seen("d1", "resolved", 3_000, true, None),
            seen("d1", "firing", 4_000, true, None),
        ]
    );
    assert!(ledger.snapshot().active[0].shelved);
    // The shelve ends at 10 s, with the alarm still active.
    assert_eq!(ledger.earliest(false), Some(10_000));
    ledger.advance(Some(10_001), &mut out);
    assert_eq!(
        alerts(&mut out),
        vec![seen("d1", "unshelved", 10_000, false, None)]
    );
    assert!(!ledger.snapshot().active[0].shelved);
    assert!(ledger.snapshot().shelves.is_empty());
}

#[test]
fn an_unshelve_ends_a_shelve_early_and_a_shelve_past_the_input_never_ends() {
    let mut ledger = Ledger::default();
    ledger.push_control(control(ControlAction::Shelve, "d1", 1_000, Some(1_000_000)));
    ledger.push_control(control(ControlAction::Shelve, "d2", 1_000, Some(1_000_000)));
    ledger.push_control(control(ControlAction::Unshelve, "d1", 3_000, None));
    ledger.push([
        event("d1", AlertState::Firing, 2_000),
        event("d2", AlertState::Firing, 2_000),
    ]);
    let mut out = Vec::new();
    ledger.advance(None, &mut out);
    assert_eq!(
        alerts(&mut out),
        vec![
            // Shelved before it fired: no notice, its events are marked.
            seen("d1", "firing", 2_000, true, None),
            seen("d2", "firing", 2_000, true, None),
            seen("d1", "unshelved", 3_000, false, None),
        ]
    );
    // d2's shelve ends after the input's end: it never ends, and holds
    // nothing back.
    assert_eq!(ledger.earliest(true), None);
    assert_eq!(ledger.snapshot().shelves.len(), 1);
}

#[test]
fn devices_out_of_service_are_shelved_until_back_in_service() {
    let mut ledger = Ledger::default();
    ledger.push([
        event("d1", AlertState::Firing, 1_000),
        event("e1", AlertState::Firing, 1_000),
        event("d2", AlertState::Firing, 3_000),
    ]);
    ledger.push_control(control(ControlAction::OutOfService, "d*", 2_000, None));
    ledger.push_control(control(ControlAction::InService, "d*", 4_000, None));
    let mut out = Vec::new();
    ledger.advance(None, &mut out);
    assert_eq!(
        alerts(&mut out),
        vec![
            seen("d1", "firing", 1_000, false, None),
            seen("e1", "firing", 1_000, false, None),
            seen("d1", "shelved", 2_000, true, None),
            seen("d2", "firing", 3_000, true, None),
            seen("d1", "unshelved", 4_000, false, None),
            seen("d2", "unshelved", 4_000, false, None),
        ]
    );
}

#[test]
fn a_worker_applies_control_events_to_its_own_alarms_only_and_restores_them() {
    // Control events reach every worker; this one keeps d1's alarms only.
    let mut ledger = Ledger::owning(|k| k.1 == "d1");
    ledger.push([event("d1", AlertState::Firing, 1_000)]);
    ledger.push_control(control(ControlAction::Shelve, "d1", 2_000, Some(9_000)));
    ledger.push_control(control(ControlAction::Shelve, "d2", 2_000, Some(9_000)));
    ledger.push_control(control(ControlAction::OutOfService, "e*", 2_000, None));
    ledger.push_control(control(ControlAction::Ack, "d1", 2_500, None));
    let mut out = Vec::new();
    ledger.advance(Some(3_000), &mut out);
    assert_eq!(
        alerts(&mut out),
        vec![
            seen("d1", "firing", 1_000, false, None),
            seen("d1", "shelved", 2_000, true, None),
        ]
    );
    let part = ledger.snapshot();
    assert_eq!(part.shelves.len(), 1);
    assert_eq!(part.out_of_service.len(), 1);
    // Restored at 3 s: the shelve still ends at 9 s, the ack stays.
    let mut restored = Ledger::restore(vec![part], 3_000, |k| k.1 == "d1", |_| false);
    restored.push([event("d1", AlertState::Resolved, 5_000)]);
    restored.advance(Some(9_001), &mut out);
    assert_eq!(
        alerts(&mut out),
        vec![seen("d1", "resolved", 5_000, true, Some(2_500))]
    );
    assert!(restored.snapshot().shelves.is_empty());
}

/// Worked by hand: with two groups out of service, putting one back
/// unshelves its devices' alarms and no others, and the alarm's next event
/// is no longer marked (whether a device is covered is remembered only
/// until the list changes).
#[test]
fn putting_one_group_back_in_service_unshelves_its_devices_only() {
    let mut ledger = Ledger::default();
    ledger.push([
        event("d1", AlertState::Firing, 1_000),
        event("e1", AlertState::Firing, 1_000),
        event("d1", AlertState::Resolved, 5_000),
    ]);
    ledger.push_control(control(ControlAction::OutOfService, "d*", 2_000, None));
    ledger.push_control(control(ControlAction::OutOfService, "e*", 2_500, None));
    ledger.push_control(control(ControlAction::InService, "d*", 4_000, None));
    let mut out = Vec::new();
    ledger.advance(None, &mut out);
    assert_eq!(
        alerts(&mut out),
        vec![
            seen("d1", "firing", 1_000, false, None),
            seen("e1", "firing", 1_000, false, None),
            seen("d1", "shelved", 2_000, true, None),
            seen("e1", "shelved", 2_500, true, None),
            seen("d1", "unshelved", 4_000, false, None),
            seen("d1", "resolved", 5_000, false, None),
        ]
    );
}

/// Worked by hand: a shelve replaced by a shorter one ends when the new
/// one says; the end the replaced one had does not end a later shelve.
#[test]
fn a_replaced_shelve_ends_when_its_replacement_says() {
    let mut ledger = Ledger::default();
    ledger.push([
        event("d1", AlertState::Firing, 1_000),
        event("d1", AlertState::Resolved, 10_000),
    ]);
    ledger.push_control(control(ControlAction::Shelve, "d1", 2_000, Some(9_000)));
    ledger.push_control(control(ControlAction::Shelve, "d1", 3_000, Some(5_000)));
    ledger.push_control(control(ControlAction::Shelve, "d1", 6_000, Some(20_000)));
    let mut out = Vec::new();
    ledger.advance(None, &mut out);
    assert_eq!(
        alerts(&mut out),
        vec![
            seen("d1", "firing", 1_000, false, None),
            seen("d1", "shelved", 2_000, true, None),
            seen("d1", "unshelved", 5_000, false, None),
            seen("d1", "shelved", 6_000, true, None),
            seen("d1", "resolved", 10_000, true, None),
        ]
    );
}
