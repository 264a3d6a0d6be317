//! Pipelines written in Rust against Weir's library API. Each has a binary in
//! `src/bin/` and its rules in `rules/`; copy one to start your own.

#![deny(missing_docs)]

use std::path::PathBuf;

use weir::prelude::*;

/// Settings of the line monitor pipeline.
#[derive(Clone, Debug)]
pub struct LineMonitor {
    /// Kafka bootstrap servers.
    pub brokers: String,
    /// Topic of readings.
    pub readings_topic: String,
    /// Topic alerts are written to.
    pub alerts_topic: String,
    /// Topic dead letters are written to.
    pub dead_letters_topic: String,
    /// Topic the alarm system's health events are written to, if any
    /// (they are on the status page either way).
    pub health_topic: Option<String>,
    /// Topic of control events (acknowledge, shelve, unshelve, out of
    /// service), if any.
    pub control_topic: Option<String>,
    /// Directory of the Parquet output.
    pub parquet_dir: PathBuf,
    /// Alert rules (loaded from a rules file, so plant engineers can change
    /// them without recompiling).
    pub rules: Arc<RuleSet>,
}

impl LineMonitor {
    /// The source of the line monitor: its readings topic, with a lateness
    /// bound of 5 s.
    pub fn source(&self) -> KafkaSourceConfig {
        let mut source = KafkaSourceConfig::new(&self.brokers, &self.readings_topic);
        source.out_of_orderness_ms = 5_000;
        source
    }
}

/// Size of the windows written to Parquet (and seen by window rules of
/// that size).
pub const WINDOW_MS: u64 = 60_000;

/// The line monitor: one-minute windows of every sensor to Parquet, and the
/// rules of its rules file, whatever they look at, to Kafka.
pub fn line_monitor(ctx: &Context<'_>, settings: &LineMonitor) {
    let (readings, dead) = ctx.source(settings.source(), Decoder::default());
    // Control events act on the alarms of the alerts wired below, so they
    // come first; the ones that are malformed or name no known alarm are
    // dead letters.
    let dead = match &settings.control_topic {
        Some(topic) => {
            let mut control = settings.source();
            control.topic = topic.clone();
            dead.concat(ctx.control(control, ControlDecoder::new(&settings.rules)))
        }
        None => dead,
    };
    ctx.sink(
        dead,
        KafkaSinkConfig::new(&settings.brokers, &settings.dead_letters_topic),
    );

    let windows = readings.clone().window_aggregate(WINDOW_MS, ctx);
    ctx.parquet(
        windows.clone(),
        ParquetSinkConfig::new(settings.parquet_dir.clone()),
    );

    // Every rule gets what it looks at: readings, these one-minute windows,
    // or windows of another size aggregated for it.
    let alerts = alerts(&readings, &[windows], settings.rules.clone(), ctx);
    // The alarm system's health (ISA-18.2 floods, stale alarms, hourly
    // rates), as the config path measures it.
    let health = alarm_health(&alerts, &settings.rules, HealthConfig::default(), ctx);
    if let Some(topic) = &settings.health_topic {
        ctx.sink(health, KafkaSinkConfig::new(&settings.brokers, topic));
    }
    ctx.sink(
        alerts,
        KafkaSinkConfig::new(&settings.brokers, &settings.alerts_topic),
    );
}
