//! The `weir` command: its parser and its commands, one file each. Each
//! command parses its arguments and calls the library; nothing in the
//! library imports this module.

mod backtest;
mod check;
mod demo;
mod record;
mod replay;
mod run;
mod simulate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Stream processing for industrial IoT telemetry: Kafka readings in,
/// window aggregates to Parquet and alerts to Kafka out.
#[derive(Parser)]
#[command(name = "weir", version, about)]
pub(crate) struct Cli {
    /// Log lines on standard error: human-readable, or one JSON object per
    /// line (for log collectors). RUST_LOG sets the level (default: warn).
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    Run(run::Args),
    Record(record::Args),
    Import(record::ImportArgs),
    Replay(replay::Args),
    Backtest(backtest::Args),
    Checkpoints(check::CheckpointsArgs),
    Check(check::Args),
    /// Run tests: `weir test rules FILE...` tests alert rules files.
    Test {
        #[command(subcommand)]
        command: TestCommand,
    },
    Simulate(simulate::Args),
    Demo(demo::Args),
}

/// What `weir test` tests.
#[derive(Subcommand)]
pub(crate) enum TestCommand {
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

/// Runs the command.
pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Record(args) => record::record(args),
        Command::Import(args) => record::import(args),
        Command::Replay(args) => replay::replay(args),
        Command::Backtest(args) => backtest::backtest(args),
        Command::Checkpoints(args) => check::checkpoints(args),
        Command::Check(args) => check::check(args),
        Command::Test {
            command: TestCommand::Rules { files },
        } => weir::rule_tests::cli(&files),
        Command::Simulate(args) => simulate::simulate(args),
        Command::Demo(args) => demo::demo(args),
    }
}
