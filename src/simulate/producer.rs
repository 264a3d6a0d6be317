//! Producing the simulated records to a Kafka topic.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;
use weir_operators::kafka::send_retrying;

use super::{generate, SimulateReport, SimulatorConfig};

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
#[allow(clippy::result_large_err)] // rdkafka's send hands the record back with its error
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
        let base = BaseRecord::to(topic)
            .key(record.key.as_bytes())
            .payload(&record.payload)
            .timestamp(record.timestamp_ms);
        send_retrying(
            base,
            |r| producer.send(r),
            || {
                producer.poll(Duration::from_millis(10));
            },
        )
        .context(format!("producing to topic {topic}"))?;
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
