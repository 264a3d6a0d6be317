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
//! [window]                          # or several [[window]] tables, each with a `name`
//! size = "1m"                       # default 1m; must divide a day evenly
//! slide = "10s"                     # hopping windows: must divide the size
//! # gap = "30s"                     # session windows, instead of size and slide
//! # path = "out/windows"            # this output's Parquet directory
//! # allowed_lateness = "5m"         # late readings correct windows for this long (not sessions)
//! stats = ["count", "mean", "stddev", "p95"]  # per row: count, min, max, sum, mean (always), stddev,
//!                                   # stddev_pop, first, last, pNN / pNN.N percentiles; default the basic five
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
//! window = "1m"                     # look at tumbling windows of this size (or a [[window]] name)
//! stat = "mean"                     # with window only: mean (default) | min | max | sum | count |
//!                                   # stddev | stddev_pop | first | last | p95 (any pNN / pNN.N),
//!                                   # one its windows compute
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
    Chattering, Direction, Modifiers, Pattern, Registry, Rule, RuleInput, RuleKind, RuleSet,
    Selection, Stat, Threshold,
};
use weir_operators::checkpoint::CheckpointConfig;

use crate::registry::load_registry;
use weir_operators::decode::{DecodeConfig, TimeFormat};
use weir_operators::kafka::{KafkaSinkConfig, KafkaSourceConfig, StartOffset};
use weir_operators::parquet::{ParquetCompression, ParquetSinkConfig};
use weir_operators::record::Stats;
use weir_operators::storage::{Location, ObjectLocation};
use weir_operators::{WindowKind, WindowSpec};

mod control;
mod delivery;
mod diag;
mod health;
mod locate;
mod pipeline;
mod raw;
mod rules;
mod spec;
mod summary;
mod values;
mod windows;

pub use diag::ConfigError;
pub(crate) use diag::Diag;
use locate::*;
pub(crate) use locate::{check_entry, check_fields, deserialize, element_path};
use pipeline::validate_pipeline;
use raw::*;
use rules::*;
pub use spec::{PipelineSpec, WindowOutput};
pub(crate) use values::parse_duration_ms;
use values::*;
pub(crate) use weir_operators::rules::describe::human_ms;
pub use windows::DEFAULT_OUTPUT;
use windows::*;

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
    let spec = deserialize_with::<RawPipeline>(&mut d, pipeline_sections, windows_as_array)
        .map(|raw| validate_pipeline(raw, path, &mut d));
    d.finish(spec)
}

/// Validates the text of an alert rules file. `path` names the file in messages.
///
/// # Examples
/// ```
/// use std::path::Path;
///
/// let rules = weir::config::parse_rules(
///     "[[rule]]\nname = \"hot\"\nsensor = \"temperature\"\nabove = 90.0\nclear = 85.0\n",
///     Path::new("plant.toml"),
/// )
/// .unwrap();
/// assert_eq!(rules.rules[0].name, "hot");
/// assert_eq!(rules.rules[0].alert_thresholds(), (90.0, 85.0));
///
/// // A mistake is reported with its file, line and field.
/// let error = weir::config::parse_rules(
///     "[[rule]]\nname = \"hot\"\nsensor = \"temperature\"\nabove = \"ninety\"\n",
///     Path::new("plant.toml"),
/// )
/// .unwrap_err()
/// .to_string();
/// assert!(error.contains("plant.toml:4"), "{error}");
/// assert!(error.contains("above"), "{error}");
/// ```
pub fn parse_rules(text: &str, path: &Path) -> Result<RuleSet, ConfigError> {
    parse_rules_for(text, path, None)
}

/// [`parse_rules`] for the rules of a pipeline whose window `outputs` the
/// window rules may name.
pub(crate) fn parse_rules_for(
    text: &str,
    path: &Path,
    outputs: Option<OutputNames>,
) -> Result<RuleSet, ConfigError> {
    let mut d = Diag::new(path, text);
    d.outputs = outputs;
    let base = path.parent().unwrap_or(Path::new(""));
    let rules = deserialize::<RawRulesFile>(&mut d, rules_sections).map(|raw| {
        let raw_rules = raw.rule.as_deref().unwrap_or_default();
        let rules = rules_with_devices(raw_rules, raw.devices.as_ref(), base, &mut d);
        check_rule_stats(raw_rules, &rules.rules, &mut d);
        rules
    });
    d.finish(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn unreadable_file() {
        let e = load_pipeline(Path::new("/nonexistent/weir.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/weir.toml: "),
            "{e}"
        );
    }
}
