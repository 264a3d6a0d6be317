//! Stage one: raw structs that mirror the files as written. Every struct is
//! `deny_unknown_fields`, every value checked later is a [`Spanned`], and
//! required fields are `Option`s, reported missing in stage two.

use super::*;

/// A pipeline file, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPipeline {
    /// Pipeline name (required). Names the default consumer group, `weir-<name>`.
    pub(super) name: Option<Spanned<String>>,
    /// `[source]`: the Kafka topic readings come from (required).
    pub(super) source: Option<Spanned<RawSource>>,
    /// `[decode]`: where a reading's fields are in the JSON payload.
    pub(super) decode: Option<RawDecode>,
    /// `[window]` (one output) or `[[window]]` (several): the window
    /// outputs; `[window]` is read as an array of one.
    pub(super) window: Option<Vec<Spanned<RawWindow>>>,
    /// `[rules]`: a separate rules file.
    pub(super) rules: Option<Spanned<RawRulesRef>>,
    /// `[[rule]]`: inline alert rules (instead of a rules file).
    pub(super) rule: Option<Vec<Spanned<RawRule>>>,
    /// `[devices]`: the device registry of inline rules.
    pub(super) devices: Option<Spanned<RawDevices>>,
    /// `[sinks.*]`: where results are written (at least one sink).
    pub(super) sinks: Option<Spanned<RawSinks>>,
    /// `[runtime]`: how the pipeline runs.
    pub(super) runtime: Option<RawRuntime>,
    /// `[checkpoint]`: periodic checkpoints, to restart without loss or
    /// duplicates.
    pub(super) checkpoint: Option<Spanned<RawCheckpoint>>,
    /// `[http]`: the operations server.
    pub(super) http: Option<Spanned<RawHttp>>,
    /// `[storage]`: how object-store locations are reached.
    pub(super) storage: Option<Spanned<RawStorage>>,
    /// `[alarm_health]`: how the alarm system's health is measured.
    pub(super) alarm_health: Option<Spanned<RawAlarmHealth>>,
    /// `[control]`: the topic of control events (acknowledge, shelve, ...).
    pub(super) control: Option<Spanned<RawControl>>,
}

/// `[control]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    /// Topic of control events (required).
    pub(super) topic: Option<Spanned<String>>,
    /// Bootstrap servers; default the source's.
    pub(super) brokers: Option<Spanned<String>>,
    /// Extra librdkafka properties; default the source's.
    pub(super) properties: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

/// `[alarm_health]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlarmHealth {
    /// The flood window; default `10m`; it divides an hour.
    pub(super) flood_window: Option<Spanned<String>>,
    /// A flood is more activations than this in a flood window; default 10.
    pub(super) flood_limit: Option<Spanned<i64>>,
    /// An alarm active this long is stale; default `24h`.
    pub(super) stale_after: Option<Spanned<String>>,
    /// `line` (default), `site` or `all`.
    pub(super) area: Option<Spanned<String>>,
    /// Where the health events go as Parquet files (a directory or URL).
    pub(super) path: Option<Spanned<String>>,
}

/// `[storage]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    /// Options of the object-store client (`aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, ...), given to every `s3://`, `gs://` or `az://`
    /// location of the file; `"${NAME}"` values are secrets.
    pub(super) properties: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

/// `[http]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    /// `HOST:PORT` to serve `/metrics`, `/health` and `/ready` on.
    pub(super) addr: Option<Spanned<String>>,
    /// The environment variable holding the bearer token that the alarm
    /// actions (`POST /api/alarms/...`) require; without it they are off.
    pub(super) token_env: Option<Spanned<String>>,
}

/// `[checkpoint]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheckpoint {
    /// Directory of the checkpoints, relative to the pipeline file (required).
    pub(super) dir: Option<Spanned<String>>,
    /// Wall-clock time between checkpoints; default `10s`.
    pub(super) interval: Option<Spanned<String>>,
    /// Complete checkpoints kept; default 3; at least 1.
    pub(super) keep: Option<Spanned<i64>>,
}

