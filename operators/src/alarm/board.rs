//! The alarm board: the active alarms with where their devices sit, their
//! counts by site, line, severity and rule, and the longest-standing alarm
//! of each place, kept on the first worker from the ledger's changes and
//! shared with the run's metrics (the status page and `GET /api/alarms`
//! read them there, as of the frontier the changes passed).
//!
//! These are the views of [`AlarmCollections`](super::AlarmCollections),
//! kept as plain maps. Every pipeline with alert rules publishes them, and
//! as differential collections (an arrangement of whole alarms by device
//! for the join, a `count`, a `reduce` by place that replays the history of
//! every alarm of a place at each event time) they cost four times what
//! evaluating the rules does; here each change is a few map updates.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use super::ledger::Change;
use super::views::{dimensions, places};
use crate::checkpoint::Marker;
use crate::reading::Name;
use crate::record::{ActiveAlarm, AlarmBoard, Place};
use crate::rules::{Registry, RuleSet};
use crate::run::Env;

/// Publishes the board of `changes` (the active-alarm collection), with
/// the places of `registry` as reloads carried by `markers` change it:
/// gathered on the first worker, as of the frontier the inputs passed,
/// from the frontier a resumed run restored on (before it, the alarms the
/// checkpoint held are not in yet). The metrics take a snapshot when one
/// is asked for: building one at every frontier cost as much as keeping
/// the board.
pub(super) fn publish<'scope>(
    changes: Stream<'scope, u64, Vec<Change>>,
    markers: Stream<'scope, u64, Vec<Marker>>,
    registry: &Registry,
    env: &Env<'scope>,
) {
    type Nothing = timely::container::CapacityContainerBuilder<Vec<()>>;
    let from = env.restored_frontier().unwrap_or(0);
    // Every change goes to the first worker; only it keeps the board.
    let first = changes.scope().index() == 0;
    let board = first.then(|| Arc::new(Mutex::new(Board::new(places(registry)))));
    if let Some(board) = board.clone() {
        env.run()
            .metrics
            .set_alarm_board(move || lock(&board).snapshot());
    }
    let mut pending = Pending::default();
    changes.binary_frontier::<_, Nothing, _, _, _, _>(
        markers,
        Exchange::new(|_| 0),
        Pipeline,
        "AlarmBoard",
        move |_cap, _info| {
            move |(changes, frontier), (markers, marker_frontier), _output| {
                changes.for_each(|_, data| pending.changes.append(data));
                markers.for_each(|_, data| {
                    for marker in data.drain(..).filter(|_| first) {
                        if let Some(Ok(rules)) = marker.reload.as_ref().map(RuleSet::from_reload) {
                            // Markers travel at their frontier.
                            let places = places(&rules.devices);
                            pending.places.push((marker.frontier, places));
                        }
                    }
                });
                let Some(board) = &board else {
                    pending.changes.clear();
                    return;
                };
                let until = [frontier, marker_frontier]
                    .iter()
                    .filter_map(|f| f.frontier().first().copied())
                    .min();
                // Readers see the board between steps, as of a frontier.
                let mut board = lock(board);
                pending.apply_due(until, &mut board);
                // The restored alarms come in at the restored frontier: the
                // board holds them once the frontier passed it.
                if until.is_some_and(|u| from > 0 && u <= from) {
                    return;
                }
                match until {
                    Some(u) => board.as_of = Some(u),
                    None => board.complete = true,
                }
            }
        },
    );
}

/// `board`, locked; a panic elsewhere leaves it as it was.
fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    board
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Changes not yet due: of the alarms, and of the registry's places (each
/// at the frontier of the reload that carried it).
#[derive(Default)]
pub(super) struct Pending {
    /// Changes of the active-alarm collection.
    pub(super) changes: Vec<Change>,
    /// Where the devices sit from a time on.
    pub(super) places: Vec<(u64, Vec<(Name, Place)>)>,
}

