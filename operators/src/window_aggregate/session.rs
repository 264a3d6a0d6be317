//! Session windows: per (device, sensor), readings less than `gap` apart
//! belong to one session; a session closes once the frontier passes its
//! last reading plus the gap, and a reading that bridges two sessions
//! merges them.
//!
//! A session has no bound on its length, so a restart cannot rebuild it by
//! re-reading a window of history: the open sessions go into checkpoints.
//! For a checkpoint at frontier `F` to hold exactly the readings before
//! `F`, readings wait in `pending` until the frontier passes them.

use std::collections::{BTreeMap, BTreeSet};

use hashbrown::HashMap;
use serde::{Deserialize, Serialize};

use super::acc::{Acc, Extras};
use crate::reading::{KeyRef, Reading, SensorKey, WindowAggregate as Aggregate};
use crate::record::Stats;

/// One open session of a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Event time of its first reading.
    start: u64,
    /// Event time of its last reading.
    last: u64,
    /// Sessions are few (one or two open per key): each keeps the state of
    /// every statistic, and its rows carry those of the output.
    acc: Acc<Extras>,
}

/// The open sessions of one worker, as a checkpoint holds them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionPart {
    /// The gap the sessions were built with.
    pub(crate) gap_ms: u64,
    /// Each key's open sessions, by start; keys sorted.
    pub(crate) keys: Vec<(SensorKey, Vec<Session>)>,
}

/// The open sessions of one worker's keys.
///
/// A session of a key is a maximal run of its readings, in event-time
/// order, each less than `gap` after the one before. It is emitted as the
/// window `[first reading, last reading + gap)`, once the frontier passes
/// that end (no later reading can join it then), in order of end, then
/// device, then sensor.
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    gap_ms: u64,
    /// The statistics of the rows.
    stats: Stats,
    /// Whether a sketch is kept (some percentile is computed).
    sketch: bool,
    /// Each key's open sessions, by start, each starting a gap or more
    /// after the one before ends.
    keys: HashMap<SensorKey, Vec<Session>>,
    /// The end (last reading + gap) of every open session, with its key.
    ends: BTreeSet<(u64, SensorKey)>,
    /// Readings not yet applied, by event time: every reading before
    /// `applied` is applied.
    pending: BTreeMap<u64, Vec<Reading>>,
    applied: u64,
}

impl Sessions {
    /// No open session, for sessions of `gap_ms`.
    ///
    /// # Panics
    /// If `gap_ms` is 0 (config validation rejects it first).
    ///
    /// # Examples
    /// Readings at 0 s, 20 s and 90 s with a gap of 30 s: two sessions.
    /// ```
    /// use weir_operators::window_aggregate::Sessions;
    /// use weir_operators::Reading;
    ///
    /// let mut sessions = Sessions::new(30_000);
    /// for (t, v) in [(90_000, 5.0), (0, 1.0), (20_000, 2.0)] {
    ///     sessions.insert(&Reading::new("d1", "temp", t, v, 0, 0));
    /// }
    /// let mut out = Vec::new();
    /// sessions.flush_until(None, &mut out);
    /// let rows: Vec<_> = out.iter().map(|w| (w.window_start, w.window_end, w.count, w.sum)).collect();
    /// assert_eq!(rows, vec![(0, 50_000, 2, 3.0), (90_000, 120_000, 1, 5.0)]);
    /// ```
    pub fn new(gap_ms: u64) -> Self {
        Sessions::with_stats(gap_ms, Stats::basic())
    }

    /// No open session, for sessions of `gap_ms` whose rows carry `stats`.
    ///
    /// # Panics
    /// If `gap_ms` is 0 (config validation rejects it first).
    pub fn with_stats(gap_ms: u64, stats: Stats) -> Self {
        assert!(gap_ms > 0, "the session gap must be positive");
        Sessions {
            gap_ms,
            sketch: stats.has_percentiles(),
            stats,
            ..Sessions::default()
        }
    }

    /// The gap, in ms.
    pub fn gap_ms(&self) -> u64 {
        self.gap_ms
    }

    /// Takes a reading; it is applied once the frontier passes it.
    pub fn insert(&mut self, reading: &Reading) {
        if reading.time < self.applied {
            // Re-read after a restart: the checkpoint holds it.
            return;
        }
        self.pending
            .entry(reading.time)
            .or_default()
            .push(reading.clone());
    }

    /// After a restart from a checkpoint at `frontier`: the readings before
    /// it are in the restored sessions.
    pub fn resume_at(&mut self, frontier: u64) {
        self.applied = self.applied.max(frontier);
    }