/// `[source]`: the Kafka source.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    /// Bootstrap servers, `host:port[,host:port]` (required).
    pub(super) brokers: Option<Spanned<String>>,
    /// Topic of readings (required).
    pub(super) topic: Option<Spanned<String>>,
    /// Consumer group id; default `weir-<name>`.
    pub(super) group_id: Option<Spanned<String>>,
    /// `earliest` (default), `latest`, `committed`, or an RFC 3339 time
    /// (a string or a TOML offset date-time).
    pub(super) start: Option<Spanned<toml::Value>>,
    /// How far behind a partition's newest event time a reading may be
    /// before it is late; default `5s`.
    pub(super) out_of_orderness: Option<Spanned<String>>,
    /// Wall-clock silence after which a partition no longer holds the
    /// watermark back; default `30s`; `0s` or `off` disables.
    pub(super) idle_timeout: Option<Spanned<String>>,
    /// Event time by which the watermark (the dataflow frontier) advances
    /// at a time; default `100ms`; must be longer than 0. Smaller steps
    /// emit windows and alerts sooner, at the cost of more progress traffic.
    pub(super) watermark_step: Option<Spanned<String>>,
    /// Watermark alignment: a partition whose watermark runs this much
    /// event time ahead of the dataflow's frontier is paused until the
    /// frontier catches up; default `off`; at least twice `watermark_step`.
    pub(super) watermark_alignment: Option<Spanned<String>>,
    /// Extra librdkafka properties (strings, numbers or booleans).
    pub(super) properties: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

/// `[decode]`: the JSON payload's layout.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDecode {
    /// Field holding the device id; default `device_id`.
    pub(super) device_field: Option<Spanned<String>>,
    /// Field holding the sensor name; default `sensor`.
    pub(super) sensor_field: Option<Spanned<String>>,
    /// Field holding the value; default `value`.
    pub(super) value_field: Option<Spanned<String>>,
    /// Field holding the event time; default `ts`.
    pub(super) time_field: Option<Spanned<String>>,
    /// `auto` (default), `epoch_ms`, `epoch_s` or `rfc3339`.
    pub(super) time_format: Option<Spanned<String>>,
    /// How far ahead of its Kafka timestamp a reading's event time may be
    /// before it is a dead letter; default `1h`.
    pub(super) max_future: Option<Spanned<String>>,
}

/// `[window]` or one `[[window]]` table: a window output.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWindow {
    /// The output's name (required with several outputs); default `windows`.
    pub(super) name: Option<Spanned<String>>,
    /// Window size; default `1m`; must divide a day evenly.
    pub(super) size: Option<Spanned<String>>,
    /// Hopping windows: the time between two window ends; must divide the
    /// size. Tumbling windows (the size) when absent.
    pub(super) slide: Option<Spanned<String>>,
    /// Session windows: the gap that ends a session (no size then).
    pub(super) gap: Option<Spanned<String>>,
    /// The output's Parquet directory, relative to the pipeline file.
    pub(super) path: Option<Spanned<String>>,
    /// How long after its end late readings correct a window; default none.
    pub(super) allowed_lateness: Option<Spanned<String>>,
    /// The statistics of every window row: `count`, `min`, `max`, `sum`,
    /// `mean` (always computed), `stddev`, `stddev_pop`, `first`, `last`,
    /// and percentiles `pNN` or `pNN.N`. The basic five when absent.
    pub(super) stats: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[rules]`: where the rules are.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRulesRef {
    /// The rules file, relative to the pipeline file (required in `[rules]`).
    pub(super) file: Option<Spanned<String>>,
}

/// `[devices]`: the device registry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDevices {
    /// The registry's CSV file, relative to the file naming it (required).
    pub(super) file: Option<Spanned<String>>,
}

/// `[sinks]`: where results go.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSinks {
    /// `[sinks.parquet]`: window aggregates as Parquet files.
    pub(super) parquet: Option<Spanned<RawParquet>>,
    /// `[sinks.alerts]`: alert events to a Kafka topic.
    pub(super) alerts: Option<Spanned<RawKafkaSink>>,
    /// `[sinks.dead_letters]`: undecodable and late records to a Kafka topic.
    pub(super) dead_letters: Option<Spanned<RawKafkaSink>>,
    /// `[sinks.alertmanager]`: alert events to Prometheus Alertmanager.
    pub(super) alertmanager: Option<Spanned<RawAlertmanager>>,
    /// `[sinks.webhook]`: alert events to a webhook.
    pub(super) webhook: Option<Spanned<RawWebhook>>,
    /// `[sinks.alarm_health]`: the alarm system's health events to a Kafka
    /// topic.
    pub(super) alarm_health: Option<Spanned<RawKafkaSink>>,
}

/// `[sinks.alertmanager]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    /// Alertmanager's base URL (required).
    pub(super) url: Option<Spanned<String>>,
    /// How often firing alerts are sent again; default `1m`.
    pub(super) resend_interval: Option<Spanned<String>>,
    /// How long one request may take; default `10s`.
    pub(super) timeout: Option<Spanned<String>>,
}

