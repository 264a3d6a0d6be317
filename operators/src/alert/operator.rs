//! The `evaluate_alerts` operator: routes observations by key, applies them
//! once the frontier has passed them, and takes part in checkpoints; and
//! [`alerts`], which wires it with the windows every rule needs.

use std::sync::Arc;

use timely::dataflow::channels::pact::{Exchange, ParallelizationContract, Pipeline};
use timely::dataflow::operators::Concatenate;
use timely::dataflow::Stream;

use super::wiring::Wiring;
use super::{Alert, AlertEvaluator, AlertPart, AlertState, Observation, RuleKind, RuleSet};
use crate::checkpoint::Marker;
use crate::metrics::{AlertCounts, GaugeShare, Metrics};
use crate::reading::PROGRESS_BUCKET_MS;
use crate::reading::{Reading, SensorKey};
use crate::record::Stats;
use crate::run::{stateful, Env, Participant, Run, Side, StatefulLogic};
use crate::window_aggregate::{WindowKind, Windows};
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
    /// let rule = Rule::new("hot", "temp", Direction::Above, 90.0).consecutive(2);
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
        evaluate(self, None, rules, env, Consumer::Any)
    }
}

impl<'scope> EvaluateAlerts<'scope> for Windows<'scope> {
    fn evaluate_alerts(
        self,
        rules: Arc<RuleSet>,
        env: &Env<'scope>,
    ) -> Stream<'scope, u64, Vec<Alert>> {
        evaluate_windows(self, rules, env, Consumer::Any)
    }
}

/// Evaluates `rules` on `windows`, for `to`.
fn evaluate_windows<'scope>(
    windows: Windows<'scope>,
    rules: Arc<RuleSet>,
    env: &Env<'scope>,
    to: Consumer,
) -> Stream<'scope, u64, Vec<Alert>> {
    let size_ms = windows.tumbling();
    // Rules judge a window once, at its first emission: corrections by
    // late readings neither fire nor resolve an alert.
    let stream = match windows.allowed_lateness_ms {
        0 => windows.stream,
        _ => {
            use timely::dataflow::operators::vec::Filter;
            windows.stream.filter(|w| w.revision == 0)
        }
    };
    let observed = size_ms.map(|size| (size, windows.stats));
    evaluate(stream, observed, rules, env, to)
}

/// Evaluates `rules` on `stream`, of windows of a size and with statistics
/// if given, for `to`.
fn evaluate<'scope, O>(
    stream: Stream<'scope, u64, Vec<O>>,
    windows: Option<(u64, Stats)>,
    rules: Arc<RuleSet>,
    env: &Env<'scope>,
    to: Consumer,
) -> Stream<'scope, u64, Vec<Alert>>
where
    O: Observation + timely::ExchangeData,
{
    Wiring::note_rules(
        env,
        rules.rules.iter().map(|r| {
            let fed = O::fed(&r.input(), fed_by(&windows));
            (r.name.clone(), r.input().to_string(), fed)
        }),
    );
    // With one worker, routing by key is a no-op: skip the exchange.
    if stream.scope().peers() == 1 {
        alert_operator(stream, Pipeline, rules, windows, env, to)
    } else if rules.has_combination_rules() {
        // A combination rule looks at several sensors of a device.
        let pact = Exchange::new(|o: &O| SensorKey::route_hash(o.device(), ""));
        alert_operator(stream, pact, rules, windows, env, to)
    } else {
        alert_operator(
            stream,
            Exchange::new(|o: &O| o.route()),
            rules,
            windows,
            env,
            to,
        )
    }
}

