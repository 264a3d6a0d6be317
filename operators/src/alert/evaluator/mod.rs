//! The alert evaluation logic, free of timely: per-key rule states and the
//! observations waiting for the frontier.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::state::Pending;
use super::{Alert, Observation, Rule, RuleKind, RuleSet, RuleState};
use crate::reading::{Name, SensorKey};

mod checkpoint;
mod emitter;
mod fold;
mod index;
mod prefetch;
mod select;
mod silence;

pub use checkpoint::AlertPart;
use emitter::Emitter;
use fold::{Revival, FOLDED};
use index::KeyIndex;
use select::{combinations_of, route_of, sensors_of};
use silence::noticed;

/// Per-key state of the alert operator: the rules that select the key and
/// their state machines.
struct KeyState {
    key: SensorKey,
    /// (rule index, state) for every rule that selects this key.
    rules: Vec<(usize, RuleState)>,
    /// The application order of the key's latest queued observation, or
    /// its greatest one after a sort: an arrival before it breaks the
    /// order of [`AlertEvaluator::pending`].
    last: (u64, i32, i64),
    /// One more than the event time of the key's latest unfolded entry in
    /// [`AlertEvaluator::pending`] (0: none yet): one is still waiting
    /// while this is above the horizon.
    unfolded: u64,
    /// The key's folded entries that are applied after all (see
    /// [`AlertEvaluator::folds`]), while `until` waits.
    revived: Option<Box<Revival>>,
}

impl KeyState {
    fn new(key: SensorKey, rules: Vec<(usize, RuleState)>) -> Self {
        KeyState {
            key,
            rules,
            last: (0, i32::MIN, i64::MIN),
            unfolded: 0,
            revived: None,
        }
    }
}

/// Width, in ms of event time, of the buckets pending observations are
/// kept in: an `advance_to` goes over the observations of the buckets the
/// frontier has reached, and of the one it is in again later.
const BUCKET_MS: u64 = 16;

/// Pending observations of one bucket of event time.
struct Bucket<P> {
    /// (key slot, observation), in arrival order (sorted by key and order
    /// if `unsorted`).
    entries: Vec<(usize, P)>,
    /// The earliest event time in `entries`.
    min: u64,
    /// An observation arrived before a key's earlier one in this bucket.
    unsorted: bool,
}

/// The alert evaluation logic, free of timely: feed observations with
/// [`AlertEvaluator::push`], then call [`AlertEvaluator::advance_to`] as the
/// frontier moves.
pub struct AlertEvaluator<O: Observation> {
    /// The rule set, its version and the transitions to turn into alerts.
    emitter: Emitter,
    /// The rules judging keys: those of the rule set, then variants of them with
    /// a device's own limits (see [`RuleSet::judge`]).
    table: Vec<Rule>,
    /// Variants in `table`, by (rule index, threshold bits, clear bits).
    variants: HashMap<(usize, u64, u64), usize>,
    /// Slots in `keys`, by the key's [`Observation::route`] (the routing
    /// hash computed once at decode), so a lookup hashes nothing.
    index: KeyIndex,
    keys: Vec<KeyState>,
    /// Observations waiting for the frontier, with their key's slot, by
    /// bucket of event time ([`BUCKET_MS`]), each bucket in arrival order.
    /// A key's readings mostly arrive in application order (event time,
    /// then origin), so one pass over a bucket applies them in order; a
    /// bucket in which one did not is sorted by key and order first.
    /// Appending and applying touch memory in sequence, where a queue per
    /// key would cost a cache miss per key and round, and an `advance_to`
    /// touches only the buckets the frontier has reached.
    /// What waits is the compact [`Observation::Pending`], not the
    /// observation: the key's names are in its slot.
    pending: BTreeMap<u64, Bucket<O::Pending>>,
    /// The bucket appended to last, out of `pending` while it is: readings
    /// come in runs of one bucket (a partition's batch, in time order), so
    /// most appends go straight to it, without a search of `pending`.
    hot: Option<(u64, Bucket<O::Pending>)>,
    /// Emptied bucket buffers, for reuse.
    spare: Vec<Vec<(usize, O::Pending)>>,
    /// Armed duration deadlines: (deadline, key, slot).
    deadlines: BTreeSet<(u64, usize, usize)>,
    /// Every sensor name some rule lists, or `None` if a rule takes every
    /// sensor: a cheap test that skips most readings before any lookup.
    sensors: Option<Vec<String>>,
    /// The keys of the combination rules ([`crate::alert::combination::Combination::key`]),
    /// each once: a reading of a sensor one names is also queued for it.
    combinations: Vec<String>,
    /// Observations before this time were applied before a restart.
    floor: u64,
    /// Whether observations that cannot change a key's state are folded
    /// (see [`AlertEvaluator::folds`]); off only to test against.
    fold: bool,
    /// Every entry earlier than this was applied: the latest frontier
    /// given to [`AlertEvaluator::advance_to`].
    horizon: u64,
    /// The latest event time of a revived entry (see [`Revival`]): folded
    /// entries after it are passed over without a look at their key.
    revive_until: Option<u64>,
    /// Observations folded so far.
    folded: u64,
    /// Armed silence deadlines, by the partition of the key's latest
    /// reading: (deadline, key, slot).
    silences: BTreeMap<i32, BTreeSet<(u64, usize, usize)>>,
    /// Buckets of event time in which each source partition delivered
    /// readings (see [`AlertEvaluator::note_progress`]).
    progress: BTreeMap<i32, BTreeSet<u64>>,
}

