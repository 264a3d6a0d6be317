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
    /// Size of the aggregation windows written to Parquet, in ms.
    pub window_ms: u64,
    /// The time between two window ends, in ms: `window_ms` for tumbling
    /// windows, less for hopping ones (`[window] slide`).
    pub window_slide_ms: u64,
    /// The statistics of every window row (`[window] stats`).
    pub window_stats: Stats,
    /// The alert rules, inline or from [`PipelineSpec::rules_file`].
    pub rules: RuleSet,
    /// The rules file, resolved against the pipeline file's directory.
    pub rules_file: Option<PathBuf>,
    /// The Parquet sink of window aggregates, if any.
    pub parquet: Option<ParquetSinkConfig>,
    /// The Kafka sink of alerts, if any.
    pub alerts: Option<KafkaSinkConfig>,
    /// The Kafka sink of dead letters, if any.
    pub dead_letters: Option<KafkaSinkConfig>,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Checkpoints, if configured (`[checkpoint]`).
    pub checkpoint: Option<CheckpointConfig>,
    /// Where to serve `/metrics`, `/health` and `/ready` (`[http] addr`).
    pub http: Option<std::net::SocketAddr>,
}

impl PipelineSpec {
    /// The window output `[window]` describes: tumbling or hopping windows
    /// of its size, with its statistics.
    pub fn window_spec(&self) -> WindowSpec {
        let kind = match self.window_slide_ms == self.window_ms {
            true => WindowKind::Tumbling {
                size_ms: self.window_ms,
            },
            false => WindowKind::Hopping {
                size_ms: self.window_ms,
                slide_ms: self.window_slide_ms,
            },
        };
        kind.with_stats(self.window_stats.clone())
    }
}
