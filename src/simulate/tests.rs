//! Tests of the generator and of producing to a (mock) Kafka cluster.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::message::Message;

use super::generator::LATE_MIN_MS;
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
    readings.sort_by(|a, b| (&a.device_id, &a.sensor, a.ts).cmp(&(&b.device_id, &b.sensor, b.ts)));
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
