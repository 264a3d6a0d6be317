//! The compact layout of a [`RuleState`]: the fields every rule uses
//! inline, the others in a boxed list of entries, and the flat record of
//! every field it serializes as.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::ClearSpell;
use crate::alert::combination::{Breach, CombinationState};
use crate::alert::AlertState;
use crate::record::cache::prefetch;

/// The state of one rule for one sensor. Plain data, so a checkpoint can
/// snapshot it.
///
/// Compact: the state of a threshold, hysteresis, `consecutive` or `for`
/// rule on readings is these 48 bytes alone, except while it fires or
/// holds more than one breaching value. What
/// only some rules or moments need (the span of a rate or deviation rule,
/// a silence rule's latest reading, a combination's conditions, the window
/// of a window rule, a firing's time and value, an off-delay's clear
/// spell, chattering, more than one breaching value in a row) is kept in a
/// boxed list of entries, each only while it differs from its initial
/// value; [`RuleState::heap_bytes`] gives what the list holds.
///
/// It serializes, compares and prints as the flat record of all its
/// fields, as it did when it kept them all inline: checkpoints keep their
/// format.
#[derive(Clone, Default)]
pub struct RuleState {
    /// Breaching observations in a row.
    pub(super) streak: u32,
    /// In the firing state (whether or not the firing event was emitted).
    pub(super) firing: bool,
    /// The current firing was emitted (not suppressed by the cooldown).
    pub(super) emitted: bool,
    /// The current firing was escalated.
    pub(super) escalated: bool,
    /// Which of `breach_since`, `last_fired` and `recent_one` hold a value
    /// ([`BREACH`], [`FIRED`], [`RECENT_ONE`]).
    has: u8,
    /// Event time of the first observation of the current breach.
    breach_since: u64,
    /// Event time of the last emitted firing event.
    last_fired: u64,
    /// The latest breaching value, while it is the only one (more are in
    /// [`Extra::Recent`]).
    recent_one: f64,
    /// The other fields, each only while it differs from its initial value,
    /// at most once each.
    extra: Box<[Extra]>,
}

/// `breach_since` holds a value.
const BREACH: u8 = 1;
/// `last_fired` holds a value.
const FIRED: u8 = 2;
/// `recent_one` holds the one latest breaching value.
const RECENT_ONE: u8 = 4;

/// A field of a [`RuleState`] that only some rules, or some moments, need.
#[derive(Clone, Debug)]
enum Extra {
    /// The latest breaching values, at most `consecutive` of them, when
    /// there are more than one.
    Recent(Vec<f64>),
    /// Window of the latest breaching observation, for window rules.
    Window((u64, u64)),
    /// While firing with an off-delay: the first observation of the current
    /// clear spell.
    ClearSince(Box<ClearSpell>),
    /// Rate-of-change rules: the observations of the last span, oldest
    /// first (time, value). Deviation rules: the baseline's observations.
    Span(Vec<(u64, f64)>),
    /// Silence rules: the latest reading's event time and partition.
    Seen((u64, i32)),
    /// While firing: when it fired, and the value that fired it (for
    /// escalation).
    FiredAt((u64, f64)),
    /// Chattering rules: the times of the latest emitted state changes,
    /// within the rule's `within_ms`.
    Changes(Vec<u64>),
    /// While chattering: when the rule is calm again, unless it changes
    /// state before, and the state (firing or resolved) and value of its
    /// latest held-back change.
    Chatter((u64, AlertState, f64)),
    /// Combination rules: the state of the device's conditions.
    Combination(CombinationState),
}

/// Which field an [`Extra`] is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Recent,
    Window,
    ClearSince,
    Span,
    Seen,
    FiredAt,
    Changes,
    Chatter,
    Combination,
}

impl Extra {
    fn tag(&self) -> Tag {
        match self {
            Extra::Recent(_) => Tag::Recent,
            Extra::Window(_) => Tag::Window,
            Extra::ClearSince(_) => Tag::ClearSince,
            Extra::Span(_) => Tag::Span,
            Extra::Seen(_) => Tag::Seen,
            Extra::FiredAt(_) => Tag::FiredAt,
            Extra::Changes(_) => Tag::Changes,
            Extra::Chatter(_) => Tag::Chatter,
            Extra::Combination(_) => Tag::Combination,
        }
    }

