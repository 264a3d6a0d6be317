//! Polling and decoding on a thread of their own: a source's fetch thread
//! polls the consumer, decodes each record with the source's decoder, and
//! hands batches to the worker, so that librdkafka's polling and the
//! decoding overlap the dataflow's operators instead of taking turns with
//! them on the worker's thread. The worker keeps every decision (partition
//! ends, lateness, watermarks, resume marks, recording): the thread only
//! reads and decodes, in each partition's order.
//!
//! The thread also pauses and resumes partitions: for the worker
//! (watermark alignment, bounded ends), and on its own the moment a
//! partition's records run ahead of the frontier, since the worker's
//! decision comes batches later. Pausing and polling on one thread keep
//! librdkafka's position exact (a pause from another thread, in the middle
//! of a poll, can have a record delivered twice).

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::config::SourceContext;
use crate::decode::DecodeError;
use crate::recording::RecordRef;
use crate::source::Decode;

/// Batches in flight between the thread and the worker: with the batch the
/// worker is taking, at most this many more are read and decoded ahead, so
/// what a source holds beyond librdkafka's own queue stays bounded.
const IN_FLIGHT: usize = 2;

/// How long the thread waits for a record when it has none to hand over;
/// also how soon it notices that the source is gone, or that a partition
/// is released.
const WAIT: Duration = Duration::from_millis(50);

/// The partitions the worker holds back (watermark alignment) or has done
/// with (bounded ends): the fetch thread pauses them.
pub(super) type Held = Arc<Mutex<Vec<i32>>>;

/// Watermark alignment as the fetch thread applies it, record by record:
/// it pauses a partition once the partition's watermark is more than the
/// bound ahead of the readings' frontier, the worker's
/// [`Ingest::align`](crate::source::Ingest) condition for holding it back.
/// The worker's decision comes a batch later; partitions sparse in event
/// time would run far ahead meanwhile.
pub(super) struct Ahead {
    /// The readings' frontier the worker saw last; `u64::MAX` while there
    /// is none (nothing is ahead of it).
    pub(super) frontier: AtomicU64,
    /// Out-of-orderness bound plus alignment bound (ms): a partition whose
    /// latest event time is more than this past the frontier is ahead.
    pub(super) reach: u64,
    /// The alignment bound (ms).
    pub(super) drift: u64,
}

impl Ahead {
    /// Whether a partition whose latest event time is `latest` is ahead;
    /// one `held` back already is until it is no more than half the
    /// alignment bound ahead, as the worker releases it.
    fn ahead(&self, latest: u64, held: bool) -> bool {
        let frontier = self.frontier.load(Ordering::Relaxed);
        let reach = match held {
            true => self.reach - self.drift / 2,
            false => self.reach,
        };
        frontier != u64::MAX && latest > frontier.saturating_add(reach)
    }
}

/// The wake-up of the source operator, set once the source is ready.
pub(super) type Wake = Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>;

/// One record of a batch: where it came from, its bytes in the batch's
/// buffer, and what the decoder made of it.
struct Fetched<T> {
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    key: Option<Range<usize>>,
    value: Range<usize>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    decoded: Result<T, DecodeError>,
}

/// Records read and decoded together, and where the consumer stood once it
/// had nothing more to give.
pub(super) struct Batch<T> {
    /// Every record's key and payload, one after the other: one buffer per
    /// batch, not one per record. Kept for the dead letters and recordings
    /// that carry the original bytes.
    bytes: Vec<u8>,
    records: Vec<Fetched<T>>,
    /// The consumer's position in each partition when it next found
    /// nothing to read, after every record of this batch and the earlier
    /// ones: a bounded source's end may lie past its last record.
    pub(super) positions: Option<BTreeMap<i32, i64>>,
}

impl<T> Batch<T> {
    /// An empty batch, with room for `records` of about 100 bytes.
    fn new(records: usize) -> Self {
        let records = records.min(1_024);
        Batch {
            bytes: Vec::with_capacity(records * 100),
            records: Vec::with_capacity(records),
            positions: None,
        }
    }

