//! The alarm views as differential collections: the active-alarm
//! collection joined with the device registry, the counts by site, line,
//! severity and rule, and the longest-standing alarm of each place, for
//! pipelines that compose with them. The status page and `GET /api/alarms`
//! read the same views from the board (`board.rs`).

use std::collections::BTreeSet;

use differential_dataflow::collection::vec::Collection;
use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

use super::ledger::Change;
use crate::checkpoint::Marker;
use crate::reading::Name;
use crate::record::{ActiveAlarm, Place};
use crate::rules::{Registry, RuleSet};
use crate::run::Env;

/// What the alarm ledger makes of alert events: the events annotated by
/// control events, and the active alarms, to publish or to view as
/// collections.
pub struct AlarmViews<'scope> {
    /// The alert events, annotated by control events: `shelved`,
    /// `acked_by` and `acked_at`, with the notices of active alarms
    /// shelved and unshelved. What the alert sinks take.
    pub alerts: Stream<'scope, u64, Vec<crate::record::Alert>>,
    /// The changes of the active-alarm collection.
    changes: Stream<'scope, u64, Vec<Change>>,
    /// Checkpoint markers, which carry reloads (registry edits).
    markers: Stream<'scope, u64, Vec<Marker>>,
    /// The device registry at the start.
    registry: Registry,
}

/// Active alarms by place, and their counts: differential collections
/// over event time.
pub struct AlarmCollections<'scope> {
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
pub(super) fn places(registry: &Registry) -> Vec<(Name, Place)> {
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

/// The (dimension, value) pairs `alarm` at `place` counts in: its
/// `severity` and `rule`, and where known its `site` and `line` (as
/// `site/line`).
pub(super) fn dimensions(alarm: &ActiveAlarm, place: &Place) -> Vec<(&'static str, String)> {
    let mut dims = vec![
        ("severity", alarm.severity.clone()),
        ("rule", alarm.rule.clone()),
    ];
    if !place.site.is_empty() {
        dims.push(("site", place.site.clone()));
    }
    if !place.line.is_empty() {
        dims.push(("line", format!("{}/{}", place.site, place.line)));
    }
    dims
}

impl<'scope> AlarmViews<'scope> {
    /// The views of the alarm ledger's `changes`, annotated `alerts`, and
    /// the places of `registry` as reloads carried by `markers` change it.
    pub(super) fn new(
        changes: Stream<'scope, u64, Vec<Change>>,
        alerts: Stream<'scope, u64, Vec<crate::record::Alert>>,
        markers: Stream<'scope, u64, Vec<Marker>>,
        registry: &Registry,
    ) -> AlarmViews<'scope> {
        AlarmViews {
            alerts,
            changes,
            markers,
            registry: registry.clone(),
        }
    }

    /// Publishes the views to the run's metrics, where the status page and
    /// `GET /api/alarms` read them: the first worker keeps them as plain
    /// maps, updated per change, and a reader takes a snapshot as of the
    /// frontier they passed.
    pub fn publish(self, env: &Env<'scope>) {
        super::board::publish(self.changes, self.markers, &self.registry, env);
    }

    /// The views as differential collections, to compose with: each call
    /// builds the operators that keep them.
    pub fn collections(&self) -> AlarmCollections<'scope> {
        collections(self.changes.clone(), self.markers.clone(), &self.registry)
    }
}

/// The views of the active-alarm collection `changes`: joined with the
/// devices of `registry` as reloads carried by `markers` change it (a
/// device the registry does not know sits nowhere), and counted.
fn collections<'scope>(
    changes: Stream<'scope, u64, Vec<Change>>,
    markers: Stream<'scope, u64, Vec<Marker>>,
    registry: &Registry,
) -> AlarmCollections<'scope> {
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
            dimensions(&alarm, &place)
                .into_iter()
                .map(|(dim, value)| (dim.to_owned(), value))
        })
        .count();
    let oldest = active
        .clone()
        .map(|(alarm, place)| (place, (alarm.since, alarm)))
        .reduce(|_place, alarms, out| out.push((alarms[0].0.clone(), 1)));
    AlarmCollections {
        active,
        counts,
        oldest,
    }
}
