//! The generator of readings: signal profiles, anomaly episodes, bad and late records, and the
//! order in which a fleet of devices would send them.

use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::send_queue::{Pending, SendQueue};
use super::{SimRecord, SimulateReport, SimulatorConfig};

/// How far behind its event time a late reading is sent, at least (ms).
pub(super) const LATE_MIN_MS: u64 = 60_000;
/// How far behind its event time a late reading is sent, at most (ms).
const LATE_MAX_MS: u64 = 120_000;
/// 2100-01-01T00:00:00Z in epoch ms: the base of absurd future timestamps in bad records.
const YEAR_2100_MS: i64 = 4_102_444_800_000;
/// Machine kinds used to name devices (`press-007`).
const DEVICE_KINDS: [&str; 6] = ["press", "pump", "mixer", "kiln", "lathe", "conveyor"];

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
