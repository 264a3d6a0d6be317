//! How to run a pipeline: the run options, the command-line arguments that
//! make them, and the timely configuration they give.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use timely::CommunicationConfig;
use timely::WorkerConfig;
use weir_operators::checkpoint::CheckpointConfig;
use weir_operators::kafka::{EndOffset, StartOffset};
use weir_operators::storage::Location;
use weir_operators::Run;

/// How to run a pipeline.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads in this process.
    pub workers: usize,
    /// Read up to the end offsets seen at start, flush everything, and stop.
    pub bounded: bool,
    /// Show a progress line on standard error while running.
    pub progress: bool,
    /// Run as one process of a timely cluster: this process's index and the
    /// `host:port` of every process. Every process runs `workers` threads.
    pub cluster: Option<(usize, Vec<String>)>,
    /// On Ctrl-C (SIGINT) or SIGTERM, stop reading and drain: close every
    /// open window, flush every sink, then return. A second signal exits at
    /// once. In a cluster, signal every process.
    pub stop_on_signal: bool,
    /// The pipeline's name: checkpoints are only resumed by the pipeline
    /// that wrote them.
    pub name: String,
    /// Take checkpoints, and resume from the latest complete one.
    pub checkpoint: Option<CheckpointConfig>,
    /// With checkpoints: delete them and start from the sources' configured
    /// start, writing every output again.
    pub from_scratch: bool,
    /// Record what the sources read, with their idle decisions, into this
    /// directory (see [`weir_operators::recording`]).
    pub record: Option<PathBuf>,
    /// Read this recording instead of the sources' topics: a replay, bounded.
    pub replay: Option<PathBuf>,
    /// Write outputs to local files under this directory instead of the
    /// pipeline's sinks: `windows/`, `alerts.jsonl`, `dead_letters.jsonl`.
    pub out: Option<PathBuf>,
    /// Pace a replay: event time moves this many times as fast as the wall
    /// clock.
    pub speed: Option<f64>,
    /// Limit a replay to the event times `[from, to)` (see
    /// [`weir_operators::RunIo::range`]).
    pub range: Option<(u64, u64)>,
    /// Kafka sources start here instead of their configured start.
    pub start_at: Option<StartOffset>,
    /// Kafka sources stop here and the run ends (see
    /// [`weir_operators::KafkaSourceConfig::end`]).
    pub end_at: Option<EndOffset>,
    /// Serve `/metrics`, `/health` and `/ready` on this address while running.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The run's metrics and control (fresh ones when `None`): to share
    /// them with a server the caller runs, or to stop the run.
    pub run: Option<Run>,
    /// Collect per-operator figures from timely's logging (on whenever an
    /// operations server runs).
    pub operator_figures: bool,
    /// Where the rules come from: an unbounded run reloads them on SIGHUP
    /// or when the file changes (see [`crate::reload`]).
    pub rules: Option<crate::reload::RulesSource>,
    /// Deliver the alert events to these receivers too, read back from the
    /// alert topic (see [`crate::delivery`]); off in replays and runs with
    /// `out`, and run by process 0 of a cluster only.
    pub deliveries: Vec<crate::delivery::DeliveryConfig>,
    /// The alarm actions the operations server takes (`POST
    /// /api/alarms/{action}`, with their token); off when `None`, and in
    /// replays and runs with `out`.
    pub alarm_actions: Option<crate::http::AlarmActions>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 1,
            bounded: false,
            progress: false,
            cluster: None,
            stop_on_signal: false,
            name: "pipeline".to_owned(),
            checkpoint: None,
            from_scratch: false,
            record: None,
            replay: None,
            out: None,
            speed: None,
            range: None,
            start_at: None,
            end_at: None,
            metrics_addr: None,
            run: None,
            operator_figures: false,
            rules: None,
            deliveries: Vec::new(),
            alarm_actions: None,
        }
    }
}

