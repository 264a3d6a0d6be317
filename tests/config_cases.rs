//! Runs every config scenario in `tests/cases/*.toml` through
//! [`weir::config::load_pipeline`].
//!
//! Each case file is one pipeline file. Its leading comment block says what
//! must happen, in lines written by hand:
//!
//! - `# expect-error: <text>`: the file must fail to load, every such text
//!   must appear in some problem, and every problem must contain at least one
//!   of them (so no problem goes unexpected). Texts include the
//!   `file:line:col` part, e.g. `bad_duration.toml:7:20: source.out_of_orderness: ...`.
//! - `# expect-summary: <text>`: the file must load, and each text must appear
//!   in [`weir::config::PipelineSpec::summary`].
//! - neither: the file must load.
//!
//! Rules files under `tests/cases/rules/` are not cases: they are loaded
//! through the pipelines that name them, and each must be named by one.

use std::fs;
use std::path::{Path, PathBuf};

use std::time::Duration;

use weir::config::{self, PipelineSpec};
use weir::operators::alert::{Direction, RuleInput, Stat};
use weir::operators::kafka::StartOffset;
use weir::operators::parquet::ParquetCompression;
use weir::operators::TimeFormat;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

/// The `*.toml` files directly in `dir`, sorted.
fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// What a case's header expects.
#[derive(Default)]
struct Expect {
    errors: Vec<String>,
    summary: Vec<String>,
}

/// Reads `# expect-error:` and `# expect-summary:` lines from the leading
/// comment block.
fn header(text: &str) -> Expect {
    let mut expect = Expect::default();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let line = line.trim_start_matches('#').trim();
        if let Some(e) = line.strip_prefix("expect-error:") {
            expect.errors.push(e.trim().to_owned());
        } else if let Some(s) = line.strip_prefix("expect-summary:") {
            expect.summary.push(s.trim().to_owned());
        }
    }
    expect
}

/// Runs one case; `Err` says what went wrong.
fn run_case(path: &Path) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let expect = header(&text);
    if !expect.errors.is_empty() && !expect.summary.is_empty() {
        return Err("has both expect-error and expect-summary lines".into());
    }
    match config::load_pipeline(path) {
        Ok(spec) if expect.errors.is_empty() => {
            let summary = spec.summary();
            let missing: Vec<&String> = expect
                .summary
                .iter()
                .filter(|s| !summary.contains(s.as_str()))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("summary lacks {missing:#?}\nsummary:\n{summary}"))
            }
        }
        Ok(spec) => Err(format!(
            "loaded, but expected errors {:#?}\nsummary:\n{}",
            expect.errors,
            spec.summary()
        )),
        Err(e) if expect.errors.is_empty() => Err(format!("expected to load, got:\n{e}")),
        Err(e) => {
            let problems = e.problems();
            let mut wrong = Vec::new();
            for want in &expect.errors {
                if !problems.iter().any(|p| p.contains(want.as_str())) {
                    wrong.push(format!("no problem contains {want:?}"));
                }
            }
            for p in &problems {
                if !expect.errors.iter().any(|want| p.contains(want.as_str())) {
                    wrong.push(format!("unexpected problem {p:?}"));
                }
            }
            if wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("{}\nall problems:\n{e}", wrong.join("\n")))
            }
        }
    }
}

