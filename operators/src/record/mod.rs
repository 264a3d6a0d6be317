//! What flows through a pipeline, knowing nothing else: readings, window
//! rows and the statistics they carry, alert events, active alarms, the
//! alarm system's health and dead letters,
//! their one identity trait
//! ([`Record`]), and the one stable hash ([`hash`]) that routes them.

pub mod alarm;
pub mod alert;
pub mod cache;
pub mod control;
pub mod dead_letter;
pub mod hash;
pub mod health;
pub mod reading;
pub mod stats;

pub use alarm::{ActiveAlarm, AlarmBoard, Place};
pub use alert::{Alert, AlertState};
pub use control::{ControlAction, ControlEvent};
pub use dead_letter::{DeadLetter, DeadLetterReason};
pub use health::{Health, HealthEvent, HealthRow, TopAlarm};
pub use reading::{Name, Reading, SensorKey, WindowAggregate};
pub use stats::{ParseStatError, Percentile, Stat, Stats};

use std::cmp::Ordering;

/// A record's identity, which every sink writes it by: the same in every run
/// over the same input, so a restarted sink can tell what it delivered
/// before, and output never depends on arrival order.
///
/// # Examples
/// ```
/// use weir_operators::record::{DeadLetter, DeadLetterReason, Record};
///
/// let letter = DeadLetter {
///     reason: DeadLetterReason::MalformedJson,
///     detail: "not JSON".into(),
///     topic: "readings".into(),
///     partition: 2,
///     offset: 41,
///     key: Some(b"d1".to_vec()),
///     payload: b"{oops".to_vec(),
/// };
/// assert_eq!(Record::id(&letter), "readings/2/41");
/// assert_eq!(letter.origin(), Some(("readings", 2, 41)));
/// assert_eq!(letter.key(), b"d1".to_vec());
/// ```
pub trait Record {
    /// Record key (routes the record to a Kafka partition).
    fn key(&self) -> Vec<u8>;
    /// Record payload: one JSON document.
    fn payload(&self) -> Vec<u8>;
    /// Event time: records ready at once are written in its order.
    fn time(&self) -> u64;
    /// Whether a replay limited to the event times `[from, to)` writes it.
    fn in_range(&self, from: u64, to: u64) -> bool;
    /// Identity, the same in every run over the same input; written with the
    /// record (a Kafka header, and in the JSON).
    fn id(&self) -> String;
    /// The source record it comes from (topic, partition, offset), for
    /// records re-made when a restarted source re-reads its input.
    fn origin(&self) -> Option<(&str, i32, i64)> {
        None
    }
    /// Hash routing records to the worker that writes them; records with the
    /// same key go to one worker, so their order in a partition is kept.
    fn route(&self) -> u64;
    /// Orders records of the same time, so output does not depend on arrival order.
    fn cmp_order(&self, other: &Self) -> Ordering;
}

impl Record for Alert {
    fn key(&self) -> Vec<u8> {
        self.device.as_bytes().to_vec()
    }
    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("JSON values always serialize")
    }
    fn time(&self) -> u64 {
        self.event_time
    }
    fn in_range(&self, from: u64, to: u64) -> bool {
        (from..to).contains(&self.event_time)
    }
    fn id(&self) -> String {
        Alert::id(self)
    }
    fn route(&self) -> u64 {
        SensorKey::route_hash(&self.device, "")
    }
    fn cmp_order(&self, other: &Self) -> Ordering {
        self.order_key().cmp(&other.order_key())
    }
}

impl Record for DeadLetter {
    fn key(&self) -> Vec<u8> {
        self.key.clone().unwrap_or_default()
    }
    fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_json()).expect("JSON values always serialize")
    }
    fn time(&self) -> u64 {
        0
    }
    /// Every dead letter of the records a replay reads.
    fn in_range(&self, _from: u64, _to: u64) -> bool {
        true
    }
    fn id(&self) -> String {
        DeadLetter::id(self)
    }
    fn origin(&self) -> Option<(&str, i32, i64)> {
        Some((&self.topic, self.partition, self.offset))
    }
    fn route(&self) -> u64 {
        self.partition as u64
    }
    fn cmp_order(&self, other: &Self) -> Ordering {
        (&self.topic, self.partition, self.offset).cmp(&(
            &other.topic,
            other.partition,
            other.offset,
        ))
    }
}
