//! The Parquet writer: buffers window aggregates by the hour of their window
//! start and writes each hour as Parquet files once it is complete. It knows
//! nothing of timely; the operator in [`super::sink`] drives it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use ::parquet::basic::{Compression, ZstdLevel};
use ::parquet::file::properties::WriterProperties;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use chrono::DateTime;

use serde::{Deserialize, Serialize};

use super::error::full_disk_point;
pub use super::error::ParquetSinkError;
use super::resume::{self, Published};
use super::row::ParquetRow;
use super::{ParquetCompression, ParquetSinkConfig};
use crate::checkpoint::{PendingFile, PendingUpload};
use crate::reading::WindowAggregate;
use crate::storage::{Location, ObjectLocation};

/// One hour in milliseconds: the span of a partition.
pub(super) const HOUR_MS: u64 = 3_600_000;

/// Buffers window aggregates by Hive partition and writes each partition as
/// Parquet files once it is complete. It knows nothing of timely: the
/// [`ParquetSink`](super::ParquetSink) operator drives it from the frontier.
///
/// A row belongs to the partition `date=YYYY-MM-DD/hour=HH/` of its
/// `window_start` in UTC. Before a partition is written its rows are sorted by
/// (window_start, device, sensor) and then by the remaining fields, so a file's
/// bytes depend only on its rows, never on the order they were pushed in.
/// Files are named `<prefix>-<seq>.parquet`, `seq` counting from 0 for each
/// writer (six digits, zero padded). Each is written as
/// `.<name>.inprogress` in the same directory and renamed when complete, so a
/// reader never sees a partial file; readers of Hive datasets skip names that
/// start with a dot.
#[derive(Debug)]
pub struct ParquetWriter<R: ParquetRow = WindowAggregate> {
    config: ParquetSinkConfig,
    prefix: String,
    /// Pending rows by hour index (`window_start / HOUR_MS`).
    partitions: BTreeMap<u64, Vec<R>>,
    /// Sequence number of the next file.
    seq: u64,
    /// Rows in files committed so far.
    rows_written: u64,
    /// Bytes of the files written so far.
    bytes_written: u64,
    /// The window ends of the rows written since the last
    /// [`ParquetWriter::take_written_ends`].
    written_ends: Vec<u64>,
    /// Hours ending at or before this time were closed.
    closed_before: u64,
    /// The longest `window_end - window_start` pushed so far.
    max_span: u64,
    /// How long after their end windows are corrected (their rows then
    /// arrive until the frontier passes it), ms.
    lateness_ms: u64,
    schema: SchemaRef,
    /// With checkpoints: files are left under their temporary name, for the
    /// checkpoint that covers them to rename.
    deferred: bool,
    /// Files written and not renamed yet (deferred commits only).
    unrenamed: Vec<PendingFile>,
    /// The files checkpoints made visible, carried from checkpoint to
    /// checkpoint (deferred commits only).
    published: Published,
    /// Whether files get a `revision` column.
    revised: bool,
}

/// A Parquet sink's part of a checkpoint: the rows it holds that are not in
/// a file yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "R: ParquetRow")]
pub struct ParquetPart<R: ParquetRow = WindowAggregate> {
    /// Buffered rows of windows that ended before the checkpoint's frontier.
    pub rows: Vec<R>,
    /// The files made visible by this checkpoint and every earlier one, or
    /// found at the start of the run that took the first: a resume that finds
    /// a visible file beyond them is refused (see [`super::resume`]).
    pub published: Published,
}

impl<R: ParquetRow> Default for ParquetPart<R> {
    fn default() -> Self {
        ParquetPart {
            rows: Vec::new(),
            published: Published::new(),
        }
    }
}

