//! The `weir` command: run, check, test, simulate, demo.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weir::runtime::RunArgs;
use weir::simulate::SimulatorConfig;

/// Stream processing for industrial IoT telemetry: Kafka readings in,
/// window aggregates to Parquet and alerts to Kafka out.
#[derive(Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    /// Log lines on standard error: human-readable, or one JSON object per
    /// line (for log collectors). RUST_LOG sets the level (default: warn).
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline file.
    Run {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        #[command(flatten)]
        args: RunArgs,
    },
    /// Record a pipeline's source topic into a recording directory (Parquet),
    /// to replay later. Recording again into the same directory continues
    /// where it stopped.
    Record {
        /// The pipeline file (TOML): its source says what to record.
        pipeline: PathBuf,
        /// The recording directory.
        dir: PathBuf,
        /// Partitions to record, e.g. "0,2" (default: all).
        #[arg(long, value_delimiter = ',')]
        partitions: Vec<i32>,
        /// Where to start: "earliest", an offset, or an RFC 3339 time.
        #[arg(long, default_value = "earliest")]
        from: weir::record::Position,
        /// Where to stop: "end" (the end when recording starts), an
        /// offset (exclusive), or an RFC 3339 time.
        #[arg(long, default_value = "end")]
        to: weir::record::Position,
        /// Don't show the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Import captured records (kcat -C -J output, or JSON lines) into a
    /// recording directory.
    Import {
        /// The file to import ("-": standard input).
        input: PathBuf,
        /// The recording directory.
        dir: PathBuf,
        /// The topic the records came from (dead letters of a replay name it).
        #[arg(long, default_value = "readings")]
        topic: String,
        /// What each line holds.
        #[arg(long, value_enum, default_value = "auto")]
        format: weir::record::ImportFormat,
    },
    /// Replay a recording through a pipeline, with exactly the results of the
    /// run that recorded it. Outputs go to local files unless --to-sinks.
    Replay {
        /// The recording directory.
        recording: PathBuf,
        /// The pipeline file (TOML).
        #[arg(long)]
        pipeline: PathBuf,
        /// Where outputs go: OUT/windows/ (Parquet), OUT/alerts.jsonl,
        /// OUT/dead_letters.jsonl.
        #[arg(long, default_value = "replay-out")]
        out: PathBuf,
        /// Write to the pipeline's own sinks (Kafka topics, its Parquet
        /// directory) instead of local files.
        #[arg(long)]
        to_sinks: bool,
        /// Worker threads (default: the pipeline's own setting).
        #[arg(long, short = 'w')]
        workers: Option<usize>,
        /// Don't show the progress bar.
        #[arg(long)]
        quiet: bool,
        /// Pace the replay: event time moves N times as fast as the wall
        /// clock (default: as fast as possible).
        #[arg(long, value_name = "N")]
        speed: Option<f64>,
        /// Only windows and alert events from this event time on (RFC 3339).
        /// The recording is still read from its start, so watermarks and rule
        /// states at this time are exactly the live run's.
        #[arg(long, value_name = "TIME")]
        from: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Only windows and alert events before this event time (RFC 3339);
        /// reading stops once every partition's watermark has passed it.
        #[arg(long, value_name = "TIME")]
        to: Option<chrono::DateTime<chrono::FixedOffset>>,
        /// Take checkpoints in this directory and resume from the latest.
        #[arg(long, value_name = "DIR")]
        checkpoint_dir: Option<PathBuf>,
        /// Time between checkpoints, e.g. "10s".
        #[arg(long, value_name = "DURATION", requires = "checkpoint_dir")]
        checkpoint_interval: Option<humantime::Duration>,
        /// Delete the checkpoints and replay from the start.
        #[arg(long)]
        from_scratch: bool,
        /// Serve /metrics, /health and /ready on this address while replaying.
        #[arg(long, value_name = "HOST:PORT")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Run two rule sets over a recording in one pass and report how their
    /// alerts differ: a table here, backtest.json and backtest.csv in --out.
    Backtest {
        /// The recording directory.
        recording: PathBuf,
        /// The rule files: the current one, then the candidate.
        #[arg(long = "rules", required = true)]
        rules: Vec<PathBuf>,
        /// A pipeline file whose decoding and lateness settings to use
        /// (default: Weir's defaults).
        #[arg(long)]
        pipeline: Option<PathBuf>,
        /// Where to write backtest.json and backtest.csv.
        #[arg(long, default_value = "backtest")]
        out: PathBuf,
        /// Worker threads.
        #[arg(long, short = 'w', default_value_t = 2)]
        workers: usize,
    },
    /// List the checkpoints in a directory: number, event-time frontier,
    /// when it was taken, workers and size.
    Checkpoints {
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// Validate a pipeline file and its rules, and print a summary.
    Check {
        /// The pipeline file (TOML).
        pipeline: PathBuf,
        /// Also explain each rule in plain words.
        #[arg(long)]
        explain: bool,
    },
    /// Run tests: `weir test rules FILE...` tests alert rules files.
    Test {
        #[command(subcommand)]
        command: TestCommand,
    },
    /// Produce simulated sensor readings to a Kafka topic.
    Simulate {
        /// Bootstrap servers.
        #[arg(long, default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Topic to write to.
        #[arg(long, default_value = "readings")]
        topic: String,
        /// Simulated devices.
        #[arg(long, default_value_t = 20)]
        devices: usize,
        /// Event time to simulate, e.g. "10m", "2h".
        #[arg(long, default_value = "10m")]
        duration: humantime::Duration,
        /// Event time between two readings of one sensor, e.g. "1s".
        #[arg(long, default_value = "1s")]
        interval: humantime::Duration,
        /// Records per second to produce (wall clock); unlimited if absent.
        #[arg(long)]
        rate: Option<f64>,
        /// Fraction of bad records.
        #[arg(long, default_value_t = 0.001)]
        bad_rate: f64,
        /// Seed of the random generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Run the embedded demo: an in-process Kafka cluster, a simulated plant,
    /// and the demo pipeline, bounded. Nothing to install.
    Demo {
        /// Where to write the Parquet output.
        #[arg(long, default_value = "weir-demo")]
        out: PathBuf,
        /// Worker threads.
        #[arg(long, short = 'w', default_value_t = 2)]
        workers: usize,
        /// Simulated devices.
        #[arg(long, default_value_t = 20)]
        devices: usize,
        /// Minutes of event time to simulate.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Where to serve the status page (and /metrics, /health, /ready).
        #[arg(long, default_value = "127.0.0.1:9464")]
        addr: std::net::SocketAddr,
        /// After the demo, replay its recording at 20x event time for the
        /// status page, then keep serving until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
}

/// What `weir test` tests.
#[derive(Subcommand)]
enum TestCommand {
    /// Run unit tests of alert rules: input series and the alert events
    /// they must produce, through the real operators.
    ///
    /// Exit code 0 when every test passes, 1 when one fails, 2 when a file
    /// has errors. The file format is in README.md, "Testing rules".
    Rules {
        /// Test files (TOML), e.g. plant-rules.test.toml.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Crash tests set fail points through `FAILPOINTS` (see
    // `weir_operators::checkpoint`); only builds with the feature read it.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(weir::secrets::stderr);
    match cli.log_format {
        LogFormat::Human => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The failures are printed already.
        Err(e) if e.is::<weir::rule_tests::TestsFailed>() => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", weir::secrets::redact(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { pipeline, args } => {
            let spec = weir::config::load_pipeline(&pipeline)?;
            let mut options = args.options(&spec.name, spec.workers, spec.checkpoint.clone())?;
            options.metrics_addr = options.metrics_addr.or(spec.http);
            options.rules = Some(weir::reload::RulesSource {
                file: weir::reload::RulesFile::of_pipeline(&pipeline, spec.rules_file.as_deref()),
                rules: spec.rules.clone(),
            });
            let report = weir::pipeline::run_spec(&spec, &options)?;
            print!("{report}");
            Ok(())
        }
        Command::Record {
            pipeline,
            dir,
            partitions,
            from,
            to,
            quiet,
        } => {
            let spec = weir::config::load_pipeline(&pipeline)?;
            let options = weir::record::RecordOptions {
                partitions,
                from,
                to,
                progress: !quiet,
            };
            let report = weir::record::record(&spec.source, &dir, &options)?;
            println!(
                "Recorded {} records of `{}` ({} partitions) into {} in {:.1} s.",
                report.records,
                spec.source.topic,
                report.partitions,
                dir.display(),
                report.elapsed.as_secs_f64()
            );
            if report.interrupted {
                println!("Interrupted: run the same command again to continue.");
            }
            Ok(())
        }
        Command::Import {
            input,
            dir,
            topic,
            format,
        } => {
            let name = input.display().to_string();
            let mut reader: Box<dyn std::io::BufRead> = if name == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                let file = std::fs::File::open(&input)
                    .map_err(|e| anyhow::anyhow!("cannot open {name}: {e}"))?;
                Box::new(std::io::BufReader::new(file))
            };
            let n = weir::record::import(&mut reader, &name, &dir, &topic, format)?;
            println!("Imported {n} records into {}.", dir.display());
            Ok(())
        }
        Command::Replay {
            recording,
            pipeline,
            out,
            to_sinks,
            workers,
            quiet,
            speed,
            from,
            to,
            checkpoint_dir,
            checkpoint_interval,
            from_scratch,
            metrics_addr,
        } => {
            let spec = weir::config::load_pipeline(&pipeline)?;
            let args = RunArgs {
                metrics_addr,
                workers,
                quiet,
                speed,
                from,
                to,
                checkpoint_dir,
                checkpoint_interval,
                from_scratch,
                replay: Some(recording),
                out: (!to_sinks).then_some(out),
                ..RunArgs::default()
            };
            // A replay never touches the live run's checkpoints: only those
            // asked for here.
            let options = args.options(&spec.name, spec.workers, None)?;
            let report = weir::pipeline::run_spec(&spec, &options)?;
            print!("{report}");
            if let Some(out) = &options.out {
                println!("Outputs are in {}.", out.display());
            }
            Ok(())
        }
        Command::Backtest {
            recording,
            rules,
            pipeline,
            out,
            workers,
        } => {
            let report =
                weir::backtest::backtest(&recording, &rules, pipeline.as_deref(), &out, workers)?;
            print!("{}", report.table());
            println!(
                "{} differences; details in {}/backtest.json and backtest.csv.",
                report.differences.len(),
                out.display()
            );
            Ok(())
        }
        Command::Checkpoints { dir } => {
            print!("{}", weir::runtime::checkpoint_table(&dir)?);
            Ok(())
        }
        Command::Check { pipeline, explain } => {
            let spec = weir::config::load_pipeline(&pipeline)?;
            println!("{} is valid.\n{}", pipeline.display(), spec.summary());
            if explain {
                println!("\n{}", weir::explain::explain(&spec));
            }
            Ok(())
        }
        Command::Test {
            command: TestCommand::Rules { files },
        } => weir::rule_tests::cli(&files),
        Command::Simulate {
            brokers,
            topic,
            devices,
            duration,
            interval,
            rate,
            bad_rate,
            seed,
        } => {
            let config = SimulatorConfig {
                devices,
                duration_ms: duration.as_millis() as u64,
                interval_ms: interval.as_millis() as u64,
                bad_record_rate: bad_rate,
                seed,
                ..SimulatorConfig::default()
            };
            let report = weir::simulate::produce(&brokers, &topic, &config, rate, true)?;
            println!(
                "Produced {} records to `{topic}`: {} readings, {} bad, {} very late, {} anomaly episodes.",
                report.records, report.readings, report.bad, report.late, report.anomalies
            );
            Ok(())
        }
        Command::Demo {
            out,
            workers,
            devices,
            minutes,
            addr,
            serve,
        } => weir::demo::demo(&weir::demo::DemoOptions {
            out,
            workers,
            devices,
            minutes,
            addr,
            serve,
            ..Default::default()
        }),
    }
}
