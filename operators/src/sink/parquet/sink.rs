//! Writes window aggregates to Parquet files partitioned by the hour of their
//! window start, closing an hour once the frontier shows all its windows arrived.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::error::Error;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use ::parquet::basic::{Compression, ZstdLevel};
use ::parquet::errors::ParquetError;
use ::parquet::file::properties::WriterProperties;
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::DateTime;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::Stream;

use serde::{Deserialize, Serialize};

use super::resume::{self, Published};
use super::{ParquetCompression, ParquetSinkConfig};
use crate::checkpoint::PendingFile;
use crate::metrics::Metrics;
use crate::reading::WindowAggregate;
use crate::run::{checkpointed_sink, Env, SinkEvent};

/// One hour in milliseconds: the span of a partition.
const HOUR_MS: u64 = 3_600_000;

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

/// The Arrow schema of the files: one row per (device, sensor, window), no
/// nullable column. Timestamps are milliseconds in UTC and `count` is an
/// `Int64`, so that DuckDB, pyarrow and Spark read the files without help.
pub fn window_aggregate_schema() -> SchemaRef {
    let timestamp = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("device_id", DataType::Utf8, false),
        Field::new("sensor", DataType::Utf8, false),
        Field::new("window_start", timestamp.clone(), false),
        Field::new("window_end", timestamp, false),
        Field::new("count", DataType::Int64, false),
        Field::new("min", DataType::Float64, false),
        Field::new("max", DataType::Float64, false),
        Field::new("mean", DataType::Float64, false),
        Field::new("sum", DataType::Float64, false),
    ]))
}

/// Buffers window aggregates by Hive partition and writes each partition as
/// Parquet files once it is complete. It knows nothing of timely: the
/// [`ParquetSink`] operator drives it from the frontier.
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
pub struct ParquetWriter {
    config: ParquetSinkConfig,
    prefix: String,
    /// Pending rows by hour index (`window_start / HOUR_MS`).
    partitions: BTreeMap<u64, Vec<WindowAggregate>>,
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
    schema: SchemaRef,
    /// With checkpoints: files are left under their temporary name, for the
    /// checkpoint that covers them to rename.
    deferred: bool,
    /// Files written and not renamed yet (deferred commits only).
    unrenamed: Vec<PendingFile>,
    /// The files checkpoints made visible, carried from checkpoint to
    /// checkpoint (deferred commits only).
    published: Published,
}

/// A Parquet sink's part of a checkpoint: the rows it holds that are not in
/// a file yet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParquetPart {
    /// Buffered rows of windows that ended before the checkpoint's frontier.
    pub rows: Vec<WindowAggregate>,
    /// The files made visible by this checkpoint and every earlier one, or
    /// found at the start of the run that took the first: a resume that finds
    /// a visible file beyond them is refused (see [`super::resume`]).
    pub published: Published,
}

