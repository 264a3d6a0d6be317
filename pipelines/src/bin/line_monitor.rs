//! The line monitor pipeline as a binary: `line_monitor --brokers HOST:PORT --rules FILE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use weir_pipelines::{line_monitor, LineMonitor, WINDOW_MS};

/// Aggregates one-minute windows of every sensor to Parquet and evaluates
/// the rules file's alert rules, writing alerts to Kafka.
#[derive(Parser)]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Topic of readings.
    #[arg(long, default_value = "readings")]
    readings: String,
    /// Topic for alerts.
    #[arg(long, default_value = "alerts")]
    alerts: String,
    /// Topic for dead letters.
    #[arg(long, default_value = "readings.dead")]
    dead_letters: String,
    /// Directory for Parquet files.
    #[arg(long, default_value = "out/line-monitor")]
    out: PathBuf,
    /// Alert rules file.
    #[arg(long, default_value = "pipelines/rules/line_monitor.toml")]
    rules: PathBuf,
    #[command(flatten)]
    run: weir::runtime::RunArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let result = weir::config::load_rules(&args.rules)
        .map_err(anyhow::Error::from)
        .and_then(|rules| {
            // Fail at once, not minutes in, if the broker or a topic is missing.
            weir::preflight::check_topics(
                &args.brokers,
                &[],
                &[&args.readings, &args.alerts, &args.dead_letters],
            )?;
            weir::preflight::check_writable_dir(&args.out)?;
            let settings = LineMonitor {
                brokers: args.brokers,
                readings_topic: args.readings,
                alerts_topic: args.alerts,
                dead_letters_topic: args.dead_letters,
                parquet_dir: args.out,
                rules: Arc::new(rules.clone()),
            };
            let mut options = args.run.options("line_monitor", 1, None)?;
            // Edits to the rules file (or SIGHUP) reload them while it runs.
            options.rules = Some(weir::reload::RulesSource {
                file: weir::reload::RulesFile::Rules(args.rules.clone()),
                rules,
            });
            eprintln!(
                "line_monitor: {WINDOW_MS} ms windows, rules from {}",
                args.rules.display()
            );
            weir::run(&options, move |scope, ctx| {
                line_monitor(scope, ctx, &settings)
            })
        });
    match result {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