/// The command-line options of running a pipeline, shared by `weir run` and
/// pipeline binaries (flatten it into a `clap` parser). `weir replay`
/// flattens the same groups it shares with them.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RunArgs {
    /// Workers and cluster.
    #[command(flatten)]
    pub workers: WorkerArgs,
    /// Read up to the end offsets seen at start, flush every window and sink, and exit.
    #[arg(long)]
    pub bounded: bool,
    /// Checkpoints.
    #[command(flatten)]
    pub checkpoints: CheckpointArgs,
    /// Record what the source reads, with its idle decisions, into this
    /// directory, for exact replays.
    #[arg(long, value_name = "DIR", conflicts_with = "replay")]
    pub record: Option<PathBuf>,
    /// Read this recording instead of the source topic (bounded).
    #[arg(long, value_name = "DIR")]
    pub replay: Option<PathBuf>,
    /// Write outputs to local files under this directory instead of the
    /// pipeline's sinks: windows/ (Parquet), alerts.jsonl, dead_letters.jsonl.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Pace and range of a replay.
    #[command(flatten)]
    pub range: ReplayRangeArgs,
    /// Start the source here instead of its configured start: offsets by
    /// partition ("0=1200,1=980") or an RFC 3339 time.
    #[arg(long, value_name = "POSITION", value_parser = parse_start_at)]
    pub start_at: Option<StartOffset>,
    /// Stop the source here and end the run: offsets by partition
    /// ("0=5000,1=4800", exclusive) or an RFC 3339 time. With --bounded a
    /// replay of that range straight from Kafka; without, a live run that
    /// ends there.
    #[arg(long, value_name = "POSITION", value_parser = parse_end_at)]
    pub end_at: Option<EndOffset>,
    /// Progress and metrics.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// How many workers run, and where: the options every command that runs a
/// pipeline takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct WorkerArgs {
    /// Worker threads per process (default: the pipeline's own setting).
    #[arg(long, short = 'w')]
    pub workers: Option<usize>,
    /// This process's index in a cluster (needs --hosts).
    #[arg(long, requires = "hosts")]
    pub process: Option<usize>,
    /// A file listing every cluster process's host:port, one per line.
    #[arg(long, requires = "process")]
    pub hosts: Option<std::path::PathBuf>,
}

/// Where checkpoints are taken, how often, and whether to start over.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CheckpointArgs {
    /// Take checkpoints in this directory (or object-store URL, such as
    /// `s3://bucket/prefix`) and resume from the latest (overrides
    /// `[checkpoint] dir`).
    #[arg(long, value_name = "DIR|URL")]
    pub checkpoint_dir: Option<String>,
    /// Time between checkpoints, e.g. "10s" (overrides `[checkpoint] interval`).
    #[arg(long, value_name = "DURATION")]
    pub checkpoint_interval: Option<humantime::Duration>,
    /// Delete the checkpoints and start from the source's configured start:
    /// every output is written again.
    #[arg(long)]
    pub from_scratch: bool,
}

/// The pace of a replay, and the event times whose output it writes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ReplayRangeArgs {
    /// Pace a replay: event time moves N times as fast as the wall clock
    /// (default: as fast as possible).
    #[arg(long, value_name = "N")]
    pub speed: Option<f64>,
    /// Replay only the windows and alerts from this event time on (RFC 3339);
    /// the recording is still read from its start, so states are exact.
    #[arg(long, value_name = "TIME")]
    pub from: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Replay only the windows and alerts before this event time (RFC 3339);
    /// reading stops once every partition's watermark passes it.
    #[arg(long, value_name = "TIME")]
    pub to: Option<chrono::DateTime<chrono::FixedOffset>>,
}

impl ReplayRangeArgs {
    /// The range of event times `[from, to)` asked for, if any.
    fn range(&self) -> Option<(u64, u64)> {
        (self.from.is_some() || self.to.is_some()).then(|| {
            (
                self.from.map_or(0, |t| t.timestamp_millis().max(0) as u64),
                self.to
                    .map_or(u64::MAX, |t| t.timestamp_millis().max(0) as u64),
            )
        })
    }
}

/// What a run shows while it runs.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Don't show the progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Serve Prometheus metrics on /metrics, and /health and /ready, on this
    /// address (overrides `[http] addr`), e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Parses `0=1200,1=980` or an RFC 3339 time.
fn parse_position(text: &str) -> Result<Result<BTreeMap<i32, i64>, i64>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Err(t.timestamp_millis()));
    }
    text.split(',')
        .map(|pair| {
            let (p, o) = pair.split_once('=').ok_or_else(|| {
                format!("`{text}` is neither PARTITION=OFFSET,... nor an RFC 3339 time (like 2026-11-23T08:00:00Z)")
            })?;
            let p = p.trim().parse::<i32>().map_err(|_| format!("`{p}` is not a partition number"))?;
            let o = o.trim().parse::<i64>().ok().filter(|o| *o >= 0).ok_or_else(|| format!("`{o}` is not an offset"))?;
            Ok((p, o))
        })
        .collect::<Result<BTreeMap<_, _>, String>>()
        .map(Ok)
}

