//! Starting timely workers for a pipeline, showing progress, and reporting
//! what a run did.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use timely::dataflow::Scope;
use timely::CommunicationConfig;
use timely::WorkerConfig;
use weir_operators::checkpoint::{CheckpointConfig, Marker, Session};
use weir_operators::kafka::{EndOffset, StartOffset};
use weir_operators::metrics::AlertCounts;
use weir_operators::recording::Recording;
use weir_operators::{DeadLetterReason, Env, Metrics, Run, RunIo};

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
        }
    }
}

/// The command-line options of running a pipeline, shared by `weir run` and
/// pipeline binaries (flatten it into a `clap` parser).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RunArgs {
    /// Worker threads per process (default: the pipeline's own setting).
    #[arg(long, short = 'w')]
    pub workers: Option<usize>,
    /// This process's index in a cluster (needs --hosts).
    #[arg(long, requires = "hosts")]
    pub process: Option<usize>,
    /// A file listing every cluster process's host:port, one per line.
    #[arg(long, requires = "process")]
    pub hosts: Option<std::path::PathBuf>,
    /// Read up to the end offsets seen at start, flush every window and sink, and exit.
    #[arg(long)]
    pub bounded: bool,
    /// Don't show the progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Take checkpoints in this directory and resume from the latest
    /// (overrides `[checkpoint] dir`).
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Time between checkpoints, e.g. "10s" (overrides `[checkpoint] interval`).
    #[arg(long, value_name = "DURATION")]
    pub checkpoint_interval: Option<humantime::Duration>,
    /// Delete the checkpoints and start from the source's configured start:
    /// every output is written again.
    #[arg(long)]
    pub from_scratch: bool,
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
    /// Pace a replay: event time moves N times as fast as the wall clock.
    #[arg(long, value_name = "N", requires = "replay")]
    pub speed: Option<f64>,
    /// Replay only the windows and alerts from this event time on (RFC 3339);
    /// the recording is still read from its start, so states are exact.
    #[arg(long, value_name = "TIME", requires = "replay")]
    pub from: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Replay only the windows and alerts before this event time (RFC 3339);
    /// reading stops once every partition's watermark passes it.
    #[arg(long, value_name = "TIME", requires = "replay")]
    pub to: Option<chrono::DateTime<chrono::FixedOffset>>,
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
        let cluster = match (self.process, &self.hosts) {
            (Some(process), Some(hosts)) => Some((process, read_hosts(hosts)?)),
            _ => None,
        };
        let mut checkpoint = match (&self.checkpoint_dir, checkpoint) {
            (Some(dir), Some(mut c)) => {
                c.dir = dir.clone();
                Some(c)
            }
            (Some(dir), None) => Some(CheckpointConfig::new(dir)),
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
        Ok(RunOptions {
            workers: self.workers.unwrap_or(workers),
            bounded: self.bounded || self.replay.is_some(),
            progress: !self.quiet,
            cluster,
            stop_on_signal: true,
            name: name.to_owned(),
            checkpoint,
            from_scratch: self.from_scratch,
            record: self.record.clone(),
            replay: self.replay.clone(),
            out: self.out.clone(),
            speed: self.speed,
            range: (self.from.is_some() || self.to.is_some()).then(|| {
                (
                    self.from.map_or(0, |t| t.timestamp_millis().max(0) as u64),
                    self.to
                        .map_or(u64::MAX, |t| t.timestamp_millis().max(0) as u64),
                )
            }),
            start_at: self.start_at.clone(),
            end_at: self.end_at.clone(),
            metrics_addr: self.metrics_addr,
            run: None,
            operator_figures: false,
            rules: None,
        })
    }
}

impl RunOptions {
    fn timely_config(&self) -> anyhow::Result<timely::Config> {
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

/// What a pipeline function gets besides its scope: the operators'
/// environment ([`Env`], which it derefs to, so `&ctx` is what operators
/// take), and how the run was started.
pub struct Context<'scope> {
    /// Metrics, stop requests and checkpoints of this worker's operators.
    pub env: Env<'scope>,
    /// Index of this worker among all workers of the run.
    pub worker: usize,
    /// Whether the run is bounded (sources should stop at their end offsets).
    pub bounded: bool,
}

impl<'scope> std::ops::Deref for Context<'scope> {
    type Target = Env<'scope>;
    fn deref(&self) -> &Env<'scope> {
        &self.env
    }
}

