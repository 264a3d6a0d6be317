//! `weir backtest`: two rule sets over a recording, and how their alerts differ.

use std::path::PathBuf;

/// Run two rule sets over a recording in one pass and report how their
/// alerts differ: a table here, backtest.json and backtest.csv in --out.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The recording directory.
    pub(crate) recording: PathBuf,
    /// The rule files: the current one, then the candidate.
    #[arg(long = "rules", required = true)]
    pub(crate) rules: Vec<PathBuf>,
    /// A pipeline file whose decoding and lateness settings to use
    /// (default: Weir's defaults).
    #[arg(long)]
    pub(crate) pipeline: Option<PathBuf>,
    /// Where to write backtest.json and backtest.csv.
    #[arg(long, default_value = "backtest")]
    pub(crate) out: PathBuf,
    /// Worker threads.
    #[arg(long, short = 'w', default_value_t = 2)]
    pub(crate) workers: usize,
}

/// Runs the backtest and prints its table.
pub(crate) fn backtest(args: Args) -> anyhow::Result<()> {
    let report = weir::backtest::backtest(
        &args.recording,
        &args.rules,
        args.pipeline.as_deref(),
        &args.out,
        args.workers,
    )?;
    print!("{}", report.table());
    println!(
        "{} differences; details in {}/backtest.json and backtest.csv.",
        report.differences.len(),
        args.out.display()
    );
    Ok(())
}
