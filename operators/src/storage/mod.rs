//! Where durable output and state live: a local directory, or a prefix of an
//! object store (`s3://`, `gs://`, `az://`).
//!
//! A [`Location`] is what a pipeline names wherever it keeps something: the
//! Parquet output, the checkpoints. Local directories are used as they
//! always were; object stores are reached through Arrow's `object_store`
//! crate, with credentials and endpoint from the usual environment
//! variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT`, `GOOGLE_SERVICE_ACCOUNT`,
//! `AZURE_STORAGE_ACCOUNT_NAME`, ...) or from options given with the URL.
//!
//! The object-store calls are asynchronous; the operators that make them
//! run on timely's worker threads, so every call here blocks on a small
//! runtime of this module's own ([`block_on`]).

mod object;

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use object_store::multipart::MultipartStore;
use object_store::ObjectStore;

pub use object::{ObjectLocation, Upload, PART_BYTES};

/// An object store that also takes multipart uploads part by part, so that
/// a file can be uploaded now and made visible later: S3, Google Cloud
/// Storage, Azure Blob Storage, and the in-memory store of the tests.
pub trait Bucket: ObjectStore + MultipartStore {}

impl<T: ObjectStore + MultipartStore> Bucket for T {}

/// A place to keep files: a local directory or a prefix of a bucket.
#[derive(Clone, PartialEq)]
pub enum Location {
    /// A directory of the local file system (also `file://` URLs).
    Local(PathBuf),
    /// A prefix of an object store.
    Object(ObjectLocation),
}

/// The URL schemes of object stores Weir writes to, with the store each
/// names, for messages.
pub const SCHEMES: &[(&str, &str)] = &[
    ("s3", "Amazon S3 or an S3-compatible store"),
    ("s3a", "Amazon S3 or an S3-compatible store"),
    ("gs", "Google Cloud Storage"),
    ("az", "Azure Blob Storage"),
    ("azure", "Azure Blob Storage"),
    ("abfs", "Azure Data Lake Storage"),
    ("abfss", "Azure Data Lake Storage"),
];

impl Location {
    /// The location `text` names: an object-store URL (`s3://bucket/prefix`,
    /// `gs://...`, `az://...`) built with the store's environment variables
    /// and then `options` (the store's configuration keys, such as
    /// `aws_endpoint` or `aws_region`); a `file://` URL or a plain path,
    /// relative to `base`. Any other `scheme://` is an error, never a local
    /// directory of that name. Nothing is contacted yet.
    ///
    /// ```
    /// use weir_operators::storage::Location;
    /// let local = Location::parse("out/windows", std::path::Path::new("/srv"), &[]).unwrap();
    /// assert_eq!(local, Location::Local("/srv/out/windows".into()));
    /// let s3 = Location::parse("s3://plant-data/windows", std::path::Path::new("."), &[]).unwrap();
    /// assert_eq!(s3.to_string(), "s3://plant-data/windows");
    /// let error = Location::parse("ftp://host/x", std::path::Path::new("."), &[]).unwrap_err();
    /// assert!(error.contains("`ftp://` is not a supported location"), "{error}");
    /// ```
    pub fn parse(
        text: &str,
        base: &Path,
        options: &[(String, String)],
    ) -> Result<Location, String> {
        if let Some(local) = text.strip_prefix("file://") {
            return Ok(Location::Local(base.join(local)));
        }
        let Some((scheme, _)) = text.split_once("://") else {
            return Ok(Location::Local(base.join(text)));
        };
        if !SCHEMES.iter().any(|(s, _)| s.eq_ignore_ascii_case(scheme)) {
            let known: Vec<String> = SCHEMES.iter().map(|(s, _)| format!("{s}://")).collect();
            return Err(format!(
                "`{scheme}://` is not a supported location: use a local path, `file://`, or \
                 one of {}",
                known.join(", ")
            ));
        }
        ObjectLocation::open(text, options).map(Location::Object)
    }

