//! `weir record` and `weir import`: making recordings of a topic, or of
//! what users already captured (kcat's JSON envelopes, JSON lines).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use weir_operators::kafka::{client_config, KafkaSourceConfig};
use weir_operators::recording::{RecordRef, Recorder};
use weir_operators::storage::Location;

/// Where a recording of a partition starts or ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// The oldest record (as a start) or the end seen when recording starts
    /// (as an end).
    Edge,
    /// An offset (an end is exclusive).
    Offset(i64),
    /// The first record at or after this Kafka timestamp (ms).
    Time(i64),
}

impl std::str::FromStr for Position {
    type Err = String;
    /// `earliest`, `end`, an offset, or an RFC 3339 time.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "earliest" | "end" | "latest" => Ok(Position::Edge),
            _ => match text.parse::<i64>() {
                Ok(offset) if offset >= 0 => Ok(Position::Offset(offset)),
                Ok(_) => Err("an offset cannot be negative".into()),
                Err(_) => chrono::DateTime::parse_from_rfc3339(text)
                    .map(|t| Position::Time(t.timestamp_millis()))
                    .map_err(|_| {
                        format!("`{text}` is neither an offset nor an RFC 3339 time (like 2026-11-23T08:00:00Z)")
                    }),
            },
        }
    }
}

/// What to record.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Partitions to record (all when empty).
    pub partitions: Vec<i32>,
    /// Where each partition starts, unless the recording already holds some
    /// of it (then it continues after the last recorded offset).
    pub from: Position,
    /// Where each partition ends.
    pub to: Position,
    /// Show a progress bar.
    pub progress: bool,
}

/// What a recording session did.
#[derive(Clone, Debug, Default)]
pub struct RecordReport {
    /// Records recorded by this session.
    pub records: u64,
    /// Partitions recorded.
    pub partitions: usize,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// Stopped by Ctrl-C before the end: run again to continue.
    pub interrupted: bool,
}

/// How often a long recording makes what it has durable.
const SEAL_EVERY: Duration = Duration::from_secs(10);

/// How long to wait for Kafka's metadata and offsets.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Records `source`'s topic into `dir`: each chosen partition from
/// `options.from` (or after what `dir` already holds) to `options.to`.
/// Ctrl-C stops it cleanly; recording again continues.
pub fn record(
    source: &KafkaSourceConfig,
    dir: &Path,
    options: &RecordOptions,
) -> anyhow::Result<RecordReport> {
    let started = Instant::now();
    let topic = &source.topic;
    let location = Location::from_flag(dir).map_err(anyhow::Error::msg)?;
    let mut recorder = Recorder::open_at(&location, topic)?;
    let consumer = record_consumer(source)?;
    let partitions = chosen_partitions(&consumer, source, &options.partitions)?;
    let mut ranges = partition_ranges(&consumer, topic, &partitions, options, &recorder)?;
    let total: i64 = ranges.values().map(|(s, e)| e - s).sum();
    let bar = progress_bar(options.progress, total as u64);
    let mut report = RecordReport {
        partitions: ranges.len(),
        ..RecordReport::default()
    };
    if ranges.is_empty() {
        bar.finish_and_clear();
        report.elapsed = started.elapsed();
        return Ok(report);
    }
    assign_starts(&consumer, topic, &ranges)?;
    consume(
        &consumer,
        topic,
        &mut recorder,
        &mut ranges,
        &bar,
        &mut report,
    )?;
    recorder.seal()?;
    bar.finish_and_clear();
    report.elapsed = started.elapsed();
    Ok(report)
}

/// A consumer of `source`'s brokers that commits nothing, for recording.
fn record_consumer(source: &KafkaSourceConfig) -> anyhow::Result<BaseConsumer> {
    client_config(&source.brokers, &source.properties)
        .set("group.id", "weir-record")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.queue.backoff.ms", "20")
        .create()
        .with_context(|| format!("cannot create a Kafka consumer for {}", source.brokers))
}

