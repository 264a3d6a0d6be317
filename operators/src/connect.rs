//! Where a run's inputs come from and its outputs go, when not where the
//! pipeline says: set by `weir run --record`, `weir replay` and the range
//! and offset flags, kept for the run in its [`Env`], and obeyed by the
//! connectors, so that config pipelines and Rust pipelines behave alike.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use crate::kafka::source::{EndOffset, StartOffset};
use crate::recording::Recording;
use crate::run::Env;

/// The redirections of a run's inputs and outputs. Keep it with
/// [`Env::insert`]; connectors read it with [`RunIo::of`].
#[derive(Clone, Debug, Default)]
pub struct RunIo {
    /// Sources record what they read, with their idle marks, into this
    /// recording directory.
    pub record: Option<PathBuf>,
    /// Sources read this recording instead of their Kafka topic.
    pub replay: Option<Arc<Recording>>,
    /// A replay moves its watermark this many times as fast as the wall
    /// clock (for demos); as fast as it can when `None`.
    pub speed: Option<f64>,
    /// A replay limited to the event times `[from, to)`: it reads the
    /// recording from its start (so watermarks and rule states are exactly
    /// the live run's at `from`), stops reading a partition once its
    /// watermark passes `to`, and writes only the windows and alert events
    /// inside the range.
    pub range: Option<(u64, u64)>,
    /// Kafka sources start here instead of their configured start.
    pub start: Option<StartOffset>,
    /// Kafka sources stop at these ends (see [`KafkaSourceConfig::end`]).
    ///
    /// [`KafkaSourceConfig::end`]: crate::kafka::KafkaSourceConfig::end
    pub end: Option<EndOffset>,
}

impl RunIo {
    /// The redirections of `env`'s run: none unless some were kept.
    ///
    /// # Examples
    /// ```
    /// use weir_operators::connect::RunIo;
    /// use weir_operators::Env;
    ///
    /// timely::example(|scope| {
    ///     let env = Env::standalone(scope);
    ///     assert!(RunIo::of(&env).record.is_none());
    ///     env.insert(RunIo { record: Some("rec".into()), ..RunIo::default() });
    ///     assert_eq!(RunIo::of(&env).record, Some("rec".into()));
    /// });
    /// ```
    pub fn of(env: &Env<'_>) -> Rc<RunIo> {
        env.layer::<RunIo>()
    }
}
