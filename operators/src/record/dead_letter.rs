//! Records that could not be used, kept with their reason and origin.

use serde::{Deserialize, Serialize};

/// Why a record became a dead letter.
///
/// Its name ([`DeadLetterReason::as_str`]) is the serde name: one table.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
#[repr(usize)]
pub enum DeadLetterReason {
    /// The payload is not a JSON object.
    MalformedJson,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong type or an unparsable value.
    InvalidField,
    /// The value is NaN or infinite.
    NonFiniteValue,
    /// The event time is absurd: negative, or far ahead of the Kafka record timestamp.
    AbsurdTimestamp,
    /// The event time is behind its partition's watermark.
    Late,
    /// The event time is behind the source's watermark because its partition
    /// woke after being declared idle.
    LateAfterIdle,
    /// A control event that names no known alarm: a rule the pipeline
    /// does not have, or a device (or device glob) the registry does not
    /// list.
    UnknownAlarm,
    /// An alert event that a receiver (Alertmanager, a webhook) refused or
    /// failed on as many times as its sink allows; the record is the event
    /// as read back from the alert topic.
    Undeliverable,
}

impl DeadLetterReason {
    /// Every reason, for reports.
    pub const ALL: &'static [DeadLetterReason] = <Self as strum::VariantArray>::VARIANTS;

    /// A short, stable name, used in logs, metrics and the dead-letter topic.
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// Position in [`DeadLetterReason::ALL`], for counters.
    pub fn index(&self) -> usize {
        *self as usize
    }
}

impl std::fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that could not be used: the original bytes, why, and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The kind of failure.
    pub reason: DeadLetterReason,
    /// A human-readable explanation, e.g. which field and why.
    pub detail: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// The record's key, if any.
    pub key: Option<Vec<u8>>,
    /// The record's original payload.
    pub payload: Vec<u8>,
}

impl DeadLetter {
    /// The dead letter's identity, the same in every run over the same
    /// input: its origin, `topic/partition/offset`.
    pub fn id(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }

    /// The JSON document written to a dead-letter topic or file, with its
    /// [`DeadLetter::id`]. The payload is kept as text when it is valid
    /// UTF-8, otherwise as base-16.
    pub fn to_json(&self) -> serde_json::Value {
        let payload = match std::str::from_utf8(&self.payload) {
            Ok(text) => serde_json::Value::String(text.to_owned()),
            Err(_) => serde_json::Value::String(hex(&self.payload)),
        };
        serde_json::json!({
            "id": self.id(),
            "reason": self.reason.as_str(),
            "detail": self.detail,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "payload_encoding": if std::str::from_utf8(&self.payload).is_ok() { "utf8" } else { "hex" },
            "payload": payload,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