/// The partitions of `source`'s topic to record: those `wanted` (all when
/// empty); an error if the topic or a wanted partition does not exist.
fn chosen_partitions(
    consumer: &BaseConsumer,
    source: &KafkaSourceConfig,
    wanted: &[i32],
) -> anyhow::Result<Vec<i32>> {
    let topic = &source.topic;
    let metadata = consumer
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .with_context(|| {
            format!(
                "cannot read the metadata of `{topic}` from {}",
                source.brokers
            )
        })?;
    let mut partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        bail!("topic `{topic}` does not exist on {}", source.brokers);
    }
    if !wanted.is_empty() {
        if let Some(p) = wanted.iter().find(|p| !partitions.contains(p)) {
            bail!(
                "topic `{topic}` has no partition {p} (it has {})",
                partitions.len()
            );
        }
        partitions.retain(|p| wanted.contains(p));
    }
    Ok(partitions)
}

/// The first offset at or after Kafka timestamp `ms` in each partition
/// (`None` where there is none).
fn offsets_at_time(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    ms: i64,
) -> anyhow::Result<BTreeMap<i32, Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Offset(ms))?;
    }
    let found = consumer.offsets_for_times(tpl, KAFKA_TIMEOUT)?;
    Ok(found
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.partition(), Some(o)),
            _ => (e.partition(), None),
        })
        .collect())
}

/// Where each partition starts and ends, as (start, exclusive end): from
/// `options`, the partition's watermarks and what `recorder` already
/// holds. Partitions with nothing to record are left out.
fn partition_ranges(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    options: &RecordOptions,
    recorder: &Recorder,
) -> anyhow::Result<BTreeMap<i32, (i64, i64)>> {
    let from_time = match options.from {
        Position::Time(ms) => Some(offsets_at_time(consumer, topic, partitions, ms)?),
        _ => None,
    };
    let to_time = match options.to {
        Position::Time(ms) => Some(offsets_at_time(consumer, topic, partitions, ms)?),
        _ => None,
    };
    let mut ranges: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for &p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, KAFKA_TIMEOUT)
            .with_context(|| format!("cannot read the offsets of `{topic}` partition {p}"))?;
        let start = match (&options.from, &from_time) {
            (Position::Offset(o), _) => (*o).max(low),
            (Position::Time(_), Some(t)) => t.get(&p).copied().flatten().unwrap_or(high),
            _ => low,
        };
        let end = match (&options.to, &to_time) {
            (Position::Offset(o), _) => (*o).min(high),
            (Position::Time(_), Some(t)) => t.get(&p).copied().flatten().unwrap_or(high),
            _ => high,
        };
        let start = recorder.recorded_end(p).map_or(start, |e| e.max(start));
        if start < end {
            ranges.insert(p, (start, end));
        }
    }
    Ok(ranges)
}

/// Assigns the consumer each partition of `ranges` from its start.
fn assign_starts(
    consumer: &BaseConsumer,
    topic: &str,
    ranges: &BTreeMap<i32, (i64, i64)>,
) -> anyhow::Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (&p, &(start, _)) in ranges {
        tpl.add_partition_offset(topic, p, Offset::Offset(start))?;
    }
    consumer.assign(&tpl)?;
    Ok(())
}

/// The consume loop: pushes each record into `recorder` until every
/// partition of `ranges` reaches its end or Ctrl-C stops it, sealing every
/// [`SEAL_EVERY`] and counting into `report` and `bar`.
fn consume(
    consumer: &BaseConsumer,
    topic: &str,
    recorder: &mut Recorder,
    ranges: &mut BTreeMap<i32, (i64, i64)>,
    bar: &indicatif::ProgressBar,
    report: &mut RecordReport,
) -> anyhow::Result<()> {
    let stop = crate::runtime::stop_signal()?;
    let mut last_seal = Instant::now();
    let mut headers: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    while !ranges.is_empty() {
        if stop.load(Ordering::Relaxed) {
            eprintln!("Stopping: sealing what was recorded (signal again to exit at once).");
            report.interrupted = true;
            break;
        }
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            drop_passed_ends(consumer, topic, ranges)?;
            continue;
        };
        let message = message.with_context(|| format!("cannot read `{topic}`"))?;
        let p = message.partition();
        let Some(&(_, end)) = ranges.get(&p) else {
            continue;
        };
        if message.offset() >= end {
            ranges.remove(&p);
            continue;
        }
        copy_headers(&message, &mut headers);
        let recorded = recorder.push(&RecordRef {
            partition: p,
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key(),
            value: message.payload().unwrap_or(&[]),
            headers: &headers,
        })?;
        report.records += u64::from(recorded);
        bar.inc(1);
        if message.offset() + 1 >= end {
            ranges.remove(&p);
        }
        if last_seal.elapsed() >= SEAL_EVERY {
            recorder.seal()?;
            last_seal = Instant::now();
        }
    }
    Ok(())
}

