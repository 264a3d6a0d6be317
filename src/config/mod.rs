//! Pipeline and alert-rule files: TOML, loaded in two stages.
//!
//! **Stage one** deserializes a file into raw structs that mirror it. Every raw
//! struct is `deny_unknown_fields`, and every value that is checked later is a
//! [`toml::Spanned`], so a problem found later can still name its line.
//! Required fields are `Option`s at this stage: a missing one is reported with
//! the other problems of stage two instead of stopping deserialization.
//!
//! **Stage two** validates the raw structs into the operators' typed configs
//! ([`KafkaSourceConfig`], [`DecodeConfig`], [`RuleSet`], ...), collecting
//! *every* problem rather than stopping at the first, so one `weir check`
//! shows all of them.
//!
//! Every problem is one line `<file>:<line>:<col>: <field path>: <problem>`,
//! for example
//!
//! ```text
//! rules.toml:14:9: rule[2] "overheat".above: must be a finite number, found inf
//! ```
//!
//! Lines and columns count from 1 (columns in characters); rules count from 0
//! in file order and carry their name when they have one. A TOML syntax error
//! or an unknown field also gets its position. Serde stops at the first
//! field it cannot deserialize, so when a file fails stage one it is checked
//! again field by field, and every unknown or mistyped field is reported.
//!
//! Durations are human strings (`"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1h 30m"`)
//! parsed by [`humantime`], in whole milliseconds; messages quote the
//! original text.
//!
//! # Pipeline file
//!
//! Relative paths resolve against the directory of the pipeline file.
//!
//! ```toml
//! name = "press-line"               # required
//!
//! [source]                          # required
//! brokers = "127.0.0.1:9092"        # required
//! topic = "readings"                # required
//! group_id = "weir-press-line"      # default "weir-<name>"
//! start = "earliest"                # earliest | latest | committed | an RFC 3339 time
//! out_of_orderness = "5s"           # default 5s
//! idle_timeout = "30s"              # default 30s; "0s" or "off" disables
//! watermark_step = "100ms"          # default 100ms; the watermark moves in steps of this much event time
//! watermark_alignment = "30s"       # default off; a partition this far ahead of the frontier pauses
//! properties = { "fetch.min.bytes" = "1" }   # extra librdkafka properties
//!
//! [decode]                          # optional; defaults as shown
//! device_field = "device_id"
//! sensor_field = "sensor"
//! value_field = "value"
//! time_field = "ts"
//! time_format = "auto"              # auto | epoch_ms | epoch_s | rfc3339
//! max_future = "1h"
//!
//! [window]
//! size = "1m"                       # default 1m; must divide a day evenly
//!
//! [rules]
//! file = "rules.toml"               # or inline [[rule]] tables, not both
//!
//! [sinks.parquet]                   # at least one sink is required
//! path = "out/windows"              # required
//! compression = "zstd"              # zstd | zstd(LEVEL) | snappy | none
//! row_group_rows = 65536
//! max_rows_per_file = 1000000
//!
//! [sinks.alerts]                    # required when there are rules
//! topic = "alerts"                  # required
//! brokers = "127.0.0.1:9092"        # default: the source's brokers
//! idempotent = true                 # default true
//! properties = { }
//!
//! [sinks.dead_letters]              # same fields as [sinks.alerts]
//! topic = "readings.dead"
//!
//! [runtime]
//! workers = 1                       # default 1
//! ```
//!
//! # Rules file
//!
//! A list of `[[rule]]` tables (the same tables may be written inline in the
//! pipeline file). An empty file is an empty rule set.
//!
//! ```toml
//! [[rule]]
//! name = "overheat"                 # required, unique
//! sensor = "temperature"            # or sensors = ["temperature", "oil_temp"]
//! devices = "press-*"               # glob; default every device
//! above = 90.0                      # exactly one of above / below
//! clear = 85.0                      # hysteresis: at or below `above` (at or above `below`)
//! consecutive = 3                   # default 1
//! for = "30s"                       # default 0
//! cooldown = "5m"                   # default 0
//! keep_firing_for = "2m"            # off-delay: resolve once clear for this long; default 0
//! kind = "rate"                     # threshold (default) | rate | deviation
//! span = "1m"                       # kind = "rate": change per second over this span (required)
//! baseline = 20                     # kind = "deviation": |value - mean| / σ of the previous 20 (required)
//! after = "5m"                      # kind = "silence": no reading for this long (required; no threshold)
//! escalate_after = "10m"            # still firing 10 minutes after firing: an `escalated` event...
//! escalate_to = "critical"          # ...and this severity from then on (both or neither)
//! chatter_changes = 3               # 3 state changes within chatter_within: a `chattering` event,
//! chatter_within = "1m"             # then no events until calm (no change) for chatter_calm,
//! chatter_calm = "5m"               # then one event with the state then (defaults 1m, chatter_within)
//! severity = "critical"             # info | warning (default) | critical
//! window = "1m"                     # look at tumbling window aggregates instead of readings
//! stat = "mean"                     # with window only: mean (default) | min | max | sum | count
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::Glob;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeString, DeTable, DeValue, ValueDeserializer};
use toml::Spanned;
use weir_operators::alert::combination::{Combination, Condition, Mode};
use weir_operators::alert::{
    Chattering, Direction, Registry, Rule, RuleInput, RuleKind, RuleSet, Stat,
};
use weir_operators::checkpoint::CheckpointConfig;

