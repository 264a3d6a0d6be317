//! A test file: as written, then loaded and validated into a [`TestFile`].
//!
//! `raw` mirrors the file; `test` validates each `[[test]]`, with its
//! series (`series`) and its expected alerts (`alert`).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::value::StrDeserializer;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;
use weir_operators::alert::AlertState;
use weir_operators::decode::DecodeConfig;
use weir_operators::RuleSet;

use super::{
    expand_values, Event, RuleTest, Slot, TestFile, TestReading, DEFAULT_INTERVAL_MS,
    DEFAULT_OUT_OF_ORDERNESS_MS, DEFAULT_TOLERANCE,
};
use crate::config::{
    check_entry, check_fields, deserialize, element_path, parse_duration_ms, ConfigError, Diag,
};

mod alert;
mod raw;
mod series;
mod test;
mod values;

use alert::validate_alerts;
use raw::{test_file_parts, RawAlert, RawSeries, RawTest, RawTestFile};
use series::{validate_series, Clock, SeriesKeys};
use test::validate_test;
use values::{required, time_value};

/// Reads and validates a test file, and the rules it names.
pub fn load(path: &Path) -> Result<TestFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut d = Diag::new(path, "");
        d.other.push(format!("cannot read {}: {e}", path.display()));
        d.finish::<()>(None).unwrap_err()
    })?;
    parse(&text, path)
}

/// Validates the text of a test file. `path` names the file in messages, and
/// the rules or pipeline file it names resolves against its directory.
pub fn parse(text: &str, path: &Path) -> Result<TestFile, ConfigError> {
    let mut d = Diag::new(path, text);
    let file = deserialize::<RawTestFile>(&mut d, test_file_parts).and_then(|raw| {
        let base = path.parent().unwrap_or(Path::new(""));
        let source = rules_source(&raw, base, &mut d);
        let tests = validate_tests(raw.test.as_deref().unwrap_or_default(), &source, &mut d);
        let (rules_path, rules, decode, _) = source?;
        Some(TestFile {
            path: path.to_path_buf(),
            rules_path,
            rules: Arc::new(rules),
            decode,
            tests,
        })
    });
    d.finish(file)
}

/// The rules under test, where they come from, the pipeline's decoding and
/// its out-of-orderness (if a pipeline file is named); `None` if they could
/// not be loaded (the problems are recorded).
type RulesSource = Option<(PathBuf, RuleSet, DecodeConfig, Option<u64>)>;

fn rules_source(raw: &RawTestFile, base: &Path, d: &mut Diag<'_>) -> RulesSource {
    let (file, is_pipeline) = match (&raw.rules, &raw.pipeline) {
        (Some(r), None) => (r, false),
        (None, Some(p)) => (p, true),
        (Some(_), Some(p)) => {
            d.err(
                p.span(),
                "pipeline",
                "give either `rules` (a rules file) or `pipeline` (a pipeline file), not both",
            );
            return None;
        }
        (None, None) => {
            d.at(
                0,
                "rules",
                "required field is missing: give `rules = \"rules.toml\"` (the rules under test, relative to this file) or `pipeline = \"pipeline.toml\"`",
            );
            return None;
        }
    };
    let field = if is_pipeline { "pipeline" } else { "rules" };
    if file.get_ref().trim().is_empty() {
        d.err(file.span(), field, "must not be empty");
        return None;
    }
    let path = base.join(file.get_ref());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            d.err(
                file.span(),
                field,
                format!("cannot read {}: {e}", path.display()),
            );
            return None;
        }
    };
    if is_pipeline {
        match crate::config::parse_pipeline(&text, &path) {
            Ok(spec) => Some((
                path,
                spec.rules,
                spec.decode,
                Some(spec.source.out_of_orderness_ms),
            )),
            Err(e) => {
                d.other.extend(e.problems());
                None
            }
        }
    } else {
        match crate::config::parse_rules(&text, &path) {
            Ok(rules) => Some((path, rules, DecodeConfig::default(), None)),
            Err(e) => {
                d.other.extend(e.problems());
                None
            }
        }
    }
}

