//! Writes window aggregates to Parquet files partitioned by the hour of their
//! window start, closing an hour once the frontier shows all its windows arrived.

use std::error::Error;
use std::path::PathBuf;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::Stream;

use super::resume::{self, Published};
pub use super::row::{window_aggregate_schema, window_aggregate_schema_with, ParquetRow};
pub use super::writer::{ParquetPart, ParquetSinkError, ParquetWriter};
use super::ParquetSinkConfig;
use crate::checkpoint::Marker;
use crate::reading::WindowAggregate;
use crate::run::{checkpointed_sink, Env, Participant, Run, SinkEvent};
use crate::storage::Location;

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
    /// run.
    ///
    /// Aggregates must travel under a time at most their `window_end`, as
    /// `window_aggregate` emits them. An hour is written once no window starting
    /// in it can still arrive, that is once the input frontier reaches the end
    /// of the hour plus the longest window seen (see
    /// [`ParquetWriter::flush_at_frontier`]); whatever is left is written when
    /// the input ends. Each
    /// committed file is recorded with [`Metrics::add_file`](crate::metrics::Metrics::add_file) and its rows in
    /// `metrics.parquet_rows`. On the first failure the error is recorded with
    /// [`RunControl::add_error`](crate::RunControl::add_error) (which logs it) and the sink writes nothing more;
    /// it never panics.
    ///
    /// The files' columns are those of `config.stats`
    /// ([`window_aggregate_schema_with`]); for a [`Windows`](crate::Windows)
    /// stream, those of its windows' statistics.
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
    ///         revision: 0,
    ///         extra: Vec::new(),
    ///     };
    ///     vec![agg("press-2", 1_795_345_140_000), agg("press-1", 1_795_345_140_000), agg("press-1", 1_795_345_200_000)]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .parquet_sink(config, &Env::new(scope, sink_run, "run1", None));
    /// });
    ///
    /// assert!(run.control.errors().is_empty());
    /// assert_eq!(run.metrics.parquet_rows.get(), 3);
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

/// Rows of windows that late readings correct get a `revision` column, and
/// an hour is written once the frontier passed its corrections too.
impl<'scope> ParquetSink<'scope> for crate::Windows<'scope> {
    fn parquet_sink(self, mut config: ParquetSinkConfig, env: &Env<'scope>) {
        config.stats = self.stats;
        sink(self.stream, config, self.allowed_lateness_ms, env)
    }
}

impl<'scope> ParquetSink<'scope> for Stream<'scope, u64, Vec<WindowAggregate>> {
    fn parquet_sink(self, config: ParquetSinkConfig, env: &Env<'scope>) {
        sink(self, config, 0, env)
    }
}

/// The alarm system's health events, one row per event
/// ([`HealthRow`](crate::record::HealthRow)) in the hour of its event time.
impl<'scope> ParquetSink<'scope> for Stream<'scope, u64, Vec<crate::record::HealthEvent>> {
    fn parquet_sink(self, config: ParquetSinkConfig, env: &Env<'scope>) {
        use timely::dataflow::operators::vec::Map;
        let rows = self.map(|e| crate::record::HealthRow::from(&e));
        sink(rows, config, 0, env)
    }
}

/// The Parquet sink of `rows`, of windows corrected for `lateness_ms`.
/// Writes `rows` as Parquet files below `config.dir`, in hours of their
/// start, with checkpoints when the run takes them.
pub(crate) fn sink<'scope, R: ParquetRow + timely::ExchangeData>(
    rows: Stream<'scope, u64, Vec<R>>,
    config: ParquetSinkConfig,
    lateness_ms: u64,
    env: &Env<'scope>,
) {
    let run = env.run().clone();
    let (participant, markers) = env.participant("parquet");
    let peers = (rows.scope().index(), rows.scope().peers());
    let (writer, failure) = open_writer::<R>(config, env, participant.op(), peers);
    let writer = writer.with_lateness(lateness_ms);
    if let Some(error) = &failure {
        run.control.add_error(error.clone());
    }
    let mut operator = Operator {
        writer,
        failure,
        participant,
        run: run.clone(),
        checkpointing: env.checkpointing(),
        range: crate::connect::RunIo::of(env).range,
        held: Vec::new(),
    };
    let stream = env.register_sink(rows);
    checkpointed_sink(
        stream,
        Pipeline,
        "ParquetSink",
        markers,
        run,
        move |event| operator.on_event(event),
    );
}