/// What a run did, for the final report.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// Wall-clock duration of the run.
    pub elapsed: Duration,
    /// Workers in this process.
    pub workers: usize,
    /// Records read from Kafka.
    pub records_read: u64,
    /// Readings accepted.
    pub readings: u64,
    /// Dead letters by reason.
    pub dead_letters: Vec<(DeadLetterReason, u64)>,
    /// Dead letters delivered to the dead-letter topic.
    pub dead_letters_delivered: u64,
    /// Window aggregates emitted.
    pub windows: u64,
    /// Window aggregates still open when the run was stopped: not complete,
    /// so not written.
    pub windows_left_open: u64,
    /// Rows written to Parquet.
    pub parquet_rows: u64,
    /// Parquet files written.
    pub files: Vec<std::path::PathBuf>,
    /// Alert events by rule.
    pub alerts: Vec<(String, AlertCounts)>,
    /// Alert events delivered to the alert topic.
    pub alerts_delivered: u64,
    /// Firing events suppressed by cooldowns.
    pub alerts_suppressed: u64,
    /// The checkpoint the run resumed from: its number and frontier.
    pub resumed_from: Option<(u64, u64)>,
    /// Checkpoints completed by this run.
    pub checkpoints: u64,
}

impl RunReport {
    fn from_metrics(m: &Metrics, elapsed: Duration, workers: usize) -> Self {
        let mut files = m.files();
        files.sort();
        RunReport {
            elapsed,
            workers,
            records_read: Metrics::get(&m.records_read),
            readings: Metrics::get(&m.readings),
            dead_letters: m.dead_letters_by_reason(),
            dead_letters_delivered: Metrics::get(&m.dead_letters_delivered),
            windows: Metrics::get(&m.windows),
            windows_left_open: Metrics::get(&m.windows_left_open),
            parquet_rows: Metrics::get(&m.parquet_rows),
            files,
            alerts: m.alerts_by_rule().into_iter().collect(),
            alerts_delivered: Metrics::get(&m.alerts_delivered),
            alerts_suppressed: Metrics::get(&m.alerts_suppressed),
            resumed_from: None,
            checkpoints: Metrics::get(&m.checkpoints),
        }
    }

    /// Total dead letters.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.iter().map(|(_, n)| n).sum()
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        if let Some((id, frontier)) = self.resumed_from {
            writeln!(
                f,
                "Resumed from checkpoint {id} (event time {}).",
                format_time(frontier)
            )?;
        }
        writeln!(
            f,
            "Read {} records in {:.2} s on {} worker(s) ({:.0} records/s).",
            self.records_read,
            secs,
            self.workers,
            self.records_read as f64 / secs.max(1e-9)
        )?;
        writeln!(f, "Readings accepted: {}", self.readings)?;
        write!(f, "Dead letters: {}", self.dead_letters_total())?;
        if !self.dead_letters.is_empty() {
            let parts: Vec<String> = self
                .dead_letters
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        writeln!(
            f,
            "; {} delivered to the dead-letter topic",
            self.dead_letters_delivered
        )?;
        writeln!(
            f,
            "Windows aggregated: {}; Parquet rows written: {} in {} file(s)",
            self.windows,
            self.parquet_rows,
            self.files.len()
        )?;
        if self.windows_left_open > 0 {
            writeln!(
                f,
                "Windows left open by the stop (not complete, not written): {}",
                self.windows_left_open
            )?;
        }
        let firing: u64 = self.alerts.iter().map(|(_, c)| c.firing).sum();
        let resolved: u64 = self.alerts.iter().map(|(_, c)| c.resolved).sum();
        let escalated: u64 = self.alerts.iter().map(|(_, c)| c.escalated).sum();
        let chattering: u64 = self.alerts.iter().map(|(_, c)| c.chattering).sum();
        let escalated = [("escalated", escalated), ("chattering", chattering)]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!(", {n} {what}"))
            .collect::<String>();
        writeln!(
            f,
            "Alerts: {firing} firing{escalated}, {resolved} resolved, {} held back (cooldown or chattering); {} delivered to the alert topic",
            self.alerts_suppressed, self.alerts_delivered
        )?;
        for (rule, c) in &self.alerts {
            writeln!(f, "  {rule}: {} firing, {} resolved", c.firing, c.resolved)?;
        }
        if self.checkpoints > 0 {
            writeln!(f, "Checkpoints completed: {}", self.checkpoints)?;
        }
        Ok(())
    }
}

