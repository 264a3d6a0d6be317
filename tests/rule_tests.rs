//! `weir test rules`, run as a user runs it (the `weir` binary):
//!
//! - every `*.test.toml` under `examples/` and `pipelines/` passes (exit 0),
//!   and every example file with `[[rule]]` tables is named by one of them;
//! - `tests/cases/rule_tests/failing.test.toml` fails (exit 1) with the diff
//!   its comments work out by hand;
//! - `tests/cases/rule_tests/malformed.test.toml` is refused (exit 2) with
//!   each problem at its `file:line:col`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `weir test rules FILES...` from the repository root.
fn weir_test_rules(files: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["test", "rules"])
        .args(files)
        .current_dir(root())
        .output()
        .expect("run weir")
}

/// Every file under `dir` (recursively) whose name ends with `suffix`, sorted.
fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("list {}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The lines of `text` with runs of spaces made one, trimmed.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn example_test_files() -> Vec<PathBuf> {
    let mut files = files_under(&root().join("examples"), ".test.toml");
    files.extend(files_under(&root().join("pipelines"), ".test.toml"));
    files
}

#[test]
fn every_example_rule_test_passes() {
    let files = example_test_files();
    for shipped in [
        "examples/pipelines/plant-rules.test.toml",
        "examples/pipelines/demo.test.toml",
        "examples/rules/kinds.test.toml",
        "pipelines/rules/line_monitor.test.toml",
    ] {
        assert!(
            files.contains(&root().join(shipped)),
            "{shipped} is missing: {files:?}"
        );
    }
    let out = weir_test_rules(&files);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let ran = stdout.lines().filter(|l| l.starts_with("  ok ")).count();
    assert!(ran >= 20, "only {ran} tests ran:\n{stdout}");
    assert!(
        stdout.contains(&format!("{ran} test(s): {ran} passed, 0 failed.")),
        "{stdout}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
}

#[test]
fn every_example_with_rules_is_tested() {
    let tests: Vec<String> = example_test_files()
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("test file"))
        .collect();
    let mut rule_files = files_under(&root().join("examples"), ".toml");
    rule_files.extend(files_under(&root().join("pipelines"), ".toml"));
    for file in rule_files {
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".test.toml") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("example file");
        if !text.lines().any(|l| l.trim() == "[[rule]]") {
            continue;
        }
        let named = [
            format!("rules = \"{name}\""),
            format!("pipeline = \"{name}\""),
        ];
        assert!(
            tests
                .iter()
                .any(|t| named.iter().any(|n| t.contains(n.as_str()))),
            "{} has rules but no *.test.toml names it",
            file.display()
        );
    }
}

#[test]
fn a_failing_test_exits_1_with_a_diff() {
    let file = root().join("tests/cases/rule_tests/failing.test.toml");
    let out = weir_test_rules(&[file]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let got = lines(&stdout);
    // Worked out by hand in failing.test.toml: d1 fires at 2 s, not 1 s, and
    // resolves at 4 s, not 3 s; d2 fires at 1 s with 97, not 96; d2's
    // resolved event at 2 s is as expected; nothing is late.
    let want = [
        "ok fires on the second reading above 90",
        "FAILED wrong expectations",
        "- 1s firing hot d1/temp",
        "- 1s firing hot d2/temp value 96",
        "+ 1s firing hot d2/temp value 97",
        "+ 2s firing hot d1/temp value 96",
        "2s resolved hot d2/temp value 80",
        "- 3s resolved hot d1/temp",
        "+ 4s resolved hot d1/temp value 84",
        "late readings (dead letters): expected 1, found 0",
        "2 test(s): 1 passed, 1 failed.",
    ];
    let mut at = 0;
    for line in want {
        match got[at..].iter().position(|g| g == line) {
            Some(i) => at += i + 1,
            None => panic!("no line {line:?} (in this order) in:\n{stdout}"),
        }
    }
}

#[test]
fn a_malformed_file_exits_2_naming_line_and_column() {
    let file = root().join("tests/cases/rule_tests/malformed.test.toml");
    let out = weir_test_rules(std::slice::from_ref(&file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let f = file.display();
    for want in [
        format!("{f}:7:12: test[0] \"bad\".interval: invalid duration \"10\""),
        format!("{f}:11:17: test[0] \"bad\".series[0].values: invalid token \"9x5x\""),
        format!("{f}:14:8: test[0] \"bad\".alert[0].rule: unknown rule \"cold\": the rules under test are \"hot\""),
        format!("{f}:17:9: test[0] \"bad\".alert[0].state: unknown variant `fired`, expected "),
    ] {
        assert!(stderr.contains(&want), "no {want:?} in:\n{stderr}");
    }
    assert_eq!(stderr.matches(&format!("{f}:")).count(), 4, "{stderr}");
}

#[test]
fn a_missing_file_exits_2() {
    let out = weir_test_rules(&[root().join("tests/cases/rule_tests/absent.test.toml")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot read "), "{stderr}");
}
