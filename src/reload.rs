//! Reloading alert rules while a pipeline runs: on SIGHUP, or when the file
//! the rules come from, or the device registry they name, changes.
//!
//! The new file is validated first: if it has errors, every one is logged
//! with its file and line, and the rules in force stay. If it is valid and
//! changes something, the difference is logged and the run is asked to
//! apply it: worker 0 sends the new rule set to every alert evaluator at the
//! sources' event-time frontier `T`, so observations before `T` are judged
//! by the old rules and the rest by the new ones (see
//! [`weir_operators::alert::operator`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use weir_operators::{RuleSet, Run};

use crate::config::{load_pipeline, load_rules, ConfigError};

/// Where a pipeline's rules come from.
#[derive(Clone, Debug)]
pub enum RulesFile {
    /// A rules file.
    Rules(PathBuf),
    /// The `[[rule]]` tables of a pipeline file.
    Pipeline(PathBuf),
    /// The rules file a pipeline file names: read through the pipeline
    /// file, whose window outputs its rules may name.
    Named {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The rules file, which is watched.
        rules: PathBuf,
    },
}

impl RulesFile {
    /// The rules of the pipeline file at `pipeline`: its rules file if it
    /// names one, else its own `[[rule]]` tables.
    pub fn of_pipeline(pipeline: &Path, rules_file: Option<&Path>) -> Self {
        match rules_file {
            Some(file) => RulesFile::Named {
                pipeline: pipeline.to_owned(),
                rules: file.to_owned(),
            },
            None => RulesFile::Pipeline(pipeline.to_owned()),
        }
    }

    /// The file watched.
    pub fn path(&self) -> &Path {
        match self {
            RulesFile::Rules(p) | RulesFile::Pipeline(p) => p,
            RulesFile::Named { rules, .. } => rules,
        }
    }

    fn load(&self) -> Result<RuleSet, ConfigError> {
        match self {
            RulesFile::Rules(p) => load_rules(p),
            RulesFile::Pipeline(p) | RulesFile::Named { pipeline: p, .. } => {
                load_pipeline(p).map(|spec| spec.rules)
            }
        }
    }
}

/// The rules a run started with, and the file they come from: the run
/// reloads them while it runs.
#[derive(Clone, Debug)]
pub struct RulesSource {
    /// The file.
    pub file: RulesFile,
    /// The rules in it when the run started.
    pub rules: RuleSet,
}

/// Watches a run's rules file, and SIGHUP.
pub(crate) struct RulesWatch {
    file: RulesFile,
    /// The rules last read from the file (and asked for).
    current: RuleSet,
    /// The rules in force, as far as this watch knows: those of the start,
    /// or the last ones asked for that were not refused.
    in_force: RuleSet,
    /// The modification times of the files watched (see
    /// [`RulesWatch::watched`]) at the last look.
    modified: Vec<Option<SystemTime>>,
    hangup: Arc<AtomicBool>,
}

impl RulesWatch {
    /// Starts watching (and listening for SIGHUP).
    pub(crate) fn new(source: RulesSource) -> anyhow::Result<Self> {
        let hangup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())
            .map_err(|e| anyhow::anyhow!("cannot listen for SIGHUP: {e}"))?;
        let mut watch = RulesWatch {
            modified: Vec::new(),
            file: source.file,
            current: source.rules.clone(),
            in_force: source.rules,
            hangup,
        };
        watch.modified = watch.modified();
        Ok(watch)
    }

    /// The files the rules come from: the rules file, and the device
    /// registry it names.
    fn watched(&self) -> Vec<&Path> {
        let registry = self.current.devices.file.as_deref();
        std::iter::once(self.file.path()).chain(registry).collect()
    }

    fn modified(&self) -> Vec<Option<SystemTime>> {
        self.watched().into_iter().map(modified).collect()
    }

    /// Reloads the rules if SIGHUP came or the file changed since the last
    /// look: asks `run` to apply them if they are valid and differ from the
    /// rules in force, logs every error if not.
    pub(crate) fn poll(&mut self, run: &Run) {
        if run.control.take_reload_refused() {
            // The run kept the rules in force: the file differs from them
            // again, and saving it retries.
            self.current = self.in_force.clone();
        }
        let modified = self.modified();
        let hangup = self.hangup.swap(false, Ordering::Relaxed);
        if !hangup && modified == self.modified {
            return;
        }
        self.modified = modified;
        let path = self.file.path().display();
        match self.file.load() {
            Err(e) => {
                tracing::error!(
                    "The rules in {path} are not reloaded; the rules in force stay:\n  {}",
                    e.problems().join("\n  ")
                );
                run.metrics.note_reload(None);
            }
            Ok(rules) => {
                let diff = self.current.diff(&rules);
                if diff.is_empty() {
                    tracing::info!("The rules in {path} are unchanged");
                    return;
                }
                if run.control.stop_requested() {
                    tracing::warn!(
                        "The rules in {path} changed while the run is stopping: not reloaded; \
                         they apply at the next start ({diff})"
                    );
                    return;
                }
                tracing::info!("Reloading the rules of {path}: {diff}");
                self.in_force = std::mem::replace(&mut self.current, rules.clone());
                // The registry file may be another one now.
                self.modified = self.modified();
                run.control.request_reload(rules.to_reload());
            }
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOT: &str = "[[rule]]\nname = \"hot\"\nsensor = \"temperature\"\nabove = 90.0\n";
    const HOTTER: &str = "[[rule]]\nname = \"hot\"\nsensor = \"temperature\"\nabove = 95.0\n";

    /// Writes `text` to `path` with a modification time later than before.
    fn save(path: &Path, text: &str, at: u64) {
        std::fs::write(path, text).unwrap();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + at);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }

    /// A watch of the rules file `path`, written with `HOT`.
    fn watching(path: &Path) -> RulesWatch {
        save(path, HOT, 0);
        let rules = load_rules(path).unwrap();
        RulesWatch::new(RulesSource {
            file: RulesFile::Rules(path.to_owned()),
            rules,
        })
        .unwrap()
    }

    #[test]
    fn a_refused_reload_is_asked_for_again_when_the_file_is_saved_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        let mut watch = watching(&path);
        let run = Run::default();
        watch.poll(&run);
        assert!(run.control.take_reload().is_none(), "nothing changed");

        save(&path, HOTTER, 1);
        watch.poll(&run);
        assert!(run.control.take_reload().is_some(), "a change is asked for");
        // The running pipeline refuses it; saving the same file retries.
        run.control.note_reload_refused();
        save(&path, HOTTER, 2);
        watch.poll(&run);
        assert!(
            run.control.take_reload().is_some(),
            "the refused rules are asked for again"
        );
        // Accepted this time: saving the same rules again asks for nothing.
        save(&path, HOTTER, 3);
        watch.poll(&run);
        assert!(
            run.control.take_reload().is_none(),
            "the rules are in force"
        );
    }

    #[test]
    fn no_reload_is_asked_for_while_the_run_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        let mut watch = watching(&path);
        let run = Run::default();
        run.control.request_stop();
        save(&path, HOTTER, 1);
        watch.poll(&run);
        assert!(run.control.take_reload().is_none());
    }
}
