//! The validated pipeline, [`PipelineSpec`]: what stage two of a pipeline
//! file returns.

use super::*;

/// A validated pipeline: everything the `weir` binary needs to wire and run it.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    /// Pipeline name.
    pub name: String,
    /// The pipeline file.
    pub path: PathBuf,
    /// The Kafka source. `bounded` is always `false` here; the CLI overrides it.
    pub source: KafkaSourceConfig,
    /// How payloads are decoded.
    pub decode: DecodeConfig,
    /// The window outputs (`[window]` or `[[window]]`); at least one.
    pub windows: Vec<WindowOutput>,
    /// The alert rules, inline or from [`PipelineSpec::rules_file`].
    pub rules: RuleSet,
    /// The rules file, resolved against the pipeline file's directory.
    pub rules_file: Option<PathBuf>,
    /// The Kafka sink of alerts, if any.
    pub alerts: Option<KafkaSinkConfig>,
    /// The Kafka sink of dead letters, if any.
    pub dead_letters: Option<KafkaSinkConfig>,
    /// Where alert events are delivered besides the alert topic
    /// (`[sinks.alertmanager]`, `[sinks.webhook]`).
    pub deliveries: Vec<crate::delivery::DeliveryConfig>,
    /// How the alarm system's health is measured (`[alarm_health]`).
    pub alarm_health: weir_operators::alarm::health::HealthConfig,
    /// The Kafka sink of the alarm system's health events, if any
    /// (`[sinks.alarm_health]`).
    pub alarm_health_sink: Option<KafkaSinkConfig>,
    /// `[alarm_health] path`: the health events as Parquet files.
    pub alarm_health_parquet: Option<ParquetSinkConfig>,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Checkpoints, if configured (`[checkpoint]`).
    pub checkpoint: Option<CheckpointConfig>,
    /// Where to serve `/metrics`, `/health` and `/ready` (`[http] addr`).
    pub http: Option<std::net::SocketAddr>,
    /// `[control]`: where control events (acknowledge, shelve, unshelve,
    /// out of service) are read, with the source's settings otherwise.
    pub control: Option<KafkaSourceConfig>,
    /// `[http] token_env`: the environment variable holding the bearer
    /// token of the alarm actions (`POST /api/alarms/...`); they write to
    /// the control topic.
    pub http_token_env: Option<String>,
}

/// A window output: windows of one kind, and where their rows go.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowOutput {
    /// Its name (`name`; `windows` by default).
    pub name: String,
    /// Which windows.
    pub kind: WindowKind,
    /// The statistics of every row (`stats`).
    pub stats: Stats,
    /// How long after its end late readings correct a window, ms (0: never;
    /// `allowed_lateness`).
    pub allowed_lateness_ms: u64,
    /// Where its rows are written as Parquet, if anywhere.
    pub parquet: Option<ParquetSinkConfig>,
}

impl WindowOutput {
    /// The windows the operators compute for this output.
    pub fn spec(&self) -> WindowSpec {
        self.kind
            .with_stats(self.stats.clone())
            .with_lateness(self.allowed_lateness_ms)
    }
}

impl PipelineSpec {
    /// The first window output that writes Parquet, if any.
    pub fn parquet(&self) -> Option<&ParquetSinkConfig> {
        self.windows.iter().find_map(|w| w.parquet.as_ref())
    }
}
