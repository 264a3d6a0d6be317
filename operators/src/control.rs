//! Run control, apart from the metrics: the stop flag every source watches,
//! and the pipeline errors that stop a run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

    /// Failures recorded so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
