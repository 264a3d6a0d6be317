//! `weir demo`: the embedded demo, nothing to install.

use std::path::PathBuf;

/// Run the embedded demo: an in-process Kafka cluster, a simulated plant,
/// and the demo pipeline, bounded. Nothing to install.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where to write the Parquet output.
    #[arg(long, default_value = "weir-demo")]
    pub(crate) out: PathBuf,
    /// Worker threads.
    #[arg(long, short = 'w', default_value_t = 2)]
    pub(crate) workers: usize,
    /// Simulated devices.
    #[arg(long, default_value_t = 20)]
    pub(crate) devices: usize,
    /// Minutes of event time to simulate.
    #[arg(long, default_value_t = 10)]
    pub(crate) minutes: u64,
    /// Where to serve the status page (and /metrics, /health, /ready).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub(crate) addr: std::net::SocketAddr,
    /// After the demo, replay its recording at 20x event time for the
    /// status page, then keep serving until Ctrl-C.
    #[arg(long)]
    pub(crate) serve: bool,
}

/// Runs the demo.
pub(crate) fn demo(args: Args) -> anyhow::Result<()> {
    weir::demo::demo(&weir::demo::DemoOptions {
        out: args.out,
        workers: args.workers,
        devices: args.devices,
        minutes: args.minutes,
        addr: args.addr,
        serve: args.serve,
        ..Default::default()
    })
}
