//! The sinks: where records leave a pipeline. A sink knows records, not
//! rules.
//!
//! Records (alerts, dead letters) go to a destination that is an
//! append-only log: a Kafka topic ([`kafka`]), or a JSON-lines file. The
//! logic shared by both lives here: ordering by the frontier, checkpoints,
//! and not writing again after a restart what was written before it. Window
//! aggregates go to Parquet files ([`parquet`]).

mod jsonl;
pub mod kafka;
pub mod parquet;

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::Stream;

use crate::metrics::Metrics;
use crate::record::{Alert, DeadLetter, Record};
use crate::run::Run;
use crate::run::{checkpointed_sink, Env, SinkEvent};

pub use jsonl::JsonLines;

/// A record a sink can write: its identity ([`Record`]), and how sinks
/// name and count it.
pub trait SinkRecord: Record + timely::ExchangeData {
    /// The file a replay writes these records to, under its output directory.
    const FILE_NAME: &'static str;
    /// Counts a delivered batch of these records.
    fn count_delivered(metrics: &Metrics, n: u64);
    /// The histogram of the time from the arrival of the record a record
    /// comes from to its acknowledgement, if it has one.
    fn latency(_metrics: &Metrics) -> Option<&Histogram> {
        None
    }
}

impl SinkRecord for Alert {
    const FILE_NAME: &'static str = "alerts.jsonl";
    fn count_delivered(metrics: &Metrics, n: u64) {
        metrics.alerts_delivered.inc_by(n);
    }
    fn latency(metrics: &Metrics) -> Option<&Histogram> {
        Some(&metrics.alert_latency)
    }
}

impl SinkRecord for crate::record::HealthEvent {
    const FILE_NAME: &'static str = "alarm_health.jsonl";
    fn count_delivered(metrics: &Metrics, n: u64) {
        metrics.health_delivered.inc_by(n);
    }
}

impl SinkRecord for DeadLetter {
    const FILE_NAME: &'static str = "dead_letters.jsonl";
    fn count_delivered(metrics: &Metrics, n: u64) {
        metrics.dead_letters_delivered.inc_by(n);
    }
}

/// An append-only log records are written to.
pub(crate) trait Destination: 'static {
    /// The topic or file, for messages.
    fn name(&self) -> String;
    /// Writes one record. With `arrived` (when the input it comes from
    /// arrived), the destination observes the time to its acknowledgement
    /// in its latency histogram.
    fn send(
        &mut self,
        key: &[u8],
        payload: &[u8],
        id: &str,
        arrived: Option<Instant>,
    ) -> Result<(), String>;
    /// Waits until everything sent is durable.
    fn flush(&mut self) -> Result<(), String>;
    /// How deliveries stand.
    fn progress(&mut self) -> Progress;
    /// The end of each of its partitions, once flushed.
    fn ends(&mut self) -> Result<Vec<(i32, i64)>, String>;
    /// The ids of the records after the given ends, up to the current end
    /// (a partition missing from `from`: all of it).
    fn read_back(&mut self, from: &BTreeMap<i32, i64>) -> Result<HashSet<String>, String>;
}

/// How a destination's deliveries stand.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Records durably written so far.
    pub delivered: u64,
    /// Records that could not be delivered so far.
    pub failed: u64,
    /// Records sent and not acknowledged yet.
    pub in_flight: u64,
    /// The first failure not reported yet.
    pub error: Option<String>,
}

/// A sink's part of a checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkPart {
    /// End of every partition of the destination once everything before
    /// the checkpoint was delivered: a restart reads back what lies after
    /// them and does not deliver it again.
    pub ends: Vec<(i32, i64)>,
    /// Per source partition, the highest source offset of a record
    /// delivered (records with an origin only): a restart re-reads its
    /// source from earlier and must not deliver those again.
    pub origins: Vec<(String, i32, i64)>,
}

/// What a restarted sink must not deliver again.
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    /// Ids read back from the destination after the checkpoint's ends.
    ids: HashSet<String>,
    /// Highest delivered source offset per source partition.
    origins: BTreeMap<(String, i32), i64>,
}

impl Delivered {
    /// What the restored `parts` say was delivered, with the ids read back
    /// after their ends (the least over the workers that recorded them).
    fn restore(parts: &[SinkPart], dest: &mut dyn Destination) -> Result<Self, String> {
        let mut from: BTreeMap<i32, i64> = BTreeMap::new();
        let mut delivered = Delivered::default();
        for part in parts {
            for &(p, end) in &part.ends {
                let e = from.entry(p).or_insert(end);
                *e = (*e).min(end);
            }
            for (t, p, offset) in &part.origins {
                let max = delivered.origins.entry((t.clone(), *p)).or_insert(*offset);
                *max = (*max).max(*offset);
            }
        }
        delivered.ids = dest.read_back(&from)?;
        tracing::info!(destination = %dest.name(), records = delivered.ids.len(), "Read back what was delivered after the checkpoint");
        Ok(delivered)
    }

