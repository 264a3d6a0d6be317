//! `weir replay`: a recording through a pipeline, with exactly the results
//! of the run that recorded it. It takes the same worker, checkpoint, pace
//! and range options as `weir run`.

use std::path::PathBuf;

use weir::runtime::{CheckpointArgs, ReplayRangeArgs, RunArgs, ServeArgs, WorkerArgs};

/// Replay a recording through a pipeline, with exactly the results of the
/// run that recorded it. Outputs go to local files unless --to-sinks.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The recording directory.
    pub(crate) recording: PathBuf,
    /// The pipeline file (TOML).
    #[arg(long)]
    pub(crate) pipeline: PathBuf,
    /// Where outputs go: OUT/windows/ (Parquet), OUT/alerts.jsonl,
    /// OUT/dead_letters.jsonl.
    #[arg(long, default_value = "replay-out")]
    pub(crate) out: PathBuf,
    /// Write to the pipeline's own sinks (Kafka topics, its Parquet
    /// directory) instead of local files.
    #[arg(long)]
    pub(crate) to_sinks: bool,
    #[command(flatten)]
    pub(crate) workers: WorkerArgs,
    #[command(flatten)]
    pub(crate) range: ReplayRangeArgs,
    #[command(flatten)]
    pub(crate) checkpoints: CheckpointArgs,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

/// Replays the recording.
pub(crate) fn replay(args: Args) -> anyhow::Result<()> {
    let spec = weir::config::load_pipeline(&args.pipeline)?;
    let run = RunArgs {
        workers: args.workers,
        checkpoints: args.checkpoints,
        range: args.range,
        serve: args.serve,
        replay: Some(args.recording),
        out: (!args.to_sinks).then_some(args.out),
        ..RunArgs::default()
    };
    // A replay never touches the live run's checkpoints: only those asked
    // for here.
    let options = run.options(&spec.name, spec.workers, None)?;
    let report = weir::pipeline::run_spec(&spec, &options)?;
    print!("{report}");
    if let Some(out) = &options.out {
        println!("Outputs are in {}.", out.display());
    }
    Ok(())
}