/// Runs a pipeline on timely workers and returns what it did.
///
/// `build` is called once per worker with a fresh dataflow scope whose
/// timestamps are event time in milliseconds; it wires sources, operators and
/// sinks. The call returns when every worker's dataflow has completed (in a
/// bounded run: when the sources reached their end offsets and every sink
/// flushed), or with an error if any operator recorded a pipeline failure
/// (a sink that could not deliver, a topic that does not exist).
pub fn run<F>(options: &RunOptions, build: F) -> anyhow::Result<RunReport>
where
    F: for<'s> Fn(Scope<'s, u64>, &Context<'s>) + Send + Sync + 'static,
{
    let config = options.timely_config()?;
    tracing::info!(
        pipeline = %options.name,
        workers = options.workers,
        process = options.cluster.as_ref().map(|(p, _)| *p),
        bounded = options.bounded,
        "Pipeline starting"
    );
    let io = Arc::new(RunIo {
        record: options.record.clone(),
        replay: match &options.replay {
            Some(dir) => Some(Arc::new(Recording::open(dir)?)),
            None => None,
        },
        out: options.out.clone(),
        speed: options.speed,
        range: options.range,
        start: options.start_at.clone(),
        end: options.end_at.clone(),
    });
    let session = match &options.checkpoint {
        Some(c) => Some(Arc::new(open_checkpoints(c, options)?)),
        None => None,
    };
    let resumed_from = session
        .as_ref()
        .and_then(|s| s.restored())
        .map(|r| (r.manifest.id, r.manifest.frontier));
    let run = options.run.clone().unwrap_or_default();
    // A resumed run goes on with the version of the rules its checkpoint
    // was taken under.
    let restored = session.as_ref().and_then(|s| s.restored());
    let mut version = restored.map_or(1, |r| r.manifest.rules_version.max(1));
    if let (Some(restored), Some(source)) = (restored, &options.rules) {
        // Rules edited while the run was stopped: a new version, and the
        // changed rules start afresh.
        let manifest = &restored.manifest;
        let changed = manifest.changed_rules(&source.rules);
        let removed = manifest
            .rules
            .iter()
            .filter(|(name, _)| !source.rules.rules.iter().any(|r| r.name == *name))
            .count();
        if !changed.is_empty() || removed > 0 {
            version += 1;
            tracing::info!(
                "The rules changed since checkpoint {}: version {version}; new or changed rules start afresh: {}",
                manifest.id,
                if changed.is_empty() { "none".to_owned() } else { changed.join(", ") }
            );
        }
    }
    run.control.set_rules_version(version);
    run.metrics.rules_version.set(version as i64);
    let watch = match (&options.rules, options.bounded) {
        (Some(source), false) => Some(crate::reload::RulesWatch::new(source.clone())?),
        _ => None,
    };
    let _server = match options.metrics_addr {
        Some(addr) => Some(crate::http::serve(addr, run.clone())?),
        None => None,
    };
    let figures = options.operator_figures || options.metrics_addr.is_some();
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| format!("{:x}{:04x}", d.as_millis(), std::process::id() & 0xffff))
        .unwrap_or_default();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    if options.stop_on_signal {
        install_signal_handler()?;
        SIGNALLED.store(false, Ordering::Relaxed);
    }
    let monitor = spawn_monitor(
        run.clone(),
        done.clone(),
        options.progress,
        options.stop_on_signal,
        watch,
    );

    if let Some((process, hosts)) = &options.cluster {
        report_lost_peers(*process, hosts.clone());
    }
    let bounded = options.bounded;
    let worker_run = run.clone();
    let guards = timely::execute(config, move |worker| {
        let index = worker.index();
        if figures {
            crate::figures::collect(worker, worker_run.metrics.clone());
        }
        worker.dataflow::<u64, _, _>(|scope| {
            let context = Context {
                env: Env::new(scope, worker_run.clone(), &run_id, session.clone())
                    .with_io(io.clone()),
                worker: index,
                bounded,
            };
            build(scope, &context);
            context.env.finish();
        });
    })
    .map_err(|e| anyhow::anyhow!("cannot start timely workers: {e}"))?;
    let results = guards.join();
    done.store(true, Ordering::Relaxed);
    let _ = monitor.join();
    for result in results {
        result.map_err(|e| anyhow::anyhow!("a worker failed: {e}"))?;
    }
    let errors = run.control.errors();
    if !errors.is_empty() {
        bail!("the pipeline failed:\n  {}", errors.join("\n  "));
    }
    Ok(RunReport {
        resumed_from,
        ..RunReport::from_metrics(&run.metrics, started.elapsed(), options.workers)
    })
}

