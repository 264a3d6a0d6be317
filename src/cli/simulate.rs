//! `weir simulate`: simulated sensor readings to a Kafka topic.

use weir::simulate::SimulatorConfig;

/// Produce simulated sensor readings to a Kafka topic.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub(crate) brokers: String,
    /// Topic to write to.
    #[arg(long, default_value = "readings")]
    pub(crate) topic: String,
    /// Simulated devices.
    #[arg(long, default_value_t = 20)]
    pub(crate) devices: usize,
    /// Event time to simulate, e.g. "10m", "2h".
    #[arg(long, default_value = "10m")]
    pub(crate) duration: humantime::Duration,
    /// Event time between two readings of one sensor, e.g. "1s".
    #[arg(long, default_value = "1s")]
    pub(crate) interval: humantime::Duration,
    /// Records per second to produce (wall clock); unlimited if absent.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Fraction of bad records.
    #[arg(long, default_value_t = 0.001)]
    pub(crate) bad_rate: f64,
    /// Seed of the random generator.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
}

/// Produces the simulated readings.
pub(crate) fn simulate(args: Args) -> anyhow::Result<()> {
    let config = SimulatorConfig {
        devices: args.devices,
        duration_ms: args.duration.as_millis() as u64,
        interval_ms: args.interval.as_millis() as u64,
        bad_record_rate: args.bad_rate,
        seed: args.seed,
        ..SimulatorConfig::default()
    };
    let topic = &args.topic;
    let report = weir::simulate::produce(&args.brokers, topic, &config, args.rate, true)?;
    println!(
        "Produced {} records to `{topic}`: {} readings, {} bad, {} very late, {} anomaly episodes.",
        report.records, report.readings, report.bad, report.late, report.anomalies
    );
    Ok(())
}
