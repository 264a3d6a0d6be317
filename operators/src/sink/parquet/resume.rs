//! What a checkpointed Parquet sink finds in its directory when a run
//! starts: temporary files no checkpoint completed (deleted), and visible
//! files no checkpoint it resumes from accounts for (refused).
//!
//! Files are named `part-<run>-w<worker>-<seq>.parquet`: the prefix
//! `part-<run>-w<worker>` is unique to a writer, and its sequence numbers
//! grow. A checkpoint's Parquet parts carry, per prefix, the highest
//! sequence number the checkpoints up to it made visible
//! ([`Published`]). On a resume, a visible file beyond those was made
//! visible by a later checkpoint whose manifest is gone: resuming would
//! write its rows a second time.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::storage::Location;

/// Per file prefix (`part-<run>-w<worker>`), the highest sequence number of
/// the files made visible so far.
pub type Published = BTreeMap<String, u64>;

/// Adds `other` to `published`, keeping the highest number of each prefix.
pub(crate) fn merge(published: &mut Published, other: &Published) {
    for (prefix, &seq) in other {
        let entry = published.entry(prefix.clone()).or_insert(seq);
        *entry = (*entry).max(seq);
    }
}

/// Every file below `dir` (none if `dir` is missing), as `/`-separated
/// names relative to it, with the file system's or the store's listing.
fn files_below(dir: &Location) -> io::Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, names: &mut Vec<String>) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, names)?;
            } else if let Ok(relative) = path.strip_prefix(root) {
                let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
                names.push(parts.join("/"));
            }
        }
        Ok(())
    }
    match dir {
        Location::Local(root) => {
            let mut names = Vec::new();
            walk(root, root, &mut names)?;
            Ok(names)
        }
        Location::Object(object) => Ok(object.list()?.into_iter().map(|(n, _)| n).collect()),
    }
}

/// The path (local) or URL (object store) of `name` below `dir`, for
/// messages and the files a flush returns.
pub(crate) fn path_of(dir: &Location, name: &str) -> PathBuf {
    match dir {
        Location::Local(root) => root.join(name),
        Location::Object(object) => PathBuf::from(object.url_of(name)),
    }
}

/// The name below a Parquet root of the record of an open upload of file
/// `file_name` (see [`remove_orphans`]). Hive readers skip `_` directories.
pub(crate) fn upload_marker(file_name: &str) -> String {
    format!("{UPLOADS}/{file_name}.json")
}

/// The directory of the records of open uploads.
const UPLOADS: &str = "_weir_uploads";

/// What an upload's record holds.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct UploadRecord {
    /// The file's name below the root.
    pub name: String,
    /// The upload's id.
    pub id: String,
}

/// The prefix and sequence number of a file stem `part-<run>-w<worker>-<seq>`.
fn prefix_and_seq(stem: &str) -> Option<(&str, u64)> {
    let (prefix, seq) = stem.rsplit_once('-')?;
    (prefix.starts_with("part-") && prefix.contains("-w")).then_some(())?;
    Some((prefix, seq.parse().ok()?))
}

/// Every visible file below `dir` that a writer named, with its prefix and
/// sequence number, sorted by path. Other files are not Weir's to judge.
fn visible_files(dir: &Location) -> io::Result<Vec<(PathBuf, String, u64)>> {
    let mut files = Vec::new();
    for relative in files_below(dir)? {
        let name = relative.rsplit('/').next().unwrap_or("");
        let parsed = name
            .strip_suffix(".parquet")
            .filter(|_| !name.starts_with('.') && !relative.starts_with(UPLOADS))
            .and_then(prefix_and_seq);
        if let Some((prefix, seq)) = parsed {
            files.push((path_of(dir, &relative), prefix.to_owned(), seq));
        }
    }
    files.sort();
    Ok(files)
}

/// The visible files below `dir`, as [`Published`]: what a run that starts
/// without a checkpoint finds written before it.
pub(crate) fn adopt(dir: &Location) -> io::Result<Published> {
    let mut published = Published::new();
    for (_, prefix, seq) in visible_files(dir)? {
        merge(&mut published, &BTreeMap::from([(prefix, seq)]));
    }
    Ok(published)
}

/// The visible files below `dir` that `published` does not account for.
pub(crate) fn unaccounted(dir: &Location, published: &Published) -> io::Result<Vec<PathBuf>> {
    Ok(visible_files(dir)?
        .into_iter()
        .filter(|(_, prefix, seq)| published.get(prefix).is_none_or(|max| seq > max))
        .map(|(path, _, _)| path)
        .collect())
}

