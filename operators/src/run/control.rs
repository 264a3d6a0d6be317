//! Run control, apart from the metrics: the stop flag every source watches,
//! the pipeline errors that stop a run, and rule reloads.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// What the operators of a run share: its metrics and its control. Cheap
/// to clone; every clone is the same run.
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// The run's metrics.
    pub metrics: Arc<Metrics>,
    /// The run's stop flag and errors.
    pub control: Arc<RunControl>,
}

/// The stop flag and the errors of a run.
#[derive(Debug, Default)]
pub struct RunControl {
    stop: AtomicBool,
    errors: Mutex<Vec<String>>,
    /// The reload asked for and not yet applied.
    reload: Mutex<Option<Reload>>,
    /// The version of the rule set in force (0: the first, version 1).
    rules_version: AtomicU64,
    /// A requested reload was refused (see [`RunControl::take_reload_refused`]).
    reload_refused: AtomicBool,
}

impl RunControl {
    /// Asks every source of the run to stop; the dataflow then drains.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Records a failure of the pipeline itself (a sink that could not
    /// deliver, a file that could not be written) and asks the sources to
    /// stop: the run drains and ends with an error. The same error from
    /// several workers is kept once.
    pub fn add_error(&self, error: String) {
        self.request_stop();
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if !errors.contains(&error) {
            tracing::error!(%error, "Pipeline error");
            errors.push(error);
        }
    }

    /// Asks the run to apply `reload` (new rules: see `RuleSet::to_reload`)
    /// from the next event-time boundary on. Worker 0's process applies it
    /// to every worker of the run; a request made before the previous one
    /// was applied replaces it.
    pub fn request_reload(&self, reload: Reload) {
        *self.reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(reload);
    }

    /// The reload asked for by [`RunControl::request_reload`], once.
    pub fn take_reload(&self) -> Option<Reload> {
        self.reload.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Notes that the reload taken last was refused (the running pipeline
    /// cannot take it): the rules in force stay.
    pub fn note_reload_refused(&self) {
        self.reload_refused.store(true, Ordering::SeqCst);
    }

    /// Whether a reload was refused since the last call: whoever asked for
    /// it then knows the rules in force did not change.
    pub fn take_reload_refused(&self) -> bool {
        self.reload_refused.swap(false, Ordering::SeqCst)
    }

    /// The version of the rule set in force: 1 at the start of a run (or the
    /// version a resumed checkpoint holds), one more at each reload.
    pub fn rules_version(&self) -> u64 {
        self.rules_version.load(Ordering::SeqCst).max(1)
    }

    /// Sets the version of the rule set in force.
    pub fn set_rules_version(&self, version: u64) {
        self.rules_version.store(version, Ordering::SeqCst);
    }

    /// Failures recorded so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A reload of what a run evaluates, opaque to the run layer: the layer it
/// is for encodes it, and decides whether the running pipeline can take it
/// (see `Env::on_reload`). It travels to every worker with a marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reload {
    /// The encoded definitions.
    pub payload: Vec<u8>,
}