    /// Holds the field's initial value, so the entry can go.
    fn is_initial(&self) -> bool {
        match self {
            Extra::Recent(v) => v.is_empty(),
            Extra::Span(v) => v.is_empty(),
            Extra::Changes(v) => v.is_empty(),
            Extra::Combination(c) => c.conditions.is_empty() && !c.firing,
            Extra::Window(_)
            | Extra::ClearSince(_)
            | Extra::Seen(_)
            | Extra::FiredAt(_)
            | Extra::Chatter(_) => false,
        }
    }

    /// Heap bytes the entry's own fields hold.
    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        match self {
            Extra::Recent(v) => v.capacity() * size_of::<f64>(),
            Extra::Span(v) => v.capacity() * size_of::<(u64, f64)>(),
            Extra::Changes(v) => v.capacity() * size_of::<u64>(),
            Extra::Combination(c) => c.conditions.capacity() * size_of::<Option<Breach>>(),
            Extra::ClearSince(_) => size_of::<ClearSpell>(),
            Extra::Window(_) | Extra::Seen(_) | Extra::FiredAt(_) | Extra::Chatter(_) => 0,
        }
    }
}

/// The combination state of a rule state without one.
static NO_COMBINATION: CombinationState = CombinationState {
    conditions: Vec::new(),
    firing: false,
};

/// A [`RuleState`] as the flat record of all its fields: how it serializes
/// (the checkpoint format, unchanged from when the struct held every field
/// inline), deserializes, compares and prints. Field order is the format.
/// Its lists borrow from the state when it serializes, compares or prints,
/// and are owned when it is deserialized (a [`Cow`] serializes as what it
/// holds).
#[derive(PartialEq, Serialize, Deserialize)]
#[serde(rename = "RuleState")]
struct Flat<'a> {
    firing: bool,
    emitted: bool,
    streak: u32,
    breach_since: Option<u64>,
    recent: Cow<'a, [f64]>,
    last_fired: Option<u64>,
    window: Option<(u64, u64)>,
    clear_since: Option<ClearSpell>,
    span: Cow<'a, [(u64, f64)]>,
    seen: Option<(u64, i32)>,
    fired_at: Option<(u64, f64)>,
    escalated: bool,
    changes: Cow<'a, [u64]>,
    chatter: Option<(u64, AlertState, f64)>,
    combination: Cow<'a, CombinationState>,
}

impl From<Flat<'_>> for RuleState {
    fn from(flat: Flat<'_>) -> Self {
        let mut state = RuleState {
            streak: flat.streak,
            firing: flat.firing,
            emitted: flat.emitted,
            escalated: flat.escalated,
            ..RuleState::default()
        };
        state.set_breach_since(flat.breach_since);
        state.set_last_fired(flat.last_fired);
        let mut recent = flat.recent.into_owned();
        if let [one] = recent[..] {
            state.recent_one = one;
            state.has |= RECENT_ONE;
            recent.clear();
        }
        let entries = [
            Some(Extra::Recent(recent)),
            flat.window.map(Extra::Window),
            flat.clear_since.map(|s| Extra::ClearSince(Box::new(s))),
            Some(Extra::Span(flat.span.into_owned())),
            flat.seen.map(Extra::Seen),
            flat.fired_at.map(Extra::FiredAt),
            Some(Extra::Changes(flat.changes.into_owned())),
            flat.chatter.map(Extra::Chatter),
            Some(Extra::Combination(flat.combination.into_owned())),
        ];
        let kept = |e: &Extra| !e.is_initial();
        // One allocation, of the exact size.
        let mut extra = Vec::with_capacity(entries.iter().flatten().filter(|e| kept(e)).count());
        extra.extend(entries.into_iter().flatten().filter(kept));
        state.extra = extra.into_boxed_slice();
        state
    }
}

impl Serialize for RuleState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.flat().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RuleState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Flat::deserialize(deserializer).map(RuleState::from)
    }
}

impl PartialEq for RuleState {
    fn eq(&self, other: &RuleState) -> bool {
        self.flat() == other.flat()
    }
}