    /// Whether `record` was delivered before the restart (forgetting its id:
    /// each is delivered once).
    fn contains<R: SinkRecord>(&mut self, record: &R) -> bool {
        if let Some((topic, partition, offset)) = record.origin() {
            if self
                .origins
                .get(&(topic.to_owned(), partition))
                .is_some_and(|&max| offset <= max)
            {
                return true;
            }
        }
        !self.ids.is_empty() && self.ids.remove(&record.id())
    }

    fn note<R: SinkRecord>(&mut self, record: &R) {
        if let Some((topic, partition, offset)) = record.origin() {
            let max = self
                .origins
                .entry((topic.to_owned(), partition))
                .or_insert(offset);
            *max = (*max).max(offset);
        }
    }
}

/// Writes `stream` to `dest`: routed by [`SinkRecord::route`] (or all to
/// worker 0 when `one_writer`), written once the input frontier passes their
/// time, sorted by event time and then by identity, so the records of one key
/// reach the destination in the same order on every run. Failures are
/// recorded in the metrics as pipeline errors. When the input ends, the
/// destination is flushed before the operator finishes.
///
/// With checkpoints, each checkpoint flushes the destination and records its
/// ends; after a restart the sink reads back the ids written after them and
/// delivers none of those again, so every record is written once.
pub(crate) fn write_records<'scope, R: SinkRecord, D: Destination>(
    stream: Stream<'scope, u64, Vec<R>>,
    open: impl FnOnce(bool, Option<Histogram>) -> Result<D, String>,
    one_writer: bool,
    env: &Env<'scope>,
) {
    let run = env.run().clone();
    let (participant, markers) = env.participant("kafka");
    let parts = env.restored::<SinkPart>(participant.op());
    // Only the worker that writes a single destination opens it.
    let writes = !one_writer || env.scope().index() == 0;
    let range = crate::connect::RunIo::of(env).range;
    let mut writer = if writes {
        match open(!parts.is_empty(), R::latency(&run.metrics).cloned()).and_then(|mut dest| {
            let delivered = if parts.is_empty() {
                Delivered::default()
            } else {
                Delivered::restore(&parts, &mut dest)?
            };
            Ok(Writer::new(dest, delivered))
        }) {
            Ok(writer) => Some(writer),
            Err(e) => {
                run.control.add_error(e);
                None
            }
        }
    } else {
        None
    };
    let stream = env.register_sink(stream);
    checkpointed_sink(
        stream,
        Exchange::new(move |r: &R| if one_writer { 0 } else { r.route() }),
        "RecordSink",
        markers,
        run.clone(),
        move |event| {
            let Some(w) = writer.as_mut() else {
                match event {
                    SinkEvent::Data(_, data) => data.clear(),
                    SinkEvent::Marker(m) if writes => {
                        participant.fail(&m, "the sink's destination could not be opened".into())
                    }
                    SinkEvent::Marker(m) => participant.write(&m, &SinkPart::default(), Vec::new()),
                    SinkEvent::Frontier(_) => {}
                }
                return;
            };
            match event {
                SinkEvent::Data(time, data) => w.pending.extend(
                    data.drain(..)
                        .filter(|r| range.is_none_or(|(from, to)| r.in_range(from, to)))
                        .map(|r| (time, r)),
                ),
                SinkEvent::Marker(marker) => {
                    w.send_before(marker.until(), &run);
                    match w.checkpoint() {
                        Ok(part) => participant.write(&marker, &part, Vec::new()),
                        Err(e) => participant.fail(&marker, e),
                    }
                }
                SinkEvent::Frontier(frontier) => {
                    w.send_before(frontier, &run);
                    if frontier.is_none() && !w.finished {
                        w.finished = true;
                        if let Err(e) = w.dest.flush() {
                            run.control.add_error(e);
                        }
                    }
                }
            }
            w.count_delivered(&run);
        },
    );
}

/// One worker's destination and what it holds.
struct Writer<R, D> {
    dest: D,
    /// Records not written yet, with their timely time.
    pending: Vec<(u64, R)>,
    /// What was delivered before a restart, and since.
    delivered: Delivered,
    /// Records delivered before the restart, skipped.
    skipped: u64,
    /// What [`Writer::count_delivered`] counted so far.
    counted: Progress,
    finished: bool,
}

impl<R: SinkRecord, D: Destination> Writer<R, D> {
    fn new(dest: D, delivered: Delivered) -> Self {
        Writer {
            dest,
            pending: Vec::new(),
            delivered,
            skipped: 0,
            counted: Progress::default(),
            finished: false,
        }
    }

    /// Sends every pending record of a time before `until` (all for `None`),
    /// by event time and identity, except those delivered before a restart.
    fn send_before(&mut self, until: Option<u64>, run: &Run) {
        let (mut ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(t, _)| until.is_none_or(|u| *t < u));
        self.pending = rest;
        ready.sort_by(|(_, a), (_, b)| a.time().cmp(&b.time()).then_with(|| a.cmp_order(b)));
        for (_, record) in ready {
            if self.delivered.contains(&record) {
                self.skipped += 1;
                continue;
            }
            self.delivered.note(&record);
            let arrived = R::latency(&run.metrics).and_then(|_| run.metrics.arrival(record.time()));
            if let Err(e) = self
                .dest
                .send(&record.key(), &record.payload(), &record.id(), arrived)
            {
                run.control.add_error(e);
                break;
            }
        }
    }

