//! Writing recordings: one open segment per partition, sealed (closed and
//! renamed into place) when it is full, at every checkpoint, and at the end.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, StringBuilder,
    StructBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::remote::{self, Staging};
use super::{
    info_path, marks_path, parse_segment_name, segment_name, segments_dir, write_atomically,
    RecordingError, RecordingInfo, FORMAT,
};
use crate::storage::{Location, ObjectLocation};

/// One record as read from a source, borrowed.
#[derive(Clone, Copy, Debug)]
pub struct RecordRef<'a> {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Record timestamp (ms), if any.
    pub timestamp: Option<i64>,
    /// Record key.
    pub key: Option<&'a [u8]>,
    /// Record value (the payload).
    pub value: &'a [u8],
    /// Record headers (name, value), kept only when recording.
    pub headers: &'a [(String, Option<Vec<u8>>)],
}

/// Rows per segment file before a new one starts.
const SEGMENT_ROWS: usize = 1_000_000;
/// Rows buffered before they are handed to the Parquet writer.
const BATCH_ROWS: usize = 65_536;

/// The Arrow schema of a segment (see the [module docs](super)).
pub(super) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, false),
        Field::new(
            "headers",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(header_fields()),
                true,
            ))),
            false,
        ),
    ]))
}

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// Writes records into a recording directory, skipping those already in it,
/// so that recording again after an interruption continues where the last
/// complete segment of each partition ends.
///
/// Several recorders (one per worker) may write one recording, each to its
/// own partitions.
#[derive(Debug)]
pub struct Recorder {
    dir: PathBuf,
    /// For a recording on an object store: the store, and the staging
    /// directory `dir` is.
    remote: Option<(ObjectLocation, Staging)>,
    /// The next offset to record, by partition, from the segments found.
    recorded: BTreeMap<i32, i64>,
    partitions: BTreeMap<i32, PartitionRecorder>,
}

#[derive(Debug)]
struct PartitionRecorder {
    /// Records below this offset are in the recording already.
    next: i64,
    open: Option<OpenSegment>,
    marks: Vec<(i64, u64)>,
    marks_changed: bool,
}

struct OpenSegment {
    partition: i32,
    tmp: PathBuf,
    writer: ArrowWriter<File>,
    first: i64,
    last: i64,
    rows: usize,
    columns: Columns,
}

impl std::fmt::Debug for OpenSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSegment")
            .field("tmp", &self.tmp)
            .field("first", &self.first)
            .field("last", &self.last)
            .field("rows", &self.rows)
            .finish()
    }
}

/// Column builders of the rows not yet handed to the writer.
struct Columns {
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMillisecondBuilder,
    key: BinaryBuilder,
    value: BinaryBuilder,
    headers: ListBuilder<StructBuilder>,
}

impl Columns {
    fn new() -> Self {
        let header = StructBuilder::new(
            header_fields(),
            vec![
                Box::new(StringBuilder::new()),
                Box::new(BinaryBuilder::new()),
            ],
        );
        Columns {
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            key: BinaryBuilder::new(),
            value: BinaryBuilder::new(),
            headers: ListBuilder::new(header),
        }
    }

    fn push(&mut self, r: &RecordRef<'_>) {
        self.partition.append_value(r.partition);
        self.offset.append_value(r.offset);
        self.timestamp.append_option(r.timestamp);
        self.key.append_option(r.key);
        self.value.append_value(r.value);
        let headers = self.headers.values();
        for (name, value) in r.headers {
            headers
                .field_builder::<StringBuilder>(0)
                .expect("the first header field is a string")
                .append_value(name);
            headers
                .field_builder::<BinaryBuilder>(1)
                .expect("the second header field is binary")
                .append_option(value.as_deref());
            headers.append(true);
        }
        self.headers.append(true);
    }

    fn len(&self) -> usize {
        self.offset.len()
    }

    fn batch(&mut self) -> Result<RecordBatch, String> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.key.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.headers.finish()),
        ];
        RecordBatch::try_new(schema(), columns).map_err(|e| e.to_string())
    }
}

