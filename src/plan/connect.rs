//! Which source and sinks a run uses, decided in one place: the pipeline's
//! Kafka topics, or the recording a replay reads and the local files it
//! writes; bounded or not; from and to which offsets. A pipeline (a config
//! file or Rust code) names its source and sinks through its [`Context`],
//! and this module connects them as the run's options say.

use std::path::PathBuf;
use std::sync::Arc;

use timely::dataflow::Stream;
use weir_operators::decode::ControlDecoder;
use weir_operators::kafka::{
    EndOffset, KafkaSink, KafkaSinkConfig, KafkaSourceConfig, StartOffset,
};
use weir_operators::output::{JsonLinesSink, SinkRecord};
use weir_operators::parquet::{ParquetSink, ParquetSinkConfig};
use weir_operators::record::HealthEvent;
use weir_operators::recording::Recording;
use weir_operators::source::{
    kafka_control, recorded_control, KafkaSource, RecordingSource, CONTROL_RECORDING,
};
use weir_operators::storage::Location;
use weir_operators::{DeadLetter, Decoder, SourceStreams, Windows};

use crate::config::DEFAULT_OUTPUT;
use crate::preflight::{check_topics, check_writable_dir};
use crate::runtime::{Context, RunOptions};

/// The connectors of a run, as its options choose them.
///
/// # Examples
/// ```
/// use weir::operators::kafka::{KafkaSourceConfig, StartOffset};
/// use weir::operators::parquet::ParquetSinkConfig;
/// use weir::plan::Connect;
/// use weir::RunOptions;
///
/// // `--bounded --start-at 2026-11-23T08:00:00Z --out replay-out`
/// let options = RunOptions {
///     bounded: true,
///     start_at: Some(StartOffset::Timestamp(1_795_420_800_000)),
///     out: Some("replay-out".into()),
///     ..RunOptions::default()
/// };
/// let connect = Connect::new(&options).unwrap();
/// let source = connect.source_config(KafkaSourceConfig::new("kafka:9092", "readings"));
/// assert!(source.bounded);
/// assert_eq!(source.start, StartOffset::Timestamp(1_795_420_800_000));
/// let parquet = connect.parquet_config(ParquetSinkConfig::new("/data/windows"));
/// assert_eq!(parquet.dir, std::path::Path::new("replay-out/windows").into());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Connect {
    /// Sources read this recording instead of their Kafka topic.
    pub replay: Option<Arc<Recording>>,
    /// Kafka sources start here instead of their configured start.
    pub start: Option<StartOffset>,
    /// Kafka sources stop here.
    pub end: Option<EndOffset>,
    /// Sources stop at the end offsets seen at start.
    pub bounded: bool,
    /// Sinks write local files under this directory instead of their
    /// configured destination: `windows/` (Parquet), `alerts.jsonl`,
    /// `dead_letters.jsonl`.
    pub out: Option<PathBuf>,
}

impl Connect {
    /// The connectors `options` choose; opens the recording a replay reads.
    pub fn new(options: &RunOptions) -> anyhow::Result<Connect> {
        Ok(Connect {
            replay: match &options.replay {
                Some(dir) => Some(Arc::new(Recording::open_at(
                    &Location::from_flag(dir).map_err(anyhow::Error::msg)?,
                )?)),
                None => None,
            },
            start: options.start_at.clone(),
            end: options.end_at.clone(),
            bounded: options.bounded,
            out: options.out.clone(),
        })
    }

    /// The source configuration a run uses: bounded when the run is, and
    /// starting and ending where the run says.
    pub fn source_config(&self, mut config: KafkaSourceConfig) -> KafkaSourceConfig {
        config.bounded |= self.bounded;
        if let Some(start) = &self.start {
            config.start = start.clone();
        }
        if let Some(end) = &self.end {
            config.end = Some(end.clone());
        }
        config
    }

    /// Checks, before the run starts, what a source of `config` reads in
    /// this run: its topic on its brokers, unless the run replays a
    /// recording.
    pub fn check_source(&self, config: &KafkaSourceConfig) -> anyhow::Result<()> {
        match self.replay {
            Some(_) => Ok(()),
            None => check_topics(&config.brokers, &config.properties, &[&config.topic]),
        }
    }

    /// Checks, before the run starts, where a sink of `config` writes in
    /// this run: its topic, or the local directory the run writes to.
    pub fn check_sink(&self, config: &KafkaSinkConfig) -> anyhow::Result<()> {
        match &self.out {
            Some(out) => check_writable_dir(out),
            None => check_topics(&config.brokers, &config.properties, &[&config.topic]),
        }
    }

    /// Checks, before the run starts, that the directory a Parquet sink of
    /// `config` writes to in this run is writable.
    pub fn check_parquet(&self, config: &ParquetSinkConfig) -> anyhow::Result<()> {
        self.check_parquet_of(DEFAULT_OUTPUT, config)
    }

    /// [`Connect::check_parquet`] for the window output named `output`.
    pub fn check_parquet_of(&self, output: &str, config: &ParquetSinkConfig) -> anyhow::Result<()> {
        self.parquet_config_of(output, config.clone())
            .dir
            .check_writable()
            .map_err(anyhow::Error::msg)
    }