/// In a cluster, a process whose connection to a peer breaks (the peer
/// crashed or was killed) stops at once with an error naming the peer,
/// instead of timely's panics in every thread. Restarting every process
/// resumes from the last checkpoint.
fn report_lost_peers(me: usize, hosts: Vec<String>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let peer = thread.name().and_then(|name| {
            name.strip_prefix("timely:recv-")
                .or_else(|| name.strip_prefix("timely:send-"))
                .and_then(|i| i.parse::<usize>().ok())
        });
        match peer {
            Some(peer) => {
                let cause = info
                    .payload()
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| info.payload().downcast_ref::<&str>().copied())
                    .unwrap_or("connection failed");
                eprintln!(
                    "error: process {me} lost cluster process {peer} ({}): {cause}. \
                     Stopping; restart every process to resume from the last checkpoint.",
                    hosts.get(peer).map_or("unknown address", String::as_str)
                );
                std::process::exit(2);
            }
            None => previous(info),
        }
    }));
}

/// Opens the run's checkpoints; resuming from the end of a completed
/// bounded run is refused (there is nothing left to do).
fn open_checkpoints(config: &CheckpointConfig, options: &RunOptions) -> anyhow::Result<Session> {
    let session = Session::open(config.clone(), &options.name, options.from_scratch)?;
    if let Some(restored) = session.restored() {
        if restored.manifest.frontier == Marker::END {
            bail!(
                "checkpoint {} in {} was taken at the end of a completed bounded run: everything it read is written. \
                 Run with --from-scratch to process the input again (outputs are written again), or use another checkpoint directory",
                restored.manifest.id,
                config.dir.display()
            );
        }
    }
    Ok(session)
}

/// An event time as RFC 3339, or as ms when out of range.
fn format_time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map_or_else(
            || format!("{ms} ms"),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
pub fn wait_for_signal() -> anyhow::Result<()> {
    install_signal_handler()?;
    SIGNALLED.store(false, Ordering::Relaxed);
    while !SIGNALLED.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Set by the first SIGINT or SIGTERM.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

fn install_signal_handler() -> anyhow::Result<()> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                if SIGNALLED.swap(true, Ordering::Relaxed) {
                    eprintln!("Stopping at once.");
                    std::process::exit(130);
                }
                eprintln!("Stopping: draining windows and sinks (signal again to exit at once).");
            })
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("cannot install the signal handler: {e}"))
}

/// Watches the run until `done`: shows progress, turns a signal into a stop
/// request, and reloads the rules when asked.
fn spawn_monitor(
    run: Run,
    done: Arc<AtomicBool>,
    progress: bool,
    watch_signal: bool,
    mut rules: Option<crate::reload::RulesWatch>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let bar = if progress {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let metrics = &run.metrics;
        let mut known_end = false;
        let mut bursts = DeadLetterBursts::default();
        while !done.load(Ordering::Relaxed) {
            if watch_signal && SIGNALLED.load(Ordering::Relaxed) && !run.control.stop_requested() {
                run.control.request_stop();
            }
            if let Some(rules) = rules.as_mut() {
                rules.poll(&run);
            }
            bursts.watch(metrics);
            let expected = Metrics::get(&metrics.records_expected);
            if expected > 0 && !known_end {
                // The end is known (a replay): a bar with rate and ETA.
                known_end = true;
                bar.set_length(expected);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "[{elapsed}] {bar:30} {percent}% {per_sec} ETA {eta} {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
            }
            bar.set_position(Metrics::get(&metrics.records_read));
            bar.set_message(format!(
                "{} records read, {} windows, {} alert events, {} dead letters",
                Metrics::get(&metrics.records_read),
                Metrics::get(&metrics.windows),
                metrics
                    .alerts_by_rule()
                    .values()
                    .map(|c| c.firing + c.resolved)
                    .sum::<u64>(),
                metrics.dead_letters_total(),
            ));
            bar.tick();
            std::thread::sleep(Duration::from_millis(100));
        }
        bar.finish_and_clear();
        bursts.end(metrics);
    })
}

