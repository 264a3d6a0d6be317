//! Where checkpoints are kept: a small trait, a local directory, and a
//! prefix of an object store.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::storage::ObjectLocation;

/// Storage of checkpoint objects: flat names, whole objects, atomic puts.
///
/// Operators never touch storage directly: they hand their parts to the
/// checkpoint machinery, which writes them here. An object store (S3 and the
/// like) fits behind the same calls, since a put of a whole object is atomic
/// there too, and most stores offer the conditional write of
/// [`CheckpointStore::put_new`].
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// Writes `bytes` under `name`, atomically: a reader sees the old object,
    /// or none, or all of the new one, never a part of it.
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Writes `bytes` under `name` unless an object of that name exists,
    /// atomically: of two runs writing the same name, one gets `Ok(true)`
    /// and the other `Ok(false)`, and the object is the first's.
    fn put_new(&self, name: &str, bytes: &[u8]) -> io::Result<bool>;
    /// Reads the object `name`.
    fn get(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Every object, as (name, size in bytes), sorted by name.
    fn list(&self) -> io::Result<Vec<(String, u64)>>;
    /// Deletes the object `name`; deleting a missing object is not an error.
    fn delete(&self, name: &str) -> io::Result<()>;
    /// Where the objects are, for messages.
    fn location(&self) -> String;
}

/// Checkpoint objects as files of one local directory. A put writes a hidden
/// temporary file, syncs it, renames it into place and syncs the directory.
#[derive(Clone, Debug)]
pub struct LocalDir {
    dir: PathBuf,
}

impl LocalDir {
    /// A store in `dir`, created if missing.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(LocalDir { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl CheckpointStore for LocalDir {
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temp = self.dir.join(format!(".{name}.tmp"));
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, self.dir.join(name))?;
        // Make the rename itself durable.
        fs::File::open(&self.dir)?.sync_all()
    }

    fn put_new(&self, name: &str, bytes: &[u8]) -> io::Result<bool> {
        let temp = self.dir.join(format!(".{name}.{}.new", std::process::id()));
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        // A hard link, unlike a rename, fails where the name exists.
        let linked = fs::hard_link(&temp, self.dir.join(name));
        fs::remove_file(&temp)?;
        match linked {
            Ok(()) => fs::File::open(&self.dir)?.sync_all().map(|()| true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }

    fn list(&self) -> io::Result<Vec<(String, u64)>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                names.push((name, entry.metadata()?.len()));
            }
        }
        names.sort();
        Ok(names)
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Checkpoint objects below a prefix of an object store. Puts of whole
/// objects are atomic there; [`CheckpointStore::put_new`] is the store's
/// conditional write (`If-None-Match: *` on S3).
impl CheckpointStore for ObjectLocation {
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        ObjectLocation::put(self, name, bytes.to_vec())
    }

    fn put_new(&self, name: &str, bytes: &[u8]) -> io::Result<bool> {
        ObjectLocation::put_new(self, name, bytes.to_vec())
    }

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        ObjectLocation::get(self, name)
    }

    fn list(&self) -> io::Result<Vec<(String, u64)>> {
        Ok(ObjectLocation::list(self)?
            .into_iter()
            .filter(|(name, _)| !name.contains('/') && !name.starts_with('.'))
            .collect())
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        ObjectLocation::delete(self, name)
    }

    fn location(&self) -> String {
        self.url().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::open(dir.path().join("ck")).unwrap();
        store.put("b", b"two").unwrap();
        store.put("a", b"one").unwrap();
        store.put("a", b"uno").unwrap();
        assert_eq!(names(&store), vec!["a", "b"]);
        assert_eq!(store.get("a").unwrap(), b"uno");
        store.delete("a").unwrap();
        store.delete("a").unwrap();
        assert_eq!(names(&store), vec!["b"]);
        assert!(store.put_new("c", b"first").unwrap());
        assert!(!store.put_new("c", b"second").unwrap());
        assert_eq!(store.get("c").unwrap(), b"first");
        assert_eq!(
            store.list().unwrap(),
            vec![("b".into(), 3), ("c".into(), 5)]
        );
    }

    fn names(store: &dyn CheckpointStore) -> Vec<String> {
        store.list().unwrap().into_iter().map(|(n, _)| n).collect()
    }
}
