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

/// Parses `d`'s text and deserializes it into `T`. On failure reports every
/// syntax error, or else every field that does not deserialize (checking the
/// document part by part with `parts`), and returns `None`.
pub(crate) fn deserialize<T: DeserializeOwned>(
    d: &mut Diag<'_>,
    parts: fn(&Spanned<DeTable<'_>>, &mut Vec<toml::de::Error>),
) -> Option<T> {
    let (doc, syntax) = DeTable::parse_recoverable(d.text);
    if !syntax.is_empty() {
        let mut seen = Vec::new();
        for e in syntax {
            let offset = e.span().map_or(0, |s| s.start);
            if !seen.contains(&(offset, e.message().to_owned())) {
                d.at(offset, "invalid TOML", e.message());
                seen.push((offset, e.message().to_owned()));
            }
        }
        return None;
    }
    match T::deserialize(toml::de::Deserializer::from(doc.clone())) {
        Ok(raw) => Some(raw),
        Err(first) => {
            let mut errors = Vec::new();
            parts(&doc, &mut errors);
            if errors.is_empty() {
                errors.push(first);
            }
            for e in errors {
                let offset = e.span().map_or(0, |s| s.start);
                let path = locate(doc.get_ref(), offset);
                d.at(offset, &path, with_hint(&path, e.message()));
            }
            None
        }
    }
}

/// Checks a pipeline document part by part: each field of each section.
fn pipeline_sections(doc: &Spanned<DeTable<'_>>, out: &mut Vec<toml::de::Error>) {
    for (key, value) in doc.get_ref().iter() {
        let checked = match key.get_ref().as_ref() {
            "source" => check_fields::<RawSource>(value, out),
            "decode" => check_fields::<RawDecode>(value, out),
            "window" => check_fields::<RawWindow>(value, out),
            "rules" => check_fields::<RawRulesRef>(value, out),
            "devices" => check_fields::<RawDevices>(value, out),
            "runtime" => check_fields::<RawRuntime>(value, out),
            "checkpoint" => check_fields::<RawCheckpoint>(value, out),
            "http" => check_fields::<RawHttp>(value, out),
            "rule" => check_rules(value, out),
            "sinks" => match value.get_ref() {
                DeValue::Table(sinks) => {
                    for (name, sink) in sinks.iter() {
                        let checked = match name.get_ref().as_ref() {
                            "parquet" => check_fields::<RawParquet>(sink, out),
                            "alerts" | "dead_letters" => check_fields::<RawKafkaSink>(sink, out),
                            _ => false,
                        };
                        if !checked {
                            check_entry::<RawSinks>(name, sink, value.span(), out);
                        }
                    }
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !checked {
            check_entry::<RawPipeline>(key, value, doc.span(), out);
        }
    }
}

/// Checks a rules document part by part: each field of each rule.
fn rules_sections(doc: &Spanned<DeTable<'_>>, out: &mut Vec<toml::de::Error>) {
    for (key, value) in doc.get_ref().iter() {
        let checked = match key.get_ref().as_ref() {
            "rule" => check_rules(value, out),
            "devices" => check_fields::<RawDevices>(value, out),
            _ => false,
        };
        if !checked {
            check_entry::<RawRulesFile>(key, value, doc.span(), out);
        }
    }
}

/// Checks each field of each rule of an array of tables; false if `value` is
/// not one.
fn check_rules(value: &Spanned<DeValue<'_>>, out: &mut Vec<toml::de::Error>) -> bool {
    let DeValue::Array(rules) = value.get_ref() else {
        return false;
    };
    if !rules.iter().all(|r| r.get_ref().is_table()) {
        return false;
    }
    for rule in rules.iter() {
        check_fields::<RawRule>(rule, out);
    }
    true
}

/// Checks each field of a table on its own as a field of `T`; false if
/// `value` is not a table.
/// Fields whose values are durations, written as strings.
const DURATION_FIELDS: [&str; 15] = [
    "out_of_orderness",
    "idle_timeout",
    "watermark_step",
    "watermark_alignment",
    "max_future",
    "size",
    "for",
    "cooldown",
    "keep_firing_for",
    "span",
    "after",
    "escalate_after",
    "chatter_within",
    "chatter_calm",
    "window",
];

/// Adds a hint to a type error on a duration field given as a number.
fn with_hint(path: &str, message: &str) -> String {
    let field = path.rsplit('.').next().unwrap_or(path);
    let numeric = message.starts_with("invalid type: integer")
        || message.starts_with("invalid type: floating point");
    if numeric && DURATION_FIELDS.contains(&field) {
        format!("{message} (durations are strings with a unit, such as \"30s\" or \"5m\")")
    } else {
        message.to_owned()
    }
}

pub(crate) fn check_fields<T: DeserializeOwned>(
    value: &Spanned<DeValue<'_>>,
    out: &mut Vec<toml::de::Error>,
) -> bool {
    let DeValue::Table(table) = value.get_ref() else {
        return false;
    };
    for (key, field) in table.iter() {
        check_entry::<T>(key, field, value.span(), out);
    }
    true
}

/// Deserializes `T` from a table holding only `key = value` (every raw field
/// is optional, so only an unknown key or a mistyped value fails).
pub(crate) fn check_entry<T: DeserializeOwned>(
    key: &Spanned<DeString<'_>>,
    value: &Spanned<DeValue<'_>>,
    span: Range<usize>,
    out: &mut Vec<toml::de::Error>,
) {
    let mut table = DeTable::new();
    table.insert(key.clone(), value.clone());
    let single = Spanned::new(span, DeValue::Table(table));
    if let Err(e) = T::deserialize(ValueDeserializer::from(single)) {
        out.push(e);
    }
}

/// The field path of the smallest key or value of `doc` whose span holds
/// `offset`, such as `source.topic` or `rule[2] "overheat".above`.
fn locate(doc: &DeTable<'_>, offset: usize) -> String {
    let mut best = None;
    locate_in_table(doc, "", 0, offset, &mut best);
    best.map_or_else(|| "(document)".to_owned(), |(_, _, path)| path)
}

/// The best match so far: span length, depth, path.
type Located = Option<(usize, usize, String)>;

/// Considers every key of `table` and, recursively, its values.
fn locate_in_table(
    table: &DeTable<'_>,
    prefix: &str,
    depth: usize,
    offset: usize,
    best: &mut Located,
) {
    for (key, value) in table.iter() {
        let path = field_path(prefix, key.get_ref());
        consider(key.span(), &path, depth, offset, best);
        locate_in_value(value, &path, depth, offset, best);
    }
}

/// Considers `value` and, recursively, what it holds.
fn locate_in_value(
    value: &Spanned<DeValue<'_>>,
    path: &str,
    depth: usize,
    offset: usize,
    best: &mut Located,
) {
    consider(value.span(), path, depth, offset, best);
    match value.get_ref() {
        DeValue::Table(table) => locate_in_table(table, path, depth + 1, offset, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = match item.get_ref() {
                    DeValue::Table(t) => t.get("name").and_then(|n| n.get_ref().as_str()),
                    _ => None,
                };
                let path = element_path(path, i, name);
                locate_in_value(item, &path, depth + 1, offset, best);
            }
        }
        _ => {}
    }
}

/// Keeps `path` if its span holds `offset` and is smaller (or as small and deeper) than the best so far.
fn consider(span: Range<usize>, path: &str, depth: usize, offset: usize, best: &mut Located) {
    if span.start <= offset && (offset < span.end || offset == span.start) {
        let len = span.end - span.start;
        let better = best
            .as_ref()
            .is_none_or(|(l, d, _)| len < *l || (len == *l && depth > *d));
        if better {
            *best = Some((len, depth, path.to_owned()));
        }
    }
}

/// `prefix.key`, quoting a key that is not a bare TOML key.
fn field_path(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// `path[i]`, followed by the element's name when it has one: `rule[2] "overheat"`.
pub(crate) fn element_path(path: &str, index: usize, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{path}[{index}] {name:?}"),
        None => format!("{path}[{index}]"),
    }
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

// ---------------------------------------------------------------------------
// Stage two: validation into the typed configs. Each check records its
// problems and returns a stand-in value, so validation goes on and finds the
// other problems; a spec with problems is never returned.
// ---------------------------------------------------------------------------

/// Stage two of a pipeline file: every section, the rules, and the checks across sections.
fn validate_pipeline(raw: RawPipeline, path: &Path, d: &mut Diag<'_>) -> PipelineSpec {
    let base = path.parent().unwrap_or(Path::new(""));
    let name = required_text(d, raw.name.as_ref(), 0, "name");

    let source = validate_source(raw.source.as_ref(), &name, d);
    let decode = validate_decode(raw.decode.as_ref(), d);
    let window_ms = match raw.window.as_ref().and_then(|w| w.size.as_ref()) {
        Some(size) => match duration_ms(d, size, "window.size") {
            Some(0) => {
                d.err(size.span(), "window.size", "must be longer than 0");
                DEFAULT_WINDOW_MS
            }
            Some(ms) if DAY_MS % ms != 0 => {
                d.err(
                    size.span(),
                    "window.size",
                    format!(
                        "{:?} ({ms} ms) does not divide a day evenly, so windows would not line up \
                         with the Parquet hour and day partitions; use a size such as 1m, 5m, 15m or 1h",
                        size.get_ref()
                    ),
                );
                DEFAULT_WINDOW_MS
            }
            Some(ms) => ms,
            None => DEFAULT_WINDOW_MS,
        },
        None => DEFAULT_WINDOW_MS,
    };

    let (rules, rules_file) = pipeline_rules(
        raw.rules.as_ref(),
        raw.rule.as_deref(),
        raw.devices.as_ref(),
        base,
        d,
    );

    let sinks = raw.sinks.as_ref().map(|s| s.get_ref());
    let parquet = sinks
        .and_then(|s| s.parquet.as_ref())
        .map(|p| validate_parquet(p, base, d));
    let alerts = sinks
        .and_then(|s| s.alerts.as_ref())
        .map(|k| validate_kafka_sink(k, "sinks.alerts", &source.brokers, d));
    let dead_letters = sinks
        .and_then(|s| s.dead_letters.as_ref())
        .map(|k| validate_kafka_sink(k, "sinks.dead_letters", &source.brokers, d));
    let sinks_at = raw.sinks.as_ref().map_or(0, |s| s.span().start);
    if parquet.is_none() && alerts.is_none() && dead_letters.is_none() {
        d.at(
            sinks_at,
            "sinks",
            "no sink: nothing would be written; add [sinks.parquet], [sinks.alerts] or [sinks.dead_letters]",
        );
    } else if alerts.is_none() && !rules.rules.is_empty() {
        d.at(
            sinks_at,
            "sinks.alerts",
            format!(
                "the pipeline has {} alert rule(s) but no [sinks.alerts] to write their alerts to",
                rules.rules.len()
            ),
        );
    }

    let workers = raw
        .runtime
        .as_ref()
        .and_then(|r| r.workers.as_ref())
        .and_then(|w| count(d, w, "runtime.workers", 1, usize::MAX))
        .unwrap_or(1);

    let checkpoint = raw
        .checkpoint
        .as_ref()
        .map(|c| validate_checkpoint(c, base, d));
    let http = raw.http.as_ref().and_then(|h| {
        let addr = required_text(d, h.get_ref().addr.as_ref(), h.span().start, "http.addr");
        let span = h.get_ref().addr.as_ref().map_or(h.span(), |a| a.span());
        match addr.parse::<std::net::SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) if addr.is_empty() => None,
            Err(_) => {
                d.err(
                    span,
                    "http.addr",
                    "must be an IP address and port, like \"127.0.0.1:9464\"",
                );
                None
            }
        }
    });

    PipelineSpec {
        name,
        path: path.to_path_buf(),
        source,
        decode,
        window_ms,
        rules,
        rules_file,
        parquet,
        alerts,
        dead_letters,
        workers,
        checkpoint,
        http,
    }
}

/// `[checkpoint]`, with the defaults of [`CheckpointConfig::new`].
fn validate_checkpoint(
    raw: &Spanned<RawCheckpoint>,
    base: &Path,
    d: &mut Diag<'_>,
) -> CheckpointConfig {
    let r = raw.get_ref();
    let dir = required_text(d, r.dir.as_ref(), raw.span().start, "checkpoint.dir");
    let mut config = CheckpointConfig::new(base.join(dir));
    if let Some(interval) = &r.interval {
        match duration_ms(d, interval, "checkpoint.interval") {
            Some(0) => d.err(
                interval.span(),
                "checkpoint.interval",
                "must be longer than 0",
            ),
            Some(ms) => config.interval = Duration::from_millis(ms),
            None => {}
        }
    }
    if let Some(keep) = &r.keep {
        config.keep = count(d, keep, "checkpoint.keep", 1, usize::MAX).unwrap_or(1);
    }
    config
}

/// `[source]`, with the defaults of [`KafkaSourceConfig::new`] and a group named after the pipeline.
fn validate_source(
    raw: Option<&Spanned<RawSource>>,
    name: &str,
    d: &mut Diag<'_>,
) -> KafkaSourceConfig {
    let Some(raw) = raw else {
        d.at(
            0,
            "source",
            "required table [source] is missing (with brokers and topic)",
        );
        return KafkaSourceConfig::new("", "");
    };
    let at = raw.span().start;
    let r = raw.get_ref();
    let brokers = required_text(d, r.brokers.as_ref(), at, "source.brokers");
    let topic = required_text(d, r.topic.as_ref(), at, "source.topic");
    let mut source = KafkaSourceConfig::new(&brokers, &topic);
    source.group_id = match &r.group_id {
        Some(g) => text(d, g, "source.group_id"),
        None => format!("weir-{name}"),
    };
    if let Some(start) = &r.start {
        let parsed = match start.get_ref() {
            toml::Value::String(s) => parse_start(s),
            toml::Value::Datetime(t) => parse_start(&t.to_string()),
            other => Err(format!(
                "must be a string (\"earliest\", \"latest\", \"committed\" or an RFC 3339 time), found {}",
                other.type_str()
            )),
        };
        match parsed {
            Ok(s) => source.start = s,
            Err(e) => d.err(start.span(), "source.start", e),
        }
    }
    source.out_of_orderness_ms = r
        .out_of_orderness
        .as_ref()
        .and_then(|o| duration_ms(d, o, "source.out_of_orderness"))
        .unwrap_or(DEFAULT_OUT_OF_ORDERNESS_MS);
    source.idle_timeout = match &r.idle_timeout {
        None => Some(DEFAULT_IDLE_TIMEOUT),
        Some(t) if t.get_ref() == "off" => None,
        Some(t) => duration_ms(d, t, "source.idle_timeout")
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis),
    };
    source.watermark_step_ms = match &r.watermark_step {
        None => DEFAULT_WATERMARK_STEP_MS,
        Some(step) => match duration_ms(d, step, "source.watermark_step") {
            Some(0) => {
                d.err(
                    step.span(),
                    "source.watermark_step",
                    "must be longer than 0",
                );
                DEFAULT_WATERMARK_STEP_MS
            }
            ms => ms.unwrap_or(DEFAULT_WATERMARK_STEP_MS),
        },
    };
    source.watermark_alignment_ms = match &r.watermark_alignment {
        None => None,
        Some(a) if a.get_ref() == "off" => None,
        Some(a) => match duration_ms(d, a, "source.watermark_alignment") {
            Some(ms) if ms < 2 * source.watermark_step_ms => {
                d.err(
                    a.span(),
                    "source.watermark_alignment",
                    format!(
                        "must be at least twice watermark_step ({}), or \"off\"",
                        human_ms(source.watermark_step_ms)
                    ),
                );
                None
            }
            ms => ms,
        },
    };
    source.bounded = false;
    source.properties = properties(d, r.properties.as_ref(), "source.properties");
    source
}

/// `[decode]` over [`DecodeConfig::default`].
fn validate_decode(raw: Option<&RawDecode>, d: &mut Diag<'_>) -> DecodeConfig {
    let mut decode = DecodeConfig::default();
    let Some(r) = raw else {
        return decode;
    };
    for (value, target, path) in [
        (
            &r.device_field,
            &mut decode.device_field,
            "decode.device_field",
        ),
        (
            &r.sensor_field,
            &mut decode.sensor_field,
            "decode.sensor_field",
        ),
        (
            &r.value_field,
            &mut decode.value_field,
            "decode.value_field",
        ),
        (&r.time_field, &mut decode.time_field, "decode.time_field"),
    ] {
        if let Some(v) = value {
            *target = text(d, v, path);
        }
    }
    if let Some(f) = &r.time_format {
        decode.time_format = choice(
            d,
            f,
            "decode.time_format",
            &[
                ("auto", TimeFormat::Auto),
                ("epoch_ms", TimeFormat::EpochMillis),
                ("epoch_s", TimeFormat::EpochSeconds),
                ("rfc3339", TimeFormat::Rfc3339),
            ],
        )
        .unwrap_or_default();
    }
    if let Some(m) = &r.max_future {
        decode.max_future_ms = duration_ms(d, m, "decode.max_future").unwrap_or_default();
    }
    decode
}

/// The rules of a pipeline, inline or from its rules file, and that file.
fn pipeline_rules(
    reference: Option<&Spanned<RawRulesRef>>,
    inline: Option<&[Spanned<RawRule>]>,
    devices: Option<&Spanned<RawDevices>>,
    base: &Path,
    d: &mut Diag<'_>,
) -> (RuleSet, Option<PathBuf>) {
    let inline = inline.unwrap_or_default();
    let Some(reference) = reference else {
        return (rules_with_devices(inline, devices, base, d), None);
    };
    if let Some(devices) = devices {
        d.err(
            devices.span(),
            "devices",
            "the rules come from the [rules] file: give [devices] there, next to the rules that use it",
        );
    }
    let mut rules = validate_rules(inline, d);
    let mut registry = Registry::default();
    let Some(file) = &reference.get_ref().file else {
        d.err(
            reference.span(),
            "rules.file",
            "required field is missing (or remove the [rules] table)",
        );
        return (RuleSet::new(rules), None);
    };
    let path = base.join(text(d, file, "rules.file"));
    if let Some(first) = inline.first() {
        let at = d.position(first.span().start);
        d.err(
            file.span(),
            "rules.file",
            format!(
                "rules are given both in {:?} and inline as [[rule]] tables (the first at {at}); keep one of them",
                file.get_ref()
            ),
        );
    } else if !file.get_ref().is_empty() {
        match std::fs::read_to_string(&path) {
            Err(e) => d.err(
                file.span(),
                "rules.file",
                format!("cannot read {}: {e}", path.display()),
            ),
            Ok(text) => match parse_rules(&text, &path) {
                Ok(set) => (rules, registry) = (set.rules, set.devices),
                Err(e) => d.other.extend(e.problems),
            },
        }
    }
    (RuleSet::new(rules).with_devices(registry), Some(path))
}

/// Validates rules and the registry `[devices]` names (relative to `base`):
/// the registry's columns must name rules, and the fields rules select by
/// must be columns of it.
fn rules_with_devices(
    raw: &[Spanned<RawRule>],
    devices: Option<&Spanned<RawDevices>>,
    base: &Path,
    d: &mut Diag<'_>,
) -> RuleSet {
    let rules = validate_rules(raw, d);
    let registry = devices.and_then(|devices| {
        let Some(file) = &devices.get_ref().file else {
            d.err(
                devices.span(),
                "devices.file",
                "required field is missing (or remove the [devices] table)",
            );
            return None;
        };
        let path = base.join(text(d, file, "devices.file"));
        match load_registry(&path, &rules) {
            Ok(registry) => Some(registry),
            Err(problems) => {
                d.other.extend(problems);
                None
            }
        }
    });
    for (i, r) in raw.iter().enumerate() {
        let Some(fields) = &r.get_ref().where_ else {
            continue;
        };
        let label = element_path(
            "rule",
            i,
            r.get_ref().name.as_ref().map(|n| n.get_ref().as_str()),
        );
        let field = format!("{label}.where");
        match (&registry, devices) {
            (None, None) => d.err(
                fields.span(),
                &field,
                "selects devices by registry fields, but no [devices] file is given",
            ),
            (Some(registry), _) => {
                for (name, value) in fields.get_ref() {
                    if !registry.fields.contains(name) {
                        d.err(
                            value.span(),
                            &format!("{field}.{name}"),
                            format!(
                                "the device registry has no field {name:?} (its fields are {})",
                                registry.fields.join(", ")
                            ),
                        );
                    }
                }
            }
            // The registry has problems of its own, already reported.
            (None, Some(_)) => {}
        }
    }
    let registry = registry.map(|r| r.registry).unwrap_or_default();
    RuleSet::new(rules).with_devices(registry)
}

/// `[sinks.parquet]`; the directory resolves against `base`.
fn validate_parquet(raw: &Spanned<RawParquet>, base: &Path, d: &mut Diag<'_>) -> ParquetSinkConfig {
    let r = raw.get_ref();
    let path = required_text(d, r.path.as_ref(), raw.span().start, "sinks.parquet.path");
    let mut parquet = ParquetSinkConfig::new(base.join(path));
    if let Some(c) = &r.compression {
        match c.get_ref().parse::<ParquetCompression>() {
            Ok(c) => parquet.compression = c,
            Err(e) => d.err(c.span(), "sinks.parquet.compression", e),
        }
    }
    if let Some(n) = &r.row_group_rows {
        parquet.row_group_rows =
            count(d, n, "sinks.parquet.row_group_rows", 1, usize::MAX).unwrap_or(1);
    }
    if let Some(n) = &r.max_rows_per_file {
        parquet.max_rows_per_file =
            count(d, n, "sinks.parquet.max_rows_per_file", 1, usize::MAX).unwrap_or(1);
    }
    parquet
}

/// `[sinks.alerts]` or `[sinks.dead_letters]` (named by `path`).
fn validate_kafka_sink(
    raw: &Spanned<RawKafkaSink>,
    path: &str,
    source_brokers: &str,
    d: &mut Diag<'_>,
) -> KafkaSinkConfig {
    let r = raw.get_ref();
    let topic = required_text(
        d,
        r.topic.as_ref(),
        raw.span().start,
        &format!("{path}.topic"),
    );
    let brokers = match &r.brokers {
        Some(b) => text(d, b, &format!("{path}.brokers")),
        None => source_brokers.to_owned(),
    };
    let mut sink = KafkaSinkConfig::new(&brokers, &topic);
    sink.idempotent = r.idempotent.unwrap_or(true);
    sink.properties = properties(d, r.properties.as_ref(), &format!("{path}.properties"));
    sink
}

/// Validates rules in file order: each rule, then that names are unique.
fn validate_rules(raw: &[Spanned<RawRule>], d: &mut Diag<'_>) -> Vec<Rule> {
    let mut first_use: HashMap<String, (usize, usize)> = HashMap::new();
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let name = r.get_ref().name.as_ref();
        let label = element_path("rule", i, name.map(|n| n.get_ref().as_str()));
        let rule = validate_rule(r, &label, d);
        if let Some(name) = name.filter(|n| !n.get_ref().is_empty()) {
            match first_use.get(name.get_ref()) {
                Some(&(j, offset)) => {
                    let first = d.position(offset);
                    d.err(
                        name.span(),
                        &format!("{label}.name"),
                        format!(
                            "duplicate rule name {:?}: rule[{j}] at {first} has it too",
                            name.get_ref()
                        ),
                    );
                }
                None => {
                    first_use.insert(name.get_ref().clone(), (i, name.span().start));
                }
            }
        }
        rules.push(rule);
    }
    rules
}

