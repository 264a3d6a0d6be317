//! Device simulator: realistic, deterministic sensor readings for demos, tests and benchmarks.
//!
//! [`generate`] yields [`SimRecord`]s in *production order*: the order a fleet of devices would
//! hand them to Kafka. Every device samples each of its sensors once per
//! [`interval`](SimulatorConfig::interval_ms) of event time (devices are staggered inside the
//! interval); each reading is sent after a random delay of up to
//! [`out_of_order_ms`](SimulatorConfig::out_of_order_ms), a small fraction much later (60–120 s,
//! beyond any sane out-of-orderness bound), and a few bad records (truncated JSON, missing fields,
//! non-numeric values, absurd timestamps) are mixed in. Signals follow a per-series baseline with a
//! slow sine and noise; anomaly episodes (20–120 s) ramp a series well above normal so that rules
//! like "temperature > 90 for 30s" fire.
//!
//! The same [`SimulatorConfig`] (seed included) always gives the same records, byte for byte, on
//! a given platform (the generator is `rand`'s `SmallRng`, whose stream may change with the `rand`
//! version or pointer width). [`produce`] writes them to a Kafka topic.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

/// How far behind its event time a late reading is sent, at least (ms).
const LATE_MIN_MS: u64 = 60_000;
/// How far behind its event time a late reading is sent, at most (ms).
const LATE_MAX_MS: u64 = 120_000;
/// 2100-01-01T00:00:00Z in epoch ms: the base of absurd future timestamps in bad records.
const YEAR_2100_MS: i64 = 4_102_444_800_000;
/// Machine kinds used to name devices (`press-007`).
const DEVICE_KINDS: [&str; 6] = ["press", "pump", "mixer", "kiln", "lathe", "conveyor"];

/// What to simulate. Every rate is a probability in `[0, 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatorConfig {
    /// Number of devices; their ids (`press-000`, `pump-001`, …) are the Kafka keys. Default 20.
    pub devices: usize,
    /// Sensors every device carries. `temperature` (°C), `vibration` (mm/s) and `pressure` (bar)
    /// get realistic profiles; other names get a generic one. Default all three.
    pub sensors: Vec<String>,
    /// Event time between two readings of one sensor, in ms. Default 1000.
    pub interval_ms: u64,
    /// Event time span simulated, in ms: each sensor yields `duration_ms / interval_ms` readings.
    /// Default 10 minutes.
    pub duration_ms: u64,
    /// Event time (epoch ms) of the first reading. Default: the wall clock rounded down to the
    /// minute (the simulator is outside the dataflow, so the clock is fine here).
    pub start_ms: u64,
    /// Seed of the random generator: the same config gives the same records. Default 42.
    pub seed: u64,
    /// Probability, per sensor and per minute of event time, that an anomaly episode starts.
    /// Default 0.05.
    pub anomaly_rate: f64,
    /// Fraction of all records that are bad (malformed JSON, missing field, non-numeric value,
    /// absurd timestamp). Bad records come on top of the regular readings. Default 0.001.
    pub bad_record_rate: f64,
    /// Largest delay, in ms, between a reading's event time and the moment it is produced; it
    /// bounds how far out of event time order the records are. Default 2000.
    pub out_of_order_ms: u64,
    /// Fraction of readings delayed far beyond the out-of-order bound (by 60–120 s), which a
    /// pipeline must treat as late. Default 0.0005.
    pub late_rate: f64,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
        Self {
            devices: 20,
            sensors: ["temperature", "vibration", "pressure"]
                .map(String::from)
                .to_vec(),
            interval_ms: 1000,
            duration_ms: 10 * 60 * 1000,
            start_ms: now_ms - now_ms % 60_000,
            seed: 42,
            anomaly_rate: 0.05,
            bad_record_rate: 0.001,
            out_of_order_ms: 2000,
            late_rate: 0.0005,
        }
    }
}