impl Pending {
    /// Applies to `board` the changes before `until` (all of them when
    /// `None`). Returns whether there were any.
    ///
    /// The board is published as of `until` only, so order within one
    /// step does not matter: the alarm changes are sums, and a registry
    /// change re-places every alarm, so the latest one due places them all.
    pub(super) fn apply_due(&mut self, until: Option<u64>, board: &mut Board) -> bool {
        let due = |t: u64| until.is_none_or(|u| t < u);
        let (places, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.places)
            .into_iter()
            .partition(|(t, _)| due(*t));
        self.places = rest;
        let (changes, rest): (Vec<Change>, Vec<Change>) = std::mem::take(&mut self.changes)
            .into_iter()
            .partition(|c| due(c.1));
        self.changes = rest;
        let any = !(places.is_empty() && changes.is_empty());
        if let Some((_, places)) = places.into_iter().max_by_key(|(t, _)| *t) {
            board.relocate(places);
        }
        for (alarm, _, diff) in changes {
            board.apply(alarm, diff);
        }
        any
    }
}

/// Adds `diff` to the multiplicity of `key`, dropping it at zero.
fn add<K: Ord>(map: &mut BTreeMap<K, isize>, key: K, diff: isize) {
    use std::collections::btree_map::Entry;
    match map.entry(key) {
        Entry::Occupied(mut e) => {
            *e.get_mut() += diff;
            if *e.get() == 0 {
                e.remove();
            }
        }
        Entry::Vacant(e) => {
            e.insert(diff);
        }
    }
}

/// The views, on the first worker. Multiplicities are kept as sums of the
/// changes applied, so the changes of one frontier may come in any order.
pub(super) struct Board {
    as_of: Option<u64>,
    complete: bool,
    /// Where each device the registry knows sits.
    places: HashMap<Name, Place>,
    /// The active alarms, ordered by rule, device and sensor.
    alarms: BTreeMap<ActiveAlarm, isize>,
    /// Active alarms by (dimension, value).
    counts: BTreeMap<(&'static str, String), isize>,
    /// The active alarms of each place by (since, alarm): the first is
    /// the oldest.
    by_place: BTreeMap<Place, BTreeMap<(u64, ActiveAlarm), isize>>,
}

impl Board {
    /// An empty board, with devices at `places`.
    pub(super) fn new(places: Vec<(Name, Place)>) -> Board {
        Board {
            as_of: None,
            complete: false,
            places: places.into_iter().collect(),
            alarms: BTreeMap::new(),
            counts: BTreeMap::new(),
            by_place: BTreeMap::new(),
        }
    }

    /// Applies a change of the active-alarm collection.
    pub(super) fn apply(&mut self, alarm: ActiveAlarm, diff: isize) {
        self.place(&alarm, diff);
        add(&mut self.alarms, alarm, diff);
    }

    /// Adds `diff` of `alarm` to the counts and places.
    fn place(&mut self, alarm: &ActiveAlarm, diff: isize) {
        let place = self.places.get(&alarm.device).cloned().unwrap_or_default();
        for dim in dimensions(alarm, &place) {
            add(&mut self.counts, dim, diff);
        }
        let of_place = self.by_place.entry(place.clone()).or_default();
        add(of_place, (alarm.since, alarm.clone()), diff);
        if of_place.is_empty() {
            self.by_place.remove(&place);
        }
    }

    /// Moves the devices to `places` (a registry reload): the counts and
    /// places of every alarm are taken again.
    pub(super) fn relocate(&mut self, places: Vec<(Name, Place)>) {
        self.places = places.into_iter().collect();
        self.counts.clear();
        self.by_place.clear();
        let alarms = std::mem::take(&mut self.alarms);
        for (alarm, n) in &alarms {
            self.place(alarm, *n);
        }
        self.alarms = alarms;
    }

    /// The board as it stands, empty until a frontier passed it.
    fn snapshot(&self) -> AlarmBoard {
        match self.as_of.is_some() || self.complete {
            true => self.publish(),
            false => AlarmBoard::default(),
        }
    }

    /// The board as it stands.
    pub(super) fn publish(&self) -> AlarmBoard {
        let alarms = self
            .alarms
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(a, _)| {
                let place = self.places.get(&a.device).cloned().unwrap_or_default();
                (a.clone(), place)
            })
            .collect();
        let counts = self
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((dim, value), n)| (dim.to_string(), value.clone(), *n as u64))
            .collect();
        let oldest = self
            .by_place
            .iter()
            .filter_map(|(place, alarms)| {
                let ((_, alarm), _) = alarms.iter().find(|(_, n)| **n > 0)?;
                Some((place.clone(), alarm.clone()))
            })
            .collect();
        AlarmBoard {
            as_of: self.as_of,
            complete: self.complete,
            alarms,
            counts,
            oldest,
        }
    }
}