#[test]
fn every_case_behaves_as_its_header_says() {
    let cases = toml_files(&cases_dir());
    assert!(
        cases.len() >= 10,
        "expected at least 10 cases, found {}",
        cases.len()
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            run_case(case).err().map(|why| {
                let name = case.file_name().unwrap_or_default().to_string_lossy();
                format!("case {name}:\n{why}")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} config cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_rules_file_is_named_by_a_case() {
    let dir = cases_dir();
    let cases: Vec<String> = toml_files(&dir)
        .iter()
        .map(|p| fs::read_to_string(p).expect("case file"))
        .collect();
    for rules in toml_files(&dir.join("rules")) {
        let name = format!(
            "rules/{}",
            rules.file_name().unwrap_or_default().to_string_lossy()
        );
        assert!(
            cases.iter().any(|c| c.contains(&name)),
            "{name} is not named by any case, so it is never loaded"
        );
    }
}

fn load(case: &str) -> PipelineSpec {
    config::load_pipeline(&cases_dir().join(case)).unwrap_or_else(|e| panic!("{case}: {e}"))
}

#[test]
fn the_inline_case_has_the_values_written_in_it() {
    let spec = load("valid_inline_rules.toml");
    assert_eq!(spec.name, "press-line");
    assert_eq!(spec.path, cases_dir().join("valid_inline_rules.toml"));

    let source = &spec.source;
    assert_eq!(source.brokers, "127.0.0.1:9092");
    assert_eq!(source.topic, "readings");
    assert_eq!(source.group_id, "press-line-v2");
    // 2026-11-22T10:00:00Z: 20 454 days from 1970 to 2026 (14 leap years),
    // 325 more to 22 November, and 10 hours.
    assert_eq!(
        source.start,
        StartOffset::Timestamp(((20_454 + 325) * 86_400 + 10 * 3_600) * 1_000)
    );
    assert_eq!(source.out_of_orderness_ms, 10_000);
    assert_eq!(source.idle_timeout, None);
    assert!(!source.bounded);
    let props: Vec<(&str, &str)> = source
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        props,
        [
            ("check.crcs", "true"),
            ("fetch.min.bytes", "1"),
            ("fetch.wait.max.ms", "50")
        ]
    );

    assert_eq!(spec.decode.device_field, "machine");
    assert_eq!(spec.decode.sensor_field, "channel");
    assert_eq!(spec.decode.value_field, "v");
    assert_eq!(spec.decode.time_field, "t");
    assert_eq!(spec.decode.time_format, TimeFormat::EpochSeconds);
    assert_eq!(spec.decode.max_future_ms, 600_000);
    assert_eq!(
        spec.windows[0].kind,
        weir_operators::WindowKind::Tumbling { size_ms: 300_000 }
    );

    let parquet = spec.parquet().expect("parquet sink");
    assert_eq!(parquet.dir, cases_dir().join("out/press-line").into());
    assert_eq!(parquet.compression, ParquetCompression::Snappy);
    assert_eq!(parquet.row_group_rows, 1_000);
    assert_eq!(parquet.max_rows_per_file, 50_000);

    let alerts = spec.alerts.as_ref().expect("alert sink");
    assert_eq!(
        (
            alerts.brokers.as_str(),
            alerts.topic.as_str(),
            alerts.idempotent
        ),
        ("127.0.0.1:9092", "alerts", true)
    );
    assert!(alerts.properties.is_empty());
    let dead = spec.dead_letters.as_ref().expect("dead-letter sink");
    assert_eq!(
        (dead.brokers.as_str(), dead.topic.as_str(), dead.idempotent),
        ("10.0.0.5:9092", "readings.dead", false)
    );
    assert_eq!(spec.workers, 4);
    assert_eq!(spec.rules_file, None);

    let rules = &spec.rules.rules;
    assert_eq!(rules.len(), 3);
    let overheat = &rules[0];
    assert_eq!(overheat.name, "overheat");
    assert_eq!(overheat.severity, "critical");
    assert_eq!(overheat.selection.sensors, ["temperature"]);
    assert!(overheat.selects("press-7", "temperature"));
    assert!(!overheat.selects("lathe-1", "temperature"));
    assert_eq!(overheat.threshold().unwrap().direction, Direction::Above);
    assert_eq!(
        {
            let t = overheat.threshold().unwrap();
            (t.threshold, t.clear)
        },
        (90.0, 85.0)
    );
    assert_eq!(overheat.modifiers.consecutive, 1);
    assert_eq!(
        (overheat.modifiers.for_ms, overheat.modifiers.cooldown_ms),
        (30_000, 300_000)
    );
    assert_eq!(overheat.input(), RuleInput::Readings);

    let low_oil = &rules[1];
    assert_eq!(low_oil.name, "low-oil");
    assert_eq!(low_oil.severity, "warning");
    assert!(low_oil.selection.devices.is_none());
    assert_eq!(low_oil.threshold().unwrap().direction, Direction::Below);
    assert_eq!(
        {
            let t = low_oil.threshold().unwrap();
            (t.threshold, t.clear)
        },
        (1.5, 2.0)
    );
    assert_eq!(low_oil.modifiers.consecutive, 3);
    assert_eq!(
        (low_oil.modifiers.for_ms, low_oil.modifiers.cooldown_ms),
        (0, 0)
    );
    assert_eq!(
        low_oil.input(),
        RuleInput::Window {
            size_ms: 60_000,
            stat: Stat::Mean
        }
    );

    let vibration = &rules[2];
    assert_eq!(vibration.selection.sensors, ["vibration", "vibration_z"]);
    assert!(vibration.selects("press-12", "vibration_z"));
    assert!(!vibration.selects("press-123", "vibration"));
    assert_eq!(
        {
            let t = vibration.threshold().unwrap();
            (t.threshold, t.clear)
        },
        (7.5, 7.5)
    );
    assert_eq!(vibration.severity, "info");
}

#[test]
fn the_rules_file_case_uses_defaults_and_the_file_next_to_it() {
    let spec = load("valid_rules_file.toml");
    assert_eq!(spec.rules_file, Some(cases_dir().join("rules/plant.toml")));
    assert_eq!(spec.source.group_id, "weir-plant");
    assert_eq!(spec.source.start, StartOffset::Earliest);
    assert_eq!(spec.source.out_of_orderness_ms, 5_000);
    assert_eq!(spec.source.idle_timeout, Some(Duration::from_secs(30)));
    assert_eq!(
        spec.windows[0].kind,
        weir_operators::WindowKind::Tumbling { size_ms: 60_000 }
    );
    assert_eq!(spec.workers, 1);
    assert!(spec.parquet().is_none() && spec.dead_letters.is_none());
    let alerts = spec.alerts.expect("alert sink");
    assert_eq!(alerts.brokers, "broker-1:9092,broker-2:9092");
    assert_eq!(alerts.topic, "plant.alerts");

    let names: Vec<&str> = spec.rules.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["overheat", "freezing", "silence"]);
    let silence = &spec.rules.rules[2];
    assert_eq!(
        silence.input(),
        RuleInput::Window {
            size_ms: 300_000,
            stat: Stat::Count
        }
    );
    assert!(silence.selects("gw-a1", "heartbeat"));
    assert!(silence.selects("gw-b", "heartbeat"));
    assert!(!silence.selects("gw-c", "heartbeat"));
    assert_eq!(spec.rules.window_sizes(), [300_000]);

    // The same file loads on its own, with the same rules.
    let direct = config::load_rules(&cases_dir().join("rules/plant.toml")).unwrap();
    assert_eq!(direct.rules.len(), 3);
    let freezing = direct.rules[1].threshold().unwrap();
    assert_eq!(freezing.direction, Direction::Below);
    assert_eq!(freezing.threshold, 2.0);
}

/// The pipeline of the Kubernetes example loads: its outputs and
/// checkpoints are on S3, so its pods need no shared volume.
#[test]
fn the_kubernetes_example_pipeline_loads_with_its_state_on_s3() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml = std::fs::read_to_string(root.join("examples/deploy/weir-statefulset.yaml")).unwrap();
    let block = yaml
        .split("pipeline.toml: |\n")
        .nth(1)
        .and_then(|rest| rest.split("\n---").next())
        .expect("the ConfigMap holds pipeline.toml");
    let toml: String = block
        .lines()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        // The secret is the pod's; any value does here.
        .replace("${KAFKA_PASSWORD}", "password");
    let spec = weir::config::parse_pipeline(&toml, Path::new("/etc/weir/pipeline.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let parquet = spec.parquet().unwrap();
    assert_eq!(
        parquet.dir.to_string(),
        "s3://plant-data/press-line/windows"
    );
    let checkpoint = spec.checkpoint.as_ref().unwrap();
    assert_eq!(
        checkpoint.dir.to_string(),
        "s3://plant-data/press-line/checkpoints"
    );
    assert!(
        !yaml.contains("kind: PersistentVolumeClaim") && !yaml.contains("mountPath: /data"),
        "no shared volume"
    );
}
