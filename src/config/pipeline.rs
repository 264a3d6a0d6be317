//! Stage two of a pipeline file: every section validated into the
//! operators' typed configs, the rules (inline or from the rules file), and
//! the checks across sections. Each check records its problems and returns a
//! stand-in value, so validation goes on and finds the other problems; a
//! spec with problems is never returned.

use super::*;

/// Stage two of a pipeline file: every section, the rules, and the checks across sections.
pub(super) fn validate_pipeline(raw: RawPipeline, path: &Path, d: &mut Diag<'_>) -> PipelineSpec {
    let base = path.parent().unwrap_or(Path::new(""));
    let name = required_text(d, raw.name.as_ref(), 0, "name");
    let storage = raw
        .storage
        .as_ref()
        .and_then(|s| s.get_ref().properties.as_ref());
    d.storage = properties(d, storage, "storage.properties");
    for (key, value) in storage.into_iter().flatten() {
        if let Err(problem) = ObjectLocation::check_option(key) {
            d.err(value.span(), &format!("storage.properties.{key}"), problem);
        }
    }

    let source = validate_source(raw.source.as_ref(), &name, d);
    let decode = validate_decode(raw.decode.as_ref(), d);
    let sinks = validate_sinks(raw.sinks.as_ref(), base, &source.brokers, d);
    let windows = validate_windows(raw.window.as_deref(), sinks.parquet.as_ref(), base, d);
    // Window rules may name an output instead of a size.
    d.outputs = Some(output_names(&windows));

    let (rules, rules_file) = pipeline_rules(
        raw.rules.as_ref(),
        raw.rule.as_deref(),
        raw.devices.as_ref(),
        base,
        d,
    );

    check_sinks(&sinks, &windows, raw.sinks.as_ref(), &rules, d);
    let deliveries = delivery::validate_deliveries(
        raw.sinks.as_ref(),
        &name,
        sinks.alerts.as_ref(),
        sinks.dead_letters.as_ref(),
        d,
    );

    let alarm_health = health::validate_alarm_health(raw.alarm_health.as_ref(), d);
    let alarm_health_sink = validate_health_sink(raw.sinks.as_ref(), &source.brokers, d);
    let alarm_health_parquet = control::health_parquet(&raw, sinks.alerts.is_some(), base, d);
    if let (Some(at), None) = (
        raw.sinks
            .as_ref()
            .and_then(|s| s.get_ref().alarm_health.as_ref()),
        &sinks.alerts,
    ) {
        d.at(
            at.span().start,
            "sinks.alarm_health",
            "needs [sinks.alerts]: the alarm system's health is measured on the alert events",
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
    let http = raw.http.as_ref().and_then(|h| validate_http(h, d));
    let control = raw
        .control
        .as_ref()
        .map(|c| control::validate_control(c, &source, sinks.alerts.is_some(), d));
    let http_token_env = control::token_env(&raw, control.is_some(), d);

    PipelineSpec {
        name,
        path: path.to_path_buf(),
        source,
        decode,
        windows,
        rules,
        rules_file,
        alerts: sinks.alerts,
        dead_letters: sinks.dead_letters,
        deliveries,
        alarm_health,
        alarm_health_sink,
        alarm_health_parquet,
        workers,
        checkpoint,
        http,
        control,
        http_token_env,
    }
}

/// The sinks of a pipeline, each if configured.
struct Sinks {
    /// `[sinks.parquet]`.
    parquet: Option<ParquetSinkConfig>,
    /// `[sinks.alerts]`.
    alerts: Option<KafkaSinkConfig>,
    /// `[sinks.dead_letters]`.
    dead_letters: Option<KafkaSinkConfig>,
}

/// `[sinks.*]`; Kafka sinks default to the source's brokers.
fn validate_sinks(
    raw: Option<&Spanned<RawSinks>>,
    base: &Path,
    source_brokers: &str,
    d: &mut Diag<'_>,
) -> Sinks {
    let sinks = raw.map(|s| s.get_ref());
    let parquet = sinks
        .and_then(|s| s.parquet.as_ref())
        .map(|p| validate_parquet(p, base, d));
    let alerts = sinks
        .and_then(|s| s.alerts.as_ref())
        .map(|k| validate_kafka_sink(k, "sinks.alerts", source_brokers, d));
    let dead_letters = sinks
        .and_then(|s| s.dead_letters.as_ref())
        .map(|k| validate_kafka_sink(k, "sinks.dead_letters", source_brokers, d));
    Sinks {
        parquet,
        alerts,
        dead_letters,
    }
}

/// Across sections: at least one sink, and an alerts sink when there are rules.
fn check_sinks(
    sinks: &Sinks,
    windows: &[WindowOutput],
    raw: Option<&Spanned<RawSinks>>,
    rules: &RuleSet,
    d: &mut Diag<'_>,
) {
    let sinks_at = raw.map_or(0, |s| s.span().start);
    let parquet = windows.iter().any(|w| w.parquet.is_some());
    if !parquet && sinks.alerts.is_none() && sinks.dead_letters.is_none() {
        d.at(
            sinks_at,
            "sinks",
            "no sink: nothing would be written; add [sinks.parquet], [sinks.alerts] or [sinks.dead_letters]",
        );
    } else if sinks.alerts.is_none() && !rules.rules.is_empty() {
        d.at(
            sinks_at,
            "sinks.alerts",
            format!(
                "the pipeline has {} alert rule(s) but no [sinks.alerts] to write their alerts to",
                rules.rules.len()
            ),
        );
    }
}

/// `[http] addr`: the operations server's address.
fn validate_http(raw: &Spanned<RawHttp>, d: &mut Diag<'_>) -> Option<std::net::SocketAddr> {
    let addr = required_text(
        d,
        raw.get_ref().addr.as_ref(),
        raw.span().start,
        "http.addr",
    );
    let span = raw.get_ref().addr.as_ref().map_or(raw.span(), |a| a.span());
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
}

/// `[checkpoint]`, with the defaults of [`CheckpointConfig::new`].
fn validate_checkpoint(
    raw: &Spanned<RawCheckpoint>,
    base: &Path,
    d: &mut Diag<'_>,
) -> CheckpointConfig {
    let r = raw.get_ref();
    let dir = required_text(d, r.dir.as_ref(), raw.span().start, "checkpoint.dir");
    let dir = location(d, r.dir.as_ref(), &dir, base, "checkpoint.dir");
    let mut config = CheckpointConfig::new(dir);
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
            &<TimeFormat as strum::VariantArray>::VARIANTS
                .iter()
                .map(|f| (f.as_str(), *f))
                .collect::<Vec<_>>(),
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
        let rules = rules_with_devices(inline, devices, base, d);
        check_rule_stats(inline, &rules.rules, d);
        return (rules, None);
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
            Ok(text) => match parse_rules_for(&text, &path, d.outputs.clone()) {
                Ok(set) => (rules, registry) = (set.rules, set.devices),
                Err(e) => d.other.extend(e.problems),
            },
        }
    }
    (RuleSet::new(rules).with_devices(registry), Some(path))
}

