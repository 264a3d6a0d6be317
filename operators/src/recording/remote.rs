//! Recordings on an object store, through a local staging directory: a
//! reader downloads the recording into one and reads it there; a recorder
//! writes its segments there as on disk and uploads each complete segment
//! (then deletes it locally), its idle marks and `recording.json`. A segment
//! is visible on the store only once complete, as on disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::RecordingError;
use crate::storage::ObjectLocation;

/// A local directory, removed with everything in it when dropped.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// A new, empty directory below the system's temporary directory.
    pub(crate) fn new() -> Result<Staging, RecordingError> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weir-recording-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(RecordingError::io("create directory", &dir))?;
        Ok(Staging { dir })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An `RecordingError` for a failed call on the store.
fn store_error(
    object: &ObjectLocation,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> RecordingError {
    let url = object.url().to_owned();
    move |source| RecordingError::Io {
        action,
        path: PathBuf::from(url),
        source,
    }
}

/// Copies the objects below `object` whose names `wanted` accepts into
/// `dir`, keeping the names. Returns the names of the objects below
/// `object`.
pub(crate) fn download(
    object: &ObjectLocation,
    dir: &Path,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<String>, RecordingError> {
    let names: Vec<String> = object
        .list()
        .map_err(store_error(object, "list"))?
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for name in names.iter().filter(|n| wanted(n)) {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(RecordingError::io("create directory", parent))?;
        }
        let bytes = object.get(name).map_err(store_error(object, "read"))?;
        std::fs::write(&path, bytes).map_err(RecordingError::io("write", &path))?;
    }
    Ok(names)
}

/// Uploads what the recorder in `dir` completed: every complete segment
/// (then deleted locally, so the staging directory holds only open ones),
/// the idle marks and `recording.json`.
pub(crate) fn upload(object: &ObjectLocation, dir: &Path) -> Result<(), RecordingError> {
    let mut files: Vec<(String, PathBuf, bool)> = Vec::new();
    for (sub, remove) in [("segments", true), ("marks", false)] {
        let local = dir.join(sub);
        let entries = match std::fs::read_dir(&local) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(RecordingError::io("list", &local)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(RecordingError::io("list", &local))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Hidden names are open segments and temporary files.
            if !name.starts_with('.') && !name.ends_with(".tmp") {
                files.push((format!("{sub}/{name}"), entry.path(), remove));
            }
        }
    }
    files.push((
        "recording.json".to_owned(),
        dir.join("recording.json"),
        false,
    ));
    for (name, path, remove) in files {
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(RecordingError::io("read", &path)(e)),
        };
        object
            .put(&name, bytes)
            .map_err(store_error(object, "upload to"))?;
        if remove {
            std::fs::remove_file(&path).map_err(RecordingError::io("remove", &path))?;
        }
    }
    Ok(())
}