impl ParquetWriter {
    /// A writer of files below `config.dir`, named after `file_prefix`, which
    /// must be unique per worker and run (for example `part-<run_id>-w<worker>`)
    /// so that writers never overwrite each other's files.
    pub fn new(config: ParquetSinkConfig, file_prefix: String) -> Self {
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
            schema: window_aggregate_schema(),
            deferred: false,
            unrenamed: Vec::new(),
            published: Published::new(),
        }
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
    pub fn snapshot(&self, frontier: Option<u64>) -> ParquetPart {
        let rows = self
            .partitions
            .values()
            .flatten()
            .filter(|r| frontier.is_none_or(|f| r.window_end < f))
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
    pub fn push(&mut self, agg: WindowAggregate) {
        let hour = agg.window_start / HOUR_MS;
        if hour_end(hour) <= self.closed_before {
            tracing::warn!(
                device = %agg.device,
                sensor = %agg.sensor,
                window_start = agg.window_start,
                "Window aggregate arrived for an hour already written; it goes to an extra file"
            );
        }
        self.max_span = self
            .max_span
            .max(agg.window_end.saturating_sub(agg.window_start));
        self.partitions.entry(hour).or_default().push(agg);
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
        self.flush_before(frontier.saturating_sub(self.max_span))
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
        mut rows: Vec<WindowAggregate>,
    ) -> Result<Vec<PathBuf>, ParquetSinkError> {
        let start = hour * HOUR_MS;
        let time = i64::try_from(start)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| ParquetSinkError::OutOfRange {
                field: "window_start",
                value: start,
                path: self.config.dir.clone(),
            })?;
        let dir = self
            .config
            .dir
            .join(time.format("date=%Y-%m-%d/hour=%H").to_string());
        fs::create_dir_all(&dir).map_err(|source| ParquetSinkError::Io {
            action: "create directory",
            path: dir.clone(),
            source,
        })?;
        rows.sort_unstable_by(row_order);
        let mut files = Vec::new();
        for chunk in rows.chunks(self.config.max_rows_per_file.max(1)) {
            let name = format!("{}-{:06}.parquet", self.prefix, self.seq);
            let path = dir.join(&name);
            let temp = dir.join(format!(".{name}.inprogress"));
            let written = self.write_file(&temp, chunk).and_then(|()| {
                if self.deferred {
                    return Ok(());
                }
                fs::rename(&temp, &path).map_err(|source| ParquetSinkError::Io {
                    action: "rename into place",
                    path: temp.clone(),
                    source,
                })
            });
            if let Err(error) = written {
                let _ = fs::remove_file(&temp);
                return Err(error);
            }
            let written = if self.deferred { &temp } else { &path };
            self.bytes_written += fs::metadata(written).map_or(0, |m| m.len());
            if self.deferred {
                self.unrenamed.push(PendingFile {
                    temp,
                    path: path.clone(),
                });
            }
            tracing::info!(
                file = %path.display(),
                rows = chunk.len(),
                visible = !self.deferred,
                "Parquet file written{}",
                if self.deferred { " (visible once its checkpoint completes)" } else { "" }
            );
            self.seq += 1;
            self.rows_written += chunk.len() as u64;
            self.written_ends.extend(chunk.iter().map(|r| r.window_end));
            files.push(path);
        }
        Ok(files)
    }

    fn write_file(&self, path: &Path, rows: &[WindowAggregate]) -> Result<(), ParquetSinkError> {
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
        let file = File::create(path)
            .and_then(|file| full_disk_point().map(|()| file))
            .map_err(|source| ParquetSinkError::Io {
                action: "write",
                path: path.to_owned(),
                source,
            })?;
        let mut writer = ArrowWriter::try_new(file, Arc::clone(&self.schema), Some(properties))
            .map_err(parquet_error)?;
        writer.write(&batch).map_err(parquet_error)?;
        let file = writer.into_inner().map_err(parquet_error)?;
        file.sync_all().map_err(|source| ParquetSinkError::Io {
            action: "sync",
            path: path.to_owned(),
            source,
        })
    }

    fn record_batch(
        &self,
        path: &Path,
        rows: &[WindowAggregate],
    ) -> Result<RecordBatch, ParquetSinkError> {
        let to_i64 = |field: &'static str, value: u64| {
            i64::try_from(value).map_err(|_| ParquetSinkError::OutOfRange {
                field,
                value,
                path: path.to_owned(),
            })
        };
        let column = |field: &'static str, get: fn(&WindowAggregate) -> u64| {
            rows.iter()
                .map(|r| to_i64(field, get(r)))
                .collect::<Result<Vec<_>, _>>()
        };
        let floats = |get: fn(&WindowAggregate) -> f64| {
            Arc::new(rows.iter().map(get).collect::<Float64Array>()) as ArrayRef
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.device.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.sensor.as_str()),
            )),
            Arc::new(
                TimestampMillisecondArray::from(column("window_start", |r| r.window_start)?)
                    .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMillisecondArray::from(column("window_end", |r| r.window_end)?)
                    .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from(column("count", |r| r.count)?)),
            floats(|r| r.min),
            floats(|r| r.max),
            floats(WindowAggregate::mean),
            floats(|r| r.sum),
        ];
        RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(|source| {
            ParquetSinkError::Arrow {
                path: path.to_owned(),
                source,
            }
        })
    }
}

/// For tests of a full disk where none can be mounted, built with the
/// `failpoints` feature only: with the fail point `parquet-full-disk` set to
/// `return`, every Parquet file fails to be written as on a full file system
/// (`ENOSPC`). Does nothing otherwise.
fn full_disk_point() -> std::io::Result<()> {
    #[cfg(feature = "failpoints")]
    if fail::eval("parquet-full-disk", |_| ()).is_some() {
        return Err(std::io::Error::from_raw_os_error(28));
    }
    Ok(())
}