impl SimulatorConfig {
    /// Checks that the config can be simulated: at least one device and sensor, a positive
    /// interval and rates in `[0, 1)` (`anomaly_rate` in `[0, 1]`).
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(self.devices > 0, "devices must be at least 1");
        ensure!(!self.sensors.is_empty(), "sensors must not be empty");
        ensure!(self.interval_ms > 0, "interval_ms must be positive");
        ensure!(
            (0.0..=1.0).contains(&self.anomaly_rate),
            "anomaly_rate must be in [0, 1]"
        );
        for (name, rate) in [
            ("bad_record_rate", self.bad_record_rate),
            ("late_rate", self.late_rate),
        ] {
            ensure!(
                (0.0..1.0).contains(&rate),
                "{name} must be in [0, 1), got {rate}"
            );
        }
        Ok(())
    }

    /// The exact number of regular readings: `devices * sensors * (duration_ms / interval_ms)`.
    pub fn expected_readings(&self) -> u64 {
        (self.devices * self.sensors.len()) as u64 * (self.duration_ms / self.interval_ms.max(1))
    }

    /// The expected number of records, bad ones included (the bad count itself is random).
    pub fn expected_records(&self) -> u64 {
        (self.expected_readings() as f64 / (1.0 - self.bad_record_rate)).round() as u64
    }
}

/// One Kafka record produced by the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRecord {
    /// The device id, used as the record key; shared by all records of one device, so it costs
    /// no allocation per record.
    pub key: Arc<str>,
    /// The JSON payload, e.g. `{"device_id":"press-007","sensor":"temperature","value":71.30,"ts":1763900000000}`.
    pub payload: Vec<u8>,
    /// The Kafka record timestamp: the simulated moment the record is sent, in epoch ms. For a
    /// regular reading it is at least the reading's `ts`.
    pub timestamp_ms: i64,
}

/// What a simulation produced; complete once the [`Generator`] is exhausted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimulateReport {
    /// Records yielded (readings plus bad records).
    pub records: u64,
    /// Regular, valid readings (late ones included).
    pub readings: u64,
    /// Bad records.
    pub bad: u64,
    /// Readings sent 60–120 s after their event time.
    pub late: u64,
    /// Anomaly episodes started.
    pub anomalies: u64,
    /// Event time of the first reading (epoch ms); 0 if there was none.
    pub first_event_ms: u64,
    /// Event time of the last reading (epoch ms); 0 if there was none.
    pub last_event_ms: u64,
}

/// Signal shape of one kind of sensor.
struct Profile {
    base: (f64, f64),
    amplitude: (f64, f64),
    noise: f64,
    peak: (f64, f64),
    floor: f64,
}

impl Profile {
    fn for_sensor(name: &str) -> Self {
        match name {
            "temperature" => Self {
                base: (63.0, 75.0),
                amplitude: (2.0, 5.0),
                noise: 0.4,
                peak: (95.0, 110.0),
                floor: -40.0,
            },
            "vibration" => Self {
                base: (1.0, 2.0),
                amplitude: (0.2, 0.5),
                noise: 0.3,
                peak: (8.0, 15.0),
                floor: 0.05,
            },
            "pressure" => Self {
                base: (4.6, 5.4),
                amplitude: (0.2, 0.4),
                noise: 0.05,
                peak: (8.0, 10.0),
                floor: 0.0,
            },
            _ => Self {
                base: (40.0, 60.0),
                amplitude: (5.0, 10.0),
                noise: 1.0,
                peak: (150.0, 200.0),
                floor: 0.0,
            },
        }
    }
}

/// An anomaly episode of one series: ramps up to `peak`, holds, ramps down.
struct Episode {
    start: u64,
    end: u64,
    ramp: u64,
    peak: f64,
}

/// One (device, sensor) time series.
struct Series {
    device: usize,
    /// `{"device_id":"…","sensor":"…","value":` — everything before the value.
    prefix: String,
    sensor_json: String,
    profile: Profile,
    base: f64,
    amplitude: f64,
    /// The slow sine, advanced one interval per reading by rotating (sin, cos) of its angle
    /// (cheaper than calling `sin`): current (sin, cos), and (sin, cos) of the step.
    sin_cos: (f64, f64),
    step: (f64, f64),
    episode: Option<Episode>,
}

