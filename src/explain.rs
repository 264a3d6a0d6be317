//! `weir check --explain`: each rule of a pipeline in plain words, one line
//! per aspect, so that a plant engineer can read what a rules file does.

use std::fmt::Write as _;

use weir_operators::alert::combination::{Combination, Mode};
use weir_operators::alert::{Direction, Rule, RuleInput, RuleKind};

use crate::config::{human_ms, stat_name, PipelineSpec};

/// Every rule of `spec`, explained.
pub fn explain(spec: &PipelineSpec) -> String {
    let mut out = String::new();
    if spec.rules.rules.is_empty() {
        out.push_str("No alert rules.\n");
    }
    let registry = &spec.rules.devices;
    for rule in &spec.rules.rules {
        out.push_str(&explain_rule(rule));
        let own = registry
            .devices
            .values()
            .filter(|d| d.limits.iter().any(|(name, _)| *name == rule.name))
            .count();
        if own > 0 {
            let file = registry
                .file
                .as_ref()
                .map_or(String::new(), |f| format!(" ({})", f.display()));
            let _ = writeln!(
                out,
                "  per-device limits: {own} device(s) of the registry{file} have their own"
            );
        }
        out.push('\n');
    }
    out
}

/// What a rule asks of a device's registry fields: ` whose registry site
/// is north and type is press`, or nothing.
pub fn registry_phrase(r: &Rule) -> String {
    if r.fields.is_empty() {
        return String::new();
    }
    let fields: Vec<String> = r
        .fields
        .iter()
        .map(|(field, m)| format!("{field} is {}", m.glob().glob()))
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
            let side = match k.direction {
                Direction::Above => "above",
                Direction::Below => "below",
            };
            let mut s = format!("{} {side} {}", k.sensor, k.threshold);
            if k.clear != k.threshold {
                let _ = write!(s, " (holding until past {})", k.clear);
            }
            s
        })
        .collect();
    let mode = match c.mode {
        Mode::All => "all",
        Mode::Any => "any",
    };
    format!(
        "{mode} of {}, within {}",
        conditions.join(", "),
        human_ms(c.within_ms)
    )
}

