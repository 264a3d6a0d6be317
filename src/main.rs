//! The `weir` command: run, check, simulate, demo.

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
    #[command(subcommand)]
    command: Command,
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
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { pipeline, args } => {
            let spec = weir::config::load_pipeline(&pipeline)?;
            let options = args.options(&spec.name, spec.workers, spec.checkpoint.clone())?;
            let report = weir::pipeline::run_spec(&spec, &options)?;
            print!("{report}");
            Ok(())
        }
        Command::Checkpoints { dir } => {
            print!("{}", weir::runtime::checkpoint_table(&dir)?);
            Ok(())
        }
        Command::Check { pipeline } => {
            let spec = weir::config::load_pipeline(&pipeline)?;
            println!("{} is valid.\n{}", pipeline.display(), spec.summary());
            Ok(())
        }
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
        } => weir::demo::demo(&weir::demo::DemoOptions {
            out,
            workers,
            devices,
            minutes,
            ..Default::default()
        }),
    }
}
