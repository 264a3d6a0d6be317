//! A run's checkpoints: opening them (and resuming from the latest
//! complete one), writing parts and manifests, finishing what a manifest
//! makes visible, and listing them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::*;
use crate::storage::{self, Location};

/// The parts `manifest` names, by operator, each checked against its size
/// and checksum.
pub(super) fn read_parts(
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

pub(super) fn manifest_name(id: u64) -> String {
    format!("ckpt-{id:012}.manifest.json")
}

/// The object name of a part. `run` tells apart the parts of two runs
/// that share a location by mistake: the loser of the race for a manifest
/// (see [`Session::commit`]) never overwrites the winner's parts.
pub(super) fn part_name(id: u64, op: &str, worker: usize, run: &str) -> String {
    format!("ckpt-{id:012}-{op}-w{worker}-{run}.part")
}

/// A name for this process's run, unique enough to tell two runs apart.
pub(super) fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:x}{:x}{n:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// The checkpoint number an object name belongs to.
pub(super) fn id_of(name: &str) -> Option<u64> {
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
    pub(super) run: String,
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
pub(super) fn finish_renames(
    files: &[PendingFile],
    mut renamed: impl FnMut(),
) -> std::io::Result<()> {
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
pub(super) fn open_store(location: &Location) -> std::io::Result<Arc<dyn CheckpointStore>> {
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
