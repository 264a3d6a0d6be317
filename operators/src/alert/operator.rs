//! The `evaluate_alerts` operator: routes observations by key, applies them
//! once the frontier has passed them, and takes part in checkpoints; and
//! [`alerts`], which wires it with the windows every rule needs.

use std::sync::Arc;

use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Capability, Concatenate};
use timely::dataflow::Stream;

use super::rule::PROGRESS_BUCKET_MS;
use super::wiring::Wiring;
use super::{Alert, AlertEvaluator, AlertPart, AlertState, Observation, RuleKind, RuleSet};
use crate::checkpoint::Marker;
use crate::metrics::{AlertCounts, GaugeShare, Metrics};
use crate::reading::{Reading, SensorKey};
use crate::run::{least_frontier, Barrier, Env};
use crate::window_aggregate::Windows;
use crate::WindowAggregateOp;

/// Evaluates alert rules on a stream of readings or window aggregates.
pub trait EvaluateAlerts<'scope> {
    /// Applies every rule that selects an observation's (device, sensor) and
    /// looks at its kind (readings, or windows of the rule's size), and emits
    /// `firing` and `resolved` events.
    ///
    /// Observations are exchanged by (device, sensor), so one worker owns each
    /// key's state. They are applied in (event time, partition, offset) order
    /// once the input frontier has passed them; a `for` duration fires when
    /// the frontier passes the moment it is reached. Each alert travels at its
    /// own event time, so a downstream operator can order alerts by event time
    /// once its frontier passes them. Alerts depend only on the input.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use timely::dataflow::operators::{Capture, ToStream};
    /// use timely::dataflow::operators::capture::Event;
    /// use weir_operators::alert::{AlertState, Direction, EvaluateAlerts, Rule, RuleSet};
    /// use weir_operators::{Env, Reading};
    ///
    /// let rule = Rule { consecutive: 2, ..Rule::new("hot", "temp", Direction::Above, 90.0) };
    /// let rules = Arc::new(RuleSet::new(vec![rule]));
    /// let readings = vec![
    ///     Reading::new("d1", "temp", 1_000, 95.0, 0, 0),
    ///     Reading::new("d1", "temp", 2_000, 96.0, 0, 1), // second breach in a row: fires
    ///     Reading::new("d1", "temp", 3_000, 80.0, 0, 2), // back under: resolves
    /// ];
    /// let captured = timely::example(move |scope| {
    ///     let env = Env::standalone(scope);
    ///     readings.to_stream(scope).evaluate_alerts(rules, &env).capture()
    /// });
    /// let alerts: Vec<_> = captured.iter().flat_map(|e| match e { Event::Messages(_, d) => d, Event::Progress(_) => vec![] }).collect();
    /// let states: Vec<_> = alerts.iter().map(|a| (a.state, a.event_time)).collect();
    /// assert_eq!(states, vec![(AlertState::Firing, 2_000), (AlertState::Resolved, 3_000)]);
    /// assert_eq!(alerts[0].values, vec![95.0, 96.0]);
    /// ```
    fn evaluate_alerts(
        self,
        rules: Arc<RuleSet>,
        env: &Env<'scope>,
    ) -> Stream<'scope, u64, Vec<Alert>>;
}

impl<'scope> EvaluateAlerts<'scope> for Stream<'scope, u64, Vec<Reading>> {
    fn evaluate_alerts(
        self,
        rules: Arc<RuleSet>,
        env: &Env<'scope>,
    ) -> Stream<'scope, u64, Vec<Alert>> {
        evaluate(self, None, rules, env)
    }
}

impl<'scope> EvaluateAlerts<'scope> for Windows<'scope> {
    fn evaluate_alerts(
        self,
        rules: Arc<RuleSet>,
        env: &Env<'scope>,
    ) -> Stream<'scope, u64, Vec<Alert>> {
        evaluate(self.stream, Some(self.size_ms), rules, env)
    }
}