use crate::registry::load_registry;
use weir_operators::decode::{DecodeConfig, TimeFormat};
use weir_operators::kafka::{KafkaSinkConfig, KafkaSourceConfig, StartOffset};
use weir_operators::parquet::{ParquetCompression, ParquetSinkConfig};

mod locate;
mod pipeline;
mod rules;
mod values;

use locate::*;
pub(crate) use locate::{check_entry, check_fields, deserialize, element_path};
use pipeline::{rules_with_devices, validate_pipeline};
pub(crate) use rules::stat_name;
use rules::*;
pub(crate) use values::parse_duration_ms;
use values::*;

/// Window size when `[window] size` is not given: one minute.
const DEFAULT_WINDOW_MS: u64 = 60_000;
/// Out-of-orderness bound when `source.out_of_orderness` is not given.
const DEFAULT_OUT_OF_ORDERNESS_MS: u64 = 5_000;
/// Idle timeout when `source.idle_timeout` is not given.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Watermark step when `source.watermark_step` is not given.
const DEFAULT_WATERMARK_STEP_MS: u64 = 100;
/// Parquet windows must divide a day, so they line up with the hour and day partitions.
const DAY_MS: u64 = 86_400_000;

/// A validated pipeline: everything the `weir` binary needs to wire and run it.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    /// Pipeline name.
    pub name: String,
    /// The pipeline file.
    pub path: PathBuf,
    /// The Kafka source. `bounded` is always `false` here; the CLI overrides it.
    pub source: KafkaSourceConfig,
    /// How payloads are decoded.
    pub decode: DecodeConfig,
    /// Size of the aggregation windows written to Parquet, in ms.
    pub window_ms: u64,
    /// The alert rules, inline or from [`PipelineSpec::rules_file`].
    pub rules: RuleSet,
    /// The rules file, resolved against the pipeline file's directory.
    pub rules_file: Option<PathBuf>,
    /// The Parquet sink of window aggregates, if any.
    pub parquet: Option<ParquetSinkConfig>,
    /// The Kafka sink of alerts, if any.
    pub alerts: Option<KafkaSinkConfig>,
    /// The Kafka sink of dead letters, if any.
    pub dead_letters: Option<KafkaSinkConfig>,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Checkpoints, if configured (`[checkpoint]`).
    pub checkpoint: Option<CheckpointConfig>,
    /// Where to serve `/metrics`, `/health` and `/ready` (`[http] addr`).
    pub http: Option<std::net::SocketAddr>,
}

impl PipelineSpec {
    /// A human summary for `weir check`: source, decoding, windows, sinks,
    /// runtime, and each rule on one line in plain words, such as
    /// `overheat (critical): temperature on press-* above 90 (clears at or below 85) for 30s, cooldown 5m`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
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
        let _ = writeln!(s, "pipeline {} ({})", self.name, self.path.display());
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
        let _ = writeln!(s, "windows: {} tumbling", human_ms(self.window_ms));
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
        s
    }
}