    /// The number of records.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// Hands each record, with what it was decoded to, to `take`, in the
    /// order they were read.
    pub(super) fn drain(&mut self, mut take: impl FnMut(RecordRef<'_>, Result<T, DecodeError>)) {
        for f in self.records.drain(..) {
            let record = RecordRef {
                partition: f.partition,
                offset: f.offset,
                timestamp: f.timestamp,
                key: f.key.map(|k| &self.bytes[k]),
                value: &self.bytes[f.value],
                headers: &f.headers,
            };
            take(record, f.decoded);
        }
    }

    /// Takes what a poll returned: a record (1), or an error, logged (0).
    fn take<D: Decode<Item = T>>(
        &mut self,
        polled: KafkaResult<BorrowedMessage<'_>>,
        decoder: &D,
        topic: &str,
        headers: bool,
    ) -> usize {
        match polled {
            Ok(message) => {
                self.push(decoder, &message, headers);
                1
            }
            Err(e) => {
                tracing::warn!(error = %e, topic = %topic, "Kafka consumer error");
                0
            }
        }
    }

    /// Copies `message` in and decodes its payload with `decoder`.
    fn push<D: Decode<Item = T>>(
        &mut self,
        decoder: &D,
        message: &BorrowedMessage<'_>,
        headers: bool,
    ) {
        let mut copy = |bytes: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(bytes);
            start..self.bytes.len()
        };
        let key = message.key().map(&mut copy);
        let value = copy(message.payload().unwrap_or(&[]));
        let (partition, offset) = (message.partition(), message.offset());
        let timestamp = message.timestamp().to_millis();
        let decoded = decoder.decode(&self.bytes[value.clone()], timestamp, partition, offset);
        self.records.push(Fetched {
            partition,
            offset,
            timestamp,
            key,
            value,
            headers: if headers {
                record_headers(message)
            } else {
                Vec::new()
            },
            decoded,
        });
    }
}

/// A source's fetch thread, seen from the worker.
pub(super) struct Fetcher<T> {
    batches: Option<Receiver<Batch<T>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The thread ended while the source still read (said once).
    lost: std::cell::Cell<bool>,
}

/// What the fetch thread is given.
pub(super) struct FetchSetup<D> {
    pub(super) consumer: Arc<BaseConsumer<SourceContext>>,
    pub(super) decoder: D,
    pub(super) topic: String,
    pub(super) max_batch: usize,
    /// Whether records' headers are kept (a run that records).
    pub(super) headers: bool,
    /// Whether positions are reported (a bounded source).
    pub(super) positions: bool,
    pub(super) wake: Wake,
    /// The partitions not to read for now.
    pub(super) held: Held,
    /// With watermark alignment, when a partition runs ahead.
    pub(super) ahead: Option<Arc<Ahead>>,
}

impl<T: Send + 'static> Fetcher<T> {
    /// Starts the fetch thread of a source.
    pub(super) fn start<D: Decode<Item = T> + Clone + Send>(setup: FetchSetup<D>) -> Self {
        let (tx, rx) = sync_channel(IN_FLIGHT);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let name = format!("weir-fetch-{}", setup.topic);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || fetch(setup, &tx, &stopped))
            .map_err(|e| tracing::error!(error = %e, "Cannot start a source's fetch thread"))
            .ok();
        Fetcher {
            batches: Some(rx),
            stop,
            thread,
            lost: std::cell::Cell::new(false),
        }
    }

    /// The next batch read and decoded, if one is ready.
    pub(super) fn next(&self) -> Option<Batch<T>> {
        match self.batches.as_ref()?.try_recv() {
            Ok(batch) => Some(batch),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                if !self.lost.replace(true) {
                    tracing::error!(
                        "A Kafka source's fetch thread ended: its partitions are no longer read"
                    );
                }
                None
            }
        }
    }
}