/// Evaluates `rules` on `stream`, of windows of `window_ms` if given.
fn evaluate<'scope, O>(
    stream: Stream<'scope, u64, Vec<O>>,
    window_ms: Option<u64>,
    rules: Arc<RuleSet>,
    env: &Env<'scope>,
) -> Stream<'scope, u64, Vec<Alert>>
where
    O: Observation + timely::ExchangeData,
{
    Wiring::note_rules(
        env,
        rules.rules.iter().map(|r| {
            let fed = O::fed(&r.input, window_ms);
            (r.name.clone(), r.input.to_string(), fed)
        }),
    );
    // With one worker, routing by key is a no-op: skip the exchange.
    if stream.scope().peers() == 1 {
        alert_operator(stream, Pipeline, rules, window_ms, env)
    } else if rules.has_combination_rules() {
        // A combination rule looks at several sensors of a device.
        let pact = Exchange::new(|o: &O| SensorKey::route_hash(o.device(), ""));
        alert_operator(stream, pact, rules, window_ms, env)
    } else {
        alert_operator(
            stream,
            Exchange::new(|o: &O| o.route()),
            rules,
            window_ms,
            env,
        )
    }
}

/// The alert events of every rule of `rules`: rules on readings evaluated
/// on `readings`, window rules on windows of their size. Windows of a size
/// are taken from `windows` (streams built by
/// [`window_aggregate`](crate::WindowAggregateOp::window_aggregate)) where
/// one has that size, and aggregated from `readings` otherwise. Pipeline
/// files and Rust pipelines both wire their rules with it, so no rule goes
/// without what it looks at.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use timely::dataflow::operators::{Capture, ToStream};
/// use timely::dataflow::operators::capture::Event;
/// use weir_operators::alert::{alerts, Direction, Rule, RuleInput, RuleSet, Stat};
/// use weir_operators::{Env, Reading, WindowAggregateOp};
///
/// // A rule on readings, and one on the maximum of 10-second windows.
/// let spike = Rule::new("spike", "temp", Direction::Above, 90.0);
/// let warm = Rule {
///     input: RuleInput::Window { size_ms: 10_000, stat: Stat::Max },
///     ..Rule::new("warm", "temp", Direction::Above, 80.0)
/// };
/// let rules = Arc::new(RuleSet::new(vec![spike, warm]));
/// let readings = vec![
///     Reading::new("d1", "temp", 1_000, 85.0, 0, 0),
///     Reading::new("d1", "temp", 2_000, 95.0, 0, 1),
/// ];
/// let captured = timely::example(move |scope| {
///     let env = Env::standalone(scope);
///     let readings = readings.to_stream(scope);
///     // One-minute windows go to Parquet elsewhere; no rule looks at them.
///     let minutes = readings.clone().window_aggregate(60_000, &env);
///     alerts(&readings, &[minutes], rules, &env).capture()
/// });
/// let mut fired: Vec<_> = captured.iter().flat_map(|e| match e { Event::Messages(_, d) => d.clone(), Event::Progress(_) => vec![] })
///     .map(|a| (a.rule, a.event_time)).collect();
/// fired.sort();
/// assert_eq!(fired, vec![("spike".into(), 2_000), ("warm".into(), 10_000)]);
/// ```
pub fn alerts<'scope>(
    readings: &Stream<'scope, u64, Vec<Reading>>,
    windows: &[Windows<'scope>],
    rules: Arc<RuleSet>,
    env: &Env<'scope>,
) -> Stream<'scope, u64, Vec<Alert>> {
    let mut alerts = Vec::new();
    if rules.has_reading_rules() {
        alerts.push(readings.clone().evaluate_alerts(rules.clone(), env));
    }
    for size in rules.window_sizes() {
        let sized = windows
            .iter()
            .find(|w| w.size_ms == size)
            .cloned()
            .unwrap_or_else(|| readings.clone().window_aggregate(size, env));
        alerts.push(sized.evaluate_alerts(rules.clone(), env));
    }
    readings.scope().concatenate(alerts)
}