    /// The location a command-line argument names: a local path (relative
    /// to the working directory), a `file://` URL, or an object-store URL
    /// whose credentials and endpoint come from the environment.
    pub fn from_flag(path: &Path) -> Result<Location, String> {
        Location::parse(&path.to_string_lossy(), Path::new(""), &[])
    }

    /// The object-store location, if this is one.
    pub fn object(&self) -> Option<&ObjectLocation> {
        match self {
            Location::Object(object) => Some(object),
            Location::Local(_) => None,
        }
    }

    /// The local directory, if this is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Location::Local(dir) => Some(dir),
            Location::Object(_) => None,
        }
    }

    /// The location of `relative` below this one (`/`-separated).
    pub fn join(&self, relative: &str) -> Location {
        match self {
            Location::Local(dir) => Location::Local(dir.join(relative)),
            Location::Object(object) => Location::Object(object.join(relative)),
        }
    }

    /// Checks that files can be written here: creates a local directory and
    /// an empty file in it (a full disk is found by the writers, which name
    /// what they were writing), or writes and deletes a probe object. The
    /// error names the location.
    pub fn check_writable(&self) -> Result<(), String> {
        match self {
            Location::Local(dir) => {
                // Unique to this check: the members of a cluster in one
                // process check the same directory at once.
                static CHECKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = CHECKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let probe = dir.join(format!(".weir-write-check-{}-{n}", std::process::id()));
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!("cannot create the output directory {}: {e}", dir.display())
                })?;
                std::fs::write(&probe, b"").map_err(|e| {
                    format!(
                        "cannot write to the output directory {}: {e}",
                        dir.display()
                    )
                })?;
                let _ = std::fs::remove_file(&probe);
                Ok(())
            }
            Location::Object(object) => object.check_writable(),
        }
    }
}

impl From<PathBuf> for Location {
    fn from(dir: PathBuf) -> Self {
        Location::Local(dir)
    }
}

impl From<&Path> for Location {
    fn from(dir: &Path) -> Self {
        Location::Local(dir.to_owned())
    }
}

impl From<&str> for Location {
    fn from(dir: &str) -> Self {
        Location::Local(dir.into())
    }
}

impl From<ObjectLocation> for Location {
    fn from(object: ObjectLocation) -> Self {
        Location::Object(object)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(dir) => write!(f, "{}", dir.display()),
            Location::Object(object) => write!(f, "{object}"),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(dir) => f.debug_tuple("Local").field(dir).finish(),
            Location::Object(object) => f.debug_tuple("Object").field(&object.to_string()).finish(),
        }
    }
}

/// Runs `future` to completion on this module's runtime and returns its
/// output, blocking the calling thread. Callable from any thread, including
/// one that runs another Tokio runtime.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-storage")
            .enable_all()
            .build()
            .expect("the storage runtime starts")
    });
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(future.await);
    });
    rx.recv().expect("a storage call runs to completion")
}

/// The object-store locations this process opened, by URL: a checkpoint
/// names the uploads it completes by the URL of their root, and the run
/// that resumes from it finds the store (and its credentials) here.
fn opened() -> &'static Mutex<Vec<ObjectLocation>> {
    static OPENED: OnceLock<Mutex<Vec<ObjectLocation>>> = OnceLock::new();
    OPENED.get_or_init(Mutex::default)
}

/// Remembers `object` for [`find`].
pub(crate) fn remember(object: &ObjectLocation) {
    let mut opened = opened().lock().unwrap_or_else(|e| e.into_inner());
    if !opened.iter().any(|o| o.url() == object.url()) {
        opened.push(object.clone());
    }
}

/// The location opened under `url`, if any.
pub(crate) fn find(url: &str) -> Option<ObjectLocation> {
    let opened = opened().lock().unwrap_or_else(|e| e.into_inner());
    opened.iter().find(|o| o.url() == url).cloned()
}

/// An `io::Error` for a failed object-store call on `what`.
pub(crate) fn io_error(what: impl fmt::Display, error: object_store::Error) -> io::Error {
    let kind = match &error {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::ErrorKind::AlreadyExists
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("{what}: {error}"))
}

#[cfg(test)]
mod tests;