/// One `[[rule]]`; `label` names it in messages (`rule[2] "overheat"`).
fn validate_rule(raw: &Spanned<RawRule>, label: &str, d: &mut Diag<'_>) -> Rule {
    let at = raw.span().start;
    let r = raw.get_ref();
    let field = |name: &str| format!("{label}.{name}");

    let name = required_text(d, r.name.as_ref(), at, &field("name"));
    let kind = rule_kind(d, r, &field);
    let combination = (kind == RuleKind::Combination).then(|| rule_combination(d, r, at, &field));
    let sensors = match (&r.sensor, &r.sensors) {
        _ if combination.is_some() => combination
            .as_ref()
            .map(|c| c.sensors())
            .unwrap_or_default(),
        (Some(s), None) => vec![text(d, s, &field("sensor"))],
        (None, Some(list)) => {
            if list.get_ref().is_empty() {
                d.err(
                    list.span(),
                    &field("sensors"),
                    "must name at least one sensor",
                );
            }
            list.get_ref()
                .iter()
                .map(|s| text(d, s, &field("sensors")))
                .collect()
        }
        (Some(_), Some(list)) => {
            d.err(
                list.span(),
                &field("sensors"),
                "give either `sensor` or `sensors`, not both",
            );
            Vec::new()
        }
        (None, None) => {
            d.at(
                at,
                &field("sensor"),
                "required field is missing: give `sensor = \"...\"` or `sensors = [\"...\"]`",
            );
            Vec::new()
        }
    };

    let devices = r
        .devices
        .as_ref()
        .and_then(|g| match Glob::new(g.get_ref()) {
            Ok(glob) => Some(glob.compile_matcher()),
            Err(e) => {
                d.err(
                    g.span(),
                    &field("devices"),
                    format!("invalid device pattern: {e}"),
                );
                None
            }
        });

    let silence = matches!(kind, RuleKind::Silence { .. });
    if silence {
        if let Some(t) = r.above.as_ref().or(r.below.as_ref()) {
            d.err(
                t.span(),
                &field(if r.above.is_some() { "above" } else { "below" }),
                "a silence rule has no threshold: it fires when no reading comes for `after`",
            );
        }
    }
    let (direction, threshold) = match (&r.above, &r.below) {
        _ if silence || combination.is_some() => (Direction::Above, Some(0.0)),
        (Some(above), None) => (Direction::Above, finite(d, above, &field("above"))),
        (None, Some(below)) => (Direction::Below, finite(d, below, &field("below"))),
        (Some(_), Some(below)) => {
            d.err(
                below.span(),
                &field("below"),
                "give either `above` or `below`, not both",
            );
            (Direction::Above, None)
        }
        (None, None) => {
            d.at(
                at,
                label,
                "no threshold: give `above = <number>` or `below = <number>`",
            );
            (Direction::Above, None)
        }
    };
    let clear = match (&r.clear, threshold) {
        (Some(c), threshold) => {
            let clear = finite(d, c, &field("clear"));
            if let (Some(clear), Some(threshold)) = (clear, threshold) {
                let side = direction.clear_side();
                let (key, resolves) = match direction {
                    Direction::Above => ("above", "falls"),
                    Direction::Below => ("below", "rises"),
                };
                if !direction.clears_at(threshold, clear) {
                    d.err(
                        c.span(),
                        &field("clear"),
                        format!(
                            "{clear} must be {side} the threshold ({key} = {threshold}): a firing \
                             alert resolves when the value {resolves} back to `clear`"
                        ),
                    );
                }
            }
            clear
        }
        (None, threshold) => threshold,
    };

    let consecutive = r
        .consecutive
        .as_ref()
        .and_then(|c| count(d, c, &field("consecutive"), 1, u32::MAX))
        .unwrap_or(1);
    let for_ms = r
        .for_
        .as_ref()
        .and_then(|f| duration_ms(d, f, &field("for")))
        .unwrap_or(0);
    let cooldown_ms = r
        .cooldown
        .as_ref()
        .and_then(|c| duration_ms(d, c, &field("cooldown")))
        .unwrap_or(0);
    let keep_firing_for_ms = r
        .keep_firing_for
        .as_ref()
        .and_then(|k| duration_ms(d, k, &field("keep_firing_for")))
        .unwrap_or(0);
    let severity = r
        .severity
        .as_ref()
        .and_then(|s| {
            choice(
                d,
                s,
                &field("severity"),
                &[
                    ("info", "info"),
                    ("warning", "warning"),
                    ("critical", "critical"),
                ],
            )
        })
        .unwrap_or("warning");

    if let (true, Some(window)) = (silence, &r.window) {
        d.err(
            window.span(),
            &field("window"),
            "a silence rule watches readings: remove `window`",
        );
    }
    let escalation = rule_escalation(d, r, silence, &field);
    let chattering = rule_chattering(d, r, silence, &field);
    let input = match (&r.window, &r.stat) {
        _ if silence => RuleInput::Readings,
        (None, None) => RuleInput::Readings,
        (None, Some(stat)) => {
            d.err(
                stat.span(),
                &field("stat"),
                "`stat` applies only to window rules: add `window = \"1m\"` or remove `stat`",
            );
            RuleInput::Readings
        }
        (Some(window), stat) => {
            let size_ms = match duration_ms(d, window, &field("window")) {
                Some(0) => {
                    d.err(window.span(), &field("window"), "must be longer than 0");
                    None
                }
                size => size,
            };
            let stat = stat.as_ref().map_or(Some(Stat::Mean), |s| {
                choice(
                    d,
                    s,
                    &field("stat"),
                    &[
                        ("mean", Stat::Mean),
                        ("min", Stat::Min),
                        ("max", Stat::Max),
                        ("sum", Stat::Sum),
                        ("count", Stat::Count),
                    ],
                )
            });
            RuleInput::Window {
                size_ms: size_ms.unwrap_or(DEFAULT_WINDOW_MS),
                stat: stat.unwrap_or(Stat::Mean),
            }
        }
    };

    let mut patterns =
        |map: Option<&Spanned<BTreeMap<String, Spanned<String>>>>, what: &str, glob: bool| {
            let mut out = Vec::new();
            for (key, value) in map.map(|m| m.get_ref()).into_iter().flatten() {
                let path = format!("{}.{key}", field(what));
                let text = text(d, value, &path);
                match glob.then(|| Glob::new(&text)) {
                    Some(Err(e)) => d.err(value.span(), &path, format!("invalid pattern: {e}")),
                    _ => out.push((key.clone(), text)),
                }
            }
            out
        };
    let fields = patterns(r.where_.as_ref(), "where", true)
        .into_iter()
        .map(|(k, p)| (k, Glob::new(&p).expect("checked").compile_matcher()))
        .collect();
    let labels = patterns(r.labels.as_ref(), "labels", false);

    Rule {
        name,
        severity: severity.to_owned(),
        sensors,
        devices,
        fields,
        labels,
        direction,
        threshold: threshold.unwrap_or(0.0),
        clear: clear.unwrap_or(0.0),
        consecutive,
        for_ms,
        cooldown_ms,
        keep_firing_for_ms,
        input,
        kind,
        escalation,
        chattering,
        combination,
    }
}