/// One rule in plain words, on one line.
fn rule_summary(r: &Rule) -> String {
    let sensors = if r.sensors.is_empty() {
        "any sensor".to_owned()
    } else {
        r.sensors.join(", ")
    };
    let devices = r.devices.as_ref().map_or("any device", |m| m.glob().glob());
    let devices = format!("{devices}{}", crate::explain::registry_phrase(r));
    let (subject, observations) = match r.input {
        RuleInput::Readings => (format!("{sensors} on {devices}"), "readings"),
        RuleInput::Window { size_ms, stat } => (
            format!(
                "{} of {} windows of {sensors} on {devices}",
                stat_name(stat),
                human_ms(size_ms)
            ),
            "windows",
        ),
    };
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
    s
}

/// A duration in ms as humantime writes it: `30s`, `5m`, `1h 30m`, `0s`.
pub(crate) fn human_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// Every problem found in a configuration file, and in the rules file it
/// names. Displays one problem per line, each
/// `<file>:<line>:<col>: <field path>: <problem>`, or
/// `cannot read <file>: <io error>` when a file cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    /// The rendered problems, in file order (the rules file's after the pipeline file's).
    problems: Vec<String>,
}

impl ConfigError {
    /// The problems, one message each, in file order.
    pub fn problems(&self) -> Vec<String> {
        self.problems.clone()
    }

    fn unreadable(path: &Path, error: &std::io::Error) -> Self {
        ConfigError {
            problems: vec![format!("cannot read {}: {error}", path.display())],
        }
    }
}

/// Reads and validates a pipeline file, and the rules file it names.
pub fn load_pipeline(path: &Path) -> Result<PipelineSpec, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
    parse_pipeline(&text, path)
}

/// Reads and validates an alert rules file.
pub fn load_rules(path: &Path) -> Result<RuleSet, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
    parse_rules(&text, path)
}

/// Validates the text of a pipeline file. `path` names the file in messages,
/// and relative paths in it (the rules file, the Parquet directory) resolve
/// against its directory; a rules file it names is read from disk.
pub fn parse_pipeline(text: &str, path: &Path) -> Result<PipelineSpec, ConfigError> {
    let mut d = Diag::new(path, text);
    let spec = deserialize::<RawPipeline>(&mut d, pipeline_sections)
        .map(|raw| validate_pipeline(raw, path, &mut d));
    d.finish(spec)
}

/// Validates the text of an alert rules file. `path` names the file in messages.
pub fn parse_rules(text: &str, path: &Path) -> Result<RuleSet, ConfigError> {
    let mut d = Diag::new(path, text);
    let base = path.parent().unwrap_or(Path::new(""));
    let rules = deserialize::<RawRulesFile>(&mut d, rules_sections).map(|raw| {
        let rules = raw.rule.as_deref().unwrap_or_default();
        rules_with_devices(rules, raw.devices.as_ref(), base, &mut d)
    });
    d.finish(rules)
}

// ---------------------------------------------------------------------------
// Stage one: raw structs, as written in the files.
// ---------------------------------------------------------------------------

/// A pipeline file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    /// Pipeline name (required). Names the default consumer group, `weir-<name>`.
    name: Option<Spanned<String>>,
    /// `[source]`: the Kafka topic readings come from (required).
    source: Option<Spanned<RawSource>>,
    /// `[decode]`: where a reading's fields are in the JSON payload.
    decode: Option<RawDecode>,
    /// `[window]`: the aggregation windows written to Parquet.
    window: Option<RawWindow>,
    /// `[rules]`: a separate rules file.
    rules: Option<Spanned<RawRulesRef>>,
    /// `[[rule]]`: inline alert rules (instead of a rules file).
    rule: Option<Vec<Spanned<RawRule>>>,
    /// `[devices]`: the device registry of inline rules.
    devices: Option<Spanned<RawDevices>>,
    /// `[sinks.*]`: where results are written (at least one sink).
    sinks: Option<Spanned<RawSinks>>,
    /// `[runtime]`: how the pipeline runs.
    runtime: Option<RawRuntime>,
    /// `[checkpoint]`: periodic checkpoints, to restart without loss or
    /// duplicates.
    checkpoint: Option<Spanned<RawCheckpoint>>,
    /// `[http]`: the operations server.
    http: Option<Spanned<RawHttp>>,
}

/// `[http]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// `HOST:PORT` to serve `/metrics`, `/health` and `/ready` on.
    addr: Option<Spanned<String>>,
}

/// `[checkpoint]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckpoint {
    /// Directory of the checkpoints, relative to the pipeline file (required).
    dir: Option<Spanned<String>>,
    /// Wall-clock time between checkpoints; default `10s`.
    interval: Option<Spanned<String>>,
    /// Complete checkpoints kept; default 3; at least 1.
    keep: Option<Spanned<i64>>,
}