/// Deletes the temporary files earlier runs left behind (a crash before the
/// checkpoint covering them completed) that this worker is in charge of:
/// those of worker indexes `worker`, `worker + peers`, ... of other runs, so
/// workers of this run never delete each other's files. On an object store
/// these are open uploads, found by their records: they are aborted, so
/// their parts are deleted and nothing of them ever becomes visible.
///
/// The uploads a completed checkpoint lists were completed, and their
/// records deleted, when the run opened its checkpoints, before this.
pub(crate) fn remove_orphans(
    dir: &Location,
    own_prefix: &str,
    worker: usize,
    peers: usize,
) -> io::Result<()> {
    let in_charge = |stem: &str| {
        let mine = stem.starts_with(&format!("{own_prefix}-"));
        let owner = prefix_and_seq(stem)
            .and_then(|(prefix, _)| prefix.rsplit_once("-w"))
            .and_then(|(_, w)| w.parse::<usize>().ok());
        !mine && owner.is_some_and(|w| w % peers == worker)
    };
    for relative in files_below(dir)? {
        let name = relative.rsplit('/').next().unwrap_or("");
        match dir {
            Location::Local(_) => {
                let stem = name
                    .strip_prefix('.')
                    .and_then(|n| n.strip_suffix(".parquet.inprogress"));
                if stem.is_some_and(in_charge) {
                    let path = path_of(dir, &relative);
                    tracing::info!(file = %path.display(), "Removing a Parquet file no checkpoint completed");
                    fs::remove_file(path)?;
                }
            }
            Location::Object(object) => {
                let stem = relative
                    .strip_prefix(UPLOADS)
                    .and_then(|n| n.strip_prefix('/'))
                    .and_then(|n| n.strip_suffix(".parquet.json"));
                if !stem.is_some_and(in_charge) {
                    continue;
                }
                let record: UploadRecord = serde_json::from_slice(&object.get(&relative)?)
                    .map_err(|e| io::Error::other(format!("{}: {e}", object.url_of(&relative))))?;
                tracing::info!(
                    file = %object.url_of(&record.name),
                    "Aborting the upload of a Parquet file no checkpoint completed"
                );
                object.abort(&record.name, &record.id)?;
                object.delete(&relative)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, relative: &str) -> PathBuf {
        let path = dir.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"rows").unwrap();
        path
    }

    #[test]
    fn files_beyond_what_the_checkpoints_published_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        touch(d, "date=2026-11-22/hour=10/part-100-w0-000000.parquet");
        touch(d, "date=2026-11-22/hour=10/part-100-w1-000000.parquet");
        let late = touch(d, "date=2026-11-22/hour=11/part-100-w0-000001.parquet");
        let other_run = touch(d, "date=2026-11-22/hour=11/part-200-w0-000000.parquet");
        // Not the sink's: a hidden temporary file, a user's own files.
        touch(
            d,
            "date=2026-11-22/hour=11/.part-200-w0-000001.parquet.inprogress",
        );
        touch(d, "notes.txt");
        touch(d, "date=2026-11-22/hour=10/export.parquet");

        let known = Published::from([("part-100-w0".into(), 0), ("part-100-w1".into(), 0)]);
        assert_eq!(
            unaccounted(&d.into(), &known).unwrap(),
            vec![late, other_run]
        );

        let all = adopt(&d.into()).unwrap();
        assert_eq!(
            all,
            Published::from([
                ("part-100-w0".into(), 1),
                ("part-100-w1".into(), 0),
                ("part-200-w0".into(), 0)
            ])
        );
        assert!(unaccounted(&d.into(), &all).unwrap().is_empty());
        assert!(unaccounted(&d.join("missing").into(), &known)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn orphans_of_other_runs_are_removed_by_the_worker_in_charge() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mine = touch(d, "h/.part-300-w0-000004.parquet.inprogress");
        let old0 = touch(d, "h/.part-100-w0-000001.parquet.inprogress");
        let old1 = touch(d, "h/.part-100-w1-000001.parquet.inprogress");
        let old2 = touch(d, "h/.part-100-w2-000001.parquet.inprogress");
        remove_orphans(&d.into(), "part-300-w0", 0, 2).unwrap();
        assert!(mine.exists(), "a file of this run stays");
        assert!(
            !old0.exists() && !old2.exists(),
            "workers 0 and 2 are worker 0's"
        );
        assert!(old1.exists(), "worker 1's is worker 1's to remove");
    }
}
