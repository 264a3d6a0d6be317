//! What a source decodes its records into: readings, or the control events
//! of alarm management. Both go through the same ingest (lateness, idle
//! marks, resume bookkeeping, recording), so control events are checkpointed
//! and replayed exactly as readings are.

use std::rc::Rc;

use timely::dataflow::Stream;

use crate::decode::{ControlDecoder, DecodeError, Decoder};
use crate::reading::Reading;
use crate::record::ControlEvent;
use crate::run::{Env, SourceBook};

/// A source's items, or the late ones each with its watermark.
type Items<'scope, T> = Stream<'scope, u64, Vec<T>>;

/// Decodes a source's records into the items it sends.
pub(crate) trait Decode: 'static {
    /// What a record becomes.
    type Item: Clone + timely::ExchangeData;
    /// Whether the items are readings: the source then counts in the
    /// readings' frontier (checkpoints, alignment), reports its progress
    /// for silence rules, and hands late readings to window outputs that
    /// take them. A source of other items (control events) follows the
    /// readings' frontier instead of holding it back.
    const READINGS: bool;
    /// Where a run that records (`--record DIR`) records this source's
    /// records, below `DIR`: readings in `DIR` itself, control events in
    /// `DIR/control`.
    const RECORDED_IN: Option<&'static str> = None;
    /// Decodes one payload; `record_time` is the Kafka record timestamp.
    fn decode(
        &self,
        payload: &[u8],
        record_time: Option<i64>,
        partition: i32,
        offset: i64,
    ) -> Result<Self::Item, DecodeError>;
    /// An item's event time.
    fn time(item: &Self::Item) -> u64;
    /// An item behind the watermark `wm` it is judged against, if it is
    /// applied there rather than sent to the dead letters (readings are
    /// not: late ones go to window outputs that take them, or to the dead
    /// letters).
    fn at_watermark(_item: Self::Item, _wm: u64) -> Option<Self::Item> {
        None
    }
    /// The readings among `items`, for the progress of silence rules.
    fn progress(items: &[Self::Item]) -> &[Reading];
    /// Registers a source's streams with the run: its `items`, the `late`
    /// ones a window output takes, its `progress`, and its resume `book`.
    fn register<'scope>(
        env: &Env<'scope>,
        items: &Items<'scope, Self::Item>,
        late: Items<'scope, (u64, Self::Item)>,
        progress: Items<'scope, (i32, u64)>,
        book: Rc<dyn SourceBook>,
    );
}

impl Decode for Decoder {
    type Item = Reading;
    const READINGS: bool = true;

    fn decode(
        &self,
        payload: &[u8],
        record_time: Option<i64>,
        partition: i32,
        offset: i64,
    ) -> Result<Reading, DecodeError> {
        Decoder::decode(self, payload, record_time, partition, offset)
    }

    fn time(item: &Reading) -> u64 {
        item.time
    }

    fn progress(items: &[Reading]) -> &[Reading] {
        items
    }

    fn register<'scope>(
        env: &Env<'scope>,
        items: &Items<'scope, Reading>,
        late: Items<'scope, (u64, Reading)>,
        progress: Items<'scope, (i32, u64)>,
        book: Rc<dyn SourceBook>,
    ) {
        env.register_source(items.clone(), book);
        env.register_progress(progress);
        env.register_late(late);
    }
}

impl Decode for ControlDecoder {
    type Item = ControlEvent;
    const READINGS: bool = false;
    const RECORDED_IN: Option<&'static str> = Some(CONTROL_RECORDING);

    fn decode(
        &self,
        payload: &[u8],
        _record_time: Option<i64>,
        partition: i32,
        offset: i64,
    ) -> Result<ControlEvent, DecodeError> {
        ControlDecoder::decode(self, payload, partition, offset)
    }

    fn time(item: &ControlEvent) -> u64 {
        item.event_time
    }

    fn at_watermark(mut item: ControlEvent, wm: u64) -> Option<ControlEvent> {
        item.event_time = wm;
        Some(item)
    }

    fn progress(_items: &[ControlEvent]) -> &[Reading] {
        &[]
    }

    fn register<'scope>(
        env: &Env<'scope>,
        items: &Items<'scope, ControlEvent>,
        _late: Items<'scope, (u64, ControlEvent)>,
        _progress: Items<'scope, (i32, u64)>,
        book: Rc<dyn SourceBook>,
    ) {
        env.register_source_book(book);
        env.register_control(items.clone());
    }
}

/// The directory below a recording where the control events of the run
/// that made it are recorded.
pub const CONTROL_RECORDING: &str = "control";