impl<T> Drop for Fetcher<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // A thread waiting to hand over a batch gives up once nobody takes it.
        drop(self.batches.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The fetch thread: reads and decodes until the source is gone.
fn fetch<D: Decode + Clone>(
    setup: FetchSetup<D>,
    tx: &SyncSender<Batch<D::Item>>,
    stop: &AtomicBool,
) {
    let FetchSetup {
        consumer,
        decoder,
        topic,
        max_batch,
        headers,
        positions,
        wake,
        held,
        ahead,
    } = setup;
    let reader = Reader {
        decoder: &decoder,
        topic: &topic,
        headers,
    };
    let mut batch = Batch::new(max_batch);
    let mut reported: Option<BTreeMap<i32, i64>> = None;
    let mut paused: Vec<i32> = Vec::new();
    // Each partition's latest event time read.
    let mut latest: BTreeMap<i32, u64> = BTreeMap::new();
    let is_ahead = |t: u64, held: bool| ahead.as_ref().is_some_and(|a| a.ahead(t, held));
    while !stop.load(Ordering::Relaxed) {
        if batch.records.is_empty() {
            // Between batches: pause what the worker holds and what runs
            // ahead, resume the rest.
            let mut want = held.lock().map(|h| h.clone()).unwrap_or_default();
            let ahead_now = latest
                .iter()
                .filter(|(p, t)| is_ahead(**t, paused.contains(p)));
            want.extend(ahead_now.map(|(p, _)| *p));
            pause(&consumer, &topic, &mut paused, &want);
        }
        // With records in hand, only what is there already joins them.
        let wait = if batch.records.is_empty() {
            WAIT
        } else {
            Duration::ZERO
        };
        let full = match consumer.poll(wait) {
            Some(Ok(message)) => {
                let partition = message.partition();
                // Each partition's latest event time matters only to alignment.
                let mut t = latest.get(&partition).copied();
                reader.read(Ok(message), &mut batch, &mut t);
                if let Some(t) = t.filter(|_| ahead.is_some()) {
                    latest.insert(partition, t);
                    if is_ahead(t, false) && !paused.contains(&partition) {
                        // At once, before another of its records is read.
                        let mut want = paused.clone();
                        want.push(partition);
                        pause(&consumer, &topic, &mut paused, &want);
                    }
                }
                batch.records.len() >= max_batch
            }
            Some(Err(e)) => {
                reader.read(Err(e), &mut batch, &mut None);
                true
            }
            None => {
                if positions {
                    let now = position_of(&consumer, &topic);
                    if now.is_some() && now != reported {
                        batch.positions = now.clone();
                        reported = now;
                    }
                }
                true
            }
        };
        if !full || (batch.records.is_empty() && batch.positions.is_none()) {
            continue;
        }
        let handed = std::mem::replace(&mut batch, Batch::new(max_batch));
        if tx.send(handed).is_err() {
            return;
        }
        if let Some(wake) = wake.get() {
            wake();
        }
    }
}

/// Pauses the partitions of `want` that are not in `paused`, resumes those
/// of `paused` it leaves out; `paused` becomes `want`.
fn pause(consumer: &BaseConsumer<SourceContext>, topic: &str, paused: &mut Vec<i32>, want: &[i32]) {
    let list = |partitions: &mut dyn Iterator<Item = &i32>| {
        let mut list = TopicPartitionList::new();
        for &p in partitions {
            list.add_partition(topic, p);
        }
        list
    };
    let stop = list(&mut want.iter().filter(|p| !paused.contains(p)));
    let go = list(&mut paused.iter().filter(|p| !want.contains(p)));
    for (list, pause) in [(stop, true), (go, false)] {
        if list.count() == 0 {
            continue;
        }
        let result = if pause {
            consumer.pause(&list)
        } else {
            consumer.resume(&list)
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, topic, pause, "Cannot pause or resume partitions");
        }
    }
    paused.clear();
    paused.extend(want.iter().copied());
    paused.sort_unstable();
    paused.dedup();
}

/// How the fetch thread takes what a poll returned.
struct Reader<'a, D> {
    decoder: &'a D,
    topic: &'a str,
    headers: bool,
}

impl<D: Decode> Reader<'_, D> {
    /// Takes `polled` into `batch`; a decoded item's event time moves its
    /// partition's `latest`.
    fn read(
        &self,
        polled: KafkaResult<BorrowedMessage<'_>>,
        batch: &mut Batch<D::Item>,
        latest: &mut Option<u64>,
    ) {
        batch.take(polled, self.decoder, self.topic, self.headers);
        if let Some(Ok(item)) = batch.records.last().map(|r| &r.decoded) {
            *latest = (*latest).max(Some(D::time(item)));
        }
    }
}

/// The consumer's position in each partition of `topic` it has one for.
fn position_of(consumer: &BaseConsumer<SourceContext>, topic: &str) -> Option<BTreeMap<i32, i64>> {
    let positions = consumer.position().ok()?;
    Some(
        positions
            .elements_for_topic(topic)
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect(),
    )
}

/// A message's headers, owned, for a recording.
fn record_headers(message: &BorrowedMessage<'_>) -> Vec<(String, Option<Vec<u8>>)> {
    message.headers().map_or_else(Vec::new, |headers| {
        headers
            .iter()
            .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
            .collect()
    })
}
