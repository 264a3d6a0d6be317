//! Checkpoints on a local directory.

use std::path::PathBuf;

use super::session::{manifest_name, part_name};
use super::*;

fn config(dir: &std::path::Path) -> CheckpointConfig {
    CheckpointConfig {
        keep: 2,
        ..CheckpointConfig::new(dir)
    }
}

/// Writes checkpoint `id` of pipeline `p` with one part (`state`) and
/// one pending file, as a run does; returns the file's final path.
fn take(session: &Session, id: u64, state: u64, dir: &std::path::Path) -> PathBuf {
    let part = session.write_part(id, "op.1", 0, &state).unwrap();
    let temp = dir.join(format!(".file-{id}.inprogress"));
    std::fs::write(&temp, b"rows").unwrap();
    let path = dir.join(format!("file-{id}"));
    session
        .commit(&Manifest {
            format: FORMAT,
            pipeline: session.pipeline.clone(),
            id,
            frontier: id * 1_000,
            created_ms: 0,
            workers: 1,
            parts: vec![part],
            files: vec![PendingFile {
                temp,
                path: path.clone(),
                upload: None,
            }],
            rules_version: 1,
            rules: Vec::new(),
        })
        .unwrap();
    path
}

#[test]
fn a_run_resumes_from_the_latest_complete_checkpoint_and_keeps_the_last_ones() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let first = Session::open(config(dir.path()), "p", false).unwrap();
    assert!(first.restored().is_none());
    for id in 1..=3 {
        let file = take(&first, id, id * 10, files.path());
        assert!(file.exists(), "the checkpoint made its file visible");
    }
    // A fourth checkpoint that never completed: a part, no manifest.
    first.write_part(4, "op.1", 0, &40u64).unwrap();

    let resumed = Session::open(config(dir.path()), "p", false).unwrap();
    assert_eq!(resumed.restored_frontier(), Some(3_000));
    assert_eq!(resumed.parts::<u64>("op.1").unwrap(), vec![30]);
    let ids = || -> Vec<u64> {
        list(&dir.path().into())
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect()
    };
    assert_eq!(
        ids(),
        vec![2, 3, 4],
        "keeps 2, and the incomplete one for now"
    );
    // The resumed run numbers its checkpoints after the incomplete one,
    // and its first complete one deletes it.
    assert_eq!(resumed.next_id(), 5);
    take(&resumed, 5, 50, files.path());
    assert_eq!(ids(), vec![3, 5]);
}

#[test]
fn a_crash_between_the_manifest_and_the_renames_is_finished_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let session = Session::open(config(dir.path()), "p", false).unwrap();
    let file = take(&session, 1, 10, files.path());
    // Undo the rename, as if the process died right after the manifest.
    let temp = files.path().join(".file-1.inprogress");
    std::fs::rename(&file, &temp).unwrap();
    Session::open(config(dir.path()), "p", false).unwrap();
    assert!(file.exists() && !temp.exists());
}

#[test]
fn a_damaged_checkpoint_is_an_error_never_a_silent_restart() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let session = Session::open(config(dir.path()), "p", false).unwrap();
    take(&session, 1, 10, files.path());
    let part = dir.path().join(part_name(1, "op.1", 0, &session.run));

    std::fs::write(&part, b"garbage!").unwrap();
    let error = Session::open(config(dir.path()), "p", false).unwrap_err();
    assert!(
        matches!(error, CheckpointError::Corrupt { id: 1, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--from-scratch"), "{error}");

    std::fs::remove_file(&part).unwrap();
    let error = Session::open(config(dir.path()), "p", false).unwrap_err();
    assert!(error.to_string().contains("cannot be read"), "{error}");

    let error = Session::open(config(dir.path()), "other", false).unwrap_err();
    assert!(
        matches!(error, CheckpointError::OtherPipeline { .. }),
        "{error}"
    );

    // Starting from scratch deletes them all.
    let fresh = Session::open(config(dir.path()), "p", true).unwrap();
    assert!(fresh.restored().is_none());
    assert!(list(&dir.path().into()).unwrap().is_empty());
}

#[test]
fn an_edited_manifest_is_refused_like_a_damaged_part() {
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let session = Session::open(config(dir.path()), "p", false).unwrap();
    take(&session, 1, 10, files.path());
    let path = dir.path().join(manifest_name(1));
    let text = std::fs::read_to_string(&path).unwrap();
    // The frontier of checkpoint 1 is 1000: moved to 301000.
    let edited = text.replace("\"frontier\": 1000", "\"frontier\": 301000");
    assert_ne!(edited, text, "the test edits the frontier");
    std::fs::write(&path, edited).unwrap();
    let error = Session::open(config(dir.path()), "p", false).unwrap_err();
    assert!(
        matches!(error, CheckpointError::Corrupt { id: 1, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("checksum"), "{error}");
}

#[test]
fn parts_without_any_complete_checkpoint_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let session = Session::open(config(dir.path()), "p", false).unwrap();
    session.write_part(1, "op.1", 0, &1u64).unwrap();
    let error = Session::open(config(dir.path()), "p", false).unwrap_err();
    assert!(
        matches!(error, CheckpointError::NoComplete { .. }),
        "{error}"
    );
}
