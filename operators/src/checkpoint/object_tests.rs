//! Checkpoints on an object store (the in-memory store of `object_store`):
//! the same protocol as on a local directory, with uploads for files and a
//! conditional write for manifests.

use std::sync::Arc;

use object_store::memory::InMemory;

use super::session::{manifest_name, part_name};
use super::*;
use crate::storage::ObjectLocation;

fn bucket(url: &str) -> ObjectLocation {
    ObjectLocation::with_store(url, Arc::new(InMemory::new()))
}

fn config(location: &ObjectLocation) -> CheckpointConfig {
    CheckpointConfig {
        keep: 2,
        ..CheckpointConfig::new(location.clone())
    }
}

/// A manifest of checkpoint `id` with one part and one upload to complete.
fn manifest(session: &Session, id: u64, part: PartInfo, file: PendingFile) -> Manifest {
    Manifest {
        format: FORMAT,
        pipeline: session.pipeline.clone(),
        id,
        frontier: id * 1_000,
        created_ms: 0,
        workers: 1,
        parts: vec![part],
        files: vec![file],
        rules_version: 1,
        rules: Vec::new(),
    }
}

/// Uploads `name` below `out` without completing it, as a Parquet sink
/// does, and returns it as the file a checkpoint completes.
fn pending(out: &ObjectLocation, name: &str) -> PendingFile {
    let upload = out
        .upload(name, format!("rows of {name}").into_bytes())
        .unwrap();
    let marker = format!("_weir_uploads/{name}.json");
    out.put(&marker, b"{}".to_vec()).unwrap();
    PendingFile {
        temp: out.url_of(name).into(),
        path: out.url_of(name).into(),
        upload: Some(PendingUpload {
            root: out.url().to_owned(),
            name: name.to_owned(),
            marker,
            upload,
        }),
    }
}

#[test]
fn checkpoints_on_an_object_store_complete_uploads_resume_and_prune() {
    let ck = bucket("s3://state/ck");
    let out = bucket("s3://data/windows");
    let first = Session::open(config(&ck), "p", false).unwrap();
    for id in 1..=3 {
        let file = pending(&out, &format!("file-{id}.parquet"));
        assert!(!out.exists(&format!("file-{id}.parquet")).unwrap());
        let part = first.write_part(id, "op.1", 0, &(id * 10)).unwrap();
        first.commit(&manifest(&first, id, part, file)).unwrap();
        assert!(
            out.exists(&format!("file-{id}.parquet")).unwrap(),
            "the checkpoint completed its upload"
        );
        assert!(!out
            .exists(&format!("_weir_uploads/file-{id}.parquet.json"))
            .unwrap());
    }
    let resumed = Session::open(config(&ck), "p", false).unwrap();
    assert_eq!(resumed.restored_frontier(), Some(3_000));
    assert_eq!(resumed.parts::<u64>("op.1").unwrap(), vec![30]);
    let listed = list(&ck.clone().into()).unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![2, 3]);
    assert!(listed.iter().all(|c| c.manifest.is_some() && c.bytes > 0));
}

#[test]
fn a_crash_between_the_manifest_and_the_uploads_is_finished_on_start() {
    let ck = bucket("s3://state/ck2");
    let out = bucket("s3://data/w2");
    let session = Session::open(config(&ck), "p", false).unwrap();
    let file = pending(&out, "f.parquet");
    let part = session.write_part(1, "op.1", 0, &1u64).unwrap();
    // The manifest is written, the process dies before the upload completes.
    let m = manifest(&session, 1, part, file);
    ck.put(&manifest_name(1), m.seal()).unwrap();
    assert!(!out.exists("f.parquet").unwrap());
    Session::open(config(&ck), "p", false).unwrap();
    assert_eq!(out.get("f.parquet").unwrap(), b"rows of f.parquet");
    // And again: completing twice is no error.
    Session::open(config(&ck), "p", false).unwrap();
}

#[test]
fn two_runs_never_both_complete_one_checkpoint() {
    let ck = bucket("s3://state/ck3");
    let out = bucket("s3://data/w3");
    let one = Session::open(config(&ck), "p", false).unwrap();
    let two = Session::open(config(&ck), "p", false).unwrap();
    let part = one.write_part(1, "op.1", 0, &1u64).unwrap();
    one.commit(&manifest(&one, 1, part, pending(&out, "a.parquet")))
        .unwrap();
    let part = two.write_part(1, "op.1", 0, &2u64).unwrap();
    let error = two
        .commit(&manifest(&two, 1, part, pending(&out, "b.parquet")))
        .unwrap_err();
    assert!(
        error.contains("checkpoint 1 in s3://state/ck3 was completed by another run"),
        "{error}"
    );
    assert!(
        !out.exists("b.parquet").unwrap(),
        "the loser's file stays invisible"
    );
    // The loser's part did not touch the winner's: the checkpoint is the
    // first run's.
    let resumed = Session::open(config(&ck), "p", false).unwrap();
    assert_eq!(resumed.parts::<u64>("op.1").unwrap(), vec![1]);
}

#[test]
fn damaged_checkpoints_and_other_pipelines_are_refused_as_on_disk() {
    let ck = bucket("s3://state/ck4");
    let out = bucket("s3://data/w4");
    let session = Session::open(config(&ck), "p", false).unwrap();
    let part = session.write_part(1, "op.1", 0, &1u64).unwrap();
    session
        .commit(&manifest(&session, 1, part, pending(&out, "a.parquet")))
        .unwrap();
    let error = Session::open(config(&ck), "other", false).unwrap_err();
    assert!(
        matches!(error, CheckpointError::OtherPipeline { .. }),
        "{error}"
    );
    ck.delete(&part_name(1, "op.1", 0, &session.run)).unwrap();
    let error = Session::open(config(&ck), "p", false).unwrap_err();
    assert!(error.to_string().contains("cannot be read"), "{error}");
    let fresh = Session::open(config(&ck), "p", true).unwrap();
    assert!(fresh.restored().is_none());
    assert!(list(&ck.clone().into()).unwrap().is_empty());
}
