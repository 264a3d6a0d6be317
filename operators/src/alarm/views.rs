//! The alarm views: the active-alarm collection joined with the device
//! registry, the counts by site, line, severity and rule, the
//! longest-standing alarm of each place, and their
//! publication for the status page and `GET /api/alarms`.

use std::collections::{BTreeMap, BTreeSet};

use differential_dataflow::collection::vec::Collection;
use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map as _;
use timely::dataflow::operators::Concat as _;
use timely::dataflow::Stream;

use super::ledger::Change;
use crate::checkpoint::Marker;
use crate::reading::Name;
use crate::record::{ActiveAlarm, AlarmBoard, Place};
use crate::rules::{Registry, RuleSet};
use crate::run::Env;

/// Active alarms by place, and their counts: differential collections
/// over event time.
pub struct AlarmViews<'scope> {
    /// The alert events, annotated by control events: `shelved`,
    /// `acked_by` and `acked_at`, with the notices of active alarms
    /// shelved and unshelved. What the alert sinks take.
    pub alerts: Stream<'scope, u64, Vec<crate::record::Alert>>,
    /// Every active alarm, with where its device sits.
    pub active: Collection<'scope, u64, (ActiveAlarm, Place)>,
    /// How many alarms are active, by (dimension, value): `site`, `line`
    /// (as `site/line`), `severity` and `rule`.
    pub counts: Collection<'scope, u64, ((String, String), isize)>,
    /// The longest-standing active alarm of each place: the one with the
    /// earliest `since` (ties by rule, device and sensor).
    pub oldest: Collection<'scope, u64, (Place, (u64, ActiveAlarm))>,
}

/// Where each device of `registry` sits: its `site` and `line` fields.
fn places(registry: &Registry) -> Vec<(Name, Place)> {
    registry
        .devices
        .iter()
        .map(|(id, device)| {
            let field = |name: &str| {
                device
                    .fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let place = Place {
                site: field("site"),
                line: field("line"),
            };
            (Name::from(id.as_str()), place)
        })
        .collect()
}

/// Where the devices sit, as a collection: the places of `registry`
/// from the start, changed at the frontier of each reload `markers` carry
/// (a registry edit), from the first worker.
fn registry_places<'scope>(
    markers: Stream<'scope, u64, Vec<Marker>>,
    registry: &Registry,
) -> Collection<'scope, u64, (Name, Place)> {
    let first = markers.scope().index() == 0;
    let mut current: BTreeSet<(Name, Place)> = match first {
        true => places(registry).into_iter().collect(),
        false => BTreeSet::new(),
    };
    let mut start: Vec<((Name, Place), u64, isize)> =
        current.iter().map(|p| (p.clone(), 0, 1)).collect();
    markers
        .unary(Pipeline, "RegistryPlaces", move |cap, _| {
            let mut cap = Some(cap);
            move |input, output| {
                if let Some(cap) = cap.take() {
                    output.session(&cap).give_container(&mut start);
                }
                input.for_each(|cap, data| {
                    for marker in data.drain(..).filter(|_| first) {
                        let Some(Ok(rules)) = marker.reload.as_ref().map(RuleSet::from_reload)
                        else {
                            continue;
                        };
                        let new: BTreeSet<(Name, Place)> =
                            places(&rules.devices).into_iter().collect();
                        // Markers travel at their frontier.
                        let t = marker.frontier;
                        let cap = cap.delayed(&t, output.output_index());
                        let mut changes: Vec<_> = current
                            .difference(&new)
                            .map(|p| (p.clone(), t, -1))
                            .chain(new.difference(&current).map(|p| (p.clone(), t, 1)))
                            .collect();
                        output.session(&cap).give_container(&mut changes);
                        current = new;
                    }
                });
            }
        })
        .as_collection()
}