/// `[source]`: the Kafka source.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    /// Bootstrap servers, `host:port[,host:port]` (required).
    brokers: Option<Spanned<String>>,
    /// Topic of readings (required).
    topic: Option<Spanned<String>>,
    /// Consumer group id; default `weir-<name>`.
    group_id: Option<Spanned<String>>,
    /// `earliest` (default), `latest`, `committed`, or an RFC 3339 time
    /// (a string or a TOML offset date-time).
    start: Option<Spanned<toml::Value>>,
    /// How far behind a partition's newest event time a reading may be
    /// before it is late; default `5s`.
    out_of_orderness: Option<Spanned<String>>,
    /// Wall-clock silence after which a partition no longer holds the
    /// watermark back; default `30s`; `0s` or `off` disables.
    idle_timeout: Option<Spanned<String>>,
    /// Event time by which the watermark (the dataflow frontier) advances
    /// at a time; default `100ms`; must be longer than 0. Smaller steps
    /// emit windows and alerts sooner, at the cost of more progress traffic.
    watermark_step: Option<Spanned<String>>,
    /// Watermark alignment: a partition whose watermark runs this much
    /// event time ahead of the dataflow's frontier is paused until the
    /// frontier catches up; default `off`; at least twice `watermark_step`.
    watermark_alignment: Option<Spanned<String>>,
    /// Extra librdkafka properties (strings, numbers or booleans).
    properties: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

/// `[decode]`: the JSON payload's layout.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecode {
    /// Field holding the device id; default `device_id`.
    device_field: Option<Spanned<String>>,
    /// Field holding the sensor name; default `sensor`.
    sensor_field: Option<Spanned<String>>,
    /// Field holding the value; default `value`.
    value_field: Option<Spanned<String>>,
    /// Field holding the event time; default `ts`.
    time_field: Option<Spanned<String>>,
    /// `auto` (default), `epoch_ms`, `epoch_s` or `rfc3339`.
    time_format: Option<Spanned<String>>,
    /// How far ahead of its Kafka timestamp a reading's event time may be
    /// before it is a dead letter; default `1h`.
    max_future: Option<Spanned<String>>,
}

/// `[window]`: the aggregation windows.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    /// Window size; default `1m`; must divide a day evenly.
    size: Option<Spanned<String>>,
}

/// `[rules]`: where the rules are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRulesRef {
    /// The rules file, relative to the pipeline file (required in `[rules]`).
    file: Option<Spanned<String>>,
}

/// `[devices]`: the device registry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevices {
    /// The registry's CSV file, relative to the file naming it (required).
    file: Option<Spanned<String>>,
}

/// `[sinks]`: where results go.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSinks {
    /// `[sinks.parquet]`: window aggregates as Parquet files.
    parquet: Option<Spanned<RawParquet>>,
    /// `[sinks.alerts]`: alert events to a Kafka topic.
    alerts: Option<Spanned<RawKafkaSink>>,
    /// `[sinks.dead_letters]`: undecodable and late records to a Kafka topic.
    dead_letters: Option<Spanned<RawKafkaSink>>,
}

/// `[sinks.parquet]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParquet {
    /// Root directory of the files, relative to the pipeline file (required).
    path: Option<Spanned<String>>,
    /// Codec: `zstd` (default), `zstd(LEVEL)`, `zstd:LEVEL`, `snappy`, `none`.
    compression: Option<Spanned<String>>,
    /// Most rows in a row group (at least 1); default 65 536.
    row_group_rows: Option<Spanned<i64>>,
    /// Most rows in a file (at least 1); default 1 000 000.
    max_rows_per_file: Option<Spanned<i64>>,
}

/// `[sinks.alerts]` or `[sinks.dead_letters]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafkaSink {
    /// Topic to write to (required).
    topic: Option<Spanned<String>>,
    /// Bootstrap servers; default: the source's.
    brokers: Option<Spanned<String>>,
    /// Use the idempotent producer; default true.
    idempotent: Option<bool>,
    /// Extra librdkafka properties (strings, numbers or booleans).
    properties: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

/// `[runtime]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    /// Worker threads; default 1; at least 1.
    workers: Option<Spanned<i64>>,
}