impl OpenSegment {
    fn create(dir: &Path, partition: i32, first: i64) -> Result<Self, RecordingError> {
        let tmp = segments_dir(dir).join(format!(".p{partition:05}-{first:020}.parquet.tmp"));
        let file = File::create(&tmp).map_err(RecordingError::io("create", &tmp))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(BATCH_ROWS * 2))
            .build();
        let writer = ArrowWriter::try_new(file, schema(), Some(props))
            .map_err(|e| RecordingError::segment(&tmp)(e.to_string()))?;
        Ok(OpenSegment {
            partition,
            tmp,
            writer,
            first,
            last: first,
            rows: 0,
            columns: Columns::new(),
        })
    }

    fn push(&mut self, r: &RecordRef<'_>) -> Result<(), RecordingError> {
        self.columns.push(r);
        self.last = r.offset;
        self.rows += 1;
        if self.columns.len() >= BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), RecordingError> {
        if self.columns.len() == 0 {
            return Ok(());
        }
        let batch = self
            .columns
            .batch()
            .map_err(RecordingError::segment(&self.tmp))?;
        self.writer
            .write(&batch)
            .map_err(|e| RecordingError::segment(&self.tmp)(e.to_string()))
    }

    /// Closes the file and renames it into place.
    fn seal(mut self, dir: &Path) -> Result<(), RecordingError> {
        self.write_batch()?;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| RecordingError::segment(&self.tmp)(e.to_string()))?;
        file.sync_all()
            .map_err(RecordingError::io("sync", &self.tmp))?;
        let path = segments_dir(dir).join(segment_name(self.partition, self.first, self.last));
        fs::rename(&self.tmp, &path).map_err(RecordingError::io("rename into place", &path))
    }
}

