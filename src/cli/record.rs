//! `weir record` and `weir import`: recordings of a source topic, or of
//! records captured elsewhere.

use std::path::PathBuf;

/// Record a pipeline's source topic into a recording directory (Parquet),
/// to replay later. Recording again into the same directory continues
/// where it stopped.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The pipeline file (TOML): its source says what to record.
    pub(crate) pipeline: PathBuf,
    /// The recording directory.
    pub(crate) dir: PathBuf,
    /// Partitions to record, e.g. "0,2" (default: all).
    #[arg(long, value_delimiter = ',')]
    pub(crate) partitions: Vec<i32>,
    /// Where to start: "earliest", an offset, or an RFC 3339 time.
    #[arg(long, default_value = "earliest")]
    pub(crate) from: weir::record::Position,
    /// Where to stop: "end" (the end when recording starts), an
    /// offset (exclusive), or an RFC 3339 time.
    #[arg(long, default_value = "end")]
    pub(crate) to: weir::record::Position,
    /// Don't show the progress bar.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// Records the pipeline's source topic into the recording directory.
pub(crate) fn record(args: Args) -> anyhow::Result<()> {
    let spec = weir::config::load_pipeline(&args.pipeline)?;
    let options = weir::record::RecordOptions {
        partitions: args.partitions,
        from: args.from,
        to: args.to,
        progress: !args.quiet,
    };
    let report = weir::record::record(&spec.source, &args.dir, &options)?;
    println!(
        "Recorded {} records of `{}` ({} partitions) into {} in {:.1} s.",
        report.records,
        spec.source.topic,
        report.partitions,
        args.dir.display(),
        report.elapsed.as_secs_f64()
    );
    if report.interrupted {
        println!("Interrupted: run the same command again to continue.");
        return Ok(());
    }
    // The control events go with the readings, whole, as a replay reads
    // them (in the recording's `control` directory).
    if let Some(control) = &spec.control {
        let options = weir::record::RecordOptions {
            partitions: Vec::new(),
            from: weir::record::Position::Edge,
            to: weir::record::Position::Edge,
            progress: false,
        };
        let dir = args.dir.join(weir::operators::source::CONTROL_RECORDING);
        let report = weir::record::record(control, &dir, &options)?;
        println!(
            "Recorded {} control events of `{}` into {}.",
            report.records,
            control.topic,
            dir.display()
        );
    }
    Ok(())
}

/// Import captured records (kcat -C -J output, or JSON lines) into a
/// recording directory.
#[derive(clap::Args)]
pub(crate) struct ImportArgs {
    /// The file to import ("-": standard input).
    pub(crate) input: PathBuf,
    /// The recording directory.
    pub(crate) dir: PathBuf,
    /// The topic the records came from (dead letters of a replay name it).
    #[arg(long, default_value = "readings")]
    pub(crate) topic: String,
    /// What each line holds.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) format: weir::record::ImportFormat,
}

/// Imports captured records into the recording directory.
pub(crate) fn import(args: ImportArgs) -> anyhow::Result<()> {
    let name = args.input.display().to_string();
    let mut reader: Box<dyn std::io::BufRead> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.input)
            .map_err(|e| anyhow::anyhow!("cannot open {name}: {e}"))?;
        Box::new(std::io::BufReader::new(file))
    };
    let n = weir::record::import(&mut reader, &name, &args.dir, &args.topic, args.format)?;
    println!("Imported {n} records into {}.", args.dir.display());
    Ok(())
}
