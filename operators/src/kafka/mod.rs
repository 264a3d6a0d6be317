//! Kafka connectors: the source of readings and the sink of alerts and dead letters.

pub mod sink;
pub mod source;

pub use sink::{KafkaSink, KafkaSinkConfig};
pub use source::{EndOffset, KafkaSource, KafkaSourceConfig, StartOffset};

use rdkafka::config::ClientConfig;

/// Builds an rdkafka client config from brokers and extra properties.
/// Extra properties are applied last, so they override Weir's defaults.
pub fn client_config(brokers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (k, v) in properties {
        config.set(k, v);
    }
    config
}