/// End of hour `hour` in ms, saturating.
fn hour_end(hour: u64) -> u64 {
    (hour + 1).saturating_mul(HOUR_MS)
}

/// The order of rows in a file: (window_start, device, sensor), then every
/// other field, so that it is total and the bytes never depend on arrival order.
fn row_order(a: &WindowAggregate, b: &WindowAggregate) -> Ordering {
    (a.window_start, &a.device, &a.sensor, a.window_end, a.count)
        .cmp(&(b.window_start, &b.device, &b.sensor, b.window_end, b.count))
        .then(a.min.total_cmp(&b.min))
        .then(a.max.total_cmp(&b.max))
        .then(a.sum.total_cmp(&b.sum))
}

/// An error with its chain of causes, on one line.
fn error_chain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Writes a stream of window aggregates to Parquet files.
pub trait ParquetSink<'scope> {
    /// Writes the aggregates of this worker below `config.dir`, one Hive
    /// partition per hour of `window_start` (see [`ParquetWriter`] for names
    /// and order), named after [`Env::file_prefix`], unique per worker and
    /// run. When the run's outputs go to local files ([`crate::RunIo::out`]),
    /// below `OUT/windows` instead.
    ///
    /// Aggregates must travel under a time at most their `window_end`, as
    /// `window_aggregate` emits them. An hour is written once no window starting
    /// in it can still arrive, that is once the input frontier reaches the end
    /// of the hour plus the longest window seen (see
    /// [`ParquetWriter::flush_at_frontier`]); whatever is left is written when
    /// the input ends. Each
    /// committed file is recorded with [`Metrics::add_file`] and its rows in
    /// `metrics.parquet_rows`. On the first failure the error is recorded with
    /// [`RunControl::add_error`](crate::RunControl::add_error) (which logs it) and the sink writes nothing more;
    /// it never panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    /// use timely::dataflow::operators::ToStream;
    /// use weir_operators::parquet::{ParquetSink, ParquetSinkConfig};
    /// use weir_operators::{Env, Metrics, Run, WindowAggregate};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let config = ParquetSinkConfig::new(dir.path());
    /// let run = Run::default();
    /// let sink_run = run.clone();
    ///
    /// timely::example(move |scope| {
    ///     // Minute windows of 2026-11-22, from 10:59 and 11:00 UTC.
    ///     let agg = |device: &str, window_start: u64| WindowAggregate {
    ///         device: device.into(),
    ///         sensor: "temp".into(),
    ///         window_start,
    ///         window_end: window_start + 60_000,
    ///         count: 2,
    ///         min: 20.0,
    ///         max: 22.0,
    ///         sum: 42.0,
    ///     };
    ///     vec![agg("press-2", 1_795_345_140_000), agg("press-1", 1_795_345_140_000), agg("press-1", 1_795_345_200_000)]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .parquet_sink(config, &Env::new(scope, sink_run, "run1", None));
    /// });
    ///
    /// assert!(run.control.errors().is_empty());
    /// assert_eq!(Metrics::get(&run.metrics.parquet_rows), 3);
    /// let files = run.metrics.files();
    /// assert_eq!(files[0], dir.path().join("date=2026-11-22/hour=10/part-run1-w0-000000.parquet"));
    /// assert_eq!(files[1], dir.path().join("date=2026-11-22/hour=11/part-run1-w0-000001.parquet"));
    ///
    /// let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&files[0]).unwrap())
    ///     .unwrap()
    ///     .build()
    ///     .unwrap();
    /// let rows: usize = reader.map(|batch| batch.unwrap().num_rows()).sum();
    /// assert_eq!(rows, 2);
    /// ```
    fn parquet_sink(self, config: ParquetSinkConfig, env: &Env<'scope>);
}

impl<'scope> ParquetSink<'scope> for crate::Windows<'scope> {
    fn parquet_sink(self, config: ParquetSinkConfig, env: &Env<'scope>) {
        self.stream.parquet_sink(config, env)
    }
}