fn alert_operator<'scope, O, P>(
    stream: Stream<'scope, u64, Vec<O>>,
    pact: P,
    rules: Arc<RuleSet>,
    window_ms: Option<u64>,
    env: &Env<'scope>,
) -> Stream<'scope, u64, Vec<Alert>>
where
    O: Observation + timely::ExchangeData,
    P: ParallelizationContract<u64, Vec<O>>,
{
    let run = env.run().clone();
    let (participant, markers) = env.participant("alerts");
    let silences = rules.has_silence_rules();
    // The side input: checkpoint markers, and with silence rules how far
    // every source partition has come.
    let side = {
        use timely::dataflow::operators::vec::Map;
        use timely::dataflow::operators::Concat;
        let markers = markers.map(Side::Marker);
        if silences {
            // A silence deadline is noticed at the end of a bucket: after a
            // restart, the sources re-read that bucket.
            env.keep_history(PROGRESS_BUCKET_MS);
            markers.concat(env.progress().map(|(p, b)| Side::Progress(p, b)))
        } else {
            markers
        }
    };
    let by_device = rules.has_combination_rules();
    Wiring::note_evaluator(
        env,
        Box::new(move |rule| {
            O::fed(&rule.input, window_ms)
                && (silences || !matches!(rule.kind, RuleKind::Silence { .. }))
                && (by_device || rule.combination.is_none())
        }),
        &rules,
    );
    let changed = env.changed_since_restore(&rules.fingerprints());
    let mut evaluator = AlertEvaluator::new(rules).with_version(run.control.rules_version());
    if let Some(frontier) = env.restored_frontier() {
        let (worker, peers) = (stream.scope().index() as u64, stream.scope().peers() as u64);
        let mut parts = env.restored::<AlertPart>(participant.op());
        // A rule changed since the checkpoint starts afresh.
        for (_, states) in parts.iter_mut().flat_map(|p| p.keys.iter_mut()) {
            states.retain(|(name, _)| !changed.contains(name));
        }
        evaluator.restore(parts, frontier, |k| {
            let sensor = if by_device { "" } else { k.sensor.as_str() };
            SensorKey::route_hash(&k.device, sensor) % peers == worker
        });
    }
    stream.binary_frontier(side, pact, Pipeline, "EvaluateAlerts", move |cap, _info| {
        // Silences fire without an observation: hold a capability from the start.
        let mut held: Option<Capability<u64>> = silences.then_some(cap);
        let mut alerts = Vec::new();
        let mut barrier = Barrier::default();
        let mut states = GaugeShare::new(&run.metrics.rule_states);
        let mut bytes = GaugeShare::new(&run.metrics.rule_state_bytes);
        let mut keys_seen = 0;
        move |(input, frontier), (marker_input, marker_frontier), output| {
            input.for_each_stamp(|cap, data| {
                let mut any = false;
                for batch in data {
                    for obs in batch.drain(..) {
                        any |= evaluator.push(obs);
                    }
                }
                if any
                    && held
                        .as_ref()
                        .is_none_or(|h| cap.least().is_some_and(|t| t < h.time()))
                {
                    held = cap.retain_least(output.output_index());
                }
            });
            marker_input.for_each(|_, side| {
                let mut markers = Vec::new();
                for s in side.drain(..) {
                    match s {
                        Side::Marker(m) => markers.push(m),
                        Side::Progress(p, b) => evaluator.note_progress(p, b),
                    }
                }
                barrier.receive(&mut markers, &run);
            });
            let frontier = least_frontier(
                frontier.frontier().first().copied(),
                marker_frontier.frontier().first().copied(),
            );
            let stopping = barrier.stopping(&run);
            // Each checkpoint sees the state exactly at its frontier.
            let mut steps = Vec::new();
            while let Some(marker) = barrier.next_due(frontier) {
                steps.push((marker.until(), Some(marker)));
            }
            steps.push((frontier, None));
            for (until, marker) in steps {
                if stopping && marker.is_none() {
                    // A stop: only checkpoints move the state on. What the
                    // pending observations would lead to depends on input
                    // not read yet.
                    if frontier.is_none() {
                        evaluator.discard_pending();
                        held = None;
                    }
                    continue;
                }
                let suppressed = evaluator.advance_to(until, &mut alerts);
                Metrics::add(&run.metrics.alerts_suppressed, suppressed);
                if let Some(cap) = held.as_mut() {
                    emit_alerts(&mut alerts, cap, output, &run.metrics);
                }
                if let Some(mut marker) = marker {
                    // A reload: what comes from here on is judged by the new
                    // rules, and the checkpoint holds their states.
                    match marker.reload.take().map(|r| RuleSet::from_reload(&r)) {
                        Some(Ok(rules)) => {
                            let version = marker.rules_version;
                            evaluator.replace_rules(Arc::new(rules), version, |r| {
                                O::fed(&r.input, window_ms)
                            });
                            run.control.set_rules_version(version);
                        }
                        Some(Err(e)) => run.control.add_error(e),
                        None => {}
                    }
                    participant.write(&marker, &evaluator.snapshot_view(), Vec::new());
                }
            }
            // The walk over every key is done at most once a second,
            // unless keys were added.
            if states.due() || frontier.is_none() || evaluator.key_count() != keys_seen {
                keys_seen = evaluator.key_count();
                let (n, b) = evaluator.footprint();
                states.set(n);
                bytes.set(b);
            }
            if let Some(cap) = held.as_mut() {
                match evaluator.earliest_pending(frontier) {
                    Some(t) => cap.downgrade(&t.max(*cap.time())),
                    None => held = None,
                }
            }
        }
    })
}

