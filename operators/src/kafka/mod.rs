//! Kafka connectors: the source of readings and the sink of alerts and dead letters.
//! The source lives with the other sources, in `source/kafka/`; it is
//! re-exported here as `kafka::source`.

pub use crate::sink::kafka as sink;
pub use crate::source::kafka as source;

pub use sink::{KafkaSink, KafkaSinkConfig};
pub use source::{EndOffset, KafkaSource, KafkaSourceConfig, StartOffset};

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

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

/// Sends `record` with `send` (a producer's `send`), and while the
/// producer's queue is full, calls `wait` (poll a `BaseProducer`, or sleep
/// while a `ThreadedProducer`'s thread delivers) and tries again. Any other
/// error is returned.
///
/// # Examples
///
/// ```
/// use rdkafka::error::KafkaError;
/// use rdkafka::types::RDKafkaErrorCode;
/// use weir_operators::kafka::send_retrying;
///
/// // A queue that is full twice, then takes the record.
/// let mut full = 2;
/// let mut waits = 0;
/// let sent = send_retrying(
///     "record",
///     |r| match full {
///         0 => Ok(()),
///         _ => {
///             full -= 1;
///             Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
///         }
///     },
///     || waits += 1,
/// );
/// assert!(sent.is_ok());
/// assert_eq!(waits, 2);
///
/// let refused = send_retrying(
///     "record",
///     |r| Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), r)),
///     || unreachable!(),
/// );
/// assert!(refused.is_err());
/// ```
pub fn send_retrying<R>(
    mut record: R,
    mut send: impl FnMut(R) -> Result<(), (KafkaError, R)>,
    mut wait: impl FnMut(),
) -> Result<(), KafkaError> {
    loop {
        match send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                wait();
            }
            Err((error, _)) => return Err(error),
        }
    }
}
