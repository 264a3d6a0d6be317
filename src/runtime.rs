//! Starting timely workers for a pipeline, showing progress, and reporting
//! what a run did.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use timely::dataflow::Scope;
use timely::CommunicationConfig;
use timely::WorkerConfig;
use weir_operators::metrics::AlertCounts;
use weir_operators::{DeadLetterReason, Env, Metrics};

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
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: 1,
            bounded: false,
            progress: false,
            cluster: None,
            stop_on_signal: false,
        }
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
        writeln!(
            f,
            "Alerts: {firing} firing, {resolved} resolved, {} suppressed by cooldown; {} delivered to the alert topic",
            self.alerts_suppressed, self.alerts_delivered
        )?;
        for (rule, c) in &self.alerts {
            writeln!(f, "  {rule}: {} firing, {} resolved", c.firing, c.resolved)?;
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
    let metrics = Arc::new(Metrics::default());
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
        metrics.clone(),
        done.clone(),
        options.progress,
        options.stop_on_signal,
    );

    let bounded = options.bounded;
    let worker_metrics = metrics.clone();
    let guards = timely::execute(config, move |worker| {
        let index = worker.index();
        worker.dataflow::<u64, _, _>(|scope| {
            let context = Context {
                env: Env::new(scope, worker_metrics.clone(), &run_id, None),
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
    let errors = metrics.errors();
    if !errors.is_empty() {
        bail!("the pipeline failed:\n  {}", errors.join("\n  "));
    }
    Ok(RunReport::from_metrics(
        &metrics,
        started.elapsed(),
        options.workers,
    ))
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

/// Watches the run until `done`: shows progress, and turns a signal into a
/// stop request.
fn spawn_monitor(
    metrics: Arc<Metrics>,
    done: Arc<AtomicBool>,
    progress: bool,
    watch_signal: bool,
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
        while !done.load(Ordering::Relaxed) {
            if watch_signal && SIGNALLED.load(Ordering::Relaxed) && !metrics.stop_requested() {
                metrics.request_stop();
            }
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
    })
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