/// With nothing to read: a partition whose position passed its end (the
/// last offsets held no record) is done, so drops it from `ranges`.
fn drop_passed_ends(
    consumer: &BaseConsumer,
    topic: &str,
    ranges: &mut BTreeMap<i32, (i64, i64)>,
) -> anyhow::Result<()> {
    let positions = consumer.position()?;
    ranges.retain(|&p, (_, end)| {
        positions
            .find_partition(topic, p)
            .and_then(|e| match e.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            })
            .is_none_or(|pos| pos < *end)
    });
    Ok(())
}

/// Replaces `headers` with the message's headers.
fn copy_headers(message: &impl Message, headers: &mut Vec<(String, Option<Vec<u8>>)>) {
    headers.clear();
    if let Some(h) = message.headers() {
        headers.extend(
            h.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec))),
        );
    }
}

fn progress_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "[{elapsed}] {bar:30} {pos}/{len} records, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// What an import reads, one JSON document per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    /// Envelopes if the first line is one, payloads otherwise.
    Auto,
    /// Envelopes: `kcat -C -J` output, or objects with `partition`, `offset`,
    /// `timestamp` (or `ts`), `key`, `value` (or `payload`) and `headers`.
    Envelope,
    /// Each line is a record's value, in partition 0 at offset = line number.
    Lines,
}

/// Imports JSON lines from `input` into the recording of `topic` in `dir`.
/// Records of a partition must come in increasing offset order; those
/// already in the recording are skipped. Returns the records imported.
pub fn import(
    input: &mut dyn BufRead,
    name: &str,
    dir: &Path,
    topic: &str,
    format: ImportFormat,
) -> anyhow::Result<u64> {
    let location = Location::from_flag(dir).map_err(anyhow::Error::msg)?;
    let mut recorder = Recorder::open_at(&location, topic)?;
    let mut format = format;
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    let mut imported = 0;
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let at = || format!("{name}:{number}");
        if format == ImportFormat::Auto {
            format = match serde_json::from_str::<serde_json::Value>(text) {
                Ok(doc) if is_envelope(&doc) => ImportFormat::Envelope,
                _ => ImportFormat::Lines,
            };
        }
        let envelope = match format {
            ImportFormat::Envelope => {
                let doc: serde_json::Value = serde_json::from_str(text)
                    .with_context(|| format!("{}: not a JSON envelope", at()))?;
                Envelope::parse(&doc).with_context(at)?
            }
            _ => Envelope {
                partition: 0,
                offset: number as i64 - 1,
                timestamp: None,
                key: None,
                value: text.as_bytes().to_vec(),
                headers: Vec::new(),
            },
        };
        if let Some(&prev) = last.get(&envelope.partition) {
            if envelope.offset <= prev {
                bail!(
                    "{}: offset {} of partition {} comes after offset {prev}; records of a partition must be in increasing offset order",
                    at(),
                    envelope.offset,
                    envelope.partition
                );
            }
        }
        last.insert(envelope.partition, envelope.offset);
        imported += u64::from(recorder.push(&RecordRef {
            partition: envelope.partition,
            offset: envelope.offset,
            timestamp: envelope.timestamp,
            key: envelope.key.as_deref(),
            value: &envelope.value,
            headers: &envelope.headers,
        })?);
    }
    recorder.seal()?;
    Ok(imported)
}

fn is_envelope(doc: &serde_json::Value) -> bool {
    doc.get("partition").is_some_and(|p| p.is_i64())
        && doc.get("offset").is_some_and(|o| o.is_i64())
        && (doc.get("payload").is_some() || doc.get("value").is_some())
}