/// Validates every `[[test]]`; test names must be unique.
fn validate_tests(
    raw: &[Spanned<RawTest>],
    source: &RulesSource,
    d: &mut Diag<'_>,
) -> Vec<RuleTest> {
    if raw.is_empty() {
        d.at(
            0,
            "test",
            "no tests: add a [[test]] table with [[test.series]] and [[test.alert]] tables",
        );
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut tests = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let name = t.get_ref().name.as_ref();
        let label = element_path("test", i, name.map(|n| n.get_ref().as_str()));
        if let Some(name) = name.filter(|n| !n.get_ref().trim().is_empty()) {
            if let Some(first) = names.get(name.get_ref()) {
                let first = d.position(*first);
                d.err(
                    name.span(),
                    &format!("{label}.name"),
                    format!(
                        "duplicate test name {:?}: the test at {first} has it too",
                        name.get_ref()
                    ),
                );
            } else {
                names.insert(name.get_ref().clone(), name.span().start);
            }
        }
        tests.push(validate_test(t, &label, source, d));
    }
    tests
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `text` as a test file next to `tests/cases/rule_tests/rules.toml`
    /// (one rule, "hot", on sensor "temp") and returns its problems.
    fn problems(text: &str) -> Vec<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/rule_tests/t.test.toml");
        match parse(text, &path) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems()
                .into_iter()
                .map(|p| {
                    p.split_once("t.test.toml:")
                        .map_or(p.clone(), |(_, p)| p.to_owned())
                })
                .collect(),
        }
    }

    #[test]
    fn expectations_must_name_a_rule_watching_a_series() {
        let text = r#"rules = "rules.toml"
[[test]]
name = "a"
[[test.series]]
device = "d1"
sensor = "temp"
values = "1"
[[test.series]]
device = "d1"
sensor = "temp"
values = "2"
[[test.alert]]
at = "0s"
rule = "hot"
device = "d1"
sensor = "pressure"
state = "firing"
[[test.alert]]
at = "0s"
rule = "hot"
device = "d1"
sensor = "temp"
state = "firing"
colour = "red"
[[test]]
name = "a"
"#;
        assert_eq!(
            problems(text),
            vec![
                "24:1: test[0] \"a\".alert[1].colour: unknown field `colour`, expected one of `at`, `rule`, `device`, `sensor`, `state`, `value`, `labels`"
                    .to_owned()
            ]
        );
        let text = text.replace("colour = \"red\"\n", "");
        assert_eq!(
            problems(&text),
            vec![
                "8:1: test[0] \"a\".series[1]: a series of device \"d1\" sensor \"temp\" is given at tests/cases/rule_tests/t.test.toml:4:1 already: give one series per device and sensor".to_owned(),
                "14:8: test[0] \"a\".alert[0].rule: rule \"hot\" does not watch sensor \"pressure\" of device \"d1\", so it never alerts on them".to_owned(),
                "15:10: test[0] \"a\".alert[0].device: the test has no series of device \"d1\" sensor \"pressure\": add a [[test.series]] for them".to_owned(),
                "24:1: test[1] \"a\".series: no input: add [[test.series]] tables with device, sensor and values".to_owned(),
                "25:8: test[1] \"a\".name: duplicate test name \"a\": the test at tests/cases/rule_tests/t.test.toml:3:8 has it too".to_owned(),
            ]
            .into_iter()
            .map(|p| p.replace("tests/cases/rule_tests/t.test.toml", &format!("{}/tests/cases/rule_tests/t.test.toml", env!("CARGO_MANIFEST_DIR"))))
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_rules_come_from_one_place() {
        assert_eq!(
            problems("[[test]]\nname = \"a\"\n[[test.series]]\ndevice = \"d\"\nsensor = \"s\"\nvalues = \"1\"\n"),
            vec!["1:1: rules: required field is missing: give `rules = \"rules.toml\"` (the rules under test, relative to this file) or `pipeline = \"pipeline.toml\"`"]
        );
        let both = problems("rules = \"rules.toml\"\npipeline = \"p.toml\"\n[[test]]\nname = \"a\"\n[[test.series]]\ndevice = \"d\"\nsensor = \"s\"\nvalues = \"1\"\n");
        assert_eq!(
            both,
            vec!["2:12: pipeline: give either `rules` (a rules file) or `pipeline` (a pipeline file), not both"]
        );
        let missing = problems("rules = \"absent.toml\"\n[[test]]\nname = \"a\"\n[[test.series]]\ndevice = \"d\"\nsensor = \"s\"\nvalues = \"1\"\n");
        assert_eq!(missing.len(), 1);
        assert!(
            missing[0].starts_with("1:9: rules: cannot read "),
            "{missing:?}"
        );
    }
}
