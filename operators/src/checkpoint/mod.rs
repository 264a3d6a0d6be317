//! Checkpoints: consistent snapshots of a running pipeline, taken at an
//! event-time frontier, from which a restarted run resumes with nothing lost
//! and nothing repeated.
//!
//! # The protocol
//! Worker 0 runs a trigger that holds a capability following the sources'
//! frontier. Every `interval` (wall clock) it sends a [`Marker`] at its
//! capability's time `F` to every worker. While the marker is in flight no
//! stateful operator can see its frontier pass `F`, so each one, once its
//! frontier reaches `F`, brings its state to exactly `F` (every input before
//! `F` applied, nothing at or after it), writes that state as its part, and
//! goes on. Each worker acknowledges its parts once all are written; when
//! worker 0 has the acknowledgements of every worker it writes the manifest
//! that makes the checkpoint complete, and only then makes the Parquet files
//! the checkpoint covers visible.
//!
//! What a checkpoint at `F` holds:
//! - per source partition, an offset to re-read from and the partition's
//!   largest event time before it, so that every lateness decision after a
//!   restart is the one the first run made. Re-reading starts early enough
//!   to rebuild every window still open at `F`;
//! - alert rule states as of `F`;
//! - the Parquet rows before `F` not yet in a visible file, and the files
//!   waiting for the checkpoint to complete;
//! - per Kafka sink, the end offsets of its topic's partitions, so a restart
//!   can read back what was delivered after `F` and not deliver it again.
//!
//! Everything at or after `F` is recomputed from the re-read input: results
//! depend only on the input, so the recomputation gives the same records,
//! with the same ids.

mod manifest;
mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::run::Reload;
use crate::storage::{self, Location, Upload};

pub use manifest::Manifest;
pub use store::{CheckpointStore, LocalDir};

/// How often and where checkpoints are taken.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointConfig {
    /// Where the checkpoints are: a local directory, or a prefix of an object
    /// store. In a cluster every process must reach the same location: a
    /// bucket, or a shared file system.
    pub dir: Location,
    /// Wall-clock time between two checkpoints.
    pub interval: Duration,
    /// Complete checkpoints kept (at least 1); older ones are deleted.
    pub keep: usize,
}

impl CheckpointConfig {
    /// Checkpoints in `dir` every 10 s, keeping the last 3.
    pub fn new(dir: impl Into<Location>) -> Self {
        CheckpointConfig {
            dir: dir.into(),
            interval: Duration::from_secs(10),
            keep: 3,
        }
    }
}

/// Asks every stateful operator to snapshot its state as of `frontier`.
/// Travels at timely time `frontier`, or, for the last checkpoint of a run
/// whose input ended ([`Marker::END`]), at the sources' last frontier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    /// Checkpoint number, increasing.
    pub id: u64,
    /// The event-time frontier of the checkpoint.
    pub frontier: u64,
    /// The last checkpoint of a run asked to stop: operators bring their
    /// state to its frontier and no further. Once the stopped sources let go of their capabilities, the
    /// frontier may pass records they never read, so nothing beyond this
    /// frontier is complete.
    #[serde(default)]
    pub last: bool,
    /// The version of the rule set in force from this marker on.
    #[serde(default)]
    pub rules_version: u64,
    /// A reload: the rule set in force from this marker's frontier on.
    /// Observations before the frontier were judged by the rules before.
    #[serde(default)]
    pub reload: Option<Reload>,
}

impl Marker {
    /// The frontier of a checkpoint taken after the input ended (a bounded
    /// run that completed): everything was written.
    pub const END: u64 = u64::MAX;

    /// The frontier operators bring their state to: `None` for the end of
    /// the input.
    pub fn until(&self) -> Option<u64> {
        (self.frontier != Marker::END).then_some(self.frontier)
    }
}