fn parse_start_at(text: &str) -> Result<StartOffset, String> {
    Ok(match parse_position(text)? {
        Ok(offsets) => StartOffset::Offsets(offsets),
        Err(ms) => StartOffset::Timestamp(ms),
    })
}

fn parse_end_at(text: &str) -> Result<EndOffset, String> {
    Ok(match parse_position(text)? {
        Ok(offsets) => EndOffset::Offsets(offsets),
        Err(ms) => EndOffset::Timestamp(ms),
    })
}

impl RunArgs {
    /// The run options these arguments ask for, over the pipeline's own
    /// `name`, worker count and checkpoint settings.
    pub fn options(
        &self,
        name: &str,
        workers: usize,
        checkpoint: Option<CheckpointConfig>,
    ) -> anyhow::Result<RunOptions> {
        let w = &self.workers;
        let cluster = match (w.process, &w.hosts) {
            (Some(process), Some(hosts)) => Some((process, read_hosts(hosts)?)),
            _ => None,
        };
        let range = &self.range;
        if self.replay.is_none()
            && (range.speed.is_some() || range.from.is_some() || range.to.is_some())
        {
            bail!("--speed, --from and --to pace and limit a replay: they need --replay");
        }
        Ok(RunOptions {
            workers: w.workers.unwrap_or(workers),
            bounded: self.bounded || self.replay.is_some(),
            progress: !self.serve.quiet,
            cluster,
            stop_on_signal: true,
            name: name.to_owned(),
            checkpoint: self.checkpoints.config(checkpoint)?,
            from_scratch: self.checkpoints.from_scratch,
            record: self.record.clone(),
            replay: self.replay.clone(),
            out: self.out.clone(),
            speed: range.speed,
            range: range.range(),
            start_at: self.start_at.clone(),
            end_at: self.end_at.clone(),
            metrics_addr: self.serve.metrics_addr,
            run: None,
            operator_figures: false,
            rules: None,
            deliveries: Vec::new(),
            alarm_actions: None,
        })
    }
}

impl CheckpointArgs {
    /// The checkpoints these arguments ask for, over the pipeline's own.
    fn config(
        &self,
        checkpoint: Option<CheckpointConfig>,
    ) -> anyhow::Result<Option<CheckpointConfig>> {
        let mut checkpoint = match (&self.checkpoint_dir, checkpoint) {
            (Some(dir), Some(mut c)) => {
                c.dir = flag_location(dir)?;
                Some(c)
            }
            (Some(dir), None) => Some(CheckpointConfig::new(flag_location(dir)?)),
            (None, c) => c,
        };
        match (&mut checkpoint, self.checkpoint_interval) {
            (Some(c), Some(interval)) => c.interval = interval.into(),
            (None, Some(_)) => bail!("--checkpoint-interval needs a checkpoint directory ([checkpoint] dir or --checkpoint-dir)"),
            _ => {}
        }
        if self.from_scratch && checkpoint.is_none() {
            bail!("--from-scratch needs checkpoints ([checkpoint] dir or --checkpoint-dir): without them every run starts from scratch");
        }
        Ok(checkpoint)
    }
}

impl RunOptions {
    pub(super) fn timely_config(&self) -> anyhow::Result<timely::Config> {
        if self.workers == 0 {
            bail!("the number of workers must be at least 1");
        }
        let communication = match &self.cluster {
            None if self.workers == 1 => CommunicationConfig::Thread,
            None => CommunicationConfig::Process(self.workers),
            Some((process, addresses)) => {
                if *process >= addresses.len() {
                    bail!(
                        "process index {process} is out of range: the cluster has {} processes",
                        addresses.len()
                    );
                }
                CommunicationConfig::Cluster {
                    threads: self.workers,
                    process: *process,
                    addresses: addresses.clone(),
                    report: false,
                    zerocopy: false,
                }
            }
        };
        Ok(timely::Config {
            communication,
            worker: WorkerConfig::default(),
        })
    }
}

/// Reads a cluster host file: one `host:port` per line, `#` comments allowed.
pub fn read_hosts(path: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read host file {}", path.display()))?;
    let hosts: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if hosts.is_empty() {
        bail!("host file {} lists no hosts", path.display());
    }
    Ok(hosts)
}

/// The location a command-line flag names: a local path (relative to the
/// working directory), a `file://` URL, or an object-store URL whose
/// credentials and endpoint come from the environment.
pub fn flag_location(text: &str) -> anyhow::Result<Location> {
    Location::from_flag(std::path::Path::new(text)).map_err(anyhow::Error::msg)
}
