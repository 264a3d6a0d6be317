//! The summary `weir check` prints: a pipeline's sections, and each rule
//! in plain words on one line.

use weir_operators::rules::describe;

use super::*;

use weir_operators::alarm::health::AreaBy;

impl PipelineSpec {
    /// A human summary for `weir check`: source, decoding, windows, sinks,
    /// runtime, and each rule on one line in plain words, such as
    /// `overheat (critical): temperature on press-* above 90 (clears at or below 85) for 30s, cooldown 5m`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "pipeline {} ({})", self.name, self.path.display());
        self.summarize_source(&mut s);
        self.summarize_decode(&mut s);
        match self.windows.as_slice() {
            [one] => {
                let _ = writeln!(s, "windows: {}", describe_output(one));
            }
            several => {
                let _ = writeln!(s, "windows:");
                for w in several {
                    let _ = writeln!(s, "  {}: {}", w.name, describe_output(w));
                }
            }
        }
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
        let format = d.time_format.as_str();
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
        let several = self.windows.len() > 1;
        for w in &self.windows {
            let Some(p) = &w.parquet else { continue };
            let _ = writeln!(
                s,
                "  parquet{}: {} ({}, row groups of {} rows, at most {} rows per file)",
                if several {
                    format!(" ({})", w.name)
                } else {
                    String::new()
                },
                p.dir,
                p.compression,
                p.row_group_rows,
                p.max_rows_per_file
            );
        }
        if self.parquet().is_none() {
            s.push_str("  parquet: none\n");
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
        for d in &self.deliveries {
            let retry = &d.retry;
            let detail = match &d.receiver {
                crate::delivery::Receiver::Alertmanager(am) => format!(
                    "firing alerts sent again every {}",
                    humantime::format_duration(am.resend_interval)
                ),
                crate::delivery::Receiver::Webhook(_) => format!(
                    "{} attempts, back-off {} to {}, then a dead letter",
                    retry.max_attempts,
                    humantime::format_duration(retry.backoff),
                    humantime::format_duration(retry.max_backoff)
                ),
            };
            let _ = writeln!(
                s,
                "  {}: {} from the alert topic, group {} ({detail})",
                d.receiver.kind(),
                d.receiver.url(),
                d.group
            );
        }
        if self.alerts.is_some() {
            let h = &self.alarm_health;
            let to = self.alarm_health_sink.as_ref().map_or_else(
                || "the status page only".to_owned(),
                |k| {
                    format!(
                        "the status page and Kafka topic {} on {}",
                        k.topic, k.brokers
                    )
                },
            );
            let to = match &self.alarm_health_parquet {
                Some(p) => format!("{to}, and Parquet files in {}", p.dir),
                None => to,
            };
            let area = match h.area {
                AreaBy::Line => "site/line",
                AreaBy::Site => "site",
                AreaBy::All => "all devices",
            };
            let _ = writeln!(
                s,
                "  alarm health: floods over {} activations per {}, stale after {}, by {area}, to {to}",
                h.flood_limit,
                human_ms(h.flood_window_ms),
                human_ms(h.stale_after_ms),
            );
        }
        if let Some(control) = &self.control {
            let actions = match &self.http_token_env {
                Some(var) => format!("; POST /api/alarms/{{action}} with the token in ${var}"),
                None => String::new(),
            };
            let _ = writeln!(
                s,
                "  control events (ack, shelve, unshelve, out of service): topic {} on {}{actions}",
                control.topic, control.brokers
            );
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
                    c.dir,
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
            let _ = write!(s, "\n  {}", describe::summary(rule));
        }
    }
}

/// A window output in words, with its statistics: `1m tumbling; count,
/// min, max, sum, mean`, `1h hopping every 10m; ...`, `sessions with a gap
/// of 30s; ...`, `1m tumbling, corrected by late readings for 5m; ...`.
fn describe_output(output: &WindowOutput) -> String {
    let kind = describe_kind(output.kind);
    let kind = match output.allowed_lateness_ms {
        0 => kind,
        late => format!("{kind}, corrected by late readings for {}", human_ms(late)),
    };
    format!("{kind}; {}", output.stats)
}

/// A window kind in words.
fn describe_kind(kind: WindowKind) -> String {
    match kind {
        WindowKind::Tumbling { size_ms } => format!("{} tumbling", human_ms(size_ms)),
        WindowKind::Hopping { size_ms, slide_ms } => {
            format!("{} hopping every {}", human_ms(size_ms), human_ms(slide_ms))
        }
        WindowKind::Session { gap_ms } => format!("sessions with a gap of {}", human_ms(gap_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_a_hand_written_rule() {
        let rule = Rule::new("overheat", "temperature", Direction::Above, 90.0)
            .devices("press-*")
            .unwrap()
            .severity("critical")
            .clear_at(85.0)
            .with(|m| {
                m.for_ms = 30_000;
                m.cooldown_ms = 300_000;
            });
        assert_eq!(
            describe::summary(&rule),
            "overheat (critical): temperature on press-* above 90 (clears at or below 85) for 30s, cooldown 5m"
        );

        let mut low = Rule::new("low-pressure", "pressure", Direction::Below, 2.5)
            .consecutive(3)
            .window(60_000, Stat::Min);
        low.selection.sensors.push("oil_pressure".into());
        assert_eq!(
            describe::summary(&low),
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
            describe::summary(&set.rules[0]),
            "overheat (critical): temperature on press-* above 90 (clears at or below 85) for 30s, cooldown 5m"
        );
    }
}
