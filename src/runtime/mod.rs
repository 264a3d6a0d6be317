//! Starting timely workers for a pipeline, showing progress, and reporting
//! what a run did.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use timely::dataflow::Scope;
use weir_operators::checkpoint::{CheckpointConfig, Marker, Restored, Session};
use weir_operators::metrics::AlertCounts;
use weir_operators::storage::Location;
use weir_operators::{DeadLetterReason, Env, Metrics, Run, RunIo};

use crate::delivery::Delivery;

mod monitor;
mod options;
mod signals;

use monitor::spawn_monitor;
pub use options::{
    flag_location, read_hosts, CheckpointArgs, ReplayRangeArgs, RunArgs, RunOptions, ServeArgs,
    WorkerArgs,
};
pub(crate) use signals::stop_signal;
pub use signals::wait_for_signal;

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
    /// The run's connectors (see [`crate::plan::connect`]).
    pub(crate) connect: Arc<crate::plan::Connect>,
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
            records_read: m.records_read.get(),
            readings: m.readings.get(),
            dead_letters: m.dead_letters_by_reason(),
            dead_letters_delivered: m.dead_letters_delivered.get(),
            windows: m.windows.get(),
            windows_left_open: m.windows_left_open.get(),
            parquet_rows: m.parquet_rows.get(),
            files,
            alerts: m.alerts_by_rule().into_iter().collect(),
            alerts_delivered: m.alerts_delivered.get(),
            alerts_suppressed: m.alerts_suppressed.get(),
            resumed_from: None,
            checkpoints: m.checkpoints.get(),
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
    let connect = Arc::new(crate::plan::Connect::new(options)?);
    let io = Arc::new(RunIo {
        record: options.record.clone(),
        speed: options.speed,
        range: options.range,
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
    let restored = session.as_ref().and_then(|s| s.restored());
    let version = rules_version_at_start(restored, options);
    run.control.set_rules_version(version);
    run.metrics.rules_version.set(version as i64);
    run.metrics
        .checkpoints_enabled
        .set(i64::from(session.is_some()));
    // Process 0 decides on reloads and sends them with its checkpoint
    // markers to every worker of the cluster: it alone watches the file.
    let process = options.cluster.as_ref().map_or(0, |(p, _)| *p);
    let watch = match (&options.rules, options.bounded) {
        (Some(source), false) if process == 0 => {
            Some(crate::reload::RulesWatch::new(source.clone())?)
        }
        (Some(source), false) => {
            tracing::info!(
                file = %source.file.path().display(),
                "Process 0 of the cluster watches the rules file and reloads it for every process"
            );
            None
        }
        _ => None,
    };
    let _server = match options.metrics_addr {
        Some(addr) => {
            // Alarm actions write to the live control topic: not in a
            // replay, nor in a run that writes local files.
            let live = options.replay.is_none() && options.out.is_none();
            let actions = options.alarm_actions.clone().filter(|_| live);
            let shown = run.clone();
            Some(crate::http::serve_with(
                addr,
                Arc::new(move || shown.clone()),
                actions,
            )?)
        }
        None => None,
    };
    let figures = options.operator_figures || options.metrics_addr.is_some();
    let run_id = new_run_id();
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let signal = match options.stop_on_signal {
        true => Some(stop_signal()?),
        false => None,
    };
    let monitor = spawn_monitor(run.clone(), done.clone(), options.progress, signal, watch);
    let deliveries = start_deliveries(options, process, &run);

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
            let env = Env::new(scope, worker_run.clone(), &run_id, session.clone());
            env.insert(RunIo::clone(&io));
            let context = Context {
                env,
                worker: index,
                bounded,
                connect: connect.clone(),
            };
            build(scope, &context);
            context.env.finish();
        });
    })
    .map_err(|e| anyhow::anyhow!("cannot start timely workers: {e}"))?;
    let results = guards.join();
    // A bounded run delivers what it wrote before it returns; a live run
    // that stops leaves what is left on the alert topic for the next start.
    let drain = match bounded {
        true => Duration::from_secs(60),
        false => Duration::from_secs(5),
    };
    for delivery in deliveries {
        delivery.finish(drain);
    }
    done.store(true, Ordering::Relaxed);
    monitor.thread().unpark();
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

/// Starts the deliveries `options` ask for, in process 0 only, and not in
/// a replay or a run writing to local files.
fn start_deliveries(options: &RunOptions, process: usize, run: &Run) -> Vec<Delivery> {
    if options.deliveries.is_empty() {
        return Vec::new();
    }
    if options.replay.is_some() || options.out.is_some() {
        tracing::info!(
            "Alert events are not delivered to receivers in a replay or a run with --out"
        );
        return Vec::new();
    }
    if process != 0 {
        tracing::info!("Process 0 of the cluster delivers the alert events to receivers");
        return Vec::new();
    }
    options
        .deliveries
        .iter()
        .map(|config| Delivery::start(config.clone(), run.clone()))
        .collect()
}

/// The version of the rules a run starts with: a resumed run goes on with
/// the version its checkpoint was taken under, one more if the rules were
/// edited while it was stopped (the changed rules then start afresh).
fn rules_version_at_start(restored: Option<&Restored>, options: &RunOptions) -> u64 {
    let mut version = restored.map_or(1, |r| r.manifest.rules_version.max(1));
    if let (Some(restored), Some(source)) = (restored, &options.rules) {
        let manifest = &restored.manifest;
        let changed = manifest.changed_rules(&source.rules.fingerprints());
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
    version
}

/// A name for this run, unique per process and start time: it makes
/// output file names unique per run.
fn new_run_id() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| format!("{:x}{:04x}", d.as_millis(), std::process::id() & 0xffff))
        .unwrap_or_default()
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
    config
        .dir
        .check_writable()
        .map_err(|e| anyhow::anyhow!("checkpoints: {e}"))?;
    let session = Session::open(config.clone(), &options.name, options.from_scratch)?;
    if let Some(restored) = session.restored() {
        if restored.manifest.frontier == Marker::END {
            bail!(
                "checkpoint {} in {} was taken at the end of a completed bounded run: everything it read is written. \
                 Run with --from-scratch to process the input again (outputs are written again), or use another checkpoint directory",
                restored.manifest.id,
                config.dir
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

/// The checkpoints at `dir` as a table, oldest first, for `weir checkpoints`.
pub fn checkpoint_table(dir: &Location) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let checkpoints = weir_operators::checkpoint::list(dir)?;
    let mut out = String::new();
    if checkpoints.is_empty() {
        writeln!(out, "No checkpoints in {dir}.")?;
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