/// `[sinks.webhook]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    /// The URL events are POSTed to (required).
    pub(super) url: Option<Spanned<String>>,
    /// Attempts before an event goes to the dead letters; default 10.
    pub(super) max_attempts: Option<Spanned<i64>>,
    /// The wait after the first failure, doubling; default `1s`.
    pub(super) backoff: Option<Spanned<String>>,
    /// The longest wait between attempts; default `1m`.
    pub(super) max_backoff: Option<Spanned<String>>,
    /// How long one request may take; default `10s`.
    pub(super) timeout: Option<Spanned<String>>,
    /// Extra headers; `"${NAME}"` values are secrets.
    pub(super) headers: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

/// `[sinks.parquet]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParquet {
    /// Root directory of the files, relative to the pipeline file (required).
    pub(super) path: Option<Spanned<String>>,
    /// Codec: `zstd` (default), `zstd(LEVEL)`, `zstd:LEVEL`, `snappy`, `none`.
    pub(super) compression: Option<Spanned<String>>,
    /// Most rows in a row group (at least 1); default 65 536.
    pub(super) row_group_rows: Option<Spanned<i64>>,
    /// Most rows in a file (at least 1); default 1 000 000.
    pub(super) max_rows_per_file: Option<Spanned<i64>>,
}

/// `[sinks.alerts]`, `[sinks.dead_letters]` or `[sinks.alarm_health]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKafkaSink {
    /// Topic to write to (required).
    pub(super) topic: Option<Spanned<String>>,
    /// Bootstrap servers; default: the source's.
    pub(super) brokers: Option<Spanned<String>>,
    /// Use the idempotent producer; default true.
    pub(super) idempotent: Option<bool>,
    /// Extra librdkafka properties (strings, numbers or booleans).
    pub(super) properties: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

/// `[runtime]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuntime {
    /// Worker threads; default 1; at least 1.
    pub(super) workers: Option<Spanned<i64>>,
}

/// A rules file: a list of `[[rule]]` tables.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRulesFile {
    /// The rules, in file order.
    pub(super) rule: Option<Vec<Spanned<RawRule>>>,
    /// `[devices]`: the device registry the rules use.
    pub(super) devices: Option<Spanned<RawDevices>>,
}