/// The writer of this worker (of `worker` among `peers`), and the first
/// failure. With checkpoints, files are left for checkpoints to make
/// visible, the temporary files no checkpoint completed are removed, worker
/// 0 checks the directory ([`check_published`]), and each worker takes its
/// share of the restored parts: their published files and buffered rows.
fn open_writer<R: ParquetRow>(
    config: ParquetSinkConfig,
    env: &Env<'_>,
    op: &str,
    (worker, peers): (usize, usize),
) -> (ParquetWriter<R>, Option<String>) {
    let dir = config.dir.clone();
    let mut writer = ParquetWriter::new(config, env.file_prefix());
    let mut failure: Option<String> = None;
    if env.checkpointing() {
        writer = writer.with_deferred_commit();
        if let Err(e) = resume::remove_orphans(&dir, &env.file_prefix(), worker, peers) {
            failure = Some(format!("Parquet sink: {e}"));
        }
        let parts = env.restored::<ParquetPart<R>>(op);
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
    (writer, failure)
}

/// The Parquet sink operator of one worker: its writer, driven by the
/// events of [`checkpointed_sink`].
struct Operator<R: ParquetRow> {
    writer: ParquetWriter<R>,
    /// The first failure: the sink then writes nothing more, and fails
    /// every checkpoint, so none completes without its rows.
    failure: Option<String>,
    participant: Participant,
    run: Run,
    checkpointing: bool,
    /// The run's event time range: rows outside it are dropped.
    range: Option<(u64, u64)>,
    /// Rows sent after their window's end (made by late readings), with
    /// that time: they go to the writer once the frontier passes it, so a
    /// checkpoint holds exactly the rows sent before its frontier.
    held: Vec<(u64, R)>,
}

impl<R: ParquetRow> Operator<R> {
    /// Buffers a batch, answers a checkpoint marker, or writes the hours
    /// the frontier completed; then counts what was written.
    fn on_event(&mut self, event: SinkEvent<'_, R>) {
        if let Some(error) = &self.failure {
            // Consume and drop the input; no checkpoint completes.
            if let SinkEvent::Marker(marker) = event {
                self.participant.fail(&marker, error.clone());
            }
            return;
        }
        let writer = &mut self.writer;
        let before = (writer.rows_written(), writer.bytes_written());
        let result = match event {
            SinkEvent::Data(time, data) => {
                let range = self.range;
                for agg in data
                    .drain(..)
                    .filter(|a| range.is_none_or(|(from, to)| a.start() >= from && a.end() <= to))
                {
                    match time > agg.end() {
                        true => self.held.push((time, agg)),
                        false => writer.push(agg),
                    }
                }
                return;
            }
            SinkEvent::Marker(marker) => {
                self.release(marker.until());
                self.checkpoint(marker)
            }
            // A stop with checkpoints: the rows stay in the checkpoint.
            SinkEvent::Frontier(None)
                if self.checkpointing && self.run.control.stop_requested() =>
            {
                return;
            }
            SinkEvent::Frontier(None) => {
                self.release(None);
                self.writer.finish()
            }
            SinkEvent::Frontier(Some(time)) => {
                self.release(Some(time));
                self.writer.flush_at_frontier(time)
            }
        };
        self.account(before, result);
    }

    /// Hands the writer the held rows sent before `frontier` (all of them
    /// for `None`).
    fn release(&mut self, frontier: Option<u64>) {
        let writer = &mut self.writer;
        self.held
            .retain(|(time, agg)| match frontier.is_none_or(|f| *time < f) {
                true => {
                    writer.push(agg.clone());
                    false
                }
                false => true,
            });
    }

    /// Writes what is complete at the marker's frontier and answers the
    /// marker: the files written and the rows still buffered, or the failure.
    fn checkpoint(&mut self, marker: Marker) -> Result<Vec<PathBuf>, ParquetSinkError> {
        let writer = &mut self.writer;
        let result = match marker.until() {
            Some(f) => writer.flush_at_frontier(f),
            None => writer.finish(),
        };
        match &result {
            Ok(_) => {
                // The files first: the part counts them as published.
                let files = writer.take_unrenamed();
                let part = writer.snapshot(marker.until());
                self.participant.write(&marker, &part, files);
            }
            // Every marker gets its answer, or the checkpoint
            // (and the run) would wait for it forever.
            Err(error) => self.participant.fail(&marker, failed(error)),
        }
        result
    }

    /// Counts the rows and bytes written since `before` and their latency,
    /// and records the files written, or the failure.
    fn account(&mut self, before: (u64, u64), result: Result<Vec<PathBuf>, ParquetSinkError>) {
        let (writer, run) = (&mut self.writer, &self.run);
        let m = &run.metrics;
        m.parquet_rows.inc_by(writer.rows_written() - before.0);
        m.parquet_bytes.inc_by(writer.bytes_written() - before.1);
        let ends = writer.take_written_ends();
        if R::WINDOWS {
            m.observe_since_arrival(
                &m.window_latency,
                ends.into_iter().map(|e| e.saturating_sub(1)),
            );
        }
        match result {
            Ok(files) => files
                .into_iter()
                .for_each(|file| run.metrics.add_file(file)),
            Err(error) => {
                let message = failed(&error);
                run.control.add_error(message.clone());
                self.failure = Some(message);
            }
        }
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
fn check_published<R: ParquetRow>(
    dir: &Location,
    parts: &[ParquetPart<R>],
    env: &Env<'_>,
    writer: &mut ParquetWriter<R>,
) -> Result<(), String> {
    let Some(id) = env.restored_checkpoint() else {
        let found = resume::adopt(dir).map_err(|e| format!("cannot list {dir}: {e}"))?;
        writer.add_published(&found);
        return Ok(());
    };
    let mut known = Published::new();
    parts
        .iter()
        .for_each(|p| resume::merge(&mut known, &p.published));
    let extra = resume::unaccounted(dir, &known).map_err(|e| format!("cannot list {dir}: {e}"))?;
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
        dir,
        extra.len(),
        shown.join(", "),
        if extra.len() > shown.len() {
            ", ..."
        } else {
            ""
        }
    ))
}
