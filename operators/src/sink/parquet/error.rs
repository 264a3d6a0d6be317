//! How writing a Parquet file fails.

use std::path::PathBuf;

use ::parquet::errors::ParquetError;
use arrow_schema::ArrowError;

/// A failure to write a Parquet file. Each variant names the file or directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParquetSinkError {
    /// A file system operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done: "create directory", "write", "sync", "rename into place".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Parquet writer failed (this includes a zstd level it does not accept).
    #[error("cannot write Parquet file {}", path.display())]
    Parquet {
        /// The file being written (its temporary name).
        path: PathBuf,
        /// The cause.
        #[source]
        source: ParquetError,
    },
    /// The rows could not be turned into an Arrow record batch.
    #[error("cannot build the rows of {}", path.display())]
    Arrow {
        /// The file being written (its temporary name).
        path: PathBuf,
        /// The cause.
        #[source]
        source: ArrowError,
    },
    /// A timestamp or count does not fit its column or a calendar date.
    #[error("{field} = {value} is out of range, in rows for {}", path.display())]
    OutOfRange {
        /// The column (or `window_start` for the partition directory).
        field: &'static str,
        /// The value.
        value: u64,
        /// The root directory or file the rows were meant for.
        path: PathBuf,
    },
}

/// For tests of a full disk where none can be mounted, built with the
/// `failpoints` feature only: with the fail point `parquet-full-disk` set to
/// `return`, every Parquet file fails to be written as on a full file system
/// (`ENOSPC`). Does nothing otherwise.
pub(super) fn full_disk_point() -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    if fail::eval("parquet-full-disk", |_| ()).is_some() {
        return Err(std::io::Error::from_raw_os_error(28));
    }
    Ok(())
}