/// The conditions of a combination rule (`all` or `any`, and `within`).
/// The rule's own thresholds and modifiers do not apply to it: each one
/// given is an error.
fn rule_combination(
    d: &mut Diag<'_>,
    r: &RawRule,
    at: usize,
    field: &dyn Fn(&str) -> String,
) -> Combination {
    let single = [
        ("sensor", r.sensor.as_ref().map(Spanned::span)),
        ("sensors", r.sensors.as_ref().map(Spanned::span)),
        ("above", r.above.as_ref().map(Spanned::span)),
        ("below", r.below.as_ref().map(Spanned::span)),
        ("clear", r.clear.as_ref().map(Spanned::span)),
        ("consecutive", r.consecutive.as_ref().map(Spanned::span)),
        ("for", r.for_.as_ref().map(Spanned::span)),
        ("cooldown", r.cooldown.as_ref().map(Spanned::span)),
        (
            "keep_firing_for",
            r.keep_firing_for.as_ref().map(Spanned::span),
        ),
        (
            "escalate_after",
            r.escalate_after.as_ref().map(Spanned::span),
        ),
        (
            "chatter_changes",
            r.chatter_changes.as_ref().map(Spanned::span),
        ),
        ("window", r.window.as_ref().map(Spanned::span)),
    ];
    for (name, span) in single {
        if let Some(span) = span {
            d.err(
                span,
                &field(name),
                format!("a combination rule takes its sensors and thresholds from its conditions (`all` or `any`): remove `{name}`"),
            );
        }
    }
    let (mode, list, key) = match (&r.all, &r.any) {
        (Some(all), None) => (Mode::All, Some(all), "all"),
        (None, Some(any)) => (Mode::Any, Some(any), "any"),
        (Some(_), Some(any)) => {
            d.err(
                any.span(),
                &field("any"),
                "give either `all` or `any`, not both",
            );
            (Mode::Any, None, "any")
        }
        (None, None) => {
            d.at(
                at,
                &field("all"),
                "a combination rule needs `all = [...]` or `any = [...]`: its conditions, like { sensor = \"temperature\", above = 90.0 }",
            );
            (Mode::All, None, "all")
        }
    };
    let mut conditions = Vec::new();
    if let Some(list) = list {
        if list.get_ref().len() < 2 && mode == Mode::All {
            d.err(
                list.span(),
                &field(key),
                "`all` needs at least two conditions",
            );
        }
        if list.get_ref().is_empty() {
            d.err(list.span(), &field(key), "needs at least one condition");
        }
        for (i, c) in list.get_ref().iter().enumerate() {
            let path = format!("{}[{i}]", field(key));
            let raw = c.get_ref();
            let sensor = required_text(
                d,
                raw.sensor.as_ref(),
                c.span().start,
                &format!("{path}.sensor"),
            );
            let (direction, threshold) = match (&raw.above, &raw.below) {
                (Some(a), None) => (Direction::Above, finite(d, a, &format!("{path}.above"))),
                (None, Some(b)) => (Direction::Below, finite(d, b, &format!("{path}.below"))),
                _ => {
                    d.err(
                        c.span(),
                        &path,
                        "give exactly one of `above = <number>` or `below = <number>`",
                    );
                    (Direction::Above, None)
                }
            };
            let threshold = threshold.unwrap_or(0.0);
            let clear = match &raw.clear {
                None => threshold,
                Some(v) => {
                    let clear = finite(d, v, &format!("{path}.clear")).unwrap_or(threshold);
                    if !direction.clears_at(threshold, clear) {
                        d.err(
                            v.span(),
                            &format!("{path}.clear"),
                            format!(
                                "{clear} is on the breaching side of the threshold {threshold}"
                            ),
                        );
                    }
                    clear
                }
            };
            conditions.push(Condition::new(&sensor, direction, threshold).clear_at(clear));
        }
    }
    let within_ms = match &r.within {
        Some(w) => duration_ms(d, w, &field("within")).unwrap_or(0),
        None => {
            d.at(
                at,
                &field("within"),
                "a combination rule needs `within = \"...\"`: the span its conditions' breaches must fall in",
            );
            0
        }
    };
    Combination {
        mode,
        conditions,
        within_ms,
    }
}

