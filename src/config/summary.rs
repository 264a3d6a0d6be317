//! The summary `weir check` prints: a pipeline's sections, and each rule
//! in plain words on one line.

use super::*;

impl PipelineSpec {
    /// A human summary for `weir check`: source, decoding, windows, sinks,
    /// runtime, and each rule on one line in plain words, such as
    /// `overheat (critical): temperature on press-* above 90 (clears at or below 85) for 30s, cooldown 5m`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "pipeline {} ({})", self.name, self.path.display());
        self.summarize_source(&mut s);
        self.summarize_decode(&mut s);
        let _ = writeln!(s, "windows: {} tumbling", human_ms(self.window_ms));
        self.summarize_sinks(&mut s);
        self.summarize_runtime(&mut s);
        self.summarize_rules(&mut s);
        s
    }

    /// The `source:` line.
    fn summarize_source(&self, s: &mut String) {
        let src = &self.source;
        let start = match src.start {
            StartOffset::Earliest => "earliest".to_owned(),
            StartOffset::Latest => "latest".to_owned(),
            StartOffset::Committed => "committed offsets".to_owned(),
            StartOffset::Timestamp(ms) => chrono::DateTime::from_timestamp_millis(ms)
                .map_or_else(|| format!("{ms} ms"), |t| t.to_rfc3339()),
            StartOffset::Offsets(ref offsets) => format!("offsets {offsets:?}"),
        };
        let idle = src.idle_timeout.map_or("off".to_owned(), |d| {
            humantime::format_duration(d).to_string()
        });
        let alignment = src
            .watermark_alignment_ms
            .map_or("off".to_owned(), human_ms);
        let _ = writeln!(
            s,
            "source: Kafka topic {} on {}, group {}, from {}, out-of-orderness {}, idle timeout {}, watermark step {}, watermark alignment {}",
            src.topic,
            src.brokers,
            src.group_id,
            start,
            human_ms(src.out_of_orderness_ms),
            idle,
            human_ms(src.watermark_step_ms),
            alignment
        );
    }

    /// The `decode:` line.
    fn summarize_decode(&self, s: &mut String) {
        let d = &self.decode;
        let format = match d.time_format {
            TimeFormat::Auto => "auto",
            TimeFormat::EpochMillis => "epoch_ms",
            TimeFormat::EpochSeconds => "epoch_s",
            TimeFormat::Rfc3339 => "rfc3339",
        };
        let _ = writeln!(
            s,
            "decode: JSON fields device {}, sensor {}, value {}, time {} ({format}); at most {} ahead of the record time",
            d.device_field,
            d.sensor_field,
            d.value_field,
            d.time_field,
            human_ms(d.max_future_ms)
        );
    }

    /// The `sinks:` lines: Parquet, alerts and dead letters.
    fn summarize_sinks(&self, s: &mut String) {
        let _ = writeln!(s, "sinks:");
        match &self.parquet {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "  parquet: {} ({}, row groups of {} rows, at most {} rows per file)",
                    p.dir.display(),
                    p.compression,
                    p.row_group_rows,
                    p.max_rows_per_file
                );
            }
            None => s.push_str("  parquet: none\n"),
        }
        for (label, sink) in [
            ("alerts", &self.alerts),
            ("dead letters", &self.dead_letters),
        ] {
            match sink {
                Some(k) => {
                    let _ = writeln!(
                        s,
                        "  {label}: Kafka topic {} on {}{}",
                        k.topic,
                        k.brokers,
                        if k.idempotent { " (idempotent)" } else { "" }
                    );
                }
                None => {
                    let _ = writeln!(s, "  {label}: none");
                }
            }
        }
    }

    /// The workers, checkpoints and operations server lines.
    fn summarize_runtime(&self, s: &mut String) {
        let _ = writeln!(s, "workers: {}", self.workers);
        match &self.checkpoint {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "checkpoints: every {} in {}, keeping {}",
                    humantime::format_duration(c.interval),
                    c.dir.display(),
                    c.keep
                );
            }
            None => s.push_str("checkpoints: none (a restart re-reads from the source's start)\n"),
        }
        if let Some(addr) = self.http {
            let _ = writeln!(
                s,
                "operations server: http://{addr}/metrics, /health, /ready"
            );
        }
    }

    /// The `rules` line, and each rule on a line of its own.
    fn summarize_rules(&self, s: &mut String) {
        let from = self
            .rules_file
            .as_ref()
            .map_or(String::new(), |f| format!(" from {}", f.display()));
        let _ = write!(s, "rules ({}{from}):", self.rules.rules.len());
        if self.rules.rules.is_empty() {
            s.push_str(" none");
        }
        for rule in &self.rules.rules {
            let _ = write!(s, "\n  {}", rule_summary(rule));
        }
    }
}