impl Recorder {
    /// Opens (or creates) the recording of `topic` in `dir`. A directory
    /// holding the recording of another topic, or of another format, is an
    /// error.
    pub fn open(dir: &Path, topic: &str) -> Result<Self, RecordingError> {
        for d in [dir.to_owned(), segments_dir(dir), dir.join("marks")] {
            fs::create_dir_all(&d).map_err(RecordingError::io("create directory", &d))?;
        }
        let info_file = info_path(dir);
        let wanted = RecordingInfo {
            format: FORMAT,
            topic: topic.to_owned(),
        };
        match fs::read(&info_file) {
            Ok(bytes) => {
                let found: RecordingInfo =
                    serde_json::from_slice(&bytes).map_err(|e| RecordingError::Invalid {
                        path: info_file.clone(),
                        detail: e.to_string(),
                    })?;
                if found != wanted {
                    return Err(RecordingError::Invalid {
                        path: dir.to_owned(),
                        detail: format!(
                            "it holds topic `{}` (format {}); this run records topic `{topic}` (format {FORMAT}). Use another directory",
                            found.topic, found.format
                        ),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let json = serde_json::to_vec_pretty(&wanted).expect("the info serializes");
                write_atomically(&info_file, &json)?;
            }
            Err(e) => return Err(RecordingError::io("read", &info_file)(e)),
        }
        let mut recorded = BTreeMap::new();
        let segments = segments_dir(dir);
        for entry in fs::read_dir(&segments).map_err(RecordingError::io("list", &segments))? {
            let entry = entry.map_err(RecordingError::io("list", &segments))?;
            if let Some((p, _, last)) = entry.file_name().to_str().and_then(parse_segment_name) {
                let next = recorded.entry(p).or_insert(last + 1);
                *next = (*next).max(last + 1);
            }
        }
        Ok(Recorder {
            dir: dir.to_owned(),
            remote: None,
            recorded,
            partitions: BTreeMap::new(),
        })
    }

    /// Opens (or creates) the recording of `topic` at `location`: a
    /// directory as [`Recorder::open`], or a prefix of an object store,
    /// written through a local staging directory (see `remote.rs`).
    pub fn open_at(location: &Location, topic: &str) -> Result<Self, RecordingError> {
        let object = match location {
            Location::Local(dir) => return Recorder::open(dir, topic),
            Location::Object(object) => object,
        };
        let staging = Staging::new()?;
        let names = remote::download(object, staging.dir(), |n| !n.starts_with("segments/"))?;
        let mut recorder = Recorder::open(staging.dir(), topic)?;
        for name in names.iter().filter_map(|n| n.strip_prefix("segments/")) {
            if let Some((p, _, last)) = parse_segment_name(name) {
                let next = recorder.recorded.entry(p).or_insert(last + 1);
                *next = (*next).max(last + 1);
            }
        }
        remote::upload(object, staging.dir())?;
        recorder.remote = Some((object.clone(), staging));
        Ok(recorder)
    }

    /// Uploads what is complete, for a recording on an object store.
    fn publish(&self) -> Result<(), RecordingError> {
        match &self.remote {
            Some((object, _)) => remote::upload(object, &self.dir),
            None => Ok(()),
        }
    }

    /// The offset after the last one recorded in `partition`, if any was.
    pub fn recorded_end(&self, partition: i32) -> Option<i64> {
        self.partitions
            .get(&partition)
            .map(|p| p.next)
            .or_else(|| self.recorded.get(&partition).copied())
    }

    fn partition(&mut self, partition: i32) -> Result<&mut PartitionRecorder, RecordingError> {
        if !self.partitions.contains_key(&partition) {
            // Claiming a partition: a temporary segment of an interrupted
            // run is incomplete, and the records in it will be read again.
            let segments = segments_dir(&self.dir);
            let prefix = format!(".p{partition:05}-");
            for entry in fs::read_dir(&segments).map_err(RecordingError::io("list", &segments))? {
                let entry = entry.map_err(RecordingError::io("list", &segments))?;
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let path = entry.path();
                    fs::remove_file(&path).map_err(RecordingError::io("remove", &path))?;
                }
            }
            let marks_file = marks_path(&self.dir, partition);
            let marks = match fs::read(&marks_file) {
                Ok(bytes) => {
                    serde_json::from_slice(&bytes).map_err(|e| RecordingError::Invalid {
                        path: marks_file.clone(),
                        detail: e.to_string(),
                    })?
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(RecordingError::io("read", &marks_file)(e)),
            };
            let next = self.recorded.get(&partition).copied().unwrap_or(i64::MIN);
            self.partitions.insert(
                partition,
                PartitionRecorder {
                    next,
                    open: None,
                    marks,
                    marks_changed: false,
                },
            );
        }
        Ok(self
            .partitions
            .get_mut(&partition)
            .expect("the partition was just claimed"))
    }

    /// Records `record`, unless its offset is below the partition's
    /// recorded end (recorded before). Offsets of a partition must come in
    /// increasing order. Returns whether it was recorded.
    pub fn push(&mut self, record: &RecordRef<'_>) -> Result<bool, RecordingError> {
        let dir = self.dir.clone();
        let p = self.partition(record.partition)?;
        if record.offset < p.next {
            return Ok(false);
        }
        p.next = record.offset + 1;
        if p.open.as_ref().is_some_and(|s| s.rows >= SEGMENT_ROWS) {
            if let Some(full) = p.open.take() {
                full.seal(&dir)?;
                self.publish()?;
            }
        }
        let p = self.partition(record.partition)?;
        let segment = match &mut p.open {
            Some(segment) => segment,
            None => p
                .open
                .insert(OpenSegment::create(&dir, record.partition, record.offset)?),
        };
        segment.push(record)?;
        Ok(true)
    }

    /// Records an idle mark: from `offset` on, `partition` was judged
    /// against a source watermark of at least `watermark`.
    pub fn mark(
        &mut self,
        partition: i32,
        offset: i64,
        watermark: u64,
    ) -> Result<(), RecordingError> {
        let p = self.partition(partition)?;
        let implied = p
            .marks
            .iter()
            .any(|&(from, wm)| from <= offset && wm >= watermark);
        if !implied {
            // Marks at or after this offset with a lower watermark say less
            // than this one: an idle partition gets a later mark at the same
            // offset at every capability move.
            p.marks
                .retain(|&(from, wm)| !(from >= offset && wm <= watermark));
            p.marks.push((offset, watermark));
            p.marks.sort_unstable();
            p.marks_changed = true;
        }
        Ok(())
    }

    /// Makes everything recorded so far durable: closes the open segments
    /// and renames them into place, and writes changed idle marks.
    pub fn seal(&mut self) -> Result<(), RecordingError> {
        for (&partition, p) in &mut self.partitions {
            if let Some(segment) = p.open.take() {
                segment.seal(&self.dir)?;
            }
            if std::mem::take(&mut p.marks_changed) {
                let json = serde_json::to_vec(&p.marks).expect("marks serialize");
                write_atomically(&marks_path(&self.dir, partition), &json)?;
            }
        }
        self.publish()
    }
}
