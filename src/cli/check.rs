//! `weir check` (a pipeline file and its rules) and `weir checkpoints` (a
//! checkpoint directory).

use std::path::PathBuf;

/// Validate a pipeline file and its rules, and print a summary.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The pipeline file (TOML).
    pub(crate) pipeline: PathBuf,
    /// Also explain each rule in plain words.
    #[arg(long)]
    pub(crate) explain: bool,
}

/// Validates the pipeline file and prints its summary.
pub(crate) fn check(args: Args) -> anyhow::Result<()> {
    let spec = weir::config::load_pipeline(&args.pipeline)?;
    let summary = format!("{} is valid.\n{}", args.pipeline.display(), spec.summary());
    println!("{}", weir::secrets::redact(&summary));
    if args.explain {
        println!(
            "\n{}",
            weir::secrets::redact(&weir::explain::explain(&spec))
        );
    }
    Ok(())
}

/// List the checkpoints in a directory: number, event-time frontier,
/// when it was taken, workers and size.
#[derive(clap::Args)]
pub(crate) struct CheckpointsArgs {
    /// The checkpoint directory, or object-store URL (`s3://bucket/prefix`;
    /// credentials and endpoint from the environment).
    pub(crate) dir: String,
}

/// Lists the checkpoints of a directory.
pub(crate) fn checkpoints(args: CheckpointsArgs) -> anyhow::Result<()> {
    let dir = weir::runtime::flag_location(&args.dir)?;
    print!("{}", weir::runtime::checkpoint_table(&dir)?);
    Ok(())
}