impl<R: ParquetRow> ParquetWriter<R> {
    /// A writer of files below `config.dir`, named after `file_prefix`, which
    /// must be unique per worker and run (for example `part-<run_id>-w<worker>`)
    /// so that writers never overwrite each other's files.
    pub fn new(config: ParquetSinkConfig, file_prefix: String) -> Self {
        let schema = R::schema(&config, false);
        ParquetWriter {
            config,
            prefix: file_prefix,
            partitions: BTreeMap::new(),
            seq: 0,
            rows_written: 0,
            bytes_written: 0,
            written_ends: Vec::new(),
            closed_before: 0,
            max_span: 0,
            lateness_ms: 0,
            schema,
            deferred: false,
            unrenamed: Vec::new(),
            published: Published::new(),
            revised: false,
        }
    }

    /// Rows of windows that late readings correct for `lateness_ms` after
    /// their end: an hour is written only once its corrections are in, and
    /// files get a `revision` column.
    pub fn with_lateness(mut self, lateness_ms: u64) -> Self {
        self.lateness_ms = lateness_ms;
        self.revised = lateness_ms > 0;
        self.schema = R::schema(&self.config, self.revised);
        self
    }

    /// Leaves files under their temporary (hidden) name: a checkpoint makes
    /// them visible once it is complete (see [`ParquetWriter::take_unrenamed`]).
    pub fn with_deferred_commit(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// The files written since the last call and not renamed (with a
    /// deferred commit). They count as published from now on (see
    /// [`ParquetPart::published`]).
    pub fn take_unrenamed(&mut self) -> Vec<PendingFile> {
        if !self.unrenamed.is_empty() {
            let last = Published::from([(self.prefix.clone(), self.seq - 1)]);
            resume::merge(&mut self.published, &last);
        }
        std::mem::take(&mut self.unrenamed)
    }

    /// Adds files made visible before (restored from a checkpoint, or found
    /// at the start) to those this writer's checkpoint parts carry.
    pub fn add_published(&mut self, published: &Published) {
        resume::merge(&mut self.published, published);
    }

    /// The buffered rows of windows that ended before `frontier` (all of
    /// them for `None`): the part of a checkpoint at `frontier`. Later
    /// windows are recomputed after a restart.
    pub fn snapshot(&self, frontier: Option<u64>) -> ParquetPart<R> {
        let rows = self
            .partitions
            .values()
            .flatten()
            .filter(|r| frontier.is_none_or(|f| r.end() < f))
            .cloned()
            .collect();
        ParquetPart {
            rows,
            published: self.published.clone(),
        }
    }

    /// Buffers one aggregate in the partition of its `window_start`.
    ///
    /// An aggregate for an hour that was already closed is not lost: it is
    /// written in a further file of that partition at the next flush, and a
    /// warning is logged, because it means the input broke the promise that the
    /// frontier had passed it.
    pub fn push(&mut self, row: R) {
        let hour = row.start() / HOUR_MS;
        if hour_end(hour) <= self.closed_before {
            tracing::warn!(
                ?row,
                "Row arrived for an hour already written; it goes to an extra file"
            );
        }
        self.max_span = self.max_span.max(row.end().saturating_sub(row.start()));
        self.partitions.entry(hour).or_default().push(row);
    }

    /// Writes and closes every partition whose hour ends at or before
    /// `time_ms`, in hour order, and returns the files written.
    ///
    /// On error the files already renamed stay in place (and are counted by
    /// [`ParquetWriter::rows_written`]), the rows of the failing partition are
    /// dropped and its temporary file is removed.
    pub fn flush_before(&mut self, time_ms: u64) -> Result<Vec<PathBuf>, ParquetSinkError> {
        self.closed_before = self.closed_before.max(time_ms);
        let mut files = Vec::new();
        while let Some(entry) = self.partitions.first_entry() {
            if hour_end(*entry.key()) > time_ms {
                break;
            }
            let (hour, rows) = entry.remove_entry();
            files.extend(self.write_partition(hour, rows)?);
        }
        Ok(files)
    }

    /// Writes every partition none of whose windows can still arrive once the
    /// input frontier is at `frontier`, and returns the files written.
    ///
    /// This assumes what `window_aggregate` does: an aggregate travels under a
    /// time at most its `window_end`, and no window is longer than the longest
    /// pushed so far. A window starting in an hour then ends before
    /// `hour_end + span`, so the hour is complete once the frontier reaches
    /// `hour_end + span`: this calls
    /// [`flush_before(frontier - span)`](ParquetWriter::flush_before). It is
    /// one window later than strictly needed for windows that divide the hour,
    /// and right for windows of any length or alignment. Errors are as for
    /// [`ParquetWriter::flush_before`].
    pub fn flush_at_frontier(&mut self, frontier: u64) -> Result<Vec<PathBuf>, ParquetSinkError> {
        self.flush_before(frontier.saturating_sub(self.max_span + self.lateness_ms))
    }

    /// Writes every partition left, in hour order, and returns the files
    /// written. Errors are as for [`ParquetWriter::flush_before`].
    pub fn finish(&mut self) -> Result<Vec<PathBuf>, ParquetSinkError> {
        self.flush_before(u64::MAX)
    }

    /// Rows in files committed (renamed to their final name) so far.
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Bytes of the files written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The window end of each row written since the last call.
    pub fn take_written_ends(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.written_ends)
    }