/// One imported record.
struct Envelope {
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Envelope {
    /// Reads kcat's `-J` envelope (`partition`, `offset`, `ts`, `key`,
    /// `payload`, `headers` as a flat name/value list), or the same with
    /// `timestamp`, `value` and `headers` as an object. A value that is not a
    /// string is taken as the JSON document itself.
    fn parse(doc: &serde_json::Value) -> anyhow::Result<Self> {
        let int = |name: &str| doc.get(name).and_then(serde_json::Value::as_i64);
        let partition = int("partition").context("the envelope has no integer `partition`")?;
        let offset = int("offset").context("the envelope has no integer `offset`")?;
        let bytes = |v: &serde_json::Value| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.as_bytes().to_vec()),
            other => Some(other.to_string().into_bytes()),
        };
        let value = doc
            .get("payload")
            .or_else(|| doc.get("value"))
            .and_then(bytes)
            .unwrap_or_default();
        let headers = match doc.get("headers") {
            Some(serde_json::Value::Array(flat)) => flat
                .chunks(2)
                .map(|kv| {
                    (
                        kv[0].as_str().unwrap_or_default().to_owned(),
                        kv.get(1).and_then(bytes),
                    )
                })
                .collect(),
            Some(serde_json::Value::Object(map)) => {
                map.iter().map(|(k, v)| (k.clone(), bytes(v))).collect()
            }
            _ => Vec::new(),
        };
        Ok(Envelope {
            partition: i32::try_from(partition).context("`partition` is out of range")?,
            offset,
            timestamp: int("timestamp").or_else(|| int("ts")).filter(|t| *t >= 0),
            key: doc.get("key").and_then(bytes),
            value,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_operators::recording::Recording;

    fn values(dir: &Path) -> Vec<(i32, i64, Option<i64>, String)> {
        let recording = Recording::open(dir).unwrap();
        let mut out = Vec::new();
        for &p in recording.segments.keys() {
            let mut reader = recording.reader(p, 0);
            while reader
                .read(100, |r| {
                    out.push((
                        r.partition,
                        r.offset,
                        r.timestamp,
                        String::from_utf8(r.value.to_vec()).unwrap(),
                    ))
                })
                .unwrap()
                > 0
            {}
        }
        out
    }

    #[test]
    fn kcat_envelopes_keep_partition_offset_timestamp_and_payload() {
        let dir = tempfile::tempdir().unwrap();
        let input = concat!(
            r#"{"topic":"readings","partition":1,"offset":7,"tstype":"create","ts":1700000000000,"broker":0,"headers":["h","v"],"key":"d1","payload":"{\"device_id\":\"d1\"}"}"#,
            "\n",
            r#"{"topic":"readings","partition":0,"offset":3,"tstype":"create","ts":1700000000001,"broker":0,"key":null,"payload":"x"}"#,
            "\n",
        );
        let n = import(
            &mut input.as_bytes(),
            "in.json",
            dir.path(),
            "readings",
            ImportFormat::Auto,
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            values(dir.path()),
            vec![
                (0, 3, Some(1_700_000_000_001), "x".to_owned()),
                (
                    1,
                    7,
                    Some(1_700_000_000_000),
                    r#"{"device_id":"d1"}"#.to_owned()
                ),
            ]
        );
    }

    #[test]
    fn plain_lines_number_offsets_and_an_envelope_may_hold_a_document() {
        let dir = tempfile::tempdir().unwrap();
        let plain = "{\"a\":1}\n\n{\"a\":2}\n";
        import(
            &mut plain.as_bytes(),
            "p",
            dir.path(),
            "t",
            ImportFormat::Auto,
        )
        .unwrap();
        assert_eq!(
            values(dir.path()),
            vec![
                (0, 0, None, "{\"a\":1}".into()),
                (0, 2, None, "{\"a\":2}".into())
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let wrapped = r#"{"partition":2,"offset":5,"timestamp":9,"value":{"a":1}}"#;
        import(
            &mut wrapped.as_bytes(),
            "w",
            dir.path(),
            "t",
            ImportFormat::Auto,
        )
        .unwrap();
        assert_eq!(
            values(dir.path()),
            vec![(2, 5, Some(9), "{\"a\":1}".into())]
        );
    }

    #[test]
    fn offsets_out_of_order_are_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let input = "{\"partition\":0,\"offset\":5,\"value\":\"a\"}\n{\"partition\":0,\"offset\":4,\"value\":\"b\"}\n";
        let err = import(
            &mut input.as_bytes(),
            "in.json",
            dir.path(),
            "t",
            ImportFormat::Auto,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("in.json:2: offset 4 of partition 0"),
            "{err}"
        );
    }
}
