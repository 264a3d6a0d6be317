//! `weir run`: a pipeline file, with the run options.

use std::path::PathBuf;

use weir::runtime::RunArgs;

/// Run a pipeline file.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The pipeline file (TOML).
    pub(crate) pipeline: PathBuf,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// Runs the pipeline, reloading its rules when their file changes.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let spec = weir::config::load_pipeline(&args.pipeline)?;
    let mut options = args
        .run
        .options(&spec.name, spec.workers, spec.checkpoint.clone())?;
    options.metrics_addr = options.metrics_addr.or(spec.http);
    options.rules = Some(weir::reload::RulesSource {
        file: weir::reload::RulesFile::of_pipeline(&args.pipeline, spec.rules_file.as_deref()),
        rules: spec.rules.clone(),
    });
    let report = weir::pipeline::run_spec(&spec, &options)?;
    print!("{report}");
    Ok(())
}
