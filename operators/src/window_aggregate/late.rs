//! Late readings and corrections, shared by tumbling and hopping windows.
//!
//! A late reading (behind its partition's watermark `wm`) that an output
//! with an allowed lateness `L` takes is applied when the frontier reaches
//! `wm`, after every window ending by then was emitted. A window it falls
//! in that was emitted, and whose end plus `L` is still ahead of `wm`, is
//! emitted again: a correction, with its revision one higher (the first
//! emission is revision 0). Every late reading applied at the same `wm`
//! makes one correction per window. All of this depends on the input only:
//! `wm` is the watermark the source judged the reading against.

use std::collections::BTreeMap;

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use crate::reading::{Reading, SensorKey, WindowAggregate as Aggregate};

/// The late readings waiting for the frontier, and the revisions of the
/// windows emitted within the allowed lateness.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Lateness {
    /// How long after its end a window takes late readings, ms (0: never).
    pub(crate) allowed_ms: u64,
    /// Late readings by the watermark they were judged behind.
    pending: BTreeMap<u64, Vec<Reading>>,
    /// The next revision of each window (end, key) emitted and still within
    /// the allowed lateness.
    revisions: HashMap<(u64, SensorKey), u32>,
    /// After a restart from a checkpoint at this frontier: rows of earlier
    /// times were written by the run before, and are rebuilt, not sent.
    pub(crate) suppress_before: u64,
}

/// What a window store does next as the frontier advances.
pub(crate) enum Next {
    /// Emit the windows ending here.
    End(u64),
    /// Apply the late readings judged behind this watermark.
    Late(u64),
}

impl Lateness {
    /// Corrections for `allowed_ms` after a window's end.
    pub(crate) fn new(allowed_ms: u64) -> Self {
        Lateness {
            allowed_ms,
            ..Lateness::default()
        }
    }

    /// Takes a late reading judged behind watermark `wm`.
    pub(crate) fn push(&mut self, wm: u64, reading: Reading) {
        self.pending.entry(wm).or_default().push(reading);
    }

    /// What comes first: the windows ending at `end`, or the late readings
    /// of the least watermark (windows first at the same time); `None`
    /// when neither comes at or before `frontier`.
    pub(crate) fn next(&self, end: Option<u64>, frontier: Option<u64>) -> Option<Next> {
        let late = self.pending.keys().next().copied();
        let next = match (end, late) {
            (Some(e), Some(c)) if c < e => Next::Late(c),
            (Some(e), _) => Next::End(e),
            (None, Some(c)) => Next::Late(c),
            (None, None) => return None,
        };
        let at = match next {
            Next::End(t) | Next::Late(t) => t,
        };
        (frontier.is_none_or(|f| at <= f)).then_some(next)
    }

    /// The least watermark of the late readings waiting.
    pub(crate) fn earliest(&self) -> Option<u64> {
        self.pending.keys().next().copied()
    }

    /// The late readings judged behind `wm`.
    pub(crate) fn take(&mut self, wm: u64) -> Vec<Reading> {
        self.pending.remove(&wm).unwrap_or_default()
    }

    /// Whether a row emitted at `time` is sent (not rebuilt after a restart).
    pub(crate) fn sends(&self, time: u64) -> bool {
        time >= self.suppress_before
    }

    /// Notes the first emission (revision 0) of window `end` of `key`.
    pub(crate) fn emitted(&mut self, end: u64, key: &SensorKey) {
        if self.allowed_ms > 0 {
            self.revisions.insert((end, key.clone()), 1);
        }
    }

    /// The revision of the next emission of window `end` of `key`.
    pub(crate) fn revision(&mut self, end: u64, key: &SensorKey) -> u32 {
        let next = self.revisions.entry((end, key.clone())).or_insert(0);
        *next += 1;
        *next - 1
    }

    /// Whether window `end` still takes a late reading applied at `wm`.
    pub(crate) fn open_at(&self, end: u64, wm: u64) -> bool {
        end + self.allowed_ms > wm
    }

    /// Sends `row`, made at `time` (with that time), unless it was sent
    /// before a restart.
    pub(crate) fn send(&self, time: u64, row: Aggregate, out: &mut Vec<(u64, Aggregate)>) {
        if self.sends(time) {
            out.push((time, row));
        }
    }

    /// Forgets the windows whose lateness the frontier passed (every one
    /// when `None`).
    pub(crate) fn prune(&mut self, frontier: Option<u64>) {
        let allowed = self.allowed_ms;
        match frontier {
            Some(f) => self.revisions.retain(|(end, _), _| end + allowed > f),
            None => self.revisions.clear(),
        }
    }

    /// Drops the late readings waiting (a stop).
    pub(crate) fn discard(&mut self) {
        self.pending.clear();
    }

    /// Late readings waiting and windows tracked, for the footprint.
    pub(crate) fn len(&self) -> usize {
        self.pending.values().map(Vec::len).sum::<usize>() + self.revisions.len()
    }
}