impl std::fmt::Debug for RuleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Flat {
            firing,
            emitted,
            streak,
            breach_since,
            recent,
            last_fired,
            window,
            clear_since,
            span,
            seen,
            fired_at,
            escalated,
            changes,
            chatter,
            combination,
        } = self.flat();
        f.debug_struct("RuleState")
            .field("firing", &firing)
            .field("emitted", &emitted)
            .field("streak", &streak)
            .field("breach_since", &breach_since)
            .field("recent", &recent)
            .field("last_fired", &last_fired)
            .field("window", &window)
            .field("clear_since", &clear_since)
            .field("span", &span)
            .field("seen", &seen)
            .field("fired_at", &fired_at)
            .field("escalated", &escalated)
            .field("changes", &changes)
            .field("chatter", &chatter)
            .field("combination", &combination)
            .finish()
    }
}

/// Field access: the flat record's fields, read from and written to the
/// compact layout.
impl RuleState {
    /// Every field, as the flat record.
    fn flat(&self) -> Flat<'_> {
        Flat {
            firing: self.firing,
            emitted: self.emitted,
            streak: self.streak,
            breach_since: self.breach_since(),
            recent: Cow::Borrowed(self.recent()),
            last_fired: self.last_fired(),
            window: self.window(),
            clear_since: self.clear_since(),
            span: Cow::Borrowed(self.span()),
            seen: self.seen(),
            fired_at: self.fired_at(),
            escalated: self.escalated,
            changes: Cow::Borrowed(self.changes()),
            chatter: self.chatter(),
            combination: Cow::Borrowed(self.combination()),
        }
    }

    /// Heap bytes the state holds beyond `size_of::<RuleState>()`: its
    /// extra fields and the vectors among them (their capacity; the
    /// allocator's own overhead is not counted). 0 for a plain threshold
    /// rule that is not firing.
    pub fn heap_bytes(&self) -> usize {
        self.extra.len() * std::mem::size_of::<Extra>()
            + self.extra.iter().map(Extra::heap_bytes).sum::<usize>()
    }

    /// Asks the cache for the state's extra fields (see
    /// [`crate::record::cache::prefetch`]), when it has any.
    pub(crate) fn prefetch_extra(&self) {
        if !self.extra.is_empty() {
            prefetch(self.extra.as_ptr());
        }
    }

    /// Asks the cache for the start of the lists among the extra fields
    /// (a span, the latest breaching values, the latest changes): the
    /// extra fields themselves should be in the cache already.
    pub(crate) fn prefetch_lists(&self) {
        for extra in &self.extra {
            match extra {
                Extra::Span(v) => prefetch(v.as_ptr()),
                Extra::Recent(v) => prefetch(v.as_ptr()),
                Extra::Changes(v) => prefetch(v.as_ptr()),
                _ => {}
            }
        }
    }

    /// Whether an observation the rule does not find breaching leaves
    /// this state as it is, whenever it comes: not firing, no breach or
    /// breaching value held, not chattering (nothing a duration would
    /// change either). For a threshold rule: the evaluator folds such
    /// observations instead of applying them in their turn.
    pub(crate) fn at_rest(&self) -> bool {
        !self.firing
            && self.streak == 0
            && self.has & (BREACH | RECENT_ONE) == 0
            && !(self.extra.iter()).any(|e| matches!(e, Extra::Recent(_) | Extra::Chatter(_)))
    }

    fn find(&self, tag: Tag) -> Option<&Extra> {
        self.extra.iter().find(|e| e.tag() == tag)
    }

    fn position(&self, tag: Tag) -> Option<usize> {
        self.extra.iter().position(|e| e.tag() == tag)
    }

    /// The entry of `tag`, added as `initial` if there is none.
    fn entry(&mut self, tag: Tag, initial: impl FnOnce() -> Extra) -> &mut Extra {
        let i = match self.position(tag) {
            Some(i) => i,
            None => {
                let mut extra = std::mem::take(&mut self.extra).into_vec();
                extra.push(initial());
                self.extra = extra.into_boxed_slice();
                self.extra.len() - 1
            }
        };
        &mut self.extra[i]
    }

    /// Sets the entry of `tag` to `value`, or removes it for `None`.
    fn put(&mut self, tag: Tag, value: Option<Extra>) {
        match (self.position(tag), value) {
            (Some(i), Some(value)) => self.extra[i] = value,
            (Some(i), None) => {
                let mut extra = std::mem::take(&mut self.extra).into_vec();
                extra.remove(i);
                self.extra = extra.into_boxed_slice();
            }
            (None, Some(value)) => {
                let mut extra = std::mem::take(&mut self.extra).into_vec();
                extra.push(value);
                self.extra = extra.into_boxed_slice();
            }
            (None, None) => {}
        }
    }

    /// Drops the entries back at their initial value.
    pub(super) fn tidy(&mut self) {
        if self.extra.iter().any(Extra::is_initial) {
            let mut extra = std::mem::take(&mut self.extra).into_vec();
            extra.retain(|e| !e.is_initial());
            self.extra = extra.into_boxed_slice();
        }
    }

    pub(super) fn breach_since(&self) -> Option<u64> {
        (self.has & BREACH != 0).then_some(self.breach_since)
    }

    pub(super) fn set_breach_since(&mut self, since: Option<u64>) {
        self.set_flagged(BREACH, since, |s| &mut s.breach_since);
    }

    pub(super) fn last_fired(&self) -> Option<u64> {
        (self.has & FIRED != 0).then_some(self.last_fired)
    }

    pub(super) fn set_last_fired(&mut self, last: Option<u64>) {
        self.set_flagged(FIRED, last, |s| &mut s.last_fired);
    }

    /// Sets an inline optional field: its flag, and its value if any.
    fn set_flagged(&mut self, flag: u8, value: Option<u64>, field: fn(&mut Self) -> &mut u64) {
        match value {
            Some(v) => {
                *field(self) = v;
                self.has |= flag;
            }
            None => {
                *field(self) = 0;
                self.has &= !flag;
            }
        }
    }

    /// The latest breaching values, at most `consecutive` of them.
    pub(super) fn recent(&self) -> &[f64] {
        if self.has & RECENT_ONE != 0 {
            return std::slice::from_ref(&self.recent_one);
        }
        match self.find(Tag::Recent) {
            Some(Extra::Recent(values)) => values,
            _ => &[],
        }
    }

    pub(super) fn set_recent(&mut self, mut values: Vec<f64>) {
        self.has &= !RECENT_ONE;
        self.recent_one = 0.0;
        if values.len() == 1 {
            self.recent_one = values[0];
            self.has |= RECENT_ONE;
            values.clear();
        }
        self.put(
            Tag::Recent,
            (!values.is_empty()).then_some(Extra::Recent(values)),
        );
    }

    /// Appends a breaching value, dropping the oldest if there are `keep`.
    pub(super) fn push_recent(&mut self, value: f64, keep: usize) {
        if let Some(Extra::Recent(values)) = self.position(Tag::Recent).map(|i| &mut self.extra[i])
        {
            // Two values or more: they never become fewer here.
            if values.len() == keep {
                values.remove(0);
            }
            values.push(value);
        } else if self.has & RECENT_ONE != 0 {
            if keep == 1 {
                self.recent_one = value;
            } else {
                let values = vec![self.recent_one, value];
                self.set_recent(values);
            }
        } else {
            assert!(keep > 0, "a rule fires after at least one breach");
            self.recent_one = value;
            self.has |= RECENT_ONE;
        }
    }

    pub(super) fn take_recent(&mut self) -> Vec<f64> {
        let values = self.recent().to_vec();
        self.set_recent(Vec::new());
        values
    }

    pub(super) fn window(&self) -> Option<(u64, u64)> {
        match self.find(Tag::Window) {
            Some(Extra::Window(w)) => Some(*w),
            _ => None,
        }
    }

    pub(super) fn set_window(&mut self, window: Option<(u64, u64)>) {
        self.put(Tag::Window, window.map(Extra::Window));
    }

    pub(super) fn clear_since(&self) -> Option<ClearSpell> {
        match self.find(Tag::ClearSince) {
            Some(Extra::ClearSince(spell)) => Some(**spell),
            _ => None,
        }
    }

    pub(super) fn set_clear_since(&mut self, spell: Option<ClearSpell>) {
        self.put(
            Tag::ClearSince,
            spell.map(|s| Extra::ClearSince(Box::new(s))),
        );
    }

    pub(super) fn span(&self) -> &[(u64, f64)] {
        match self.find(Tag::Span) {
            Some(Extra::Span(span)) => span,
            _ => &[],
        }
    }

    pub(super) fn span_mut(&mut self) -> &mut Vec<(u64, f64)> {
        match self.entry(Tag::Span, || Extra::Span(Vec::new())) {
            Extra::Span(span) => span,
            _ => unreachable!("the entry of a tag is of that tag"),
        }
    }

    pub(super) fn seen(&self) -> Option<(u64, i32)> {
        match self.find(Tag::Seen) {
            Some(Extra::Seen(seen)) => Some(*seen),
            _ => None,
        }
    }

    pub(super) fn set_seen(&mut self, seen: Option<(u64, i32)>) {
        self.put(Tag::Seen, seen.map(Extra::Seen));
    }

    pub(super) fn fired_at(&self) -> Option<(u64, f64)> {
        match self.find(Tag::FiredAt) {
            Some(Extra::FiredAt(at)) => Some(*at),
            _ => None,
        }
    }

    pub(super) fn set_fired_at(&mut self, at: Option<(u64, f64)>) {
        self.put(Tag::FiredAt, at.map(Extra::FiredAt));
    }

    pub(super) fn changes(&self) -> &[u64] {
        match self.find(Tag::Changes) {
            Some(Extra::Changes(changes)) => changes,
            _ => &[],
        }
    }

    pub(super) fn changes_mut(&mut self) -> &mut Vec<u64> {
        match self.entry(Tag::Changes, || Extra::Changes(Vec::new())) {
            Extra::Changes(changes) => changes,
            _ => unreachable!("the entry of a tag is of that tag"),
        }
    }

    pub(super) fn chatter(&self) -> Option<(u64, AlertState, f64)> {
        match self.find(Tag::Chatter) {
            Some(Extra::Chatter(chatter)) => Some(*chatter),
            _ => None,
        }
    }

    pub(super) fn set_chatter(&mut self, chatter: Option<(u64, AlertState, f64)>) {
        self.put(Tag::Chatter, chatter.map(Extra::Chatter));
    }

    pub(super) fn combination(&self) -> &CombinationState {
        match self.find(Tag::Combination) {
            Some(Extra::Combination(c)) => c,
            _ => &NO_COMBINATION,
        }
    }

    pub(super) fn combination_mut(&mut self) -> &mut CombinationState {
        match self.entry(Tag::Combination, || {
            Extra::Combination(CombinationState::default())
        }) {
            Extra::Combination(c) => c,
            _ => unreachable!("the entry of a tag is of that tag"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::combination::{Combination, Condition, Mode};
    use crate::alert::{Chattering, Direction, Rule};

    /// The flat record a rule state was before its layout was made compact,
    /// written out again here: checkpoints hold it.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Record {
        firing: bool,
        emitted: bool,
        streak: u32,
        breach_since: Option<u64>,
        recent: Vec<f64>,
        last_fired: Option<u64>,
        window: Option<(u64, u64)>,
        clear_since: Option<ClearSpell>,
        span: Vec<(u64, f64)>,
        seen: Option<(u64, i32)>,
        fired_at: Option<(u64, f64)>,
        escalated: bool,
        changes: Vec<u64>,
        chatter: Option<(u64, AlertState, f64)>,
        combination: CombinationState,
    }

    fn hot() -> Rule {
        Rule::new("hot", "t", Direction::Above, 50.0)
    }

    /// Every field set, none to its initial value.
    fn full_record() -> Record {
        Record {
            firing: true,
            emitted: true,
            streak: 2,
            breach_since: Some(1_000),
            recent: vec![51.0, 52.0],
            last_fired: Some(900),
            window: Some((0, 1_000)),
            clear_since: Some(ClearSpell {
                since: 1_100,
                value: 40.0,
                window: Some((1_000, 2_000)),
            }),
            span: vec![(800, 1.0), (900, 2.0)],
            seen: Some((1_200, 3)),
            fired_at: Some((900, 55.0)),
            escalated: true,
            changes: vec![500, 900],
            chatter: Some((5_000, AlertState::Resolved, 41.0)),
            combination: CombinationState {
                conditions: vec![
                    None,
                    Some(Breach {
                        time: 7,
                        value: 8.0,
                    }),
                ],
                firing: true,
            },
        }
    }

    #[test]
    fn it_encodes_as_the_flat_record() {
        let one = Record {
            recent: vec![51.0],
            ..Record::default()
        };
        for record in [Record::default(), one, full_record()] {
            let bytes = bincode::serialize(&record).unwrap();
            let state: RuleState = bincode::deserialize(&bytes).unwrap();
            assert_eq!(bincode::serialize(&state).unwrap(), bytes, "{record:?}");
            let json = serde_json::to_string(&record).unwrap();
            assert_eq!(serde_json::to_string(&state).unwrap(), json);
            assert_eq!(
                format!("{state:?}"),
                format!("{record:?}").replace("Record", "RuleState")
            );
            assert_eq!(state.clone(), state);
            assert_eq!(state == RuleState::default(), record == Record::default());
        }
    }

    #[test]
    fn states_of_every_kind_encode_as_the_flat_record() {
        let rules = [
            hot().with(|m| {
                m.consecutive = 3;
                m.for_ms = 2_000;
            }),
            Rule::new("rate", "t", Direction::Above, 5.0).rate_of_change(3_000),
            Rule::new("deviation", "t", Direction::Above, 1.5).deviation(3),
            hot().with(|m| {
                m.keep_firing_for_ms = 1_500;
                m.escalation = Some((2_000, "critical".to_owned()));
                m.chattering = Some(Chattering {
                    changes: 3,
                    within_ms: 10_000,
                    calm_ms: 4_000,
                });
            }),
        ];
        for rule in &rules {
            let mut state = RuleState::default();
            let mut out = Vec::new();
            for (i, value) in [60.0, 61.0, 40.0, 62.0, 63.0, 64.0, 30.0, 30.0, 70.0]
                .into_iter()
                .enumerate()
            {
                let time = 1_000 * i as u64;
                state.observe(rule, time, value, Some((time, time + 1_000)), &mut out);
                let bytes = bincode::serialize(&state).unwrap();
                let record: Record = bincode::deserialize(&bytes).unwrap();
                assert_eq!(bincode::serialize(&record).unwrap(), bytes);
                let back: RuleState = bincode::deserialize(&bytes).unwrap();
                assert_eq!(back, state, "{}: step {i}", rule.name);
            }
            assert!(!out.is_empty(), "{rule:?} changes state");
        }
    }

    /// The size budget; `benches/rules_scale.rs` measures what a fleet's
    /// states hold.
    #[test]
    fn common_kinds_hold_48_bytes_and_nothing_more() {
        assert!(std::mem::size_of::<RuleState>() <= 48);
        assert!(std::mem::size_of::<Extra>() <= 32);
        let rules = [
            hot(),
            hot().clear_at(45.0),
            hot().consecutive(3),
            hot().with(|m| m.for_ms = 5_000),
        ];
        for rule in &rules {
            let mut state = RuleState::default();
            let mut out = Vec::new();
            // Quiet, then one breach, then quiet again.
            for (time, value) in [(0, 40.0), (1_000, 41.0), (2_000, 55.0), (3_000, 40.0)] {
                state.observe(rule, time, value, None, &mut out);
                if !state.firing {
                    assert_eq!(state.heap_bytes(), 0, "{rule:?} at {time}");
                }
            }
            assert!(!state.firing);
            assert_eq!(state.heap_bytes(), 0);
        }
    }

    #[test]
    fn extras_are_held_only_while_needed() {
        let mut state = RuleState::default();
        let mut out = Vec::new();
        state.observe(&hot(), 0, 60.0, None, &mut out);
        // Firing: when and at what value it fired.
        assert_eq!(state.heap_bytes(), std::mem::size_of::<Extra>());
        state.observe(&hot(), 1_000, 40.0, None, &mut out);
        assert_eq!(state.heap_bytes(), 0);
        assert_ne!(state, RuleState::default(), "it remembers its last firing");

        let rate = hot().rate_of_change(10_000);
        let mut state = RuleState::default();
        for time in 0..5 {
            state.observe(&rate, time * 1_000, 1.0, None, &mut out);
        }
        assert_eq!(state.span().len(), 5);
        // The span grows by a quarter: room for 1, 2, 3, 4, then 6.
        assert_eq!(
            state.heap_bytes(),
            std::mem::size_of::<Extra>() + std::mem::size_of::<(u64, f64)>() * 6
        );

        let combination = Rule::new_combination(
            "hot",
            Combination {
                mode: Mode::All,
                conditions: vec![
                    Condition::new("a", Direction::Above, 1.0),
                    Condition::new("b", Direction::Above, 1.0),
                ],
                within_ms: 1_000,
            },
        );
        let mut state = RuleState::default();
        state.observe_combination(&combination, "a", 0, 2.0, &mut out);
        state.observe_combination(&combination, "b", 0, 2.0, &mut out);
        assert!(state.combination().firing);
        assert_eq!(state.extra.len(), 1);
    }
}