/// A rule's chattering detection, from `chatter_changes`, `chatter_within`
/// (default one minute, as ISA-18.2 suggests: 3 changes a minute) and
/// `chatter_calm` (default `chatter_within`).
fn rule_chattering(
    d: &mut Diag<'_>,
    r: &RawRule,
    silence: bool,
    field: &dyn Fn(&str) -> String,
) -> Option<Chattering> {
    let Some(changes) = &r.chatter_changes else {
        for (name, value) in [
            ("chatter_within", &r.chatter_within),
            ("chatter_calm", &r.chatter_calm),
        ] {
            if let Some(value) = value {
                d.err(
                    value.span(),
                    &field(name),
                    format!("`{name}` needs `chatter_changes = 3` (how many state changes make the rule chattering)"),
                );
            }
        }
        return None;
    };
    if silence {
        d.err(
            changes.span(),
            &field("chatter_changes"),
            "silence rules do not chatter",
        );
        return None;
    }
    let changes = count(d, changes, &field("chatter_changes"), 2, u32::MAX);
    let positive = |d: &mut Diag<'_>, value: &Option<Spanned<String>>, name: &str| match value {
        None => Some(None),
        Some(v) => match duration_ms(d, v, &field(name)) {
            Some(0) => {
                d.err(v.span(), &field(name), "must be longer than 0");
                None
            }
            ms => ms.map(Some),
        },
    };
    let within_ms = positive(d, &r.chatter_within, "chatter_within")?.unwrap_or(60_000);
    let calm_ms = positive(d, &r.chatter_calm, "chatter_calm")?.unwrap_or(within_ms);
    Some(Chattering {
        changes: changes?,
        within_ms,
        calm_ms,
    })
}