/// `[sinks.parquet]`; the directory resolves against `base`.
fn validate_parquet(raw: &Spanned<RawParquet>, base: &Path, d: &mut Diag<'_>) -> ParquetSinkConfig {
    let r = raw.get_ref();
    let path = required_text(d, r.path.as_ref(), raw.span().start, "sinks.parquet.path");
    let dir = location(d, r.path.as_ref(), &path, base, "sinks.parquet.path");
    let mut parquet = ParquetSinkConfig::new(dir);
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
/// `[sinks.alarm_health]`, if given.
fn validate_health_sink(
    raw: Option<&Spanned<RawSinks>>,
    source_brokers: &str,
    d: &mut Diag<'_>,
) -> Option<KafkaSinkConfig> {
    let sink = raw?.get_ref().alarm_health.as_ref()?;
    Some(validate_kafka_sink(
        sink,
        "sinks.alarm_health",
        source_brokers,
        d,
    ))
}

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
            spec.parquet().unwrap().dir.clone(),
            PathBuf::from("/etc/weir/out/windows").into()
        );
        assert_eq!(spec.path, PathBuf::from("/etc/weir/plant.toml"));

        let absolute = MINIMAL.replace("out/windows", "/data/windows");
        assert_eq!(
            pipeline(&absolute).unwrap().parquet().unwrap().dir.clone(),
            PathBuf::from("/data/windows").into()
        );

        let bare = parse_pipeline(MINIMAL, Path::new("plant.toml")).unwrap();
        assert_eq!(bare.parquet().unwrap().dir, "out/windows".into());

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
        assert_eq!(
            spec.windows[0].kind,
            weir_operators::WindowKind::Tumbling { size_ms: 60_000 }
        );
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
}