/// Logs dead letters once per burst, not once per record: a burst starts
/// with the first dead letter after a quiet spell and ends after
/// [`BURST_QUIET`] without one (or [`BURST_MAX`] after it began); its line
/// gives the count by reason.
#[derive(Default)]
struct DeadLetterBursts {
    /// Counts by reason when the current burst began, when it began, and
    /// when the last dead letter of it was seen.
    current: Option<(Vec<u64>, Instant, Instant)>,
    /// Counts by reason last seen.
    seen: Vec<u64>,
}

/// A burst ends after this long without a dead letter.
const BURST_QUIET: Duration = Duration::from_secs(5);
/// A burst is logged at least this often while it lasts.
const BURST_MAX: Duration = Duration::from_secs(60);

impl DeadLetterBursts {
    fn counts(metrics: &Metrics) -> Vec<u64> {
        metrics.dead_letters.iter().map(Metrics::get).collect()
    }

    fn watch(&mut self, metrics: &Metrics) {
        let now = Self::counts(metrics);
        if self.seen.is_empty() {
            self.seen = vec![0; now.len()];
        }
        let grew = now != self.seen;
        match &mut self.current {
            None if grew => {
                self.current = Some((self.seen.clone(), Instant::now(), Instant::now()))
            }
            Some((_, _, last)) if grew => *last = Instant::now(),
            Some((_, began, last))
                if last.elapsed() >= BURST_QUIET || began.elapsed() >= BURST_MAX =>
            {
                self.end(metrics)
            }
            _ => {}
        }
        self.seen = now;
    }

    /// Logs the burst under way, if any.
    fn end(&mut self, metrics: &Metrics) {
        let Some((from, began, _)) = self.current.take() else {
            return;
        };
        let now = Self::counts(metrics);
        let parts: Vec<String> = weir_operators::DeadLetterReason::ALL
            .iter()
            .zip(now.iter().zip(&from))
            .filter(|(_, (n, f))| n > f)
            .map(|(reason, (n, f))| format!("{reason} {}", n - f))
            .collect();
        let total: u64 = now.iter().sum::<u64>() - from.iter().sum::<u64>();
        tracing::warn!(
            dead_letters = total,
            seconds = began.elapsed().as_secs(),
            reasons = %parts.join(", "),
            "Dead-letter burst"
        );
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

/// The checkpoints in `dir` as a table, oldest first, for `weir checkpoints`.
pub fn checkpoint_table(dir: &std::path::Path) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let checkpoints = weir_operators::checkpoint::list(dir)?;
    let mut out = String::new();
    if checkpoints.is_empty() {
        writeln!(out, "No checkpoints in {}.", dir.display())?;
        return Ok(out);
    }
    writeln!(
        out,
        "{:>8}  {:<8}  {:<22}  {:<20}  {:>7}  {:>10}",
        "id", "state", "frontier (event time)", "taken at", "workers", "bytes"
    )?;
    for c in &checkpoints {
        let (state, frontier, taken, workers) = match &c.manifest {
            Some(m) if m.frontier == Marker::END => (
                "complete",
                "end of input".to_owned(),
                format_time(m.created_ms),
                m.workers.to_string(),
            ),
            Some(m) => (
                "complete",
                format_time(m.frontier),
                format_time(m.created_ms),
                m.workers.to_string(),
            ),
            None => ("partial", "-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        writeln!(
            out,
            "{:>8}  {:<8}  {:<22}  {:<20}  {:>7}  {:>10}",
            c.id, state, frontier, taken, workers, c.bytes
        )?;
    }
    Ok(out)
}