impl<O: Observation> AlertEvaluator<O> {
    /// An evaluator for a rule set (version 1).
    pub fn new(rules: Arc<RuleSet>) -> Self {
        AlertEvaluator {
            sensors: sensors_of(&rules),
            combinations: combinations_of(&rules),
            table: rules.rules.clone(),
            variants: HashMap::new(),
            emitter: Emitter {
                rules,
                version: 1,
                transitions: Vec::new(),
            },
            index: KeyIndex::new(),
            keys: Vec::new(),
            pending: BTreeMap::new(),
            hot: None,
            spare: Vec::new(),
            deadlines: BTreeSet::new(),
            floor: 0,
            fold: true,
            horizon: 0,
            revive_until: None,
            folded: 0,
            silences: BTreeMap::new(),
            progress: BTreeMap::new(),
        }
    }

    /// Judges by `rules` (version `version`) from now on: observations not
    /// yet applied, and durations not yet reached, go to the new rules. A
    /// rule whose name and meaning are unchanged keeps its state; a changed
    /// or new rule starts afresh; a removed rule's state is dropped. `fed`
    /// tells the rules whose input this evaluator is fed.
    pub fn replace_rules(
        &mut self,
        rules: Arc<RuleSet>,
        version: u64,
        fed: impl Fn(&Rule) -> bool,
    ) {
        // Folded entries were no-ops for the old rules only.
        let horizon = self.horizon;
        for key in self.keys.iter_mut().filter(|k| k.last.0 >= horizon) {
            key.revived = Some(Box::new(Revival {
                from: (0, i32::MIN, i64::MIN),
                until: key.last,
            }));
            self.revive_until = self.revive_until.max(Some(key.last.0));
        }
        self.sensors = sensors_of(&rules);
        self.combinations = combinations_of(&rules);
        let old = std::mem::replace(&mut self.table, rules.rules.clone());
        self.variants.clear();
        self.emitter.rules = rules;
        self.emitter.version = version;
        self.deadlines.clear();
        self.silences.clear();
        for slot in 0..self.keys.len() {
            let mut kept = std::mem::take(&mut self.keys[slot].rules);
            let SensorKey { device, sensor } = self.keys[slot].key.clone();
            for i in self.rules_of(&device, &sensor, &fed) {
                let rule = &self.table[i];
                let state = kept
                    .iter_mut()
                    .find(|(j, _)| old[*j] == *rule)
                    .map(|(_, state)| std::mem::take(state))
                    .unwrap_or_default();
                let key = &mut self.keys[slot];
                let n = key.rules.len();
                if let Some(deadline) = state.deadline(rule) {
                    self.deadlines.insert((deadline, slot, n));
                }
                if let Some((deadline, partition)) = state.silence_deadline(rule) {
                    self.silences
                        .entry(partition)
                        .or_default()
                        .insert((deadline, slot, n));
                }
                key.rules.push((i, state));
            }
        }
    }