impl<'scope> ParquetSink<'scope> for Stream<'scope, u64, Vec<WindowAggregate>> {
    fn parquet_sink(self, mut config: ParquetSinkConfig, env: &Env<'scope>) {
        if let Some(out) = &crate::connect::RunIo::of(env).out {
            config.dir = out.join("windows");
        }
        let run = env.run().clone();
        let (participant, markers) = env.participant("parquet");
        let checkpointing = env.checkpointing();
        let dir = config.dir.clone();
        let mut writer = ParquetWriter::new(config, env.file_prefix());
        // The first failure: the sink then writes nothing more, and fails
        // every checkpoint, so none completes without its rows.
        let mut failure: Option<String> = None;
        if checkpointing {
            writer = writer.with_deferred_commit();
            let (worker, peers) = (self.scope().index(), self.scope().peers());
            if let Err(e) = resume::remove_orphans(&dir, &env.file_prefix(), worker, peers) {
                failure = Some(format!("Parquet sink: {e}"));
            }
            let parts = env.restored::<ParquetPart>(participant.op());
            if worker == 0 && failure.is_none() {
                if let Err(error) = check_published(&dir, &parts, env, &mut writer) {
                    failure = Some(format!("Parquet sink: {error}"));
                }
            }
            for part in parts.into_iter().skip(worker).step_by(peers) {
                writer.add_published(&part.published);
                part.rows.into_iter().for_each(|row| writer.push(row));
            }
        }
        if let Some(error) = &failure {
            run.control.add_error(error.clone());
        }
        let range = crate::connect::RunIo::of(env).range;
        let stream = env.register_sink(self);
        checkpointed_sink(
            stream,
            Pipeline,
            "ParquetSink",
            markers,
            run.clone(),
            move |event| {
                if let Some(error) = &failure {
                    // Consume and drop the input; no checkpoint completes.
                    if let SinkEvent::Marker(marker) = event {
                        participant.fail(&marker, error.clone());
                    }
                    return;
                }
                let before = (writer.rows_written(), writer.bytes_written());
                let result = match event {
                    SinkEvent::Data(_, data) => {
                        data.drain(..)
                            .filter(|a| {
                                range.is_none_or(|(from, to)| {
                                    a.window_start >= from && a.window_end <= to
                                })
                            })
                            .for_each(|agg| writer.push(agg));
                        return;
                    }
                    SinkEvent::Marker(marker) => {
                        let result = match marker.until() {
                            Some(f) => writer.flush_at_frontier(f),
                            None => writer.finish(),
                        };
                        match &result {
                            Ok(_) => {
                                // The files first: the part counts them as published.
                                let files = writer.take_unrenamed();
                                let part = writer.snapshot(marker.until());
                                participant.write(&marker, &part, files);
                            }
                            // Every marker gets its answer, or the checkpoint
                            // (and the run) would wait for it forever.
                            Err(error) => participant.fail(&marker, failed(error)),
                        }
                        result
                    }
                    // A stop with checkpoints: the rows stay in the checkpoint.
                    SinkEvent::Frontier(None) if checkpointing && run.control.stop_requested() => {
                        return;
                    }
                    SinkEvent::Frontier(None) => writer.finish(),
                    SinkEvent::Frontier(Some(time)) => writer.flush_at_frontier(time),
                };
                let m = &run.metrics;
                Metrics::add(&m.parquet_rows, writer.rows_written() - before.0);
                Metrics::add(&m.parquet_bytes, writer.bytes_written() - before.1);
                let ends = writer.take_written_ends();
                m.observe_since_arrival(
                    &m.window_latency,
                    ends.into_iter().map(|e| e.saturating_sub(1)),
                );
                match result {
                    Ok(files) => files
                        .into_iter()
                        .for_each(|file| run.metrics.add_file(file)),
                    Err(error) => {
                        let message = failed(&error);
                        run.control.add_error(message.clone());
                        failure = Some(message);
                    }
                }
            },
        );
    }
}

/// The pipeline error of a failed write.
fn failed(error: &ParquetSinkError) -> String {
    format!("Parquet sink: {}", error_chain(error))
}