/// A rule's escalation, from `escalate_after` and `escalate_to`.
fn rule_escalation(
    d: &mut Diag<'_>,
    r: &RawRule,
    silence: bool,
    field: &dyn Fn(&str) -> String,
) -> Option<(u64, String)> {
    let severities = [
        ("info", "info"),
        ("warning", "warning"),
        ("critical", "critical"),
    ];
    match (&r.escalate_after, &r.escalate_to) {
        (None, None) => None,
        (Some(after), _) if silence => {
            d.err(
                after.span(),
                &field("escalate_after"),
                "silence rules do not escalate",
            );
            None
        }
        (Some(after), Some(to)) => {
            let after_ms = duration_ms(d, after, &field("escalate_after"));
            let to = choice(d, to, &field("escalate_to"), &severities);
            Some((after_ms?, to?.to_owned()))
        }
        (Some(after), None) => {
            d.err(
                after.span(),
                &field("escalate_to"),
                "`escalate_after` needs `escalate_to = \"critical\"` (the severity to escalate to)",
            );
            None
        }
        (None, Some(to)) => {
            d.err(
                to.span(),
                &field("escalate_after"),
                "`escalate_to` needs `escalate_after = \"...\"` (how long an alert fires before it escalates)",
            );
            None
        }
    }
}