    /// This evaluator, with its rule set numbered `version` (a run resumed
    /// from a checkpoint taken after reloads).
    pub fn with_version(mut self, version: u64) -> Self {
        self.emitter.version = version;
        self
    }

    /// Drops every observation not yet applied (a stop: what comes after
    /// them is unknown).
    pub fn discard_pending(&mut self) {
        self.pending.clear();
        self.hot = None;
        for key in &mut self.keys {
            key.unfolded = 0;
            key.revived = None;
        }
        self.revive_until = None;
        self.deadlines.clear();
        self.silences.clear();
    }

    /// Keys (device, sensor) seen.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The rule states held, and an estimate of the bytes held with the
    /// observations waiting for the frontier. It walks every key.
    pub fn footprint(&self) -> (usize, usize) {
        use std::mem::size_of;
        let states: usize = self.keys.iter().map(|k| k.rules.len()).sum();
        let slots: usize = self.keys.iter().map(|k| k.rules.capacity()).sum();
        let pending: usize = (self.pending.values().map(|b| b.entries.capacity()))
            .chain(self.hot.iter().map(|(_, b)| b.entries.capacity()))
            .chain(self.spare.iter().map(Vec::capacity))
            .sum();
        let extras: usize = (self.keys.iter().flat_map(|k| &k.rules))
            .map(|(_, state)| state.heap_bytes())
            .sum();
        let bytes = self.keys.capacity() * size_of::<KeyState>()
            + self.index.bytes()
            + slots * size_of::<(usize, RuleState)>()
            + extras
            + pending * size_of::<(usize, O::Pending)>();
        (states, bytes)
    }

    /// Queues every observation of `batch`, leaving it empty; returns false
    /// if no rule looks at any. The same as [`AlertEvaluator::push`] on each
    /// in turn, with the key slot of each asked of the cache a few
    /// observations ahead.
    pub fn push_all(&mut self, batch: &mut Vec<O>) -> bool {
        let mut any = false;
        let mut rest = batch.drain(..);
        while let Some(obs) = {
            self.prefetch_keys(rest.as_slice());
            rest.next()
        } {
            any |= self.push(obs);
        }
        any
    }

    /// Queues one observation; returns false if no rule looks at it.
    pub fn push(&mut self, obs: O) -> bool {
        if obs.time() < self.floor {
            return false;
        }
        if let Some(sensors) = &self.sensors {
            if !sensors.iter().any(|s| s == obs.sensor()) {
                return false;
            }
        }
        let mut queued = false;
        if !self.combinations.is_empty() {
            // Taken for the loop (no copy): `slot` needs `self`.
            let combinations = std::mem::take(&mut self.combinations);
            for key in &combinations {
                if let Some(part) = key.split('+').position(|s| s == obs.sensor()) {
                    let route = SensorKey::route_hash(obs.device(), key);
                    let slot = self.slot(obs.device(), key, route, &obs);
                    let part = u8::try_from(part).unwrap_or(u8::MAX - 1);
                    queued |= self.enqueue(slot, obs.clone().pending(Some(part)), false);
                }
            }
            self.combinations = combinations;
        }
        let slot = self.slot(obs.device(), obs.sensor(), obs.route(), &obs);
        let obs = obs.pending(None);
        let folded = self.fold && self.folds(slot, &obs);
        self.enqueue(slot, obs, folded) || queued
    }

    /// The slot of the key (`device`, `sensor`), hashed as `route`; a new
    /// key takes the rules that judge it among those `obs` feeds.
    fn slot(&mut self, device: &str, sensor: &str, route: u64, obs: &O) -> usize {
        let keys = &self.keys;
        let found = self.index.find(route, |s| {
            let key = &keys[s].key;
            key.device == device && key.sensor == sensor
        });
        if let Some(slot) = found {
            return slot;
        }
        let rules = self
            .rules_of(device, sensor, |r| obs.feeds(r))
            .into_iter()
            .map(|i| (i, RuleState::default()))
            .collect();
        let key = SensorKey {
            device: Name::new(device),
            sensor: Name::new(sensor),
        };
        let slot = self.keys.len();
        self.keys.push(KeyState::new(key, rules));
        self.index.insert(route, slot);
        slot
    }

