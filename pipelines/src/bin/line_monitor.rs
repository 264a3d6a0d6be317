//! The line monitor pipeline as a binary: `line_monitor --brokers HOST:PORT --rules FILE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use weir::prelude::{KafkaSinkConfig, ParquetSinkConfig};
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
    /// Topic for the alarm system's health events (none by default: they
    /// are on the status page).
    #[arg(long)]
    health: Option<String>,
    /// Topic of control events: acknowledge, shelve, unshelve, out of
    /// service (none by default).
    #[arg(long)]
    control: Option<String>,
    /// Directory for Parquet files (`--out` sends every output to local
    /// files instead, as for `weir run`).
    #[arg(long, default_value = "out/line-monitor")]
    parquet_dir: PathBuf,
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
            let settings = LineMonitor {
                brokers: args.brokers,
                readings_topic: args.readings,
                alerts_topic: args.alerts,
                dead_letters_topic: args.dead_letters,
                health_topic: args.health,
                control_topic: args.control,
                parquet_dir: args.parquet_dir,
                rules: Arc::new(rules.clone()),
            };
            let mut options = args.run.options("line_monitor", 1, None)?;
            // Fail at once, not minutes in, if the broker, a topic or the
            // output directory is missing (what this run uses of them).
            let connect = weir::plan::Connect::new(&options)?;
            connect.check_source(&settings.source())?;
            if let Some(topic) = &settings.control_topic {
                let mut control = settings.source();
                control.topic = topic.clone();
                connect.check_source(&control)?;
            }
            let topics = [&settings.alerts_topic, &settings.dead_letters_topic];
            for topic in topics.into_iter().chain(&settings.health_topic) {
                connect.check_sink(&KafkaSinkConfig::new(&settings.brokers, topic))?;
            }
            connect.check_parquet(&ParquetSinkConfig::new(settings.parquet_dir.clone()))?;
            // Edits to the rules file (or SIGHUP) reload them while it runs.
            options.rules = Some(weir::reload::RulesSource {
                file: weir::reload::RulesFile::Rules(args.rules.clone()),
                rules,
            });
            eprintln!(
                "line_monitor: {WINDOW_MS} ms windows, rules from {}",
                args.rules.display()
            );
            weir::run(&options, move |_scope, ctx| line_monitor(ctx, &settings))
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