    /// Rows buffered and not yet written.
    pub fn pending_rows(&self) -> usize {
        self.partitions.values().map(Vec::len).sum()
    }

    fn write_partition(
        &mut self,
        hour: u64,
        mut rows: Vec<R>,
    ) -> Result<Vec<PathBuf>, ParquetSinkError> {
        let start = hour * HOUR_MS;
        let time = i64::try_from(start)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| ParquetSinkError::OutOfRange {
                field: "window_start",
                value: start,
                path: PathBuf::from(self.config.dir.to_string()),
            })?;
        let partition = time.format("date=%Y-%m-%d/hour=%H").to_string();
        if let Location::Local(root) = &self.config.dir {
            let dir = root.join(&partition);
            fs::create_dir_all(&dir).map_err(|source| ParquetSinkError::Io {
                action: "create directory",
                path: dir.clone(),
                source,
            })?;
        }
        rows.sort_unstable_by(R::order);
        let mut files = Vec::new();
        for chunk in rows.chunks(self.config.max_rows_per_file.max(1)) {
            let name = format!("{}-{:06}.parquet", self.prefix, self.seq);
            let relative = format!("{partition}/{name}");
            let path = resume::path_of(&self.config.dir, &relative);
            let (bytes, pending) = match &self.config.dir {
                Location::Local(root) => self.write_local(root, &partition, &name, chunk)?,
                Location::Object(object) => self.upload(object, &relative, &name, chunk)?,
            };
            self.bytes_written += bytes;
            self.unrenamed.extend(pending);
            tracing::info!(
                file = %path.display(),
                rows = chunk.len(),
                visible = !self.deferred,
                "Parquet file written{}",
                if self.deferred { " (visible once its checkpoint completes)" } else { "" }
            );
            self.seq += 1;
            self.rows_written += chunk.len() as u64;
            self.written_ends.extend(chunk.iter().map(R::end));
            files.push(path);
        }
        Ok(files)
    }

    /// Writes `rows` as file `name` of the directory `partition` below
    /// `root`, under a hidden temporary name, and renames it into place
    /// unless a checkpoint is to. Returns its size, and the file for the
    /// checkpoint to rename.
    fn write_local(
        &self,
        root: &Path,
        partition: &str,
        name: &str,
        rows: &[R],
    ) -> Result<(u64, Option<PendingFile>), ParquetSinkError> {
        let dir = root.join(partition);
        let path = dir.join(name);
        let temp = dir.join(format!(".{name}.inprogress"));
        let io = |action, source| ParquetSinkError::Io {
            action,
            path: temp.clone(),
            source,
        };
        let written = File::create(&temp)
            .and_then(|file| full_disk_point().map(|()| file))
            .map_err(|source| io("write", source))
            .and_then(|file| self.encode(&temp, rows, file))
            .and_then(|file| file.sync_all().map_err(|source| io("sync", source)))
            .and_then(|()| {
                if self.deferred {
                    return Ok(());
                }
                fs::rename(&temp, &path).map_err(|source| io("rename into place", source))
            });
        if let Err(error) = written {
            let _ = fs::remove_file(&temp);
            return Err(error);
        }
        let written = if self.deferred { &temp } else { &path };
        let bytes = fs::metadata(written).map_or(0, |m| m.len());
        let pending = self.deferred.then(|| PendingFile {
            temp: temp.clone(),
            path: path.clone(),
            upload: None,
        });
        Ok((bytes, pending))
    }

    /// Writes `rows` as a multipart upload to `relative` below `object`, and
    /// completes it unless a checkpoint is to. An upload left open is
    /// recorded below `object` (see [`resume::remove_orphans`]), and
    /// returned for the checkpoint to complete.
    fn upload(
        &self,
        object: &ObjectLocation,
        relative: &str,
        name: &str,
        rows: &[R],
    ) -> Result<(u64, Option<PendingFile>), ParquetSinkError> {
        let url = PathBuf::from(object.url_of(relative));
        let io = |action, source| ParquetSinkError::Io {
            action,
            path: url.clone(),
            source,
        };
        let bytes = self.encode(&url, rows, Vec::new())?;
        let size = bytes.len() as u64;
        let upload = object
            .upload(relative, bytes)
            .map_err(|source| io("upload", source))?;
        if !self.deferred {
            object
                .complete(relative, &upload)
                .map_err(|source| io("complete the upload of", source))?;
            return Ok((size, None));
        }
        let marker = resume::upload_marker(name);
        let record = resume::UploadRecord {
            name: relative.to_owned(),
            id: upload.id.clone(),
        };
        let record = serde_json::to_vec(&record).expect("an upload record encodes");
        object
            .put(&marker, record)
            .map_err(|source| io("record the upload of", source))?;
        let pending = PendingFile {
            temp: url.clone(),
            path: url.clone(),
            upload: Some(PendingUpload {
                root: object.url().to_owned(),
                name: relative.to_owned(),
                marker,
                upload,
            }),
        };
        Ok((size, Some(pending)))
    }

    /// Encodes `rows` as a Parquet file into `out` (named `path` in errors).
    fn encode<W: std::io::Write + Send>(
        &self,
        path: &Path,
        rows: &[R],
        out: W,
    ) -> Result<W, ParquetSinkError> {
        let parquet_error = |source| ParquetSinkError::Parquet {
            path: path.to_owned(),
            source,
        };
        let batch = self.record_batch(path, rows)?;
        let compression = match self.config.compression {
            ParquetCompression::Zstd(level) => {
                Compression::ZSTD(ZstdLevel::try_new(level).map_err(parquet_error)?)
            }
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
        };
        let properties = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.config.row_group_rows.max(1)))
            .build();
        let mut writer = ArrowWriter::try_new(out, Arc::clone(&self.schema), Some(properties))
            .map_err(parquet_error)?;
        writer.write(&batch).map_err(parquet_error)?;
        writer.into_inner().map_err(parquet_error)
    }

    fn record_batch(&self, path: &Path, rows: &[R]) -> Result<RecordBatch, ParquetSinkError> {
        let columns = R::columns(rows, &self.config, self.revised, path)?;
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|source| {
            ParquetSinkError::Arrow {
                path: path.to_owned(),
                source,
            }
        })
    }
}

/// End of hour `hour` in ms, saturating.
fn hour_end(hour: u64) -> u64 {
    (hour + 1).saturating_mul(HOUR_MS)
}