/// One `[[rule]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    /// Rule name (required, unique within the set).
    pub(super) name: Option<Spanned<String>>,
    /// The sensor the rule watches (or `sensors`; one of them is required).
    pub(super) sensor: Option<Spanned<String>>,
    /// The sensors the rule watches (or `sensor`).
    pub(super) sensors: Option<Spanned<Vec<Spanned<String>>>>,
    /// Device id glob such as `press-*`; default every device.
    pub(super) devices: Option<Spanned<String>>,
    /// Registry fields the device must match: `{ site = "north" }` (globs).
    #[serde(rename = "where")]
    pub(super) where_: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    /// Labels every alert of the rule carries.
    pub(super) labels: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    /// Breach when the value is above this (exactly one of `above`, `below`).
    pub(super) above: Option<Spanned<f64>>,
    /// Breach when the value is below this.
    pub(super) below: Option<Spanned<f64>>,
    /// Hysteresis: a firing alert resolves only at or past this value on the
    /// safe side; default the threshold.
    pub(super) clear: Option<Spanned<f64>>,
    /// Breaching observations in a row needed to fire; default 1.
    pub(super) consecutive: Option<Spanned<i64>>,
    /// Event time the breach must last before firing; default `0s`.
    #[serde(rename = "for")]
    pub(super) for_: Option<Spanned<String>>,
    /// Least event time between two firings; default `0s`.
    pub(super) cooldown: Option<Spanned<String>>,
    /// Off-delay: resolve only once the clear condition has held this long;
    /// default `0s`.
    pub(super) keep_firing_for: Option<Spanned<String>>,
    /// `threshold` (default) or `rate` (change per second over `span`).
    pub(super) kind: Option<Spanned<String>>,
    /// With `kind = "rate"`: how far back the rate looks (required there).
    pub(super) span: Option<Spanned<String>>,
    /// With `kind = "deviation"`: how many previous observations make the
    /// baseline (required there, at least 2).
    pub(super) baseline: Option<Spanned<i64>>,
    /// With `kind = "silence"`: how long without a reading (required there).
    pub(super) after: Option<Spanned<String>>,
    /// Escalate an alert still firing after this long (with `escalate_to`).
    pub(super) escalate_after: Option<Spanned<String>>,
    /// The severity an escalated alert takes (with `escalate_after`).
    pub(super) escalate_to: Option<Spanned<String>>,
    /// Chattering: this many state changes within `chatter_within` hold
    /// the rule's events back until it is calm for `chatter_calm`.
    pub(super) chatter_changes: Option<Spanned<i64>>,
    /// With `chatter_changes`: the span the changes fall in; default `1m`.
    pub(super) chatter_within: Option<Spanned<String>>,
    /// With `chatter_changes`: how long without a change the rule must be
    /// to be calm again; default `chatter_within`.
    pub(super) chatter_calm: Option<Spanned<String>>,
    /// `info`, `warning` (default) or `critical`.
    pub(super) severity: Option<Spanned<String>>,
    /// Watch tumbling window aggregates of this size instead of readings.
    pub(super) window: Option<Spanned<String>>,
    /// With `window`: `mean` (default), `min`, `max`, `sum`, `count`,
    /// `stddev`, `stddev_pop`, `first`, `last` or a percentile (`p95`).
    pub(super) stat: Option<Spanned<String>>,
    /// With `kind = "combination"`: conditions that must all hold...
    pub(super) all: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    /// ...or of which one must hold (instead of `all`).
    pub(super) any: Option<Spanned<Vec<Spanned<RawCondition>>>>,
    /// With `kind = "combination"`: the span of event time the conditions'
    /// latest breaches must fall in (required there).
    pub(super) within: Option<Spanned<String>>,
}

/// One condition of a combination rule: `{ sensor = "temperature", above = 90 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    /// The sensor (required).
    pub(super) sensor: Option<Spanned<String>>,
    /// Holds above this (exactly one of `above`, `below`).
    pub(super) above: Option<Spanned<f64>>,
    /// Holds below this.
    pub(super) below: Option<Spanned<f64>>,
    /// Hysteresis: stops holding only at or past this; default the threshold.
    pub(super) clear: Option<Spanned<f64>>,
}
