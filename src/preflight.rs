//! Checks made before a pipeline starts, so that a missing broker, topic or
//! output directory fails at once with a clear message instead of after
//! minutes of work.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaRespErr;
use weir_operators::kafka::client_config;

use crate::config::PipelineSpec;
use crate::runtime::RunOptions;

/// How long the broker may take to answer a metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that the brokers answer and that every topic exists, with the
/// client `properties` the pipeline uses (security settings, for example).
pub fn check_topics(
    brokers: &str,
    properties: &[(String, String)],
    topics: &[&str],
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = client_config(brokers, properties)
        // Connection failures are reported below; librdkafka's own log of
        // every retry would only bury that message.
        .set_log_level(RDKafkaLogLevel::Emerg)
        .create()
        .with_context(|| format!("cannot create a Kafka client for {brokers}"))?;
    let metadata = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| anyhow::anyhow!("cannot reach Kafka at {brokers} ({e}): is the broker running, and is the address right?"))?;
    let mut missing = Vec::new();
    for topic in topics {
        match metadata.topics().iter().find(|m| m.name() == *topic) {
            None => missing.push(*topic),
            Some(m) => match m.error() {
                None if !m.partitions().is_empty() => {}
                None | Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => {
                    missing.push(*topic)
                }
                Some(error) => bail!("topic {topic} on {brokers} is not usable: {error:?}"),
            },
        }
    }
    if !missing.is_empty() {
        bail!(
            "topic(s) {} do not exist on {brokers}; create them first",
            missing.join(", ")
        );
    }
    Ok(())
}

/// Checks that `dir` exists or can be created, and is writable.
pub fn check_writable_dir(dir: &Path) -> anyhow::Result<()> {
    weir_operators::storage::Location::from(dir)
        .check_writable()
        .map_err(anyhow::Error::msg)
}

/// Checks everything a run of the pipeline needs from the outside world,
/// for the connectors the run uses (see [`crate::plan::connect`]): the
/// source topic on its broker (unless the run replays a recording), the sink
/// topics and the Parquet directory (or the local directory a run with
/// `--out` writes to).
pub fn check_pipeline(spec: &PipelineSpec, options: &RunOptions) -> anyhow::Result<()> {
    let connect = crate::plan::Connect::new(options)?;
    connect.check_source(&spec.source)?;
    if let Some(control) = &spec.control {
        connect.check_source(control)?;
    }
    if let Some(parquet) = &spec.alarm_health_parquet {
        connect.check_parquet_of(crate::plan::HEALTH_OUTPUT, parquet)?;
    }
    for sink in [&spec.alerts, &spec.dead_letters].into_iter().flatten() {
        connect.check_sink(sink)?;
    }
    for w in &spec.windows {
        if let Some(parquet) = &w.parquet {
            connect.check_parquet_of(&w.name, parquet)?;
        }
    }
    Ok(())
}