/// A rules file: a list of `[[rule]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRulesFile {
    /// The rules, in file order.
    rule: Option<Vec<Spanned<RawRule>>>,
    /// `[devices]`: the device registry the rules use.
    devices: Option<Spanned<RawDevices>>,
}

/// One `[[rule]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// Rule name (required, unique within the set).
    name: Option<Spanned<String>>,
    /// The sensor the rule watches (or `sensors`; one of them is required).
    sensor: Option<Spanned<String>>,
    /// The sensors the rule watches (or `sensor`).
    sensors: Option<Spanned<Vec<Spanned<String>>>>,
    /// Device id glob such as `press-*`; default every device.
    devices: Option<Spanned<String>>,
    /// Registry fields the device must match: `{ site = "north" }` (globs).
    #[serde(rename = "where")]
    where_: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    /// Labels every alert of the rule carries.
    labels: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    /// Breach when the value is above this (exactly one of `above`, `below`).
    above: Option<Spanned<f64>>,
    /// Breach when the value is below this.
    below: Option<Spanned<f64>>,
    /// Hysteresis: a firing alert resolves only at or past this value on the
    /// safe side; default the threshold.
    clear: Option<Spanned<f64>>,
    /// Breaching observations in a row needed to fire; default 1.
    consecutive: Option<Spanned<i64>>,
    /// Event time the breach must last before firing; default `0s`.
    #[serde(rename = "for")]
    for_: Option<Spanned<String>>,
    /// Least event time between two firings; default `0s`.
    cooldown: Option<Spanned<String>>,
    /// Off-delay: resolve only once the clear condition has held this long;
    /// default `0s`.
    keep_firing_for: Option<Spanned<String>>,
    /// `threshold` (default) or `rate` (change per second over `span`).
    kind: Option<Spanned<String>>,
    /// With `kind = "rate"`: how far back the rate looks (required there).
    span: Option<Spanned<String>>,
    /// With `kind = "deviation"`: how many previous observations make the
    /// baseline (required there, at least 2).
    baseline: Option<Spanned<i64>>,
    /// With `kind = "silence"`: how long without a reading (required there).
    after: Option<Spanned<String>>,
    /// Escalate an alert still firing after this long (with `escalate_to`).
    escalate_after: Option<Spanned<String>>,
    /// The severity an escalated alert takes (with `escalate_after`).
    escalate_to: Option<Spanned<String>>,
    /// Chattering: this many state changes within `chatter_within` hold
    /// the rule's events back until it is calm for `chatter_calm`.
    chatter_changes: Option<Spanned<i64>>,
    /// With `chatter_changes`: the span the changes fall in; default `1m`.
    chatter_within: Option<Spanned<String>>,
    /// With `chatter_changes`: how long without a change the rule must be
    /// to be calm again; default `chatter_within`.
    chatter_calm: Option<Spanned<String>>,
    /// `info`, `warning` (default) or `critical`.
    severity: Option<Spanned<String>>,
    /// Watch tumbling window aggregates of this size instead of readings.
    window: Option<Spanned<String>>,
    /// With `window`: `mean` (default), `min`, `max`, `sum` or `count`.
    stat: Option<Spanned<String>>,
    /// With `kind = "combination"`: conditions that must all hold...
    all: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    /// ...or of which one must hold (instead of `all`).
    any: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    /// With `kind = "combination"`: the span of event time the conditions'
    /// latest breaches must fall in (required there).
    within: Option<Spanned<String>>,
}

/// One condition of a combination rule: `{ sensor = "temperature", above = 90 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    /// The sensor (required).
    sensor: Option<Spanned<String>>,
    /// Holds above this (exactly one of `above`, `below`).
    above: Option<Spanned<f64>>,
    /// Holds below this.
    below: Option<Spanned<f64>>,
    /// Hysteresis: stops holding only at or past this; default the threshold.
    clear: Option<Spanned<f64>>,
}

// ---------------------------------------------------------------------------
// Problems and their positions.
// ---------------------------------------------------------------------------

/// Collects the problems of one file, with their positions.
pub(crate) struct Diag<'t> {
    /// The file as messages name it.
    file: String,
    /// Its text, to turn byte offsets into lines and columns.
    text: &'t str,
    /// Byte offset and rendered message of each problem.
    found: Vec<(usize, String)>,
    /// Problems of another file (a rules file), reported after this file's.
    pub(crate) other: Vec<String>,
}

