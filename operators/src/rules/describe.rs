//! A rule in words: the one text of a rule that both `weir check` (one
//! line per rule, [`summary`]) and `weir check --explain` (one line per
//! aspect, [`explain`]) print, built from the same pieces: the device
//! selection with its registry fields ([`registry_phrase`]), a
//! combination's conditions ([`combination_phrase`]), the sides of a
//! threshold ([`side`]) and durations ([`human_ms`]).

use std::fmt::Write as _;
use std::time::Duration;

use super::combination::Combination;
use super::kind::{Direction, RuleInput, RuleKind, Threshold};
use super::rule::Rule;

/// A duration in ms as humantime writes it: `30s`, `5m`, `1h 30m`, `0s`.
pub fn human_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// The side of a threshold that breaches, in words: `above` or `below`.
pub fn side(direction: Direction) -> &'static str {
    direction.into()
}

/// The rule's sensors, joined by `, `, or `every` (`any`) sensor.
fn sensors(r: &Rule, every: &str) -> String {
    match &r.selection.sensors[..] {
        [] => format!("{every} sensor"),
        names => names.join(", "),
    }
}

/// What a rule asks of a device's registry fields: ` whose registry site
/// is north and type is press`, or nothing.
pub fn registry_phrase(r: &Rule) -> String {
    let fields = &r.selection.fields;
    if fields.is_empty() {
        return String::new();
    }
    let fields: Vec<String> = fields
        .iter()
        .map(|(field, p)| format!("{field} is {p}"))
        .collect();
    format!(" whose registry {}", fields.join(" and "))
}

/// A combination's conditions: `all of temperature above 90, vibration
/// above 7, within 10s`.
pub fn combination_phrase(c: &Combination) -> String {
    let conditions: Vec<String> = c
        .conditions
        .iter()
        .map(|k| {
            let mut s = format!("{} {} {}", k.sensor, side(k.direction), k.threshold);
            if k.clear != k.threshold {
                let _ = write!(s, " (holding until past {})", k.clear);
            }
            s
        })
        .collect();
    let mode: &str = c.mode.into();
    format!(
        "{mode} of {}, within {}",
        conditions.join(", "),
        human_ms(c.within_ms)
    )
}

/// One rule in plain words, one line per aspect (`weir check --explain`):
/// what it watches, its labels, when it fires and resolves, and its
/// cooldown, escalation and chattering.
pub fn explain(r: &Rule) -> String {
    let mut s = format!("{} (severity {})\n", r.name, r.severity);
    let devices = match &r.selection.devices {
        Some(p) => format!("devices matching {p}"),
        None => "every device".to_owned(),
    };
    let (devices, sensors) = (
        format!("{devices}{}", registry_phrase(r)),
        sensors(r, "every"),
    );
    let (watched, one) = match r.input() {
        RuleInput::Readings => (format!("readings of {sensors} from {devices}"), "reading"),
        RuleInput::Window { size_ms, stat } => (
            format!(
                "the {} of {sensors} over {} tumbling windows, from {devices}",
                stat.name(),
                human_ms(size_ms)
            ),
            "window",
        ),
    };
    let _ = writeln!(s, "  watches: {watched}, each device and sensor on its own");
    if !r.labels.is_empty() {
        let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            s,
            "  labels: {}, then the device's registry fields",
            labels.join(", ")
        );
    }
    explain_firing(&mut s, r, one);
    explain_common(&mut s, r);
    s
}

/// The `fires:` and `resolves:` lines; `one` names an observation.
fn explain_firing(s: &mut String, r: &Rule, one: &str) {
    let (signal, t) = match &r.kind {
        RuleKind::Combination(c) => {
            let _ = writeln!(
                s,
                "  fires: at a reading of the device when {}, each judged on its sensor's latest reading",
                combination_phrase(c)
            );
            let _ = writeln!(s, "  resolves: at the first later reading when that no longer holds");
            return;
        }
        RuleKind::Silence { after_ms } => {
            let _ = writeln!(
                s,
                "  fires: when no reading comes for {} of event time, once the device's partition \
                 shows later readings (or at its next reading)",
                human_ms(*after_ms)
            );
            let _ = writeln!(s, "  resolves: at the next reading");
            return;
        }
        RuleKind::Threshold(t) => (format!("a {one}'s value"), t),
        RuleKind::RateOfChange { span_ms, threshold } => (
            format!(
                "the change per second from the earliest {one} at most {} before",
                human_ms(*span_ms)
            ),
            threshold,
        ),
        RuleKind::Deviation {
            baseline,
            threshold,
        } => (
            format!(
                "the distance, in standard deviations, of a {one} from the mean of the previous {baseline}"
            ),
            threshold,
        ),
    };
    let m = &r.modifiers;
    let mut fires = format!("when {signal} is {} {}", side(t.direction), t.threshold);
    if m.consecutive > 1 {
        let _ = write!(fires, ", for {} {one}s in a row", m.consecutive);
    }
    if m.for_ms > 0 {
        let _ = write!(
            fires,
            ", and has been for {} of event time",
            human_ms(m.for_ms)
        );
    }
    let _ = writeln!(s, "  fires: {fires}");
    let mut resolves = format!("when it is {} {}", t.direction.clear_side(), t.clear);
    if m.keep_firing_for_ms > 0 {
        let held = human_ms(m.keep_firing_for_ms);
        let _ = write!(resolves, ", once that has held for {held}");
    }
    let _ = writeln!(s, "  resolves: {resolves}");
}