    /// The part of a checkpoint once everything before it was sent: waits
    /// until it is durable, then records the destination's ends.
    fn checkpoint(&mut self) -> Result<SinkPart, String> {
        self.dest.flush()?;
        let ends = self.dest.ends()?;
        let origins = self
            .delivered
            .origins
            .iter()
            .map(|((topic, partition), offset)| (topic.clone(), *partition, *offset))
            .collect();
        Ok(SinkPart { ends, origins })
    }

    /// Counts deliveries, failures and records in flight, and reports the
    /// first failure once.
    fn count_delivered(&mut self, run: &Run) {
        let now = self.dest.progress();
        let m = &run.metrics;
        R::count_delivered(m, now.delivered - self.counted.delivered);
        m.delivery_errors.inc_by(now.failed - self.counted.failed);
        m.producer_queue
            .inc_by(now.in_flight as i64 - self.counted.in_flight as i64);
        self.counted = Progress { error: None, ..now };
        if let Some(error) = now.error {
            run.control.add_error(error);
        }
        if self.finished && self.skipped > 0 {
            tracing::info!(
                destination = %self.dest.name(),
                skipped = self.skipped,
                "Records delivered before the restart were not delivered again"
            );
            self.skipped = 0;
        }
    }
}

/// Writes records to a JSON-lines file.
pub trait JsonLinesSink<'scope> {
    /// Writes every record's JSON document to `path`, one per line, in event
    /// time order, from worker 0 (the others send it their records). A run
    /// without a restored checkpoint starts the file anew; with checkpoints,
    /// each record is written once across restarts.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use weir_operators::output::JsonLinesSink;
    /// use weir_operators::{DeadLetter, DeadLetterReason, Env};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("dead_letters.jsonl");
    /// let letter = |offset| DeadLetter {
    ///     reason: DeadLetterReason::MalformedJson,
    ///     detail: "not JSON".into(),
    ///     topic: "readings".into(),
    ///     partition: 0,
    ///     offset,
    ///     key: None,
    ///     payload: b"{oops".to_vec(),
    /// };
    /// let file = path.clone();
    /// timely::example(move |scope| {
    ///     let env = Env::standalone(scope);
    ///     vec![letter(9), letter(3)].to_stream(scope).jsonl_sink(file, &env);
    /// });
    /// let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
    ///     .unwrap()
    ///     .lines()
    ///     .map(|l| serde_json::from_str(l).unwrap())
    ///     .collect();
    /// // In order of origin, whatever the order of arrival.
    /// let ids: Vec<_> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    /// assert_eq!(ids, ["readings/0/3", "readings/0/9"]);
    /// ```
    fn jsonl_sink(self, path: std::path::PathBuf, env: &Env<'scope>);
}

impl<'scope, R: SinkRecord> JsonLinesSink<'scope> for Stream<'scope, u64, Vec<R>> {
    fn jsonl_sink(self, path: std::path::PathBuf, env: &Env<'scope>) {
        write_records(
            self,
            |restoring, latency| JsonLines::open(path, restoring).map(|f| f.with_latency(latency)),
            true,
            env,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dead_letter::DeadLetterReason;

    fn letter(partition: i32, offset: i64) -> DeadLetter {
        DeadLetter {
            reason: DeadLetterReason::MalformedJson,
            detail: String::new(),
            topic: "readings".into(),
            partition,
            offset,
            key: None,
            payload: b"{".to_vec(),
        }
    }

    /// After a restart, a dead letter is not delivered again if its source
    /// offset is at or below the highest one delivered before the
    /// checkpoint, or if its id was read back from the topic; each id read
    /// back suppresses one record only.
    #[test]
    fn a_restarted_sink_skips_what_was_delivered() {
        let mut delivered = Delivered::default();
        delivered.origins.insert(("readings".into(), 0), 10);
        delivered.ids.insert(letter(0, 12).id());
        let skipped: Vec<(i32, i64)> = [(0, 3), (0, 10), (0, 11), (0, 12), (0, 12), (1, 5)]
            .into_iter()
            .filter(|&(p, o)| delivered.contains(&letter(p, o)))
            .collect();
        assert_eq!(skipped, vec![(0, 3), (0, 10), (0, 12)]);
    }

    /// What a sink notes as delivered goes into the next checkpoint.
    #[test]
    fn noted_origins_keep_the_highest_offset() {
        let mut delivered = Delivered::default();
        for offset in [4, 9, 7] {
            delivered.note(&letter(2, offset));
        }
        assert_eq!(delivered.origins.get(&("readings".into(), 2)), Some(&9));
    }
}