/// The parts `manifest` names, by operator, each checked against its size
/// and checksum.
fn read_parts(
    store: &dyn CheckpointStore,
    manifest: &Manifest,
) -> Result<BTreeMap<String, Vec<Vec<u8>>>, String> {
    let mut parts: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for part in &manifest.parts {
        let bytes = store
            .get(&part.name)
            .map_err(|e| format!("part {} cannot be read: {e}", part.name))?;
        if bytes.len() as u64 != part.bytes || crc32fast::hash(&bytes) != part.crc32 {
            return Err(format!(
                "part {} does not match its manifest (size or checksum)",
                part.name
            ));
        }
        parts.entry(part.op.clone()).or_default().push(bytes);
    }
    Ok(parts)
}

/// One operator's state in one checkpoint, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    /// Object name in the store.
    pub name: String,
    /// The operator it belongs to.
    pub op: String,
    /// The worker that wrote it.
    pub worker: usize,
    /// Size in bytes.
    pub bytes: u64,
    /// CRC-32 of the bytes.
    pub crc32: u32,
}

/// A file that becomes visible when its checkpoint completes: renamed from
/// `temp` to `path`, or, on an object store, its upload completed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PendingFile {
    /// The hidden name it was written under (for an upload: its final URL).
    pub temp: PathBuf,
    /// Its final name (for an upload: its URL).
    pub path: PathBuf,
    /// The multipart upload to complete, on an object store. (Always
    /// written: acknowledgements travel in bincode, which skips nothing.)
    #[serde(default)]
    pub upload: Option<PendingUpload>,
}

/// A multipart upload a checkpoint completes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PendingUpload {
    /// The URL of the location the file is below.
    pub root: String,
    /// The file's name below `root`.
    pub name: String,
    /// The object below `root` that records the upload until it completes
    /// (so that a run that resumes without it can abort it).
    pub marker: String,
    /// The upload.
    pub upload: Upload,
}

/// A worker's parts of one checkpoint, sent to worker 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The checkpoint.
    pub marker: Marker,
    /// The worker.
    pub worker: usize,
    /// Its parts.
    pub parts: Vec<PartInfo>,
    /// Files to make visible once the checkpoint is complete.
    pub files: Vec<PendingFile>,
}

/// The current format of checkpoints. 2: rule states carry the off-delay's
/// clear spell. 3: and chattering. 4: and combination rules' conditions.
/// 5: manifests carry their own checksum, and Parquet parts the files
/// their checkpoints made visible. 6: window rows in Parquet parts carry
/// their extra statistics.
pub const FORMAT: u32 = 6;

/// A checkpoint that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store could not be read or written.
    #[error("checkpoint store {location}: cannot {action}: {source}")]
    Io {
        /// The store.
        location: String,
        /// What failed.
        action: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A manifest or part is damaged or missing.
    #[error("checkpoint {id} in {location} is unusable: {problem}; start from scratch with --from-scratch (outputs will be written again)")]
    Corrupt {
        /// The store.
        location: String,
        /// The checkpoint.
        id: u64,
        /// What is wrong.
        problem: String,
    },
    /// Parts exist but no checkpoint ever completed.
    #[error("{location} holds parts of checkpoint(s) {ids:?} but no complete checkpoint, so the run cannot know where to resume; start from scratch with --from-scratch (outputs will be written again)")]
    NoComplete {
        /// The store.
        location: String,
        /// The incomplete checkpoints.
        ids: Vec<u64>,
    },
    /// The checkpoint belongs to another pipeline.
    #[error("checkpoint {id} in {location} was written by pipeline `{found}`, not `{expected}`")]
    OtherPipeline {
        /// The store.
        location: String,
        /// The checkpoint.
        id: u64,
        /// Its pipeline.
        found: String,
        /// This pipeline.
        expected: String,
    },
}

