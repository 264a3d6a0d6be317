//! Control sources: the control events of alarm management (acknowledge,
//! shelve, unshelve, out of service) read from a Kafka topic or from a
//! recording, through the same ingest as readings. A control source
//! follows the readings' frontier rather than holding it back: an event
//! read behind the readings applies where they are, and the recorded idle
//! marks make a replay apply it there too.

use std::sync::Arc;

use super::kafka::kafka_items;
use super::recording::recorded_items;
use super::{Items, KafkaSourceConfig};
use crate::decode::ControlDecoder;
use crate::record::ControlEvent;
use crate::recording::Recording;
use crate::run::Env;

/// Reads the control events of `config`'s topic; they go to the alarm
/// ledger that [`alerts`](crate::alert::alerts) wires, which must come
/// after. Returns the events and the dead letters (malformed events, and
/// those naming no known alarm). The topic's lateness bound is not used:
/// events apply in (event time, partition, offset) order, and one behind
/// another applies at that one's time.
pub fn kafka_control<'scope>(
    mut config: KafkaSourceConfig,
    decoder: ControlDecoder,
    env: &Env<'scope>,
) -> Items<'scope, ControlEvent> {
    config.out_of_orderness_ms = 0;
    config.watermark_alignment_ms = None;
    kafka_items(config, decoder, env)
}

/// Replays the control events recorded in `recording` (the `control`
/// directory of a recording a run made with `--record`), as
/// [`kafka_control`] read them live.
pub fn recorded_control<'scope>(
    recording: Arc<Recording>,
    decoder: ControlDecoder,
    watermark_step_ms: u64,
    env: &Env<'scope>,
) -> Items<'scope, ControlEvent> {
    recorded_items(recording, decoder, 0, watermark_step_ms, env)
}