/// The alert events of every rule of `rules`: rules on readings evaluated
/// on `readings`, window rules on tumbling windows of their size. Windows
/// of a size are taken from `windows` (streams built by
/// [`window_aggregate`](crate::WindowAggregateOp::window_aggregate)) where
/// one holds tumbling windows of that size with every statistic the rules
/// on them look at, and aggregated from `readings` with those statistics
/// otherwise (hopping windows feed no rule). Pipeline
/// files and Rust pipelines both wire their rules with it, so no rule goes
/// without what it looks at; it also keeps the run's alarm views
/// ([`crate::alarm`]) and publishes them to its metrics.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use timely::dataflow::operators::{Capture, ToStream};
/// use timely::dataflow::operators::capture::Event;
/// use weir_operators::alert::{alerts, Direction, Rule, RuleSet, Stat};
/// use weir_operators::{Env, Reading, WindowAggregateOp};
///
/// // A rule on readings, and one on the maximum of 10-second windows.
/// let spike = Rule::new("spike", "temp", Direction::Above, 90.0);
/// let warm = Rule::new("warm", "temp", Direction::Above, 80.0).window(10_000, Stat::Max);
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
        let readings = readings.clone();
        alerts.push(evaluate(
            readings,
            None,
            rules.clone(),
            env,
            Consumer::Ledger,
        ));
    }
    for size in rules.window_sizes() {
        let needed = rules.window_stats(size);
        let sized = windows
            .iter()
            .find(|w| w.tumbling() == Some(size) && w.stats.covers(&needed))
            .cloned()
            .unwrap_or_else(|| {
                let kind = WindowKind::Tumbling { size_ms: size };
                readings.clone().windows(kind.with_stats(needed), env)
            });
        alerts.push(evaluate_windows(
            sized,
            rules.clone(),
            env,
            Consumer::Ledger,
        ));
    }
    let alerts = readings.scope().concatenate(alerts);
    // The alarms active now, for the status page and `GET /api/alarms`;
    // the events as control events leave them.
    let views = crate::alarm::alarm_views(&alerts, &rules, env);
    let annotated = views.alerts.clone();
    views.publish(env);
    annotated
}

/// The size and statistics of observed windows, borrowed.
fn fed_by(windows: &Option<(u64, Stats)>) -> Option<(u64, &Stats)> {
    windows.as_ref().map(|(size, stats)| (*size, stats))
}

fn alert_operator<'scope, O, P>(
    stream: Stream<'scope, u64, Vec<O>>,
    pact: P,
    rules: Arc<RuleSet>,
    windows: Option<(u64, Stats)>,
    env: &Env<'scope>,
    to: Consumer,
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
            markers.concat(env.progress().map(Side::Other))
        } else {
            markers
        }
    };
    let by_device = rules.has_combination_rules();
    let judged = windows.clone();
    Wiring::note_evaluator(
        env,
        Box::new(move |rule| {
            O::fed(&rule.input(), fed_by(&judged))
                && (silences || !matches!(rule.kind, RuleKind::Silence { .. }))
                && (by_device || rule.combination().is_none())
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
    let logic = AlertLogic {
        states: GaugeShare::new(&run.metrics.rule_states),
        bytes: GaugeShare::new(&run.metrics.rule_state_bytes),
        keys_seen: 0,
        evaluator,
        participant,
        silences,
        windows,
        run: run.clone(),
        to,
    };
    stateful("EvaluateAlerts", stream, pact, side, run, logic)
}

/// The alert operator's logic: observations wait for the frontier, then
/// go through the rules' state machines in order.
struct AlertLogic<O: Observation> {
    evaluator: AlertEvaluator<O>,
    participant: Participant,
    run: Run,
    /// Whether some rule is a silence rule (it fires with no observation).
    silences: bool,
    /// The size and statistics of the windows observed, if they are windows.
    windows: Option<(u64, Stats)>,
    states: GaugeShare,
    bytes: GaugeShare,
    keys_seen: usize,
    /// Who reads the alert events.
    to: Consumer,
}

/// Who reads an evaluator's alert events, which decides the time they
/// travel at.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Consumer {
    /// Anyone, a sink among them: each event at its event time, where a
    /// sink places it in a checkpoint.
    Any,
    /// The alarm ledger of `alerts()`, which reads each event's own time:
    /// the events of one step travel together, as early as the operator
    /// may send them. One message per event time cost a tenth of the rate.
    Ledger,
}

impl<O: Observation + 'static> StatefulLogic<O, Alert> for AlertLogic<O> {
    type Side = (i32, u64);

    fn hold_from_start(&self) -> bool {
        // Silences fire without an observation.
        self.silences
    }

    fn take(&mut self, batch: &mut Vec<O>) -> bool {
        self.evaluator.push_all(batch)
    }

    fn side(&mut self, (partition, bucket): (i32, u64)) -> bool {
        self.evaluator.note_progress(partition, bucket);
        false
    }

    fn advance(&mut self, until: Option<u64>, out: &mut Vec<Alert>) {
        let before = out.len();
        let suppressed = self.evaluator.advance_to(until, out);
        self.run.metrics.alerts_suppressed.inc_by(suppressed);
        count_alerts(&out[before..], &self.run.metrics);
    }

    fn checkpoint(&mut self, mut marker: Marker) {
        // A reload: what comes from here on is judged by the new rules, and
        // the checkpoint holds their states.
        match marker.reload.take().map(|r| RuleSet::from_reload(&r)) {
            Some(Ok(rules)) => {
                let version = marker.rules_version;
                let windows = fed_by(&self.windows);
                self.evaluator
                    .replace_rules(Arc::new(rules), version, |r| O::fed(&r.input(), windows));
                self.run.control.set_rules_version(version);
            }
            Some(Err(e)) => self.run.control.add_error(e),
            None => {}
        }
        self.participant
            .write(&marker, &self.evaluator.snapshot_view(), Vec::new());
    }

    fn discard(&mut self) {
        self.evaluator.discard_pending();
    }

    fn earliest(&self, frontier: Option<u64>) -> Option<u64> {
        self.evaluator.earliest_pending(frontier)
    }

    fn time_of(&self, alert: &Alert) -> u64 {
        match self.to {
            Consumer::Any => alert.event_time,
            Consumer::Ledger => 0,
        }
    }

    fn report(&mut self, frontier: Option<u64>) {
        // The walk over every key is done at most once a second, unless
        // keys were added.
        if self.states.due() || frontier.is_none() || self.evaluator.key_count() != self.keys_seen {
            self.keys_seen = self.evaluator.key_count();
            let (n, b) = self.evaluator.footprint();
            self.states.set(n);
            self.bytes.set(b);
        }
    }
}