    /// Restores the sessions of `parts` whose key `owns` says are this
    /// worker's. Fails if they were built with another gap.
    pub fn restore(
        &mut self,
        parts: Vec<SessionPart>,
        owns: impl Fn(&SensorKey) -> bool,
    ) -> Result<(), String> {
        for part in parts {
            if part.gap_ms != self.gap_ms {
                return Err(format!(
                    "the checkpoint's session windows have a gap of {} ms, the pipeline's {} ms: \
                     resume with the gap of the checkpoint, or start afresh",
                    part.gap_ms, self.gap_ms
                ));
            }
            for (key, sessions) in part.keys.into_iter().filter(|(k, _)| owns(k)) {
                for s in &sessions {
                    self.ends.insert((s.last + self.gap_ms, key.clone()));
                }
                self.keys.insert(key, sessions);
            }
        }
        Ok(())
    }

    /// The open sessions, for a checkpoint (every reading before the
    /// frontier the state was brought to, none after).
    pub fn snapshot(&self) -> SessionPart {
        let mut keys: Vec<_> = self
            .keys
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        SessionPart {
            gap_ms: self.gap_ms,
            keys,
        }
    }

    /// Applies the readings before `frontier` (every one when `None`: the
    /// input has ended), then emits every session that ends at or before
    /// it, by end, then device, then sensor.
    pub fn flush_until(&mut self, frontier: Option<u64>, out: &mut Vec<Aggregate>) {
        let mut timed = Vec::new();
        self.flush_timed(frontier, &mut timed);
        out.extend(timed.into_iter().map(|(_, row)| row));
    }

    /// [`Sessions::flush_until`], each row with its end, the time it is
    /// made at.
    pub(crate) fn flush_timed(&mut self, frontier: Option<u64>, out: &mut Vec<(u64, Aggregate)>) {
        let ready = match frontier {
            Some(f) => {
                let later = self.pending.split_off(&f);
                self.applied = self.applied.max(f);
                std::mem::replace(&mut self.pending, later)
            }
            None => std::mem::take(&mut self.pending),
        };
        for reading in ready.into_values().flatten() {
            self.apply(&reading);
        }
        while let Some((end, _)) = self.ends.first() {
            // Emitted once the frontier is past its end: a checkpoint at
            // the end itself still holds it, and a restart emits it.
            if frontier.is_some_and(|f| *end >= f) {
                break;
            }
            let (end, key) = self.ends.pop_first().expect("an end was there");
            let sessions = self.keys.get_mut(&key).expect("an end has its key");
            let i = sessions
                .iter()
                .position(|s| s.last + self.gap_ms == end)
                .expect("an end has its session");
            let s = sessions.remove(i);
            out.push((end, s.acc.row(key.clone(), s.start, end, &self.stats)));
            if sessions.is_empty() {
                self.keys.remove(&key);
            }
        }
    }

    /// Adds a reading to its key's sessions. Readings are applied in
    /// event-time order, so it either extends the key's latest session (it
    /// is less than a gap after its last reading) or starts one; a reading
    /// between two sessions has come before the later one's readings, and
    /// so bridges them.
    fn apply(&mut self, r: &Reading) {
        let gap = self.gap_ms;
        if !self.keys.contains_key(&KeyRef::new(&r.device, &r.sensor)) {
            self.keys.insert(r.key(), Vec::new());
        }
        let sessions = self
            .keys
            .get_mut(&KeyRef::new(&r.device, &r.sensor))
            .expect("inserted above");
        match sessions.last_mut() {
            Some(s) if r.time < s.last + gap => {
                debug_assert!(r.time >= s.last, "readings are applied in event-time order");
                self.ends.remove(&(s.last + gap, r.key()));
                s.last = r.time;
                s.acc.add(r, self.sketch);
            }
            _ => sessions.push(Session {
                start: r.time,
                last: r.time,
                acc: Acc::new(r, self.sketch),
            }),
        }
        self.ends.insert((r.time + gap, r.key()));
    }

    /// The end of the earliest session still to be emitted.
    pub fn earliest_end(&self) -> Option<u64> {
        let open = self.ends.first().map(|(end, _)| *end);
        let pending = self.pending.keys().next().map(|t| t + self.gap_ms);
        open.into_iter().chain(pending).min()
    }

    /// Discards every open session and waiting reading (a stop) and
    /// returns how many sessions were dropped.
    pub fn discard(&mut self) -> usize {
        self.pending.clear();
        self.keys.clear();
        std::mem::take(&mut self.ends).len()
    }

    /// The open sessions and waiting readings, and an estimate of their
    /// bytes.
    pub fn footprint(&self) -> (usize, usize) {
        let sessions = self.ends.len();
        let waiting: usize = self.pending.values().map(Vec::len).sum();
        let bytes = sessions
            * (std::mem::size_of::<Session>() + 2 * std::mem::size_of::<SensorKey>() + 16)
            + waiting * std::mem::size_of::<Reading>();
        (sessions, bytes)
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
