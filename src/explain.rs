//! `weir check --explain`: each rule of a pipeline in plain words, one line
//! per aspect, so that a plant engineer can read what a rules file does.

use std::fmt::Write as _;

use weir_operators::rules::describe;

use crate::config::PipelineSpec;

/// Every rule of `spec`, explained.
pub fn explain(spec: &PipelineSpec) -> String {
    let mut out = String::new();
    if spec.rules.rules.is_empty() {
        out.push_str("No alert rules.\n");
    }
    let registry = &spec.rules.devices;
    for rule in &spec.rules.rules {
        out.push_str(&describe::explain(rule));
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

#[cfg(test)]
mod tests {
    use weir_operators::alert::{Direction, Rule, Stat};
    use weir_operators::rules::describe::explain as explain_rule;

    #[test]
    fn a_threshold_rule_in_plain_words() {
        let rule = Rule::new("overheat", "temperature", Direction::Above, 90.0)
            .devices("press-*")
            .unwrap()
            .severity("critical")
            .clear_at(85.0)
            .with(|m| {
                m.consecutive = 3;
                m.for_ms = 30_000;
                m.keep_firing_for_ms = 120_000;
                m.cooldown_ms = 300_000;
                m.escalation = Some((3_600_000, "critical".into()));
            });
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
        let rate =
            Rule::new("heating-fast", "temperature", Direction::Above, 0.5).rate_of_change(60_000);
        assert!(explain_rule(&rate).contains(
            "fires: when the change per second from the earliest reading at most 1m before is above 0.5\n"
        ));
        let deviation = Rule::new("odd", "vibration", Direction::Above, 3.0)
            .window(60_000, Stat::Mean)
            .deviation(20);
        let text = explain_rule(&deviation);
        assert!(text.contains("watches: the mean of vibration over 1m tumbling windows"));
        assert!(text.contains(
            "fires: when the distance, in standard deviations, of a window from the mean of the previous 20 is above 3\n"
        ));
        let silence = Rule::new_silence("quiet", "speed", 300_000);
        let text = explain_rule(&silence);
        assert!(text.contains("fires: when no reading comes for 5m of event time"));
        assert!(text.contains("resolves: at the next reading\n"));
        assert!(!text.contains("above"));
    }
}