    /// Queues `obs` for the key in `slot`, `folded` or not; false if no
    /// rule judges the key.
    fn enqueue(&mut self, slot: usize, obs: O::Pending, folded: bool) -> bool {
        if self.keys[slot].rules.is_empty() {
            return false;
        }
        let number = obs.time() / BUCKET_MS;
        if self.hot.as_ref().is_none_or(|(n, _)| *n != number) {
            self.settle();
            let bucket = self.pending.remove(&number).unwrap_or_else(|| Bucket {
                entries: self.spare.pop().unwrap_or_default(),
                min: u64::MAX,
                unsorted: false,
            });
            self.hot = Some((number, bucket));
        }
        let (_, bucket) = self.hot.as_mut().expect("just set");
        let state = &mut self.keys[slot];
        // `last` is the greatest order queued so far: an arrival before it
        // may precede an observation of the key in its bucket. (One the
        // frontier has passed was applied, and every arrival is at or after
        // the frontier.)
        let order = obs.order();
        let before = order < state.last;
        if before {
            bucket.unsorted = true;
        } else {
            state.last = order;
        }
        if !folded {
            state.unfolded = state.unfolded.max(obs.time() + 1);
        }
        bucket.min = bucket.min.min(obs.time());
        bucket
            .entries
            .push((if folded { slot | FOLDED } else { slot }, obs));
        if folded {
            self.folded += 1;
        } else if before {
            self.revive(slot, order);
        }
        true
    }

    /// The earliest event time at which a later call of `advance_to` may
    /// still produce an alert: the earliest pending observation or armed
    /// deadline.
    /// With silences armed, the input `frontier`: a silence the frontier has
    /// not decided yet fires at or after it.
    pub fn earliest_pending(&self, frontier: Option<u64>) -> Option<u64> {
        let deadline = self.deadlines.first().map(|(d, _, _)| *d);
        let silence = frontier.filter(|_| self.silences.values().any(|s| !s.is_empty()));
        let pending = self.pending.values().next().map(|b| b.min);
        let hot = self.hot.as_ref().map(|(_, b)| b.min);
        [pending, hot, deadline, silence]
            .into_iter()
            .flatten()
            .min()
    }

    /// Applies every observation earlier than `frontier` (all of them when
    /// `None`, the input has ended) in (time, partition, offset) order, fires
    /// durations reached before `frontier`, and appends emitted alerts to
    /// `out`. At the end of input, breaches still waiting for their duration
    /// are dropped: no observation shows them lasting that long. Returns the
    /// number of suppressed firings.
    pub fn advance_to(&mut self, frontier: Option<u64>, out: &mut Vec<Alert>) -> u64 {
        let limit = frontier.unwrap_or(u64::MAX);
        let mut suppressed = 0;
        self.settle();
        while let Some(first) = self.pending.first_entry() {
            let start = *first.key() * BUCKET_MS;
            if start >= limit {
                break;
            }
            let mut bucket = first.remove();
            if bucket.unsorted {
                // Stable, as the arrival order of equal orders must stay.
                bucket
                    .entries
                    .sort_by_key(|(slot, obs)| (*slot & !FOLDED, obs.order()));
            }
            let whole = start.saturating_add(BUCKET_MS) <= limit;
            let mut kept = Bucket {
                entries: if whole {
                    Vec::new()
                } else {
                    self.spare.pop().unwrap_or_default()
                },
                min: u64::MAX,
                unsorted: false,
            };
            let mut entries = bucket.entries.drain(..);
            while let Some((slot, obs)) = {
                self.prefetch(entries.as_slice());
                entries.next()
            } {
                if obs.time() < limit {
                    if slot & FOLDED == 0 || self.revived(slot & !FOLDED, &obs) {
                        suppressed += self.apply(slot & !FOLDED, &obs, out);
                    }
                } else {
                    kept.min = kept.min.min(obs.time());
                    kept.entries.push((slot, obs));
                }
            }
            drop(entries);
            self.recycle(bucket.entries);
            if whole {
                continue;
            }
            // The frontier is within this bucket: the rest waits, in order.
            match kept.entries.is_empty() {
                true => self.recycle(kept.entries),
                false => {
                    self.pending.insert(start / BUCKET_MS, kept);
                }
            }
            break;
        }
        self.horizon = self.horizon.max(limit);
        suppressed += self.fire_silences(frontier, out);
        // Durations that the frontier has reached fire now. When the input
        // has ended, no observation shows the remaining breaches lasting
        // until their deadlines: they are dropped, not fired.
        let Some(frontier) = frontier else {
            self.deadlines.clear();
            return suppressed;
        };
        while let Some(&(deadline, slot, i)) = self.deadlines.first() {
            // A deadline at the frontier itself waits: a reading at that very
            // time fires it first anyway, and a checkpoint at the frontier
            // must not hold anything at or after it.
            if deadline >= frontier {
                break;
            }
            self.deadlines.pop_first();
            let key = &mut self.keys[slot];
            let (rule_idx, state) = &mut key.rules[i];
            let rule = &self.table[*rule_idx];
            state.advance(rule, deadline, &mut self.emitter.transitions);
            // What comes next by duration (an escalation after a firing, a
            // chattering rule's calm moment).
            if let Some(d) = state.deadline(rule) {
                self.deadlines.insert((d, slot, i));
            }
            suppressed += self.emitter.emit(rule, &key.key, out);
        }
        suppressed
    }
}