/// The aspects every kind shares: cooldown, escalation and chattering.
fn explain_common(s: &mut String, r: &Rule) {
    let m = &r.modifiers;
    if m.cooldown_ms > 0 {
        let _ = writeln!(
            s,
            "  cooldown: a firing within {} of the last one is not sent, nor its resolution",
            human_ms(m.cooldown_ms)
        );
    }
    if let Some((after_ms, severity)) = &m.escalation {
        let _ = writeln!(
            s,
            "  escalates: to {severity} if still firing {} after it fired",
            human_ms(*after_ms)
        );
    }
    if let Some(ch) = &m.chattering {
        let _ = writeln!(
            s,
            "  chattering: {} changes of state within {} send one `chattering` event instead; \
             no event follows until no change for {}, then one with the state then",
            ch.changes,
            human_ms(ch.within_ms),
            human_ms(ch.calm_ms)
        );
    }
}

/// One rule in plain words on one line (`weir check`), such as
/// `overheat (critical): temperature on press-* above 90 (clears at or
/// below 85) for 30s, cooldown 5m`.
pub fn summary(r: &Rule) -> String {
    let devices = r
        .selection
        .devices
        .as_ref()
        .map_or("any device", |p| p.as_str());
    let devices = format!("{devices}{}", registry_phrase(r));
    let (subject, observations) = observed(r, &devices);
    let (subject, t) = match &r.kind {
        RuleKind::RateOfChange { span_ms, threshold } => (
            format!(
                "rate of change per second over {} of {subject}",
                human_ms(*span_ms)
            ),
            threshold,
        ),
        RuleKind::Deviation {
            baseline,
            threshold,
        } => (
            format!("standard deviations from the mean of the previous {baseline} of {subject}"),
            threshold,
        ),
        RuleKind::Combination(c) => {
            return format!(
                "{} ({}): {} on {devices}",
                r.name,
                r.severity,
                combination_phrase(c)
            );
        }
        RuleKind::Silence { after_ms } => {
            return format!(
                "{} ({}): no reading of {subject} for {}",
                r.name,
                r.severity,
                human_ms(*after_ms)
            );
        }
        RuleKind::Threshold(t) => (subject, t),
    };
    let mut s = format!("{} ({}): {subject}", r.name, r.severity);
    write_threshold(&mut s, t);
    write_modifiers(&mut s, r, observations);
    s
}

/// ` above 90 (clears at or below 85)`: a threshold, and its clear
/// threshold if it differs.
fn write_threshold(s: &mut String, t: &Threshold) {
    let _ = write!(s, " {} {}", side(t.direction), t.threshold);
    if t.clear != t.threshold {
        let _ = write!(s, " (clears {} {})", t.direction.clear_side(), t.clear);
    }
}

/// What a rule looks at (its sensors on `devices`, or a statistic of their
/// windows), and what its observations are called.
fn observed(r: &Rule, devices: &str) -> (String, &'static str) {
    let sensors = sensors(r, "any");
    match r.input() {
        RuleInput::Readings => (format!("{sensors} on {devices}"), "readings"),
        RuleInput::Window { size_ms, stat } => (
            format!(
                "{} of {} windows of {sensors} on {devices}",
                stat.name(),
                human_ms(size_ms)
            ),
            "windows",
        ),
    }
}

/// The modifiers a threshold rule has, each only when it is not the
/// default: `for`, `consecutive`, `keep_firing_for`, `cooldown`,
/// escalation and chattering.
fn write_modifiers(s: &mut String, r: &Rule, observations: &str) {
    let m = &r.modifiers;
    if m.for_ms > 0 {
        let _ = write!(s, " for {}", human_ms(m.for_ms));
    }
    if m.consecutive > 1 {
        let _ = write!(s, ", {} {observations} in a row", m.consecutive);
    }
    if m.keep_firing_for_ms > 0 {
        let _ = write!(
            s,
            ", resolves once clear for {}",
            human_ms(m.keep_firing_for_ms)
        );
    }
    if m.cooldown_ms > 0 {
        let _ = write!(s, ", cooldown {}", human_ms(m.cooldown_ms));
    }
    if let Some((after_ms, severity)) = &m.escalation {
        let _ = write!(
            s,
            ", escalates to {severity} after {} firing",
            human_ms(*after_ms)
        );
    }
    if let Some(ch) = &m.chattering {
        let _ = write!(
            s,
            ", chattering at {} changes within {}",
            ch.changes,
            human_ms(ch.within_ms)
        );
    }
}