/// The kind of a rule, from `kind` and the fields that go with it (`span`
/// for rates, `baseline` for deviations; each is an error with another kind).
fn rule_kind(d: &mut Diag<'_>, r: &RawRule, field: &dyn Fn(&str) -> String) -> RuleKind {
    #[derive(Clone, Copy, PartialEq)]
    enum Tag {
        Threshold,
        Rate,
        Deviation,
        Silence,
        Combination,
    }
    let tag = r
        .kind
        .as_ref()
        .and_then(|k| {
            choice(
                d,
                k,
                &field("kind"),
                &[
                    ("threshold", Tag::Threshold),
                    ("rate", Tag::Rate),
                    ("deviation", Tag::Deviation),
                    ("silence", Tag::Silence),
                    ("combination", Tag::Combination),
                ],
            )
        })
        .unwrap_or(Tag::Threshold);
    let kind_at = r.kind.as_ref().map_or(0..0, Spanned::span);
    let span = r.span.as_ref();
    let baseline = r.baseline.as_ref();
    let after = r.after.as_ref();
    let extra = [
        ("span", span.map(Spanned::span), Tag::Rate, "rate"),
        (
            "baseline",
            baseline.map(Spanned::span),
            Tag::Deviation,
            "deviation",
        ),
        ("after", after.map(Spanned::span), Tag::Silence, "silence"),
        (
            "all",
            r.all.as_ref().map(Spanned::span),
            Tag::Combination,
            "combination",
        ),
        (
            "any",
            r.any.as_ref().map(Spanned::span),
            Tag::Combination,
            "combination",
        ),
        (
            "within",
            r.within.as_ref().map(Spanned::span),
            Tag::Combination,
            "combination",
        ),
    ];
    for (name, at, kind, kind_name) in extra {
        if let Some(at) = at.filter(|_| tag != kind) {
            d.err(
                at,
                &field(name),
                format!("`{name}` applies only to {kind_name} rules: add `kind = \"{kind_name}\"` or remove `{name}`"),
            );
        }
    }
    match tag {
        Tag::Threshold => RuleKind::Threshold,
        Tag::Combination => RuleKind::Combination,
        Tag::Rate => {
            let span_ms = match span {
                Some(span) => match duration_ms(d, span, &field("span")) {
                    Some(0) => {
                        d.err(span.span(), &field("span"), "must be longer than 0");
                        None
                    }
                    ms => ms,
                },
                None => {
                    d.err(
                        kind_at,
                        &field("span"),
                        "a rate rule needs `span = \"...\"`: how far back the rate looks",
                    );
                    None
                }
            };
            RuleKind::RateOfChange {
                span_ms: span_ms.unwrap_or(1),
            }
        }
        Tag::Deviation => {
            let n = match baseline {
                Some(b) => count(d, b, &field("baseline"), 2, u32::MAX),
                None => {
                    d.err(
                        kind_at,
                        &field("baseline"),
                        "a deviation rule needs `baseline = N`: how many previous observations make the baseline",
                    );
                    None
                }
            };
            RuleKind::Deviation {
                baseline: n.unwrap_or(2),
            }
        }
        Tag::Silence => {
            let after_ms = match after {
                Some(a) => match duration_ms(d, a, &field("after")) {
                    Some(0) => {
                        d.err(a.span(), &field("after"), "must be longer than 0");
                        None
                    }
                    ms => ms,
                },
                None => {
                    d.err(
                        kind_at,
                        &field("after"),
                        "a silence rule needs `after = \"...\"`: how long without a reading",
                    );
                    None
                }
            };
            RuleKind::Silence {
                after_ms: after_ms.unwrap_or(1),
            }
        }
    }
}

