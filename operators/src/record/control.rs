//! Control events: what operators do to alarms (acknowledge, shelve,
//! unshelve, take devices out of service and back), read from a control
//! topic and applied on event time like readings.

use serde::{Deserialize, Serialize};

use super::reading::Name;

/// What a control event does.
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
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ControlAction {
    /// Acknowledges an active alarm: its later events, and `/api/alarms`,
    /// carry who acknowledged it and when, until it resolves.
    Ack,
    /// Shelves an alarm until an event time: it is evaluated, but its
    /// events are marked `shelved` and not delivered to receivers.
    Shelve,
    /// Ends a shelve before its time.
    Unshelve,
    /// Takes the devices matching a glob out of service: their alarms are
    /// shelved until they are back in service.
    OutOfService,
    /// Puts devices taken out of service (the same glob) back.
    InService,
}

impl ControlAction {
    /// The name used in JSON: `ack`, `shelve`, `unshelve`,
    /// `out_of_service` or `in_service`.
    pub fn as_str(&self) -> &'static str {
        self.into()
    }

    /// Whether it names one alarm (rule, device, sensor) rather than a
    /// device glob.
    pub fn names_alarm(&self) -> bool {
        matches!(self, Self::Ack | Self::Shelve | Self::Unshelve)
    }
}

/// One control event, as decoded from the control topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlEvent {
    /// When it applies (ms since the epoch): its `event_time`, or the
    /// readings' watermark when it was read, if that was later (it cannot
    /// change what is already decided).
    pub event_time: u64,
    /// What it does.
    pub action: ControlAction,
    /// The alarm's rule (actions on one alarm).
    pub rule: String,
    /// The alarm's device; for `out_of_service` and `in_service`, a glob
    /// of device ids.
    pub device: String,
    /// The alarm's sensor (actions on one alarm).
    pub sensor: Name,
    /// Who did it.
    pub user: String,
    /// Why.
    pub reason: String,
    /// The end of a shelve (event time, ms).
    pub until: Option<u64>,
    /// Where it came from: partition and offset of the control topic. Of
    /// one event time, events apply in (partition, offset) order.
    pub partition: i32,
    /// Offset in its partition.
    pub offset: i64,
}

impl ControlEvent {
    /// The order events apply in: event time, partition, offset.
    pub fn order_key(&self) -> (u64, i32, i64) {
        (self.event_time, self.partition, self.offset)
    }
}
