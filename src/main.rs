//! The `weir` command: run, check, test, simulate, demo (see `cli/`).

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, LogFormat};

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
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The failures are printed already.
        Err(e) if e.is::<weir::rule_tests::TestsFailed>() => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {}", weir::secrets::redact(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