/// The name a rules file gives a statistic.
pub(crate) fn stat_name(stat: Stat) -> &'static str {
    match stat {
        Stat::Mean => "mean",
        Stat::Min => "min",
        Stat::Max => "max",
        Stat::Sum => "sum",
        Stat::Count => "count",
    }
}

// ---------------------------------------------------------------------------
// Checks of single values.
// ---------------------------------------------------------------------------

/// A required, non-empty string; `at` is where the table that lacks it starts.
fn required_text(
    d: &mut Diag<'_>,
    value: Option<&Spanned<String>>,
    at: usize,
    path: &str,
) -> String {
    match value {
        Some(v) => text(d, v, path),
        None => {
            d.at(at, path, "required field is missing");
            String::new()
        }
    }
}

/// A non-empty string.
fn text(d: &mut Diag<'_>, value: &Spanned<String>, path: &str) -> String {
    if value.get_ref().trim().is_empty() {
        d.err(value.span(), path, "must not be empty");
    }
    value.get_ref().clone()
}

/// A finite number.
fn finite(d: &mut Diag<'_>, value: &Spanned<f64>, path: &str) -> Option<f64> {
    let v = *value.get_ref();
    if v.is_finite() {
        Some(v)
    } else {
        d.err(
            value.span(),
            path,
            format!("must be a finite number, found {v}"),
        );
        None
    }
}

/// An integer in `min..=max`, converted to `T`.
fn count<T: TryFrom<i64> + fmt::Display>(
    d: &mut Diag<'_>,
    value: &Spanned<i64>,
    path: &str,
    min: i64,
    max: T,
) -> Option<T> {
    let v = *value.get_ref();
    match T::try_from(v) {
        Ok(n) if v >= min => Some(n),
        Ok(_) => {
            d.err(
                value.span(),
                path,
                format!("must be at least {min}, found {v}"),
            );
            None
        }
        Err(_) => {
            let limit = if v < min {
                format!("at least {min}")
            } else {
                format!("at most {max}")
            };
            d.err(value.span(), path, format!("must be {limit}, found {v}"));
            None
        }
    }
}

/// One of a fixed list of names.
fn choice<T: Copy>(
    d: &mut Diag<'_>,
    value: &Spanned<String>,
    path: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let found = options.iter().find(|(name, _)| *name == value.get_ref());
    if found.is_none() {
        let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
        d.err(
            value.span(),
            path,
            format!(
                "unknown value {:?}: expected one of {}",
                value.get_ref(),
                names.join(", ")
            ),
        );
    }
    found.map(|(_, v)| *v)
}