/// Counts alerts by rule, severity and state.
fn count_alerts(alerts: &[Alert], metrics: &Metrics) {
    let mut counts: Vec<(String, String, AlertCounts)> = Vec::new();
    // The feed keeps the latest events only: build those alone.
    let latest = alerts.len().saturating_sub(crate::metrics::RECENT_ALERTS);
    metrics.note_alerts(alerts[latest..].iter().map(|a| crate::metrics::AlertEvent {
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
            // Made by the alarm ledger, not by rules.
            AlertState::Shelved | AlertState::Unshelved => {}
        }
    }
    for (rule, severity, c) in counts {
        metrics.add_alerts(&rule, &severity, c);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use timely::dataflow::operators::capture::Event;
    use timely::dataflow::operators::{Capture, ToStream};

    use super::EvaluateAlerts;
    use crate::alert::{Direction, Rule, RuleSet};
    use crate::{Env, Reading};

    #[test]
    fn the_status_feed_holds_the_latest_alert_events_of_a_large_step() {
        let rules = Arc::new(RuleSet::new(vec![Rule::new(
            "hot",
            "temp",
            Direction::Above,
            90.0,
        )]));
        // 70 devices fire, each at its own time, in one step.
        let readings: Vec<Reading> = (0..70)
            .map(|i| Reading::new(&format!("d{i}"), "temp", 1_000 + i, 95.0, 0, i as i64))
            .collect();
        let (captured, run) = timely::example(move |scope| {
            let env = Env::standalone(scope);
            let alerts = readings.to_stream(scope).evaluate_alerts(rules, &env);
            (alerts.capture(), env.run().clone())
        });
        let fired: Vec<(String, u64)> = captured
            .iter()
            .flat_map(|event| match event {
                Event::Messages(_, alerts) => alerts,
                Event::Progress(_) => Vec::new(),
            })
            .map(|a| (a.device.to_string(), a.event_time))
            .collect();
        assert_eq!(fired.len(), 70);
        let recent: Vec<(String, u64)> = run
            .metrics
            .recent_alerts()
            .into_iter()
            .map(|e| (e.device.to_string(), e.event_time))
            .collect();
        assert_eq!(recent, fired[20..].to_vec(), "the latest 50, in order");
    }
}
