//! Reporting: a failed test's diff, and `weir test rules` over several files.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{load, Event, Mark, Outcome, TestsFailed};

/// A time as an offset from `start`: `50s`, `1m 30s`, `-5s`.
pub fn offset(time: u64, start: u64) -> String {
    let (sign, ms) = if time >= start {
        ("", time - start)
    } else {
        ("-", start - time)
    };
    let text = humantime::format_duration(std::time::Duration::from_millis(ms)).to_string();
    format!("{sign}{text}")
}

/// A value, shortest form.
fn show_value(v: f64) -> String {
    format!("{v}")
}

impl Outcome {
    /// What went wrong, for a failed test: the alert events as a diff
    /// (`-` expected but not produced, `+` produced but not expected, the
    /// others unmarked), the late readings, and any other dead letter. Each
    /// line starts with `indent`; times are offsets from `start`.
    pub fn explain(&self, start: u64, indent: &str) -> String {
        let mut s = String::new();
        if self.events.iter().any(|(m, _)| *m != Mark::Same) {
            let _ = writeln!(
                s,
                "{indent}alert events (- expected, not produced; + produced, not expected), at times from the start:"
            );
            let rows: Vec<(char, String, &Event)> = self
                .events
                .iter()
                .map(|(m, e)| {
                    let sign = match m {
                        Mark::Same => ' ',
                        Mark::Missing => '-',
                        Mark::Unexpected => '+',
                    };
                    (sign, offset(e.time, start), e)
                })
                .collect();
            let width = |f: &dyn Fn(&(char, String, &Event)) -> usize| {
                rows.iter().map(f).max().unwrap_or(0)
            };
            let (tw, rw) = (width(&|r| r.1.len()), width(&|r| r.2.rule.len()));
            let kw = width(&|r| r.2.device.len() + r.2.sensor.len() + 1);
            let sw = width(&|r| r.2.state.as_str().len());
            for (sign, at, e) in &rows {
                let key = format!("{}/{}", e.device, e.sensor);
                let mut line = format!(
                    "{indent}{sign} {at:>tw$}  {:<sw$}  {:<rw$}  {key:<kw$}",
                    e.state.as_str(),
                    e.rule
                );
                if let Some(v) = e.value {
                    let _ = write!(line, "  value {}", show_value(v));
                }
                if let Some(labels) = e.labels.as_ref().filter(|l| !l.is_empty()) {
                    let labels: Vec<String> =
                        labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let _ = write!(line, "  labels {}", labels.join(","));
                }
                let _ = writeln!(s, "{}", line.trim_end());
            }
        } else if self.events.is_empty() {
            let _ = writeln!(s, "{indent}no alert events (none expected)");
        }
        match self.expected_late {
            Some(n) if n != self.late.len() as u64 => {
                let _ = writeln!(
                    s,
                    "{indent}late readings (dead letters): expected {n}, found {}",
                    self.late.len()
                );
            }
            _ if !self.late.is_empty() => {
                let _ = writeln!(
                    s,
                    "{indent}late readings (dead letters): {}",
                    self.late.len()
                );
            }
            _ => {}
        }
        for r in &self.late {
            let _ = writeln!(
                s,
                "{indent}  {}/{} value {} with event time {}, arrived at {}",
                r.device,
                r.sensor,
                show_value(r.value),
                offset(r.time, start),
                offset(r.arrival, start)
            );
        }
        for d in &self.other_dead {
            let _ = writeln!(s, "{indent}dead letter: {d}");
        }
        s
    }
}

/// What `weir test rules` found over several files.
#[derive(Debug, Default)]
pub struct Summary {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed.
    pub failed: usize,
    /// Files that could not be loaded.
    pub unloaded: usize,
    /// Their problems, one per line.
    pub problems: Vec<String>,
}

/// Loads and runs every test of `files`, writing `ok` or `FAILED` per test
/// (with a diff on failure) to `out`.
pub fn run_files(files: &[PathBuf], out: &mut dyn std::io::Write) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    for path in files {
        let file = match load(path) {
            Ok(file) => file,
            Err(e) => {
                writeln!(out, "{}: not run: the file has errors", path.display())?;
                summary.unloaded += 1;
                summary.problems.extend(e.problems());
                continue;
            }
        };
        writeln!(
            out,
            "{}: {} test(s) of the rules in {}",
            path.display(),
            file.tests.len(),
            file.rules_path.display()
        )?;
        for test in &file.tests {
            let outcome = test.run(&file.rules, &file.decode)?;
            if outcome.passed() {
                summary.passed += 1;
                writeln!(out, "  ok      {}", test.name)?;
            } else {
                summary.failed += 1;
                writeln!(out, "  FAILED  {}", test.name)?;
                write!(out, "{}", outcome.explain(test.start_ms, "          "))?;
            }
        }
    }
    let mut tally = format!(
        "{} test(s): {} passed, {} failed",
        summary.passed + summary.failed,
        summary.passed,
        summary.failed
    );
    if summary.unloaded > 0 {
        let _ = write!(tally, "; {} file(s) not run", summary.unloaded);
    }
    writeln!(out, "{tally}.")?;
    Ok(summary)
}

/// `weir test rules FILE...`: runs the tests and prints the results on
/// standard output. `Ok` when every test passed; [`TestsFailed`] when some
/// failed; any other error (with every problem, `file:line:col: ...`) when a
/// file could not be loaded.
pub fn cli(files: &[PathBuf]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let summary = run_files(files, &mut stdout)?;
    if !summary.problems.is_empty() {
        anyhow::bail!("{}", summary.problems.join("\n"));
    }
    if summary.failed > 0 {
        return Err(TestsFailed {
            failed: summary.failed,
            total: summary.passed + summary.failed,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_from_the_start() {
        assert_eq!(offset(10_000, 10_000), "0s");
        assert_eq!(offset(100_000, 10_000), "1m 30s");
        assert_eq!(offset(5_000, 10_000), "-5s");
    }
}
