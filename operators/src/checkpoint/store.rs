//! Where checkpoints are kept: a small trait, and a local directory.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Storage of checkpoint objects: flat names, whole objects, atomic puts.
///
/// Operators never touch storage directly: they hand their parts to the
/// checkpoint machinery, which writes them here. An object store (S3 and the
/// like) fits behind the same four calls, since a put of a whole object is
/// atomic there too.
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// Writes `bytes` under `name`, atomically: a reader sees the old object,
    /// or none, or all of the new one, never a part of it.
    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Reads the object `name`.
    fn get(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Every object name, sorted.
    fn list(&self) -> io::Result<Vec<String>>;
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

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.dir.join(name))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                names.push(name);
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
        assert_eq!(store.list().unwrap(), vec!["a", "b"]);
        assert_eq!(store.get("a").unwrap(), b"uno");
        store.delete("a").unwrap();
        store.delete("a").unwrap();
        assert_eq!(store.list().unwrap(), vec!["b"]);
    }
}