/// Worker 0's check of the directory at the start of a checkpointed run.
/// On a resume, every visible file must be one the restored checkpoint's
/// parts account for; otherwise a later checkpoint made it visible and its
/// manifest is gone, and resuming would write its rows again. On a fresh
/// start, the files already there are adopted, so that later resumes
/// account for them.
fn check_published(
    dir: &Path,
    parts: &[ParquetPart],
    env: &Env<'_>,
    writer: &mut ParquetWriter,
) -> Result<(), String> {
    let Some(id) = env.restored_checkpoint() else {
        let found =
            resume::adopt(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        writer.add_published(&found);
        return Ok(());
    };
    let mut known = Published::new();
    parts
        .iter()
        .for_each(|p| resume::merge(&mut known, &p.published));
    let extra = resume::unaccounted(dir, &known)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    if extra.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = extra
        .iter()
        .take(5)
        .map(|p| p.display().to_string())
        .collect();
    Err(format!(
        "{} holds {} file(s) that no checkpoint up to checkpoint {id}, the one this run resumes \
         from, made visible ({}{}): a later checkpoint published them and its manifest is \
         missing from the checkpoint directory. Resuming would write their rows a second time. \
         Restore the missing manifest, or move the Parquet files aside and start over with \
         --from-scratch",
        dir.display(),
        extra.len(),
        shown.join(", "),
        if extra.len() > shown.len() {
            ", ..."
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use ::parquet::file::reader::{FileReader, SerializedFileReader};
    use arrow_array::Array;
    use timely::dataflow::operators::Input;

    use super::*;
    use crate::Run;

    /// 2026-11-22T10:00:00Z, worked out with `date -u -d 2026-11-22T10:00:00Z +%s`.
    const H10: u64 = 1_795_341_600_000;
    /// 2026-11-22T11:00:00Z.
    const H11: u64 = H10 + HOUR_MS;
    /// 2026-11-22T12:00:00Z.
    const H12: u64 = H11 + HOUR_MS;
    const MINUTE: u64 = 60_000;

    fn agg(
        device: &str,
        sensor: &str,
        window_start: u64,
        count: u64,
        min: f64,
        max: f64,
        sum: f64,
    ) -> WindowAggregate {
        WindowAggregate {
            device: device.into(),
            sensor: sensor.into(),
            window_start,
            window_end: window_start + MINUTE,
            count,
            min,
            max,
            sum,
        }
    }

    fn writer(dir: &Path) -> ParquetWriter {
        ParquetWriter::new(ParquetSinkConfig::new(dir), "part-r1-w0".to_owned())
    }

    /// Every file below `dir`, as paths relative to it, sorted.
    fn tree(dir: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    out.push(
                        path.strip_prefix(root)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    /// The rows of a small file, which the reader returns as one batch.
    fn read(path: &Path) -> RecordBatch {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let mut batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1, "{}", path.display());
        batches.remove(0)
    }

    fn strings(batch: &RecordBatch, name: &str) -> Vec<String> {
        let column = batch.column_by_name(name).unwrap();
        let array = column.as_any().downcast_ref::<StringArray>().unwrap();
        array.iter().map(|s| s.unwrap().to_owned()).collect()
    }

    fn timestamps(batch: &RecordBatch, name: &str) -> Vec<i64> {
        let column = batch.column_by_name(name).unwrap();
        column
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .unwrap()
            .values()
            .to_vec()
    }

    fn floats(batch: &RecordBatch, name: &str) -> Vec<f64> {
        let column = batch.column_by_name(name).unwrap();
        column
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    #[test]
    fn rows_of_two_hours_land_in_two_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        w.push(agg("d1", "temp", H11, 1, 1.0, 1.0, 1.0)); // 11:00
        w.push(agg("d1", "temp", H11 - MINUTE, 1, 1.0, 1.0, 1.0)); // 10:59
        w.push(agg("d2", "temp", H10, 1, 1.0, 1.0, 1.0)); // 10:00
        let files = w.finish().unwrap();
        let root = dir.path();
        assert_eq!(
            files,
            vec![
                root.join("date=2026-11-22/hour=10/part-r1-w0-000000.parquet"),
                root.join("date=2026-11-22/hour=11/part-r1-w0-000001.parquet"),
            ]
        );
        assert_eq!(
            tree(root),
            vec![
                "date=2026-11-22/hour=10/part-r1-w0-000000.parquet",
                "date=2026-11-22/hour=11/part-r1-w0-000001.parquet",
            ]
        );
        assert_eq!(read(&files[0]).num_rows(), 2);
        assert_eq!(read(&files[1]).num_rows(), 1);
        assert_eq!(w.rows_written(), 3);
        assert_eq!(w.pending_rows(), 0);
    }

    #[test]
    fn the_day_changes_at_midnight_utc() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        // 2026-11-22T23:59:00Z and 2026-11-23T00:00:00Z.
        let midnight = H10 + 14 * HOUR_MS;
        w.push(agg("d", "s", midnight - MINUTE, 1, 0.0, 0.0, 0.0));
        w.push(agg("d", "s", midnight, 1, 0.0, 0.0, 0.0));
        w.finish().unwrap();
        assert_eq!(
            tree(dir.path()),
            vec![
                "date=2026-11-22/hour=23/part-r1-w0-000000.parquet",
                "date=2026-11-23/hour=00/part-r1-w0-000001.parquet",
            ]
        );
    }

    #[test]
    fn flush_before_closes_only_hours_that_have_ended() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        w.push(agg("d", "s", H10 + 30 * MINUTE, 1, 0.0, 0.0, 0.0));
        w.push(agg("d", "s", H11 + 59 * MINUTE, 1, 0.0, 0.0, 0.0));
        assert_eq!(w.flush_before(H10).unwrap(), Vec::<PathBuf>::new());
        assert_eq!(w.flush_before(H11 - 1).unwrap(), Vec::<PathBuf>::new());
        assert!(tree(dir.path()).is_empty());

        let files = w.flush_before(H11).unwrap();
        assert_eq!(
            files,
            vec![dir
                .path()
                .join("date=2026-11-22/hour=10/part-r1-w0-000000.parquet")]
        );
        assert_eq!((w.rows_written(), w.pending_rows()), (1, 1));

        assert_eq!(w.flush_before(H12 - 1).unwrap(), Vec::<PathBuf>::new());
        let files = w.flush_before(H12).unwrap();
        assert_eq!(
            files,
            vec![dir
                .path()
                .join("date=2026-11-22/hour=11/part-r1-w0-000001.parquet")]
        );
        assert_eq!(w.finish().unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_late_row_for_a_closed_hour_goes_to_an_extra_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        w.push(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
        w.flush_before(H11).unwrap();
        w.push(agg("d", "s", H10 + MINUTE, 1, 0.0, 0.0, 0.0));
        w.flush_before(H11).unwrap();
        assert_eq!(
            tree(dir.path()),
            vec![
                "date=2026-11-22/hour=10/part-r1-w0-000000.parquet",
                "date=2026-11-22/hour=10/part-r1-w0-000001.parquet",
            ]
        );
    }

    #[test]
    fn reads_back_with_the_documented_schema_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        w.push(agg("press-7", "temp", H10 + MINUTE, 4, -1.5, 2.5, 3.0));
        w.push(agg("press-7", "rpm", H10, 2, 100.0, 300.0, 400.0));
        let files = w.finish().unwrap();
        let batch = read(&files[0]);

        let schema = batch.schema();
        let columns: Vec<(&str, &DataType, bool)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type(), f.is_nullable()))
            .collect();
        let utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        assert_eq!(
            columns,
            vec![
                ("device_id", &DataType::Utf8, false),
                ("sensor", &DataType::Utf8, false),
                ("window_start", &utc, false),
                ("window_end", &utc, false),
                ("count", &DataType::Int64, false),
                ("min", &DataType::Float64, false),
                ("max", &DataType::Float64, false),
                ("mean", &DataType::Float64, false),
                ("sum", &DataType::Float64, false),
            ]
        );

        // Sorted by window_start: the 10:00 rpm window comes first.
        assert_eq!(strings(&batch, "device_id"), ["press-7", "press-7"]);
        assert_eq!(strings(&batch, "sensor"), ["rpm", "temp"]);
        assert_eq!(
            timestamps(&batch, "window_start"),
            [1_795_341_600_000, 1_795_341_660_000]
        );
        assert_eq!(
            timestamps(&batch, "window_end"),
            [1_795_341_660_000, 1_795_341_720_000]
        );
        let count = batch.column_by_name("count").unwrap();
        assert_eq!(
            count
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .values()
                .to_vec(),
            [2, 4]
        );
        assert_eq!(floats(&batch, "min"), [100.0, -1.5]);
        assert_eq!(floats(&batch, "max"), [300.0, 2.5]);
        assert_eq!(floats(&batch, "mean"), [200.0, 0.75]);
        assert_eq!(floats(&batch, "sum"), [400.0, 3.0]);
        assert_eq!(batch.column_by_name("min").unwrap().null_count(), 0);
    }

    #[test]
    fn rows_are_sorted_and_bytes_do_not_depend_on_arrival_order() {
        let rows = [
            agg("b", "temp", H10 + MINUTE, 1, 1.0, 1.0, 1.0),
            agg("a", "temp", H10 + MINUTE, 1, 2.0, 2.0, 2.0),
            agg("b", "rpm", H10, 1, 3.0, 3.0, 3.0),
            agg("a", "temp", H10, 1, 4.0, 4.0, 4.0),
            agg("a", "rpm", H10, 1, 5.0, 5.0, 5.0),
        ];
        let first = tempfile::tempdir().unwrap();
        let second = tempfile::tempdir().unwrap();
        let mut w1 = writer(first.path());
        let mut w2 = writer(second.path());
        rows.iter().cloned().for_each(|r| w1.push(r));
        rows.iter().rev().cloned().for_each(|r| w2.push(r));
        let f1 = w1.finish().unwrap();
        let f2 = w2.finish().unwrap();
        assert_eq!((f1.len(), f2.len()), (1, 1));

        let batch = read(&f1[0]);
        assert_eq!(strings(&batch, "device_id"), ["a", "a", "b", "a", "b"]);
        assert_eq!(
            strings(&batch, "sensor"),
            ["rpm", "temp", "rpm", "temp", "temp"]
        );
        assert_eq!(floats(&batch, "sum"), [5.0, 4.0, 3.0, 2.0, 1.0]);
        assert_eq!(fs::read(&f1[0]).unwrap(), fs::read(&f2[0]).unwrap());
    }

    #[test]
    fn a_big_partition_is_split_into_files_and_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ParquetSinkConfig::new(dir.path());
        config.max_rows_per_file = 3;
        config.row_group_rows = 2;
        config.compression = ParquetCompression::Snappy;
        let mut w = ParquetWriter::new(config, "p".to_owned());
        for i in 0..7 {
            w.push(agg("d", "s", H10 + i * MINUTE, 1, 0.0, 0.0, i as f64));
        }
        let files = w.finish().unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["p-000000.parquet", "p-000001.parquet", "p-000002.parquet"]
        );
        let shape = |path: &Path| {
            let metadata = SerializedFileReader::new(File::open(path).unwrap())
                .unwrap()
                .metadata()
                .clone();
            let groups: Vec<i64> = metadata.row_groups().iter().map(|g| g.num_rows()).collect();
            (groups, metadata.row_group(0).column(0).compression())
        };
        assert_eq!(shape(&files[0]), (vec![2, 1], Compression::SNAPPY));
        assert_eq!(shape(&files[2]), (vec![1], Compression::SNAPPY));
        // The split keeps the sort order across files.
        assert_eq!(floats(&read(&files[1]), "sum"), [3.0, 4.0, 5.0]);
    }

    #[test]
    fn no_temporary_file_remains() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        for hour in 0..3 {
            w.push(agg("d", "s", H10 + hour * HOUR_MS, 1, 0.0, 0.0, 0.0));
        }
        w.flush_before(H11).unwrap();
        w.finish().unwrap();
        let files = tree(dir.path());
        assert_eq!(files.len(), 3);
        assert!(
            files
                .iter()
                .all(|f| !f.contains("/.") && !f.ends_with(".inprogress")),
            "{files:?}"
        );
    }

    #[test]
    fn an_io_error_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        fs::write(&blocker, b"").unwrap();
        let mut w = writer(&blocker);
        w.push(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
        let error = w.finish().unwrap_err();
        assert!(
            matches!(
                &error,
                ParquetSinkError::Io {
                    action: "create directory",
                    ..
                }
            ),
            "{error:?}"
        );
        let expected = format!(
            "cannot create directory {}",
            blocker.join("date=2026-11-22/hour=10").display()
        );
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn a_bad_zstd_level_is_an_error_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ParquetSinkConfig::new(dir.path());
        config.compression = ParquetCompression::Zstd(99);
        let mut w = ParquetWriter::new(config, "p".to_owned());
        w.push(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
        assert!(matches!(w.finish(), Err(ParquetSinkError::Parquet { .. })));
        assert!(tree(dir.path()).is_empty());
    }

    #[test]
    fn flush_at_frontier_waits_for_the_last_window_of_the_hour() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        // One-minute windows, which travel at their window_end.
        w.push(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
        // The window [10:59, 11:00) may still come at time 11:00.
        assert_eq!(w.flush_at_frontier(H11).unwrap(), Vec::<PathBuf>::new());
        w.push(agg("d", "s", H11 - MINUTE, 1, 0.0, 0.0, 0.0));
        assert_eq!(
            w.flush_at_frontier(H11 + MINUTE - 1).unwrap(),
            Vec::<PathBuf>::new()
        );
        let files = w.flush_at_frontier(H11 + MINUTE).unwrap();
        assert_eq!(
            files,
            vec![dir
                .path()
                .join("date=2026-11-22/hour=10/part-r1-w0-000000.parquet")]
        );
        assert_eq!(read(&files[0]).num_rows(), 2);
    }

    #[test]
    fn the_operator_writes_an_hour_once_its_last_window_has_arrived() {
        let dir = tempfile::tempdir().unwrap();
        let config = ParquetSinkConfig::new(dir.path());
        let run = Run::default();
        let (m, r) = (Arc::clone(&run.metrics), run.clone());
        let root = dir.path().to_owned();
        timely::execute_directly(move |worker| {
            let mut input = worker.dataflow(|scope| {
                let (input, stream) = scope.new_input::<Vec<WindowAggregate>>();
                stream.parquet_sink(config, &Env::new(scope, r.clone(), "r1", None));
                input
            });
            // Each aggregate at its window_end, as `window_aggregate` sends it.
            input.advance_to(H10 + MINUTE);
            input.send(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
            input.advance_to(H11);
            for _ in 0..20 {
                worker.step();
            }
            assert!(
                m.files().is_empty(),
                "hour 10 closed before its last window"
            );
            input.send(agg("d", "s", H11 - MINUTE, 1, 0.0, 0.0, 0.0));
            input.advance_to(H11 + MINUTE);
            input.send(agg("d", "s", H11, 1, 0.0, 0.0, 0.0));
            input.advance_to(H11 + 2 * MINUTE);
            for _ in 0..100 {
                if !m.files().is_empty() {
                    break;
                }
                worker.step();
            }
            // Hour 10 is complete, hour 11 is still open.
            assert_eq!(
                m.files(),
                vec![root.join("date=2026-11-22/hour=10/part-r1-w0-000000.parquet")]
            );
            assert_eq!(Metrics::get(&m.parquet_rows), 2);
        });
        // The input has ended: the rest is written.
        assert!(run.control.errors().is_empty());
        assert_eq!(run.metrics.files().len(), 2);
        assert!(
            run.metrics.files()[1].ends_with("date=2026-11-22/hour=11/part-r1-w0-000001.parquet")
        );
        assert_eq!(Metrics::get(&run.metrics.parquet_rows), 3);
    }

    #[test]
    fn the_operator_records_a_failure_and_does_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        fs::write(&blocker, b"").unwrap();
        let config = ParquetSinkConfig::new(&blocker);
        let run = Run::default();
        let r = run.clone();
        timely::execute_directly(move |worker| {
            let mut input = worker.dataflow(|scope| {
                let (input, stream) = scope.new_input::<Vec<WindowAggregate>>();
                stream.parquet_sink(config, &Env::new(scope, r, "p", None));
                input
            });
            input.send(agg("d", "s", H10, 1, 0.0, 0.0, 0.0));
            input.advance_to(H11);
            input.send(agg("d", "s", H11, 1, 0.0, 0.0, 0.0));
        });
        let errors = run.control.errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("Parquet sink: cannot create directory "),
            "{errors:?}"
        );
        assert!(run.metrics.files().is_empty());
    }
}