/// One rule in plain words, on one line.
fn rule_summary(r: &Rule) -> String {
    let devices = r.devices.as_ref().map_or("any device", |m| m.glob().glob());
    let devices = format!("{devices}{}", crate::explain::registry_phrase(r));
    let (subject, observations) = observed(r, &devices);
    let subject = match r.kind {
        RuleKind::RateOfChange { span_ms } => format!(
            "rate of change per second over {} of {subject}",
            human_ms(span_ms)
        ),
        RuleKind::Deviation { baseline } => {
            format!("standard deviations from the mean of the previous {baseline} of {subject}")
        }
        RuleKind::Combination => {
            let c = r.combination.as_ref();
            return format!(
                "{} ({}): {} on {devices}",
                r.name,
                r.severity,
                c.map_or(String::new(), crate::explain::combination_phrase)
            );
        }
        RuleKind::Silence { after_ms } => {
            return format!(
                "{} ({}): no reading of {subject} for {}",
                r.name,
                r.severity,
                human_ms(after_ms)
            );
        }
        RuleKind::Threshold => subject,
    };
    let side = match r.direction {
        Direction::Above => "above",
        Direction::Below => "below",
    };
    let safe_side = r.direction.clear_side();
    let mut s = format!(
        "{} ({}): {subject} {side} {}",
        r.name, r.severity, r.threshold
    );
    if r.clear != r.threshold {
        let _ = write!(s, " (clears {safe_side} {})", r.clear);
    }
    write_modifiers(&mut s, r, observations);
    s
}

/// What a rule looks at (its sensors on `devices`, or a statistic of their
/// windows), and what its observations are called.
fn observed(r: &Rule, devices: &str) -> (String, &'static str) {
    let sensors = if r.sensors.is_empty() {
        "any sensor".to_owned()
    } else {
        r.sensors.join(", ")
    };
    match r.input {
        RuleInput::Readings => (format!("{sensors} on {devices}"), "readings"),
        RuleInput::Window { size_ms, stat } => (
            format!(
                "{} of {} windows of {sensors} on {devices}",
                stat_name(stat),
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
    if r.for_ms > 0 {
        let _ = write!(s, " for {}", human_ms(r.for_ms));
    }
    if r.consecutive > 1 {
        let _ = write!(s, ", {} {observations} in a row", r.consecutive);
    }
    if r.keep_firing_for_ms > 0 {
        let _ = write!(
            s,
            ", resolves once clear for {}",
            human_ms(r.keep_firing_for_ms)
        );
    }
    if r.cooldown_ms > 0 {
        let _ = write!(s, ", cooldown {}", human_ms(r.cooldown_ms));
    }
    if let Some((after_ms, severity)) = &r.escalation {
        let _ = write!(
            s,
            ", escalates to {severity} after {} firing",
            human_ms(*after_ms)
        );
    }
    if let Some(ch) = &r.chattering {
        let _ = write!(
            s,
            ", chattering at {} changes within {}",
            ch.changes,
            human_ms(ch.within_ms)
        );
    }
}

/// A duration in ms as humantime writes it: `30s`, `5m`, `1h 30m`, `0s`.
pub(crate) fn human_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_hand_written_rule() {
        let mut rule = Rule::new("overheat", "temperature", Direction::Above, 90.0)
            .devices("press-*")
            .unwrap();
        rule.severity = "critical".into();
        rule.clear = 85.0;
        rule.for_ms = 30_000;
        rule.cooldown_ms = 300_000;
        assert_eq!(
            rule_summary(&rule),
            "overheat (critical): temperature on press-* above 90 (clears at or below 85) for 30s, cooldown 5m"
        );

        let mut low = Rule::new("low-pressure", "pressure", Direction::Below, 2.5);
        low.sensors.push("oil_pressure".into());
        low.consecutive = 3;
        low.input = RuleInput::Window {
            size_ms: 60_000,
            stat: Stat::Min,
        };
        assert_eq!(
            rule_summary(&low),
            "low-pressure (warning): min of 1m windows of pressure, oil_pressure on any device below 2.5, 3 windows in a row"
        );
    }

    #[test]
    fn a_parsed_rule_summarizes_like_the_hand_written_one() {
        let text = r#"
[[rule]]
name = "overheat"
sensor = "temperature"
devices = "press-*"
above = 90
clear = 85.0
for = "30s"
cooldown = "5m"
severity = "critical"
"#;
        let set = parse_rules(text, Path::new("rules.toml")).unwrap();
        assert_eq!(set.rules.len(), 1);
        assert_eq!(
            rule_summary(&set.rules[0]),
            "overheat (critical): temperature on press-* above 90 (clears at or below 85) for 30s, cooldown 5m"
        );
    }
}