/// Sends alerts, each at its event time, and counts them by rule.
fn emit_alerts(
    alerts: &mut Vec<Alert>,
    cap: &Capability<u64>,
    output: &mut timely::dataflow::operators::generic::OutputBuilderSession<
        '_,
        u64,
        timely::container::CapacityContainerBuilder<Vec<Alert>>,
    >,
    metrics: &Metrics,
) {
    let mut counts: Vec<(String, String, AlertCounts)> = Vec::new();
    metrics.note_alerts(alerts.iter().map(|a| crate::metrics::AlertEvent {
        rule: a.rule.as_str().into(),
        severity: a.severity.as_str().into(),
        device: a.device.clone(),
        sensor: a.sensor.clone(),
        state: a.state.as_str(),
        event_time: a.event_time,
        value: a.value,
    }));
    for alert in alerts.iter() {
        let c = match counts
            .iter_mut()
            .find(|(r, s, _)| *r == alert.rule && *s == alert.severity)
        {
            Some((_, _, c)) => c,
            None => {
                counts.push((
                    alert.rule.clone(),
                    alert.severity.clone(),
                    AlertCounts::default(),
                ));
                &mut counts.last_mut().expect("just pushed").2
            }
        };
        match alert.state {
            AlertState::Firing => c.firing += 1,
            AlertState::Escalated => c.escalated += 1,
            AlertState::Resolved => c.resolved += 1,
            AlertState::Chattering => c.chattering += 1,
        }
    }
    // One message per event time, sized to its alerts: a session per alert
    // would send each in a buffer of its own of the output's full capacity.
    alerts.sort_by_key(|a| a.event_time);
    let mut batch = Vec::new();
    let mut sorted = alerts.drain(..).peekable();
    while let Some(first) = sorted.next() {
        let time = first.event_time;
        batch.push(first);
        batch.extend(std::iter::from_fn(|| {
            sorted.next_if(|a| a.event_time == time)
        }));
        let at = cap.delayed(&time.max(*cap.time()));
        output.session(&at).give_container(&mut batch);
        batch.clear();
    }
    for (rule, severity, c) in counts {
        metrics.add_alerts(&rule, &severity, c);
    }
}

/// What the alert operator's side input carries.
#[derive(Clone, Debug)]
enum Side {
    /// A checkpoint marker.
    Marker(Marker),
    /// A source partition delivered readings in this bucket of event time.
    Progress(i32, u64),
}