impl<'t> Diag<'t> {
    pub(crate) fn new(path: &Path, text: &'t str) -> Self {
        Diag {
            file: path.display().to_string(),
            text,
            found: Vec::new(),
            other: Vec::new(),
        }
    }

    /// Records a problem at byte `offset` of the file.
    pub(crate) fn at(&mut self, offset: usize, path: &str, problem: impl fmt::Display) {
        let message = format!("{}: {path}: {problem}", self.position(offset));
        self.found.push((offset, message));
    }

    /// Records a problem at the start of `span`.
    pub(crate) fn err(&mut self, span: Range<usize>, path: &str, problem: impl fmt::Display) {
        self.at(span.start, path, problem);
    }

    /// `file:line:col` of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> String {
        let (line, col) = line_col(self.text, offset);
        format!("{}:{line}:{col}", self.file)
    }

    /// The value if no problem was found, else every problem in file order.
    pub(crate) fn finish<T>(mut self, value: Option<T>) -> Result<T, ConfigError> {
        match value {
            Some(value) if self.found.is_empty() && self.other.is_empty() => Ok(value),
            _ => {
                self.found.sort_by_key(|(offset, _)| *offset);
                let mut problems: Vec<String> = self.found.into_iter().map(|(_, p)| p).collect();
                problems.append(&mut self.other);
                if problems.is_empty() {
                    problems.push(format!("{}: could not be loaded", self.file));
                }
                Err(ConfigError { problems })
            }
        }
    }
}

/// Line and column (from 1; the column in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_milliseconds() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("1h 30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        for bad in ["5", "fast", "", "-1s"] {
            let e = parse_duration_ms(bad).unwrap_err();
            assert!(e.contains(&format!("invalid duration {bad:?}")), "{e}");
        }
        let e = parse_duration_ms("1500us").unwrap_err();
        assert!(
            e.contains("\"1500us\" is not a whole number of milliseconds"),
            "{e}"
        );
    }

    #[test]
    fn start_offsets() {
        assert_eq!(parse_start("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(parse_start("latest"), Ok(StartOffset::Latest));
        assert_eq!(parse_start("committed"), Ok(StartOffset::Committed));
        assert_eq!(
            parse_start("1970-01-01T00:00:01.5Z"),
            Ok(StartOffset::Timestamp(1_500))
        );
        // Midnight of 2 January at UTC+1 is 23:00 on 1 January UTC.
        assert_eq!(
            parse_start("1970-01-02T00:00:00+01:00"),
            Ok(StartOffset::Timestamp(23 * 3_600_000))
        );
        // 2026-01-01 is 20 454 days after 1970-01-01 (56 years, 14 of them
        // leap years); 22 November is 325 days later.
        assert_eq!(
            parse_start("2026-11-22T10:00:00Z"),
            Ok(StartOffset::Timestamp(
                ((20_454 + 325) * 86_400 + 10 * 3_600) * 1_000
            ))
        );
        for bad in ["Earliest", "yesterday", "2026-11-22T10:00:00", "2026-11-22"] {
            let e = parse_start(bad).unwrap_err();
            assert!(e.contains(&format!("invalid start {bad:?}")), "{e}");
        }
        assert!(parse_start("1969-12-31T23:59:59Z")
            .unwrap_err()
            .contains("before 1970"));
    }

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

    #[test]
    fn messages_name_file_line_column_and_field() {
        let text = "name = \"plant\"\n[source]\nbrokers = \"k\"\ntopic = \"\"\n[sinks.parquet]\npath = \"out\"\n";
        let e = parse_pipeline(text, Path::new("p.toml")).unwrap_err();
        assert_eq!(
            e.problems(),
            vec!["p.toml:4:9: source.topic: must not be empty".to_owned()]
        );
        let unknown = "name = \"plant\"\n[source]\nbrokers = \"k\"\n  topicz = \"t\"\n";
        let e = parse_pipeline(unknown, Path::new("p.toml")).unwrap_err();
        assert_eq!(e.problems().len(), 1);
        assert!(
            e.problems()[0].starts_with("p.toml:4:3: source.topicz: unknown field `topicz`"),
            "{e}"
        );
    }

    #[test]
    fn line_col_counts_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(line_col(text, 12), (2, 6));
        assert_eq!(line_col(text, 1_000), (3, 1));
    }

    #[test]
    fn unreadable_file() {
        let e = load_pipeline(Path::new("/nonexistent/weir.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/weir.toml: "),
            "{e}"
        );
    }
}
