//! Per-operator figures from timely's own logging: records in and out of
//! each operator, records it received from other workers, and the time
//! spent in it. They show which operator is slow and whether a key is
//! skewed (one worker's operator receiving most of the records), and go to
//! `/metrics` as the `weir_operator_*` families.
//!
//! Each worker aggregates its events and adds them to the run's metrics once
//! per batch of events that timely hands its logger.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};
use timely::worker::Worker;
use weir_operators::metrics::{Metrics, OperatorFigures};

/// What one worker knows of its dataflow's operators and channels.
#[derive(Default)]
struct Graph {
    /// Operator (name, address) by worker-unique id.
    operators: HashMap<usize, (String, String)>,
    /// Operator id by address (the path of scope indexes).
    by_addr: HashMap<Vec<usize>, usize>,
    /// A channel's (source address, target address), by channel id.
    channels: HashMap<usize, (Vec<usize>, Vec<usize>)>,
    /// When each running operator was scheduled.
    started: HashMap<usize, Duration>,
}

impl Graph {
    /// The id of the operator at `addr`, once it is known.
    fn operator(&self, addr: &[usize]) -> Option<usize> {
        self.by_addr.get(addr).copied()
    }

    /// Adds what `events` tell to `figures`, by operator id.
    fn apply(
        &mut self,
        worker: usize,
        events: &[(Duration, TimelyEvent)],
        figures: &mut HashMap<usize, OperatorFigures>,
    ) {
        for (time, event) in events {
            match event {
                TimelyEvent::Operates(op) => {
                    let addr = op
                        .addr
                        .iter()
                        .map(usize::to_string)
                        .collect::<Vec<_>>()
                        .join(".");
                    self.operators.insert(op.id, (op.name.clone(), addr));
                    self.by_addr.insert(op.addr.clone(), op.id);
                }
                TimelyEvent::Channels(ch) => {
                    let at = |index: usize| {
                        let mut addr = ch.scope_addr.clone();
                        // Index 0 is the enclosing scope itself.
                        if index > 0 {
                            addr.push(index);
                        }
                        addr
                    };
                    self.channels
                        .insert(ch.id, (at(ch.source.0), at(ch.target.0)));
                }
                TimelyEvent::Messages(m) => {
                    let Some((source, target)) = self.channels.get(&m.channel) else {
                        continue;
                    };
                    let n = u64::try_from(m.record_count).unwrap_or(0);
                    if m.is_send {
                        if let Some(op) = self.operator(source) {
                            figures.entry(op).or_default().records_out += n;
                        }
                    } else if let Some(op) = self.operator(target) {
                        let f = figures.entry(op).or_default();
                        f.records_in += n;
                        if m.source != worker {
                            f.records_exchanged += n;
                        }
                    }
                }
                TimelyEvent::Schedule(s) => match s.start_stop {
                    StartStop::Start => {
                        self.started.insert(s.id, *time);
                    }
                    StartStop::Stop => {
                        if let Some(start) = self.started.remove(&s.id) {
                            let busy = time.saturating_sub(start).as_secs_f64();
                            figures.entry(s.id).or_default().busy_seconds += busy;
                        }
                    }
                },
                _ => {}
            }
        }
    }
}

/// Collects the figures of `worker`'s operators into `metrics`. Call it
/// before building dataflows, so that their operators and channels are seen.
pub fn collect(worker: &mut Worker, metrics: Arc<Metrics>) {
    let index = worker.index();
    let mut graph = Graph::default();
    let mut figures: HashMap<usize, OperatorFigures> = HashMap::new();
    let Some(mut registry) = worker.log_register() else {
        return;
    };
    registry.insert::<TimelyEventBuilder, _>("timely", move |_time, data| {
        let Some(events) = data else { return };
        graph.apply(index, events, &mut figures);
        for (id, f) in figures.drain() {
            // Operators whose event is still to come are counted later: the
            // figures of regions (whole dataflows) would double count.
            if let Some((name, addr)) = graph.operators.get(&id) {
                if addr.contains('.') {
                    metrics.add_operator_figures(name, addr, f);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use timely::dataflow::channels::pact::Exchange;
    use timely::dataflow::operators::vec::Map;
    use timely::dataflow::operators::{Input, Operator, Probe};

    use super::*;

    /// Two workers: an input, an exchange by key onto a counting operator.
    /// Every record is received once by the counting operator, and the
    /// records keyed to the other worker cross workers.
    #[test]
    fn figures_count_every_record_into_the_exchanged_operator() {
        let metrics = Arc::new(Metrics::default());
        let m = metrics.clone();
        timely::execute(timely::Config::process(2), move |worker| {
            collect(worker, m.clone());
            let index = worker.index();
            let (mut input, probe) = worker.dataflow::<u64, _, _>(|scope| {
                let (input, stream) = scope.new_input::<Vec<u64>>();
                let probe = stream
                    .map(|x| x * 2)
                    .unary(Exchange::new(|x: &u64| *x / 2), "Counted", |_, _| {
                        |input, output| {
                            input.for_each(|cap, data| {
                                output.session(&cap).give_container(data);
                            });
                        }
                    })
                    .probe()
                    .0;
                (input, probe)
            });
            // Worker 0 sends 0..100, worker 1 sends 100..130.
            let range = if index == 0 { 0..100 } else { 100..130 };
            for x in range {
                input.send(x);
            }
            input.advance_to(1);
            while probe.less_than(&1) {
                worker.step();
            }
        })
        .unwrap();
        let by_name: BTreeMap<String, OperatorFigures> = metrics
            .operator_figures()
            .into_iter()
            .fold(BTreeMap::new(), |mut acc, ((name, _), f)| {
                let e: &mut OperatorFigures = acc.entry(name).or_default();
                e.records_in += f.records_in;
                e.records_out += f.records_out;
                e.records_exchanged += f.records_exchanged;
                e.busy_seconds += f.busy_seconds;
                acc
            });
        let counted = by_name["Counted"];
        assert_eq!(counted.records_in, 130, "{by_name:?}");
        assert_eq!(counted.records_out, 130, "{by_name:?}");
        // The key of a doubled value 2x is x: it goes to worker x % 2.
        let expected_crossing = (0..100u64).filter(|x| x % 2 == 1).count()
            + (100..130u64).filter(|x| x % 2 == 0).count();
        assert_eq!(counted.records_exchanged as usize, expected_crossing);
        assert_eq!(by_name["FlatMap"].records_in, 130, "{by_name:?}");
        assert!(counted.busy_seconds > 0.0, "{by_name:?}");
    }
}