/// A human duration, in ms.
fn duration_ms(d: &mut Diag<'_>, value: &Spanned<String>, path: &str) -> Option<u64> {
    parse_duration_ms(value.get_ref())
        .map_err(|e| d.err(value.span(), path, e))
        .ok()
}

/// Parses a human duration (`"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1h 30m"`)
/// into whole milliseconds. The error quotes the text.
pub(crate) fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let duration = humantime::parse_duration(text).map_err(|e| {
        format!(
            "invalid duration {text:?} ({e}): write a number and a unit, like \"500ms\", \"30s\", \"5m\" or \"1h\""
        )
    })?;
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return Err(format!(
            "duration {text:?} is not a whole number of milliseconds"
        ));
    }
    u64::try_from(duration.as_millis()).map_err(|_| format!("duration {text:?} is too long"))
}

/// Parses where a source starts: `earliest`, `latest`, `committed`, or an
/// RFC 3339 time (the first record at or after it).
fn parse_start(text: &str) -> Result<StartOffset, String> {
    match text {
        "earliest" => Ok(StartOffset::Earliest),
        "latest" => Ok(StartOffset::Latest),
        "committed" => Ok(StartOffset::Committed),
        _ => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) if t.timestamp_millis() >= 0 => Ok(StartOffset::Timestamp(t.timestamp_millis())),
            Ok(_) => Err(format!("start time {text:?} is before 1970")),
            Err(e) => Err(format!(
                "invalid start {text:?} ({e}): expected \"earliest\", \"latest\", \"committed\" or an \
                 RFC 3339 time with an offset, like \"2026-11-22T10:00:00Z\""
            )),
        },
    }
}

/// Extra librdkafka properties: strings, numbers or booleans, as strings;
/// `"${NAME}"` takes the value of environment variable `NAME` (a secret: see
/// [`crate::secrets`]).
fn properties(
    d: &mut Diag<'_>,
    raw: Option<&BTreeMap<String, Spanned<toml::Value>>>,
    path: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, value) in raw.into_iter().flatten() {
        let text = match value.get_ref() {
            toml::Value::String(s) => match crate::secrets::reference(s) {
                None => s.clone(),
                Some(name) => match crate::secrets::from_env(name) {
                    Some(secret) => secret,
                    None => {
                        d.err(
                            value.span(),
                            &field_path(path, key),
                            format!("environment variable {name} is not set"),
                        );
                        continue;
                    }
                },
            },
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                d.err(
                    value.span(),
                    &field_path(path, key),
                    format!(
                        "must be a string, number or boolean, found {}",
                        other.type_str()
                    ),
                );
                continue;
            }
        };
        out.push((key.clone(), text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(text: &str) -> Result<PipelineSpec, ConfigError> {
        parse_pipeline(text, Path::new("/etc/weir/plant.toml"))
    }

    const MINIMAL: &str = r#"
name = "plant"
[source]
brokers = "k:9092"
topic = "readings"
[sinks.parquet]
path = "out/windows"
"#;

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
    fn start_may_be_a_toml_datetime() {
        let text = MINIMAL.replace(
            "topic = \"readings\"",
            "topic = \"readings\"\nstart = 1970-01-01T00:01:00Z",
        );
        assert_eq!(
            pipeline(&text).unwrap().source.start,
            StartOffset::Timestamp(60_000)
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_pipeline_file() {
        let spec = pipeline(MINIMAL).unwrap();
        assert_eq!(
            spec.parquet.unwrap().dir,
            PathBuf::from("/etc/weir/out/windows")
        );
        assert_eq!(spec.path, PathBuf::from("/etc/weir/plant.toml"));

        let absolute = MINIMAL.replace("out/windows", "/data/windows");
        assert_eq!(
            pipeline(&absolute).unwrap().parquet.unwrap().dir,
            PathBuf::from("/data/windows")
        );

        let bare = parse_pipeline(MINIMAL, Path::new("plant.toml")).unwrap();
        assert_eq!(bare.parquet.unwrap().dir, PathBuf::from("out/windows"));

        // A rules file that does not exist: the error names the resolved path.
        let with_rules = format!(
            "{MINIMAL}[sinks.alerts]\ntopic = \"a\"\n[rules]\nfile = \"rules/plant.toml\"\n"
        );
        let e = pipeline(&with_rules).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "/etc/weir/plant.toml:11:8: rules.file: cannot read /etc/weir/rules/plant.toml: "
            ),
            "{e}"
        );
    }

    #[test]
    fn defaults() {
        let spec = pipeline(MINIMAL).unwrap();
        assert_eq!(spec.name, "plant");
        assert_eq!(spec.source.group_id, "weir-plant");
        assert_eq!(spec.source.start, StartOffset::Earliest);
        assert_eq!(spec.source.out_of_orderness_ms, 5_000);
        assert_eq!(spec.source.idle_timeout, Some(Duration::from_secs(30)));
        assert_eq!(spec.source.watermark_step_ms, 100);
        assert!(!spec.source.bounded);
        assert_eq!(spec.decode, DecodeConfig::default());
        assert_eq!(spec.window_ms, 60_000);
        assert!(spec.rules.rules.is_empty());
        assert_eq!(spec.rules_file, None);
        assert!(spec.alerts.is_none() && spec.dead_letters.is_none());
        assert_eq!(spec.workers, 1);
    }

    #[test]
    fn watermark_step() {
        let with = |step: &str| {
            MINIMAL.replace(
                "topic = \"readings\"",
                &format!("topic = \"readings\"\nwatermark_step = {step}"),
            )
        };
        assert_eq!(
            pipeline(&with("\"1ms\"")).unwrap().source.watermark_step_ms,
            1
        );
        assert_eq!(
            pipeline(&with("\"2s\"")).unwrap().source.watermark_step_ms,
            2_000
        );
        for (bad, problem) in [
            ("\"0s\"", "source.watermark_step: must be longer than 0"),
            ("\"5\"", "source.watermark_step: invalid duration \"5\""),
            ("5", "durations are strings with a unit"),
        ] {
            let e = pipeline(&with(bad)).unwrap_err().to_string();
            assert!(e.contains(problem), "{bad}: {e}");
        }
    }

    #[test]
    fn idle_timeout_off() {
        for off in ["off", "0s"] {
            let text = MINIMAL.replace(
                "topic = \"readings\"",
                &format!("topic = \"readings\"\nidle_timeout = \"{off}\""),
            );
            assert_eq!(pipeline(&text).unwrap().source.idle_timeout, None, "{off}");
        }
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
