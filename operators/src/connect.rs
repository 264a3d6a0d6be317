//! What the connectors of a run do besides reading and writing: record what
//! the sources read (`--record`), pace a replay, and limit its output to a
//! range of event time. Kept for the run in its [`Env`]; which connectors a
//! run uses is decided by `weir::plan::connect`.

use std::path::PathBuf;
use std::rc::Rc;

use crate::run::Env;

/// How a run's connectors record, pace and limit. Keep it with
/// [`Env::insert`]; connectors read it with [`RunIo::of`].
#[derive(Clone, Debug, Default)]
pub struct RunIo {
    /// Sources record what they read, with their idle marks, into this
    /// recording directory.
    pub record: Option<PathBuf>,
    /// A replay moves its watermark this many times as fast as the wall
    /// clock (for demos); as fast as it can when `None`.
    pub speed: Option<f64>,
    /// A replay limited to the event times `[from, to)`: it reads the
    /// recording from its start (so watermarks and rule states are exactly
    /// the live run's at `from`), stops reading a partition once its
    /// watermark passes `to`, and writes only the windows and alert events
    /// inside the range.
    pub range: Option<(u64, u64)>,
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