impl<O: Observation> AlertEvaluator<O> {
    /// Puts the bucket appended to last back among the others.
    fn settle(&mut self) {
        if let Some((number, bucket)) = self.hot.take() {
            self.pending.insert(number, bucket);
        }
    }

    /// Keeps an emptied bucket buffer for reuse (a few of them).
    fn recycle(&mut self, entries: Vec<(usize, O::Pending)>) {
        if self.spare.len() < 64 {
            self.spare.push(entries);
        }
    }

    /// Applies `obs` to every rule of the key in `slot`; returns the number
    /// of suppressed firings.
    fn apply(&mut self, slot: usize, obs: &O::Pending, out: &mut Vec<Alert>) -> u64 {
        let mut suppressed = 0;
        let KeyState { key, rules, .. } = &mut self.keys[slot];
        for (i, (rule_idx, state)) in rules.iter_mut().enumerate() {
            let rule = &self.table[*rule_idx];
            // One evaluator sees one kind of observation; guard anyway.
            if !obs.feeds(rule) {
                continue;
            }
            // A window without the rule's statistic (the sample standard
            // deviation of one reading) is skipped.
            let Some(value) = obs.value(rule) else {
                continue;
            };
            if let RuleKind::Combination(_) = rule.kind {
                let time = obs.time();
                state.observe_combination(
                    rule,
                    obs.sensor(key),
                    time,
                    value,
                    &mut self.emitter.transitions,
                );
            } else if let RuleKind::Silence { .. } = rule.kind {
                let armed = state.silence_deadline(rule);
                let noticed = armed.and_then(|(deadline, partition)| {
                    noticed(&self.progress, partition, deadline, None)
                });
                let (time, partition) = (obs.time(), obs.order().1);
                state.observe_silence(
                    rule,
                    time,
                    value,
                    partition,
                    noticed,
                    &mut self.emitter.transitions,
                );
                if let Some((deadline, partition)) = armed {
                    if let Some(set) = self.silences.get_mut(&partition) {
                        set.remove(&(deadline, slot, i));
                    }
                }
                if let Some((deadline, partition)) = state.silence_deadline(rule) {
                    self.silences
                        .entry(partition)
                        .or_default()
                        .insert((deadline, slot, i));
                }
            } else {
                if let Some(d) = state.deadline(rule) {
                    self.deadlines.remove(&(d, slot, i));
                }
                state.observe(
                    rule,
                    obs.time(),
                    value,
                    obs.window(),
                    &mut self.emitter.transitions,
                );
                if let Some(d) = state.deadline(rule) {
                    self.deadlines.insert((d, slot, i));
                }
            }
            suppressed += self.emitter.emit(rule, key, out);
        }
        suppressed
    }
}

#[cfg(test)]
mod fold_tests;
#[cfg(test)]
mod tests;