    /// Where a Parquet sink of `config` writes in this run: its directory,
    /// or `windows` below the run's output directory.
    pub fn parquet_config(&self, config: ParquetSinkConfig) -> ParquetSinkConfig {
        self.parquet_config_of(DEFAULT_OUTPUT, config)
    }

    /// Where the Parquet sink of the window output named `output` writes in
    /// this run: its directory, or a directory named after the output below
    /// the run's output directory.
    pub fn parquet_config_of(
        &self,
        output: &str,
        mut config: ParquetSinkConfig,
    ) -> ParquetSinkConfig {
        if let Some(out) = &self.out {
            config.dir = out.join(output).into();
        }
        config
    }
}

/// The directory of the alarm health's Parquet files below a run's output
/// directory.
pub const HEALTH_OUTPUT: &str = "alarm_health";

impl<'scope> Context<'scope> {
    /// The readings and dead letters of a pipeline's source: its Kafka
    /// topic as `config` says, bounded when the run is, starting and ending
    /// at the run's `--start-at` and `--end-at`; or, in a replay, the
    /// recording, with the same lateness bound and watermark step.
    pub fn source(&self, config: KafkaSourceConfig, decoder: Decoder) -> SourceStreams<'scope> {
        let scope = self.env.scope();
        match &self.connect.replay {
            Some(recording) => scope.recording_source(
                recording.clone(),
                decoder,
                config.out_of_orderness_ms,
                config.watermark_step_ms,
                &self.env,
            ),
            None => scope.kafka_source(self.connect.source_config(config), decoder, &self.env),
        }
    }

    /// The control events of a pipeline (acknowledge, shelve, unshelve, out
    /// of service) from the Kafka topic of `config`, read as the run reads
    /// its source; in a replay, those recorded with the readings (in the
    /// recording's `control` directory), or none. They go to the alarm
    /// ledger that [`alerts`](weir_operators::alert::alerts) wires, so
    /// this comes before it. Returns the dead letters: malformed events,
    /// and those naming no known alarm.
    pub fn control(
        &self,
        config: KafkaSourceConfig,
        decoder: ControlDecoder,
    ) -> Stream<'scope, u64, Vec<DeadLetter>> {
        use timely::dataflow::operators::ToStream;
        let step = config.watermark_step_ms;
        match &self.connect.replay {
            Some(recording) => {
                let dir = recording.dir.join(CONTROL_RECORDING);
                if !dir.join("recording.json").exists() {
                    return Vec::<DeadLetter>::new().to_stream(self.env.scope());
                }
                match Recording::open(&dir) {
                    Ok(control) => recorded_control(Arc::new(control), decoder, step, &self.env).1,
                    Err(e) => {
                        self.env.run().control.add_error(format!(
                            "cannot read the control events recorded in {}: {e}",
                            dir.display()
                        ));
                        Vec::<DeadLetter>::new().to_stream(self.env.scope())
                    }
                }
            }
            None => {
                // The readings' end offsets say nothing of the control
                // topic: a run that ends at offsets reads it to its end as
                // of the start.
                let mut config = self.connect.source_config(config);
                if matches!(config.end, Some(EndOffset::Offsets(_))) {
                    config.end = None;
                    config.bounded = true;
                }
                kafka_control(config, decoder, &self.env).1
            }
        }
    }

    /// Writes `records` (alert events or dead letters) to the Kafka topic
    /// of `config`, or, when the run writes local files (`--out`, a
    /// replay), to `OUT/alerts.jsonl` or `OUT/dead_letters.jsonl`.
    pub fn sink<R: SinkRecord>(
        &self,
        records: Stream<'scope, u64, Vec<R>>,
        config: KafkaSinkConfig,
    ) {
        match &self.connect.out {
            Some(out) => records.jsonl_sink(out.join(R::FILE_NAME), &self.env),
            None => records.kafka_sink(config, &self.env),
        }
    }

    /// Writes the alarm system's health events as Parquet files below
    /// `config.dir`, or below `OUT/alarm_health` in a run that writes local
    /// files.
    pub fn health_parquet(
        &self,
        health: Stream<'scope, u64, Vec<HealthEvent>>,
        config: ParquetSinkConfig,
    ) {
        let config = self.connect.parquet_config_of(HEALTH_OUTPUT, config);
        health.parquet_sink(config, &self.env);
    }

    /// Writes `windows` to Parquet files under `config.dir`, or under
    /// `OUT/windows` when the run writes local files.
    pub fn parquet(&self, windows: Windows<'scope>, config: ParquetSinkConfig) {
        self.parquet_of(DEFAULT_OUTPUT, windows, config);
    }

    /// [`Context::parquet`] for the window output named `output`: in a run
    /// with an output directory, its files go to a directory of that name
    /// below it.
    pub fn parquet_of(&self, output: &str, windows: Windows<'scope>, config: ParquetSinkConfig) {
        windows.parquet_sink(self.connect.parquet_config_of(output, config), &self.env);
    }
}