/// One rule in plain words.
pub fn explain_rule(r: &Rule) -> String {
    let mut s = format!("{} (severity {})\n", r.name, r.severity);
    let sensors = if r.sensors.is_empty() {
        "every sensor".to_owned()
    } else {
        r.sensors.join(", ")
    };
    let devices = r.devices.as_ref().map_or("every device".to_owned(), |m| {
        format!("devices matching {}", m.glob().glob())
    });
    let devices = format!("{devices}{}", registry_phrase(r));
    let (watched, one) = match r.input {
        RuleInput::Readings => (format!("readings of {sensors} from {devices}"), "reading"),
        RuleInput::Window { size_ms, stat } => (
            format!(
                "the {} of {sensors} over {} tumbling windows, from {devices}",
                stat_name(stat),
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
    let signal = match r.kind {
        RuleKind::Combination => {
            let c = r.combination.as_ref().map_or(String::new(), combination_phrase);
            let _ = writeln!(
                s,
                "  fires: at a reading of the device when {c}, each judged on its sensor's latest reading"
            );
            let _ = writeln!(s, "  resolves: at the first later reading when that no longer holds");
            explain_common(&mut s, r);
            return s;
        }
        RuleKind::Silence { after_ms } => {
            let _ = writeln!(
                s,
                "  fires: when no reading comes for {} of event time, once the device's partition \
                 shows later readings (or at its next reading)",
                human_ms(after_ms)
            );
            let _ = writeln!(s, "  resolves: at the next reading");
            explain_common(&mut s, r);
            return s;
        }
        RuleKind::Threshold => format!("a {one}'s value"),
        RuleKind::RateOfChange { span_ms } => format!(
            "the change per second from the earliest {one} at most {} before",
            human_ms(span_ms)
        ),
        RuleKind::Deviation { baseline } => format!(
            "the distance, in standard deviations, of a {one} from the mean of the previous {baseline}"
        ),
    };
    let (side, safe) = match r.direction {
        Direction::Above => ("above", "at or below"),
        Direction::Below => ("below", "at or above"),
    };
    let mut fires = format!("when {signal} is {side} {}", r.threshold);
    if r.consecutive > 1 {
        let _ = write!(fires, ", for {} {one}s in a row", r.consecutive);
    }
    if r.for_ms > 0 {
        let _ = write!(
            fires,
            ", and has been for {} of event time",
            human_ms(r.for_ms)
        );
    }
    let _ = writeln!(s, "  fires: {fires}");
    let mut resolves = format!("when it is {safe} {}", r.clear);
    if r.keep_firing_for_ms > 0 {
        let _ = write!(
            resolves,
            ", once that has held for {}",
            human_ms(r.keep_firing_for_ms)
        );
    }
    let _ = writeln!(s, "  resolves: {resolves}");
    explain_common(&mut s, r);
    s
}

/// The aspects every kind shares: cooldown, escalation and chattering.
fn explain_common(s: &mut String, r: &Rule) {
    if r.cooldown_ms > 0 {
        let _ = writeln!(
            s,
            "  cooldown: a firing within {} of the last one is not sent, nor its resolution",
            human_ms(r.cooldown_ms)
        );
    }
    if let Some((after_ms, severity)) = &r.escalation {
        let _ = writeln!(
            s,
            "  escalates: to {severity} if still firing {} after it fired",
            human_ms(*after_ms)
        );
    }
    if let Some(ch) = &r.chattering {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_rule_in_plain_words() {
        let rule = Rule {
            severity: "critical".into(),
            clear: 85.0,
            consecutive: 3,
            for_ms: 30_000,
            keep_firing_for_ms: 120_000,
            cooldown_ms: 300_000,
            escalation: Some((3_600_000, "critical".into())),
            ..Rule::new("overheat", "temperature", Direction::Above, 90.0)
                .devices("press-*")
                .unwrap()
        };
        assert_eq!(
            explain_rule(&rule),
            "overheat (severity critical)\n\
             \x20 watches: readings of temperature from devices matching press-*, each device and sensor on its own\n\
             \x20 fires: when a reading's value is above 90, for 3 readings in a row, and has been for 30s of event time\n\
             \x20 resolves: when it is at or below 85, once that has held for 2m\n\
             \x20 cooldown: a firing within 5m of the last one is not sent, nor its resolution\n\
             \x20 escalates: to critical if still firing 1h after it fired\n"
        );
    }

    #[test]
    fn rate_deviation_and_silence_rules_in_plain_words() {
        let rate = Rule {
            kind: RuleKind::RateOfChange { span_ms: 60_000 },
            ..Rule::new("heating-fast", "temperature", Direction::Above, 0.5)
        };
        assert!(explain_rule(&rate).contains(
            "fires: when the change per second from the earliest reading at most 1m before is above 0.5\n"
        ));
        let deviation = Rule {
            kind: RuleKind::Deviation { baseline: 20 },
            input: RuleInput::Window {
                size_ms: 60_000,
                stat: weir_operators::alert::Stat::Mean,
            },
            ..Rule::new("odd", "vibration", Direction::Above, 3.0)
        };
        let text = explain_rule(&deviation);
        assert!(text.contains("watches: the mean of vibration over 1m tumbling windows"));
        assert!(text.contains(
            "fires: when the distance, in standard deviations, of a window from the mean of the previous 20 is above 3\n"
        ));
        let silence = Rule {
            kind: RuleKind::Silence { after_ms: 300_000 },
            ..Rule::new("quiet", "speed", Direction::Above, 0.0)
        };
        let text = explain_rule(&silence);
        assert!(text.contains("fires: when no reading comes for 5m of event time"));
        assert!(text.contains("resolves: at the next reading\n"));
        assert!(!text.contains("above"));
    }
}