/// For crash tests, built with the `failpoints` feature only: the process
/// aborts where the fail point `checkpoint-<point>` is set to `return` (by
/// `FAILPOINTS`, e.g. `checkpoint-manifest=2*off->return` for the third
/// time). The points: `part` (a part written), `manifest` (a manifest
/// written, its files not yet renamed), `rename` (one file of a completed
/// checkpoint renamed) and `published` (every file of a completed
/// checkpoint that made some visible renamed). Does nothing otherwise.
pub(crate) fn crash_point(point: &str) {
    #[cfg(feature = "failpoints")]
    if fail::eval(&format!("checkpoint-{point}"), |_| ()).is_some() {
        eprintln!("failpoint: aborting at checkpoint-{point}");
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = point;
}

fn manifest_name(id: u64) -> String {
    format!("ckpt-{id:012}.manifest.json")
}

/// The object name of a part. `run` tells apart the parts of two runs
/// that share a location by mistake: the loser of the race for a manifest
/// (see [`Session::commit`]) never overwrites the winner's parts.
fn part_name(id: u64, op: &str, worker: usize, run: &str) -> String {
    format!("ckpt-{id:012}-{op}-w{worker}-{run}.part")
}

/// A name for this process's run, unique enough to tell two runs apart.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}{:x}{n:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// The checkpoint number an object name belongs to.
fn id_of(name: &str) -> Option<u64> {
    name.strip_prefix("ckpt-")?.get(..12)?.parse().ok()
}

/// A checkpoint a run resumes from: its manifest and its parts by operator.
#[derive(Debug)]
pub struct Restored {
    /// The manifest.
    pub manifest: Manifest,
    parts: BTreeMap<String, Vec<Vec<u8>>>,
}

/// The checkpoints of one run, shared by the workers of a process: where
/// they go, and the state the run resumed from.
#[derive(Debug)]
pub struct Session {
    config: CheckpointConfig,
    store: Arc<dyn CheckpointStore>,
    pub(crate) pipeline: String,
    restored: Option<Restored>,
    /// The number of this run's first checkpoint: after every checkpoint
    /// found in the store, complete or not.
    next_id: u64,
    /// Part names of this run carry it (see [`part_name`]).
    run: String,
}

impl Session {
    /// Opens the checkpoints of `pipeline` in `config.dir`.
    ///
    /// Without `fresh`, finds the latest complete checkpoint, verifies its
    /// manifest's checksum and every part it names (present, same size and
    /// checksum), and finishes the file renames it lists (a crash may have
    /// cut them short). Parts of later checkpoints are left alone: this run
    /// numbers its checkpoints after them, and the first one it completes
    /// deletes them. So a run refused after this point (a later checkpoint's
    /// manifest is missing, see the Parquet sink) destroys nothing, and
    /// restoring the manifest makes that checkpoint usable again. A damaged checkpoint, or
    /// parts without any complete checkpoint, is an error: the run never
    /// silently starts over. With `fresh`, deletes every checkpoint and
    /// starts from the source's configured start.
    pub fn open(
        config: CheckpointConfig,
        pipeline: &str,
        fresh: bool,
    ) -> Result<Session, CheckpointError> {
        let location = config.dir.to_string();
        let io = |action: &str| {
            let location = location.clone();
            let action = action.to_owned();
            move |source| CheckpointError::Io {
                location,
                action,
                source,
            }
        };
        let store = open_store(&config.dir).map_err(io("create the directory"))?;
        let names: Vec<String> = store
            .list()
            .map_err(io("list"))?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        if fresh {
            for name in &names {
                store.delete(name).map_err(io("delete"))?;
            }
            return Ok(Session {
                config,
                store,
                pipeline: pipeline.to_owned(),
                restored: None,
                next_id: 1,
                run: run_tag(),
            });
        }
        let latest = names
            .iter()
            .filter(|n| n.ends_with(".manifest.json"))
            .filter_map(|n| id_of(n))
            .max();
        let Some(id) = latest else {
            let ids: BTreeSet<u64> = names.iter().filter_map(|n| id_of(n)).collect();
            if !ids.is_empty() {
                return Err(CheckpointError::NoComplete {
                    location,
                    ids: ids.into_iter().collect(),
                });
            }
            return Ok(Session {
                config,
                store,
                pipeline: pipeline.to_owned(),
                restored: None,
                next_id: 1,
                run: run_tag(),
            });
        };
        let corrupt = |problem: String| CheckpointError::Corrupt {
            location: location.clone(),
            id,
            problem,
        };
        let bytes = store
            .get(&manifest_name(id))
            .map_err(|e| corrupt(format!("cannot read its manifest: {e}")))?;
        let manifest = Manifest::unseal(&bytes).map_err(corrupt)?;
        if manifest.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not the supported format {FORMAT}",
                manifest.format
            )));
        }
        if manifest.pipeline != pipeline {
            return Err(CheckpointError::OtherPipeline {
                location,
                id,
                found: manifest.pipeline,
                expected: pipeline.to_owned(),
            });
        }
        let parts = read_parts(store.as_ref(), &manifest).map_err(corrupt)?;
        finish_renames(&manifest.files, || {}).map_err(io("make committed files visible"))?;
        tracing::info!(
            checkpoint = id,
            frontier = manifest.frontier,
            "Resuming from checkpoint"
        );
        Ok(Session {
            config,
            store,
            pipeline: pipeline.to_owned(),
            restored: Some(Restored { manifest, parts }),
            next_id: names.iter().filter_map(|n| id_of(n)).max().unwrap_or(id) + 1,
            run: run_tag(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CheckpointConfig {
        &self.config
    }

    /// The checkpoint the run resumes from, if any.
    pub fn restored(&self) -> Option<&Restored> {
        self.restored.as_ref()
    }

    /// The frontier of the checkpoint the run resumes from.
    pub fn restored_frontier(&self) -> Option<u64> {
        self.restored.as_ref().map(|r| r.manifest.frontier)
    }

    /// The number of the next checkpoint.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Every part of operator `op` in the restored checkpoint (one per worker
    /// of the run that wrote it), decoded; none without a restored checkpoint.
    pub fn parts<T: DeserializeOwned>(&self, op: &str) -> Result<Vec<T>, String> {
        let Some(restored) = &self.restored else {
            return Ok(Vec::new());
        };
        restored
            .parts
            .get(op)
            .into_iter()
            .flatten()
            .map(|bytes| {
                bincode::deserialize(bytes).map_err(|e| {
                    format!(
                        "checkpoint {}: the state of `{op}` cannot be decoded: {e}",
                        restored.manifest.id
                    )
                })
            })
            .collect()
    }

    /// Writes one operator's part of checkpoint `id`.
    pub(crate) fn write_part<T: Serialize>(
        &self,
        id: u64,
        op: &str,
        worker: usize,
        state: &T,
    ) -> Result<PartInfo, String> {
        let bytes = bincode::serialize(state).map_err(|e| format!("cannot encode `{op}`: {e}"))?;
        self.write_bytes(id, op, worker, &bytes)
    }

    /// Writes one operator's part of checkpoint `id`, already encoded.
    pub(crate) fn write_bytes(
        &self,
        id: u64,
        op: &str,
        worker: usize,
        bytes: &[u8],
    ) -> Result<PartInfo, String> {
        let name = part_name(id, op, worker, &self.run);
        self.store
            .put(&name, bytes)
            .map_err(|e| format!("cannot write checkpoint part {name}: {e}"))?;
        crash_point("part");
        Ok(PartInfo {
            name,
            op: op.to_owned(),
            worker,
            bytes: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        })
    }

    /// Completes a checkpoint: writes its manifest, makes its files visible,
    /// and deletes the earlier checkpoints beyond the number kept and the
    /// earlier ones that never completed.
    pub(crate) fn commit(&self, manifest: &Manifest) -> Result<(), String> {
        let bytes = manifest.seal();
        let name = manifest_name(manifest.id);
        let written = self
            .store
            .put_new(&name, &bytes)
            .map_err(|e| format!("cannot write checkpoint manifest {name}: {e}"))?;
        if !written {
            return Err(format!(
                "checkpoint {} in {} was completed by another run: two runs of pipeline `{}` \
                 share this location; this run's checkpoint is not used",
                manifest.id,
                self.store.location(),
                self.pipeline
            ));
        }
        crash_point("manifest");
        finish_renames(&manifest.files, || crash_point("rename"))
            .map_err(|e| format!("cannot make committed files visible: {e}"))?;
        if !manifest.files.is_empty() {
            crash_point("published");
        }
        let names: Vec<String> = (self.store.list().map_err(|e| e.to_string())?)
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let complete: Vec<u64> = names
            .iter()
            .filter(|n| n.ends_with(".manifest.json"))
            .filter_map(|n| id_of(n))
            .collect();
        let kept: BTreeSet<u64> = complete
            .iter()
            .rev()
            .take(self.config.keep.max(1))
            .copied()
            .collect();
        for name in names
            .iter()
            .filter(|n| id_of(n).is_some_and(|i| i < manifest.id && !kept.contains(&i)))
        {
            self.store.delete(name).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Renames every pending file still under its temporary name. Idempotent, so
/// a crash in the middle is finished by the next start.
fn finish_renames(files: &[PendingFile], mut renamed: impl FnMut()) -> std::io::Result<()> {
    for file in files {
        if let Some(pending) = &file.upload {
            let Some(root) = storage::find(&pending.root) else {
                return Err(std::io::Error::other(format!(
                    "the checkpoint completes an upload to {}, a location this pipeline no \
                     longer writes to",
                    pending.root
                )));
            };
            root.complete(&pending.name, &pending.upload)?;
            renamed();
            // The upload is done; its record is not needed any more.
            root.delete(&pending.marker)?;
            continue;
        }
        match std::fs::rename(&file.temp, &file.path) {
            Ok(()) => renamed(),
            // Renamed before (or by another process of the cluster just now).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.path.exists() => {}
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{} -> {}: {e}", file.temp.display(), file.path.display()),
                ))
            }
        }
    }
    Ok(())
}

/// One checkpoint as `weir checkpoints` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointInfo {
    /// Checkpoint number.
    pub id: u64,
    /// Its manifest, if it completed.
    pub manifest: Option<Manifest>,
    /// Objects and bytes of its parts in the store.
    pub objects: usize,
    /// Bytes of its objects.
    pub bytes: u64,
}

/// The store of the checkpoints at `location`.
fn open_store(location: &Location) -> std::io::Result<Arc<dyn CheckpointStore>> {
    Ok(match location {
        Location::Local(dir) => Arc::new(LocalDir::open(dir)?),
        Location::Object(object) => Arc::new(object.clone()),
    })
}

/// Lists the checkpoints at a location, oldest first, complete or not.
pub fn list(dir: &Location) -> Result<Vec<CheckpointInfo>, CheckpointError> {
    let location = dir.to_string();
    let io = |source| CheckpointError::Io {
        location: location.clone(),
        action: "list".to_owned(),
        source,
    };
    if dir.local().is_some_and(|d| !d.is_dir()) {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such directory",
        )));
    }
    let store = open_store(dir).map_err(io)?;
    let mut by_id: BTreeMap<u64, CheckpointInfo> = BTreeMap::new();
    for (name, size) in store.list().map_err(io)? {
        let Some(id) = id_of(&name) else { continue };
        let info = by_id.entry(id).or_insert(CheckpointInfo {
            id,
            manifest: None,
            objects: 0,
            bytes: 0,
        });
        info.objects += 1;
        info.bytes += size;
        if name.ends_with(".manifest.json") {
            info.manifest = store
                .get(&name)
                .ok()
                .and_then(|b| Manifest::unseal(&b).ok());
        }
    }
    Ok(by_id.into_values().collect())
}

#[cfg(test)]
mod object_tests;

#[cfg(test)]
mod tests {
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
}