/// The views of the active-alarm collection `changes`: joined with the
/// devices of `registry` as reloads carried by `markers` change it (a
/// device the registry does not know sits nowhere), and counted.
pub(super) fn views<'scope>(
    changes: Stream<'scope, u64, Vec<Change>>,
    alerts: Stream<'scope, u64, Vec<crate::record::Alert>>,
    markers: Stream<'scope, u64, Vec<Marker>>,
    registry: &Registry,
) -> AlarmViews<'scope> {
    let active = changes.as_collection();
    let devices = registry_places(markers, registry);
    let by_device = active.map(|a| (a.device.clone(), a));
    let placed = by_device
        .clone()
        .join_map(devices.clone(), |_, alarm, place| {
            (alarm.clone(), place.clone())
        });
    let nowhere = by_device
        .antijoin(devices.map(|(device, _)| device))
        .map(|(_, alarm)| (alarm, Place::default()));
    let active = placed.concat(nowhere);
    let counts = active
        .clone()
        .flat_map(|(alarm, place)| {
            let mut dims = vec![
                ("severity".to_owned(), alarm.severity),
                ("rule".to_owned(), alarm.rule),
            ];
            if !place.site.is_empty() {
                dims.push(("site".to_owned(), place.site.clone()));
            }
            if !place.line.is_empty() {
                dims.push(("line".to_owned(), format!("{}/{}", place.site, place.line)));
            }
            dims
        })
        .count();
    let oldest = active
        .clone()
        .map(|(alarm, place)| (place, (alarm.since, alarm)))
        .reduce(|_place, alarms, out| out.push((alarms[0].0.clone(), 1)));
    AlarmViews {
        alerts,
        active,
        counts,
        oldest,
    }
}

/// A change of the published views.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
enum Row {
    Alarm((ActiveAlarm, Place)),
    Count((String, String), isize),
    Oldest(Place, (u64, ActiveAlarm)),
}

impl<'scope> AlarmViews<'scope> {
    /// Publishes the views to the run's metrics (the status page and
    /// `GET /api/alarms` read them there): gathered on the first worker,
    /// as of each frontier they pass, from the frontier a resumed run
    /// restored on (before it, the alarms the checkpoint held are not in
    /// yet).
    pub fn publish(self, env: &Env<'scope>) {
        let from = env.restored_frontier().unwrap_or(0);
        let run = env.run();
        let alarms = self
            .active
            .inner
            .map(|(alarm, t, d)| (Row::Alarm(alarm), t, d));
        let counts = self
            .counts
            .inner
            .map(|((key, n), t, d)| (Row::Count(key, n), t, d));
        let oldest = self
            .oldest
            .inner
            .map(|((place, alarm), t, d)| (Row::Oldest(place, alarm), t, d));
        // Every row goes to the first worker; only it publishes.
        let run = (alarms.scope().index() == 0).then(|| run.clone());
        alarms
            .concat(counts)
            .concat(oldest)
            .sink(Exchange::new(|_| 0), "PublishAlarms", {
                let mut pending: Vec<(Row, u64, isize)> = Vec::new();
                let mut board = Board::default();
                move |(input, frontier)| {
                    input.for_each(|_, data| pending.append(data));
                    let Some(run) = &run else { return };
                    let until = frontier.frontier().first().copied();
                    let before = pending.len();
                    pending.retain(|(row, t, d)| {
                        let due = until.is_none_or(|u| *t < u);
                        if due {
                            board.apply(row.clone(), *d);
                        }
                        !due
                    });
                    // The restored alarms come in at the restored frontier:
                    // the views hold them once the frontier passed it.
                    if until.is_some_and(|u| from > 0 && u <= from) {
                        return;
                    }
                    let passed = until.is_some_and(|u| Some(u) != board.as_of);
                    let ended = until.is_none() && !board.complete;
                    if pending.len() != before || passed || ended {
                        match until {
                            Some(u) => board.as_of = Some(u),
                            None => board.complete = true,
                        }
                        run.metrics.set_alarm_board(board.publish());
                    }
                }
            });
    }
}

/// The views accumulated on the first worker.
#[derive(Default)]
struct Board {
    as_of: Option<u64>,
    complete: bool,
    alarms: BTreeMap<(ActiveAlarm, Place), isize>,
    counts: BTreeMap<((String, String), isize), isize>,
    oldest: BTreeMap<(Place, (u64, ActiveAlarm)), isize>,
}

impl Board {
    fn apply(&mut self, row: Row, diff: isize) {
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
        match row {
            Row::Alarm(alarm) => add(&mut self.alarms, alarm, diff),
            Row::Count(key, n) => add(&mut self.counts, (key, n), diff),
            Row::Oldest(place, alarm) => add(&mut self.oldest, (place, alarm), diff),
        }
    }

    fn publish(&self) -> AlarmBoard {
        let mut alarms: Vec<(ActiveAlarm, Place)> = self
            .alarms
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(a, _)| a.clone())
            .collect();
        alarms.sort_by(|(a, _), (b, _)| {
            (&a.rule, &a.device, &a.sensor).cmp(&(&b.rule, &b.device, &b.sensor))
        });
        let counts = self
            .counts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(((dim, value), n), _)| (dim.clone(), value.clone(), *n as u64))
            .collect();
        let oldest = self
            .oldest
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((place, (_, alarm)), _)| (place.clone(), alarm.clone()))
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
