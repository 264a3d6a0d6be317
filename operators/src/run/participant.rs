//! An operator's part in checkpoints: where its parts go, and the markers
//! it has received and not yet obeyed.

use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;

use super::{Run, Shared};
use crate::checkpoint::{Marker, PendingFile, Session};

/// An operator's handle on checkpoints: the markers it must obey, and where
/// its parts go.
pub(crate) struct Participant {
    pub(super) op: String,
    pub(super) worker: usize,
    pub(super) session: Option<Arc<Session>>,
    pub(super) shared: Rc<Shared>,
    pub(super) run: Run,
}

impl Participant {
    /// The operator's name in checkpoints.
    pub(crate) fn op(&self) -> &str {
        &self.op
    }

    /// Writes this operator's state for `marker`, with files that become
    /// visible when the checkpoint completes. A failure is a pipeline error
    /// (the checkpoint then never completes).
    pub(crate) fn write<T: Serialize>(&self, marker: &Marker, state: &T, files: Vec<PendingFile>) {
        let Some(session) = &self.session else { return };
        match session.write_part(marker.id, &self.op, self.worker, state) {
            Ok(part) => {
                let mut written = self.shared.written.borrow_mut();
                let entry = written.entry(marker.id).or_default();
                entry.parts.push(part);
                entry.files.extend(files);
            }
            Err(e) => self.fail(marker, e),
        }
        self.shared.wake_acker();
    }

    /// Gives up this operator's part of `marker` (its state at the
    /// checkpoint cannot be made durable, e.g. its outputs cannot be
    /// delivered): the checkpoint never completes, and the run fails with
    /// `reason`.
    pub(crate) fn fail(&self, marker: &Marker, reason: String) {
        self.run.control.add_error(reason);
        if self.session.is_some() {
            self.shared
                .written
                .borrow_mut()
                .entry(marker.id)
                .or_default()
                .failed += 1;
        }
        self.shared.wake_acker();
    }
}

/// The markers an operator has received and not yet obeyed.
#[derive(Debug, Default)]
pub(crate) struct Barrier {
    pending: Vec<Marker>,
    last: bool,
}

impl Barrier {
    /// Takes the markers of the marker input. The last marker of a stop
    /// stops this process too, if it was not asked to stop itself.
    pub(crate) fn receive(&mut self, markers: &mut Vec<Marker>, run: &Run) {
        if !self.last && markers.iter().any(|m| m.last) {
            self.last = true;
            stop_on_last_marker(run);
        }
        self.pending.append(markers);
        self.pending.sort_by_key(|m| m.frontier);
    }

    /// Whether the run is stopping: asked to here, or the last marker of a
    /// stop (from a process asked to stop) arrived. A stopping operator goes
    /// only as far as checkpoint markers take it: once stopped sources let
    /// go of their capabilities, the frontier may pass records they never
    /// read.
    pub(crate) fn stopping(&self, run: &Run) -> bool {
        self.last || run.control.stop_requested()
    }

    /// The next marker whose frontier the operator's inputs have reached
    /// (every one when `frontier` is `None`: the inputs have ended).
    pub(crate) fn next_due(&mut self, frontier: Option<u64>) -> Option<Marker> {
        let first = self.pending.first()?;
        if frontier.is_some_and(|f| first.frontier > f) {
            return None;
        }
        Some(self.pending.remove(0))
    }
}

/// Asks this process to stop once the last marker of a stop requested
/// elsewhere in the run arrived.
pub(crate) fn stop_on_last_marker(run: &Run) {
    if !run.control.stop_requested() {
        tracing::info!("The run was asked to stop elsewhere: stopping");
        run.control.request_stop();
    }
}
