//! A stop must not turn into results. When a run is asked to stop, its
//! sources let go of their capabilities one after the other, so the
//! frontier an operator sees may jump past readings a source never read.
//! Windows and alerts must not take such a jump for progress: each case
//! below moves the frontier past a rule's deadline (or a window's end) with
//! and without a stop requested, and only the run without a stop may close
//! the window or fire the alert.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use timely::dataflow::operators::{Input, Inspect, Probe};
use timely::dataflow::{InputHandle, ProbeHandle};
use weir_operators::alert::{Direction, Rule, RuleSet};
use weir_operators::{Env, EvaluateAlerts, Reading, Run, WindowAggregateOp};

/// What came out of a run whose input holds one breaching reading at 1 s,
/// then moves its frontier to 2 s, then (after a stop request, when `stop`)
/// jumps to 200 s before it ends: (alert event times, window ends).
fn outputs_after_a_jump(stop: bool) -> (Vec<u64>, Vec<u64>) {
    timely::execute_directly(move |worker| {
        let run = Run::default();
        let alerts = Rc::new(RefCell::new(Vec::new()));
        let windows = Rc::new(RefCell::new(Vec::new()));
        let mut input = InputHandle::new();
        let probe = ProbeHandle::new();
        worker.dataflow(|scope| {
            let env = Env::new(scope, run.clone(), "stop", None);
            let readings = scope.input_from(&mut input);
            // Fires once the reading has breached for 10 s of event time.
            let rule = Rule::new("shaking", "vibration", Direction::Above, 7.5)
                .with(|m| m.for_ms = 10_000);
            let (a, w) = (alerts.clone(), windows.clone());
            readings
                .clone()
                .evaluate_alerts(Arc::new(RuleSet::new(vec![rule])), &env)
                .inspect(move |alert| a.borrow_mut().push(alert.event_time))
                .probe_with(&probe);
            readings
                .window_aggregate(60_000, &env)
                .stream
                .inspect(move |window| w.borrow_mut().push(window.window_end))
                .probe_with(&probe);
            env.finish();
        });
        input.send(Reading::new("press-1", "vibration", 1_000, 9.0, 0, 0));
        input.advance_to(2_000);
        worker.step_while(|| probe.less_than(&2_000));
        if stop {
            run.control.request_stop();
        }
        // What stopped sources letting go of their capabilities looks like.
        input.advance_to(200_000);
        for _ in 0..100 {
            worker.step();
        }
        drop(input);
        while worker.step() {}
        let out = (alerts.borrow().clone(), windows.borrow().clone());
        out
    })
}

#[test]
fn a_frontier_that_jumps_after_a_stop_fires_no_alert_and_closes_no_window() {
    // Without a stop, the jump is progress: the breach lasted 10 s and the
    // window [0, 60 s) is complete.
    assert_eq!(outputs_after_a_jump(false), (vec![11_000], vec![60_000]));
    // With a stop, nothing shows that the breach lasted or that the window
    // holds all its readings.
    assert_eq!(outputs_after_a_jump(true), (vec![], vec![]));
}
