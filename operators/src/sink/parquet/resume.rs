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

/// Calls `visit` on every file below `dir` (none if `dir` is missing).
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path) -> io::Result<()>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, visit)?;
        } else {
            visit(&path)?;
        }
    }
    Ok(())
}

/// The prefix and sequence number of a file stem `part-<run>-w<worker>-<seq>`.
fn prefix_and_seq(stem: &str) -> Option<(&str, u64)> {
    let (prefix, seq) = stem.rsplit_once('-')?;
    (prefix.starts_with("part-") && prefix.contains("-w")).then_some(())?;
    Some((prefix, seq.parse().ok()?))
}

/// Every visible file below `dir` that a writer named, with its prefix and
/// sequence number, sorted by path. Other files are not Weir's to judge.
fn visible_files(dir: &Path) -> io::Result<Vec<(PathBuf, String, u64)>> {
    let mut files = Vec::new();
    walk(dir, &mut |path| {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parsed = name
            .strip_suffix(".parquet")
            .filter(|_| !name.starts_with('.'))
            .and_then(prefix_and_seq);
        if let Some((prefix, seq)) = parsed {
            files.push((path.to_owned(), prefix.to_owned(), seq));
        }
        Ok(())
    })?;
    files.sort();
    Ok(files)
}

/// The visible files below `dir`, as [`Published`]: what a run that starts
/// without a checkpoint finds written before it.
pub(crate) fn adopt(dir: &Path) -> io::Result<Published> {
    let mut published = Published::new();
    for (_, prefix, seq) in visible_files(dir)? {
        merge(&mut published, &BTreeMap::from([(prefix, seq)]));
    }
    Ok(published)
}

/// The visible files below `dir` that `published` does not account for.
pub(crate) fn unaccounted(dir: &Path, published: &Published) -> io::Result<Vec<PathBuf>> {
    Ok(visible_files(dir)?
        .into_iter()
        .filter(|(_, prefix, seq)| published.get(prefix).is_none_or(|max| seq > max))
        .map(|(path, _, _)| path)
        .collect())
}

/// Deletes the temporary files earlier runs left behind (a crash before the
/// checkpoint covering them completed) that this worker is in charge of:
/// those of worker indexes `worker`, `worker + peers`, ... of other runs, so
/// workers of this run never delete each other's files.
pub(crate) fn remove_orphans(
    dir: &Path,
    own_prefix: &str,
    worker: usize,
    peers: usize,
) -> io::Result<()> {
    walk(dir, &mut |path| {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        let Some(stem) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".parquet.inprogress"))
        else {
            return Ok(());
        };
        let mine = stem.starts_with(&format!("{own_prefix}-"));
        let owner = prefix_and_seq(stem)
            .and_then(|(prefix, _)| prefix.rsplit_once("-w"))
            .and_then(|(_, w)| w.parse::<usize>().ok());
        if !mine && owner.is_some_and(|w| w % peers == worker) {
            tracing::info!(file = %path.display(), "Removing a Parquet file no checkpoint completed");
            fs::remove_file(path)?;
        }
        Ok(())
    })
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
        assert_eq!(unaccounted(d, &known).unwrap(), vec![late, other_run]);

        let all = adopt(d).unwrap();
        assert_eq!(
            all,
            Published::from([
                ("part-100-w0".into(), 1),
                ("part-100-w1".into(), 0),
                ("part-200-w0".into(), 0)
            ])
        );
        assert!(unaccounted(d, &all).unwrap().is_empty());
        assert!(unaccounted(&d.join("missing"), &known).unwrap().is_empty());
    }

    #[test]
    fn orphans_of_other_runs_are_removed_by_the_worker_in_charge() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mine = touch(d, "h/.part-300-w0-000004.parquet.inprogress");
        let old0 = touch(d, "h/.part-100-w0-000001.parquet.inprogress");
        let old1 = touch(d, "h/.part-100-w1-000001.parquet.inprogress");
        let old2 = touch(d, "h/.part-100-w2-000001.parquet.inprogress");
        remove_orphans(d, "part-300-w0", 0, 2).unwrap();
        assert!(mine.exists(), "a file of this run stays");
        assert!(
            !old0.exists() && !old2.exists(),
            "workers 0 and 2 are worker 0's"
        );
        assert!(old1.exists(), "worker 1's is worker 1's to remove");
    }
}