/// A record waiting in the send queue, ordered by (send time, sequence number).
struct Pending {
    send_ms: u64,
    seq: u64,
    record: SimRecord,
}

impl Pending {
    fn key(&self) -> (u64, u64) {
        (self.send_ms, self.seq)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest send time first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key().cmp(&self.key())
    }
}

/// Records waiting to be sent, popped in (send time, sequence number) order.
///
/// A binary heap alone costs a third of the generator's time, so records due within the next
/// `ring.len()` ms (all regular ones) go to a ring of per-millisecond FIFO buckets, O(1) each;
/// the rest (the few late ones) to a heap. Pushes come in sequence order and never before
/// `cursor`, the earliest send time still pending.
struct SendQueue {
    ring: Vec<VecDeque<Pending>>,
    in_ring: usize,
    cursor: u64,
    heap: BinaryHeap<Pending>,
}

impl SendQueue {
    fn new(out_of_order_ms: u64) -> Self {
        let slots = out_of_order_ms.min(1 << 16) as usize + 1;
        let ring = (0..slots).map(|_| VecDeque::new()).collect();
        Self {
            ring,
            in_ring: 0,
            cursor: 0,
            heap: BinaryHeap::new(),
        }
    }

    fn slot(&mut self, ms: u64) -> &mut VecDeque<Pending> {
        let slots = self.ring.len() as u64;
        &mut self.ring[(ms % slots) as usize]
    }

    fn push(&mut self, pending: Pending) {
        debug_assert!(pending.send_ms >= self.cursor);
        if pending.send_ms < self.cursor + self.ring.len() as u64 {
            self.slot(pending.send_ms).push_back(pending);
            self.in_ring += 1;
        } else {
            self.heap.push(pending);
        }
    }

    /// Pops the earliest record sent at or before `horizon` (`None`: the earliest of all).
    /// Afterwards nothing pending is due before `cursor`, and `cursor` ≤ `horizon`.
    fn pop(&mut self, horizon: Option<u64>) -> Option<SimRecord> {
        let limit = horizon.unwrap_or(u64::MAX);
        if self.in_ring == 0 {
            self.cursor = horizon.unwrap_or(self.cursor);
        }
        while self.in_ring > 0 && self.cursor < limit && self.slot(self.cursor).is_empty() {
            self.cursor += 1;
        }
        let cursor = self.cursor;
        let ring_key = self.slot(cursor).front().map(Pending::key);
        let heap_key = self.heap.peek().map(Pending::key).filter(|k| k.0 <= limit);
        let pending = match (ring_key, heap_key) {
            (Some(r), Some(h)) if h < r => self.heap.pop(),
            (Some(_), _) => {
                self.in_ring -= 1;
                self.slot(cursor).pop_front()
            }
            (None, Some(_)) => self.heap.pop(),
            (None, None) => None,
        };
        pending.map(|p| p.record)
    }
}

/// The simulator: an iterator of [`SimRecord`]s in production order. Create it with [`generate`].
pub struct Generator {
    rng: SmallRng,
    devices: Vec<Arc<str>>,
    /// Offset of each device's samples inside the interval (devices are staggered).
    device_offsets: Vec<u64>,
    series: Vec<Series>,
    ticks: u64,
    interval_ms: u64,
    start_ms: u64,
    out_of_order_ms: u64,
    late_rate: f64,
    /// Probability that a bad record accompanies a reading, so that bad/records ≈ bad_record_rate.
    bad_per_reading: f64,
    /// Probability per reading that an anomaly episode starts.
    anomaly_per_reading: f64,
    /// Next reading to generate: tick, then series index (device-major).
    tick: u64,
    next_series: usize,
    queue: SendQueue,
    seq: u64,
    /// Reused payload buffer; each record's payload is one exact-size copy of it.
    buf: Vec<u8>,
    report: SimulateReport,
}

/// Creates the simulator for `config`.
///
/// # Panics
/// If the config is invalid (see [`SimulatorConfig::validate`]).
pub fn generate(config: &SimulatorConfig) -> Generator {
    if let Err(e) = config.validate() {
        panic!("invalid simulator config: {e}");
    }
    let mut rng = SmallRng::seed_from_u64(config.seed);
    let devices: Vec<Arc<str>> = (0..config.devices)
        .map(|i| Arc::from(format!("{}-{i:03}", DEVICE_KINDS[i % DEVICE_KINDS.len()])))
        .collect();
    let device_offsets = (0..config.devices as u64)
        .map(|i| i * config.interval_ms / config.devices as u64)
        .collect();
    let mut series = Vec::with_capacity(config.devices * config.sensors.len());
    for (device, id) in devices.iter().enumerate() {
        for sensor in &config.sensors {
            let sensor_json = serde_json::to_string(sensor).expect("a string serializes");
            let profile = Profile::for_sensor(sensor);
            let period_ms = rng.random_range(5.0..30.0) * 60_000.0;
            let step = std::f64::consts::TAU * config.interval_ms as f64 / period_ms;
            let phase = rng.random_range(0.0..std::f64::consts::TAU);
            series.push(Series {
                device,
                prefix: format!(r#"{{"device_id":"{id}","sensor":{sensor_json},"value":"#),
                sensor_json,
                base: rng.random_range(profile.base.0..profile.base.1),
                amplitude: rng.random_range(profile.amplitude.0..profile.amplitude.1),
                sin_cos: phase.sin_cos(),
                step: step.sin_cos(),
                profile,
                episode: None,
            });
        }
    }
    let p_bad = config.bad_record_rate;
    Generator {
        rng,
        devices,
        device_offsets,
        series,
        ticks: config.duration_ms / config.interval_ms,
        interval_ms: config.interval_ms,
        start_ms: config.start_ms,
        out_of_order_ms: config.out_of_order_ms,
        late_rate: config.late_rate,
        bad_per_reading: p_bad / (1.0 - p_bad),
        anomaly_per_reading: 1.0
            - (1.0 - config.anomaly_rate).powf(config.interval_ms as f64 / 60_000.0),
        tick: 0,
        next_series: 0,
        queue: SendQueue::new(config.out_of_order_ms),
        seq: 0,
        buf: Vec::with_capacity(128),
        report: SimulateReport::default(),
    }
}

impl Generator {
    /// Counts so far; complete once the iterator is exhausted.
    pub fn report(&self) -> SimulateReport {
        self.report.clone()
    }

    /// Event time of the next reading to generate, or `None` when all are generated.
    fn next_event_ms(&self) -> Option<u64> {
        (self.tick < self.ticks).then(|| {
            let device = self.series[self.next_series].device;
            self.start_ms + self.tick * self.interval_ms + self.device_offsets[device]
        })
    }

    /// Generates the next reading (and maybe a bad record) into the send queue.
    fn generate_one(&mut self, ts: u64) {
        let index = self.next_series;
        self.next_series += 1;
        if self.next_series == self.series.len() {
            self.next_series = 0;
            self.tick += 1;
        }
        let value = self.value(index, ts);
        let device = self.series[index].device;
        self.buf.clear();
        self.buf
            .extend_from_slice(self.series[index].prefix.as_bytes());
        write_fixed2(&mut self.buf, value);
        self.buf.extend_from_slice(br#","ts":"#);
        push_u64(&mut self.buf, ts);
        self.buf.push(b'}');
        let payload = self.buf.clone();
        let late = self.late_rate > 0.0 && self.rng.random_bool(self.late_rate);
        let delay = if late {
            self.report.late += 1;
            self.rng.random_range(LATE_MIN_MS..=LATE_MAX_MS)
        } else {
            self.rng.random_range(0..=self.out_of_order_ms)
        };
        self.push(device, payload, ts + delay);
        self.report.readings += 1;
        if self.report.readings == 1 {
            self.report.first_event_ms = ts;
        }
        self.report.last_event_ms = ts;
        if self.bad_per_reading > 0.0 && self.rng.random_bool(self.bad_per_reading) {
            let payload = self.bad_payload(index, value, ts);
            let send_ms = ts + self.rng.random_range(0..=self.out_of_order_ms);
            self.push(device, payload, send_ms);
            self.report.bad += 1;
        }
    }

    fn push(&mut self, device: usize, payload: Vec<u8>, send_ms: u64) {
        let key = Arc::clone(&self.devices[device]);
        let record = SimRecord {
            key,
            payload,
            timestamp_ms: send_ms as i64,
        };
        self.queue.push(Pending {
            send_ms,
            seq: self.seq,
            record,
        });
        self.seq += 1;
    }

    /// The value of series `index` at event time `ts`: baseline + slow sine + noise, pulled
    /// towards the episode's peak during an anomaly.
    fn value(&mut self, index: usize, ts: u64) -> f64 {
        let rng = &mut self.rng;
        let s = &mut self.series[index];
        if s.episode.as_ref().is_some_and(|e| ts >= e.end) {
            s.episode = None;
        }
        if s.episode.is_none()
            && self.anomaly_per_reading > 0.0
            && rng.random_bool(self.anomaly_per_reading)
        {
            let length = rng.random_range(20_000..=120_000u64);
            let peak = rng.random_range(s.profile.peak.0..s.profile.peak.1);
            s.episode = Some(Episode {
                start: ts,
                end: ts + length,
                ramp: (length / 4).min(10_000),
                peak,
            });
            self.report.anomalies += 1;
        }
        let noise = s.profile.noise * (rng.random::<f64>() - rng.random::<f64>()) * 2.0;
        let (sin, cos) = s.sin_cos;
        let normal = s.base + s.amplitude * sin;
        s.sin_cos = (
            sin * s.step.1 + cos * s.step.0,
            cos * s.step.1 - sin * s.step.0,
        );
        let shifted = match &s.episode {
            Some(e) => {
                let weight = ((ts - e.start) as f64 / e.ramp as f64)
                    .min((e.end - ts) as f64 / e.ramp as f64)
                    .min(1.0);
                normal + (e.peak - normal) * weight
            }
            None => normal,
        };
        (shifted + noise).max(s.profile.floor)
    }

    /// A bad record derived from the reading (`value`, `ts`) of series `index`.
    fn bad_payload(&mut self, index: usize, value: f64, ts: u64) -> Vec<u8> {
        let s = &self.series[index];
        let device = &self.devices[s.device];
        let mut value_text = Vec::new();
        write_fixed2(&mut value_text, value);
        let value_text = String::from_utf8_lossy(&value_text);
        let mut fields = [
            format!(r#""device_id":"{device}""#),
            format!(r#""sensor":{}"#, s.sensor_json),
            format!(r#""value":{value_text}"#),
            format!(r#""ts":{ts}"#),
        ];
        let mut skip = None;
        match self.rng.random_range(0..6u8) {
            0 => {
                let full = format!("{{{}}}", fields.join(","));
                let cut = self.rng.random_range(1..full.len() - 1);
                return full.as_bytes()[..cut].to_vec();
            }
            1 => skip = Some(self.rng.random_range(0..fields.len())),
            2 => fields[2] = r#""value":"abc""#.to_string(),
            3 => fields[2] = r#""value":NaN"#.to_string(),
            4 => fields[2] = r#""value":"NaN""#.to_string(),
            _ => {
                let absurd = if self.rng.random_bool(0.5) {
                    YEAR_2100_MS + self.rng.random_range(0..86_400_000)
                } else {
                    -(ts as i64)
                };
                fields[3] = format!(r#""ts":{absurd}"#);
            }
        }
        let kept: Vec<&str> = fields
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != skip)
            .map(|(_, f)| f.as_str())
            .collect();
        format!("{{{}}}", kept.join(",")).into_bytes()
    }
}

impl Iterator for Generator {
    type Item = SimRecord;

    fn next(&mut self) -> Option<SimRecord> {
        loop {
            // Every reading still to generate is sent at or after its own event time, so a queued
            // record whose send time is not after the next event time can go now.
            let horizon = self.next_event_ms();
            if let Some(record) = self.queue.pop(horizon) {
                self.report.records += 1;
                return Some(record);
            }
            self.generate_one(horizon?);
        }
    }
}

/// Appends `v` with two decimals (`71.30`), without float formatting.
fn write_fixed2(buf: &mut Vec<u8>, v: f64) {
    let cents = (v * 100.0).round() as i64;
    if cents < 0 {
        buf.push(b'-');
    }
    let abs = cents.unsigned_abs();
    push_u64(buf, abs / 100);
    buf.extend_from_slice(&[b'.', b'0' + (abs / 10 % 10) as u8, b'0' + (abs % 10) as u8]);
}

/// Appends the decimal digits of `n`, without `fmt` (which costs more than the rest of a record).
fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[start..]);
}

/// Counts delivery outcomes reported by librdkafka.
#[derive(Default)]
struct DeliveryCounter {
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            self.failed.fetch_add(1, AtomicOrdering::Relaxed);
            let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| {
                format!(
                    "{error} (topic {}, partition {})",
                    message.topic(),
                    message.partition()
                )
            });
        }
    }
}

/// Simulates `config` and produces the records to `topic` on `brokers`, keyed by device id, with
/// the simulated send time as the record timestamp.
///
/// `rate` caps the wall-clock pace in records per second (`None`: as fast as possible);
/// `progress` shows a progress bar. The producer is idempotent so that retries cannot reorder a
/// partition. Fails if the config is invalid, if any record fails delivery, or if the final flush
/// does not complete within 60 s.
pub fn produce(
    brokers: &str,
    topic: &str,
    config: &SimulatorConfig,
    rate: Option<f64>,
    progress: bool,
) -> anyhow::Result<SimulateReport> {
    config.validate()?;
    crate::preflight::check_topics(brokers, &[], &[topic])?;
    if let Some(rate) = rate {
        ensure!(
            rate > 0.0 && rate.is_finite(),
            "rate must be a positive number of records per second"
        );
    }
    let producer: BaseProducer<DeliveryCounter> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create_with_context(DeliveryCounter::default())
        .context("creating Kafka producer")?;

    let bar = if progress {
        let bar = indicatif::ProgressBar::new(config.expected_records());
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} records ({per_sec}, eta {eta})",
        )?;
        bar.set_style(style);
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let started = Instant::now();
    let mut records = generate(config);
    let mut sent: u64 = 0;
    for record in records.by_ref() {
        let mut base = BaseRecord::to(topic)
            .key(record.key.as_bytes())
            .payload(&record.payload)
            .timestamp(record.timestamp_ms);
        loop {
            match producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    base = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e).context(format!("producing to topic {topic}")),
            }
        }
        sent += 1;
        if sent % 1024 == 0 {
            producer.poll(Duration::ZERO);
            bar.inc(1024);
        }
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            while let Some(wait) = due
                .checked_duration_since(Instant::now())
                .filter(|w| !w.is_zero())
            {
                std::thread::sleep(wait.min(Duration::from_millis(20)));
                producer.poll(Duration::ZERO);
            }
        }
    }
    bar.set_length(sent);
    bar.set_position(sent);
    producer
        .flush(Duration::from_secs(60))
        .context("flushing Kafka producer (60 s)")?;
    bar.finish_and_clear();

    let context = producer.context();
    let failed = context.failed.load(AtomicOrdering::Relaxed);
    if failed > 0 {
        let first = context
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        bail!("{failed} of {sent} records failed delivery to topic {topic}; first error: {first}");
    }
    let report = records.report();
    tracing::info!(
        topic,
        records = report.records,
        bad = report.bad,
        late = report.late,
        anomalies = report.anomalies,
        elapsed = %humantime::format_duration(Duration::from_millis(started.elapsed().as_millis() as u64)),
        "simulation produced"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Reading {
        device_id: String,
        sensor: String,
        value: f64,
        ts: u64,
    }

    fn config(devices: usize, minutes: u64) -> SimulatorConfig {
        SimulatorConfig {
            devices,
            duration_ms: minutes * 60_000,
            start_ms: 1_763_900_000_000,
            ..Default::default()
        }
    }

    /// Parses a payload as a valid reading of the simulated span, or `None` for a bad record.
    fn parse(record: &SimRecord, config: &SimulatorConfig) -> Option<Reading> {
        let r: Reading = serde_json::from_slice(&record.payload).ok()?;
        let span = config.start_ms..config.start_ms + config.duration_ms;
        (span.contains(&r.ts) && r.value.is_finite()).then_some(r)
    }

    #[test]
    fn same_seed_same_records() {
        let c = config(10, 3);
        let a: Vec<_> = generate(&c).collect();
        assert_eq!(a, generate(&c).collect::<Vec<_>>());
        let other = SimulatorConfig {
            seed: 7,
            ..c.clone()
        };
        assert_ne!(a, generate(&other).collect::<Vec<_>>());
    }

    #[test]
    fn counts_match_config() {
        let c = SimulatorConfig {
            bad_record_rate: 0.01,
            late_rate: 0.001,
            ..config(50, 20)
        };
        let mut g = generate(&c);
        let records: Vec<_> = g.by_ref().collect();
        let report = g.report();
        assert_eq!(report.readings, c.expected_readings());
        assert_eq!(report.readings, 50 * 3 * 1200);
        assert_eq!(report.records, records.len() as u64);
        assert_eq!(report.records, report.readings + report.bad);
        let bad_fraction = report.bad as f64 / report.records as f64;
        assert!(
            (bad_fraction - 0.01).abs() < 0.001,
            "bad fraction {bad_fraction}"
        );
        let late_fraction = report.late as f64 / report.readings as f64;
        assert!(
            (late_fraction - 0.001).abs() < 0.0003,
            "late fraction {late_fraction}"
        );
        let valid = records.iter().filter(|r| parse(r, &c).is_some()).count() as u64;
        assert_eq!(valid, report.readings, "every bad record is detectably bad");
        assert_eq!(report.first_event_ms, c.start_ms);
        assert!(report.last_event_ms < c.start_ms + c.duration_ms);
        assert!(records
            .iter()
            .all(|r| r.key.len() > 3 && r.timestamp_ms >= c.start_ms as i64));
    }

    #[test]
    fn send_queue_edge_bounds() {
        // Bound 0: a one-slot ring, so production order is event time order.
        let strict = SimulatorConfig {
            out_of_order_ms: 0,
            late_rate: 0.0,
            ..config(7, 2)
        };
        let ts: Vec<u64> = generate(&strict)
            .filter_map(|r| parse(&r, &strict))
            .map(|r| r.ts)
            .collect();
        assert_eq!(ts.len() as u64, strict.expected_readings());
        assert!(ts.windows(2).all(|w| w[0] <= w[1]));
        // A bound beyond the ring's capacity: regular records also pass through the heap.
        let wide = SimulatorConfig {
            out_of_order_ms: 100_000,
            ..config(7, 5)
        };
        let mut g = generate(&wide);
        let sends: Vec<i64> = g.by_ref().map(|r| r.timestamp_ms).collect();
        assert_eq!(sends.len() as u64, g.report().records);
        assert!(sends.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn production_order_respects_bound_except_late() {
        let c = SimulatorConfig {
            late_rate: 0.002,
            ..config(30, 10)
        };
        let mut g = generate(&c);
        let (mut max_ts, mut late, mut violations, mut out_of_order) = (0u64, 0u64, 0u64, 0u64);
        let mut last_send = i64::MIN;
        for record in g.by_ref() {
            assert!(
                record.timestamp_ms >= last_send,
                "records come in send time order"
            );
            last_send = record.timestamp_ms;
            let Some(r) = parse(&record, &c) else {
                continue;
            };
            let key_matches = *record.key == *r.device_id;
            assert!(key_matches);
            let delay = record.timestamp_ms - r.ts as i64;
            let is_late = delay >= LATE_MIN_MS as i64;
            assert!(
                is_late || (0..=c.out_of_order_ms as i64).contains(&delay),
                "delay {delay}"
            );
            late += u64::from(is_late);
            out_of_order += u64::from(r.ts < max_ts);
            if r.ts + c.out_of_order_ms < max_ts {
                assert!(
                    is_late,
                    "reading {} behind max {max_ts} beyond the bound",
                    r.ts
                );
                violations += 1;
            }
            max_ts = max_ts.max(r.ts);
        }
        assert_eq!(late, g.report().late);
        assert!(
            violations > 0 && violations <= late,
            "violations {violations}, late {late}"
        );
        assert!(
            out_of_order > 1000,
            "readings are actually shuffled: {out_of_order}"
        );
    }

    #[test]
    fn anomalies_exceed_thresholds() {
        let calm = SimulatorConfig {
            anomaly_rate: 0.0,
            bad_record_rate: 0.0,
            ..config(10, 10)
        };
        let max_calm = generate(&calm)
            .filter_map(|r| parse(&r, &calm))
            .filter(|r| r.sensor == "temperature")
            .map(|r| r.value)
            .fold(f64::MIN, f64::max);
        assert!(
            (60.0..85.0).contains(&max_calm),
            "max calm temperature {max_calm}"
        );

        let hot = SimulatorConfig {
            anomaly_rate: 0.5,
            bad_record_rate: 0.0,
            late_rate: 0.0,
            ..calm
        };
        let mut g = generate(&hot);
        let mut readings: Vec<Reading> = g.by_ref().filter_map(|r| parse(&r, &hot)).collect();
        assert!(g.report().anomalies > 5);
        readings
            .sort_by(|a, b| (&a.device_id, &a.sensor, a.ts).cmp(&(&b.device_id, &b.sensor, b.ts)));
        // Longest run of consecutive temperature readings above 90 within one series.
        let (mut longest, mut run_start, mut prev) = (0u64, None, None::<&Reading>);
        for r in readings.iter().filter(|r| r.sensor == "temperature") {
            if prev.is_some_and(|p| p.device_id != r.device_id) || r.value <= 90.0 {
                run_start = None;
            }
            if r.value > 90.0 {
                let start = *run_start.get_or_insert(r.ts);
                longest = longest.max(r.ts - start);
            }
            prev = Some(r);
        }
        assert!(longest >= 30_000, "longest run above 90 °C: {longest} ms");
        let max_vibration = readings
            .iter()
            .filter(|r| r.sensor == "vibration")
            .map(|r| r.value)
            .fold(0.0, f64::max);
        assert!(max_vibration >= 8.0, "max vibration {max_vibration}");
    }

    #[test]
    fn produces_to_mock_cluster() -> anyhow::Result<()> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::{Offset, TopicPartitionList};

        let cluster = rdkafka::mocking::MockCluster::new(1)?;
        cluster.create_topic("readings", 3, 1)?;
        let c = SimulatorConfig {
            bad_record_rate: 0.01,
            ..config(5, 2)
        };
        let started = Instant::now();
        let report = produce(
            &cluster.bootstrap_servers(),
            "readings",
            &c,
            Some(3000.0),
            false,
        )?;
        let min_elapsed = Duration::from_secs_f64(report.records as f64 / 3000.0 * 0.9);
        assert!(started.elapsed() >= min_elapsed, "rate limit honoured");
        assert_eq!(report.readings, 5 * 3 * 120);

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "simulate-test")
            .set("enable.auto.commit", "false")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..3 {
            assignment.add_partition_offset("readings", partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        let (mut consumed, mut valid) = (0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(30);
        while consumed < report.records && Instant::now() < deadline {
            let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let message = message?;
            consumed += 1;
            let record = SimRecord {
                key: Arc::from(std::str::from_utf8(message.key().unwrap_or_default())?),
                payload: message.payload().unwrap_or_default().to_vec(),
                timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
            };
            if let Some(r) = parse(&record, &c) {
                assert_eq!(*record.key, *r.device_id);
                assert!(record.timestamp_ms >= r.ts as i64);
                valid += 1;
            }
        }
        assert_eq!(consumed, report.records);
        assert_eq!(valid, report.readings);
        Ok(())
    }
}
