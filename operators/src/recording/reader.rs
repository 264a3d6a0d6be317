//! Reading recordings: segments in offset order, one batch at a time. The
//! source that replays them is in `source/recording.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, BinaryArray, Int64Array, PrimitiveArray};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::remote::{self, Staging};
use super::{
    info_path, marks_path, parse_segment_name, segments_dir, RecordRef, RecordingError,
    RecordingInfo, FORMAT,
};
use crate::storage::Location;

/// One complete segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// First offset in it.
    pub first: i64,
    /// Last offset in it.
    pub last: i64,
}

/// A recording opened for reading.
#[derive(Clone, Debug)]
pub struct Recording {
    /// Its directory.
    pub dir: PathBuf,
    /// What `recording.json` says.
    pub info: RecordingInfo,
    /// Segments of each partition, in offset order.
    pub segments: BTreeMap<i32, Vec<Segment>>,
    /// Idle marks of each partition (see the [module docs](super)).
    pub marks: BTreeMap<i32, Vec<(i64, u64)>>,
    /// For a recording on an object store: the local copy `dir` is.
    staging: Option<std::sync::Arc<Staging>>,
}

impl Recording {
    /// Opens the recording at `location`: a directory as
    /// [`Recording::open`], or a prefix of an object store, copied into a
    /// local staging directory first (removed when the recording is
    /// dropped). The errors name the location.
    pub fn open_at(location: &Location) -> Result<Self, RecordingError> {
        let object = match location {
            Location::Local(dir) => return Recording::open(dir),
            Location::Object(object) => object,
        };
        let staging = Staging::new()?;
        let names = remote::download(object, staging.dir(), |_| true)?;
        if !names.iter().any(|n| n == "recording.json") {
            return Err(RecordingError::Invalid {
                path: PathBuf::from(object.url()),
                detail: "it holds no recording.json: no recording is there".to_owned(),
            });
        }
        let mut recording = Recording::open(staging.dir())?;
        recording.staging = Some(std::sync::Arc::new(staging));
        Ok(recording)
    }

    /// Opens the recording in `dir`: a missing directory, a missing or
    /// unreadable `recording.json`, a format this version does not read, or
    /// overlapping segments are errors.
    pub fn open(dir: &Path) -> Result<Self, RecordingError> {
        let info_file = info_path(dir);
        let bytes = fs::read(&info_file).map_err(|e| RecordingError::Invalid {
            path: dir.to_owned(),
            detail: format!("cannot read {}: {e}", info_file.display()),
        })?;
        let info: RecordingInfo =
            serde_json::from_slice(&bytes).map_err(|e| RecordingError::Invalid {
                path: info_file.clone(),
                detail: e.to_string(),
            })?;
        if info.format != FORMAT {
            return Err(RecordingError::Invalid {
                path: dir.to_owned(),
                detail: format!(
                    "it has format {}; this version reads format {FORMAT}",
                    info.format
                ),
            });
        }
        let mut segments: BTreeMap<i32, Vec<Segment>> = BTreeMap::new();
        let seg_dir = segments_dir(dir);
        for entry in fs::read_dir(&seg_dir).map_err(RecordingError::io("list", &seg_dir))? {
            let entry = entry.map_err(RecordingError::io("list", &seg_dir))?;
            if let Some((p, first, last)) = entry.file_name().to_str().and_then(parse_segment_name)
            {
                segments.entry(p).or_default().push(Segment {
                    path: entry.path(),
                    first,
                    last,
                });
            }
        }
        let mut marks = BTreeMap::new();
        for (&p, list) in &mut segments {
            list.sort_by_key(|s| s.first);
            if let Some(w) = list.windows(2).find(|w| w[1].first <= w[0].last) {
                return Err(RecordingError::Invalid {
                    path: w[1].path.clone(),
                    detail: format!("it overlaps {}", w[0].path.display()),
                });
            }
            let marks_file = marks_path(dir, p);
            if let Ok(bytes) = fs::read(&marks_file) {
                let list: Vec<(i64, u64)> =
                    serde_json::from_slice(&bytes).map_err(|e| RecordingError::Invalid {
                        path: marks_file.clone(),
                        detail: e.to_string(),
                    })?;
                marks.insert(p, list);
            }
        }
        Ok(Recording {
            dir: dir.to_owned(),
            info,
            segments,
            marks,
            staging: None,
        })
    }

    /// The offset after the last recorded one, by partition.
    pub fn ends(&self) -> BTreeMap<i32, i64> {
        self.segments
            .iter()
            .filter_map(|(&p, s)| s.last().map(|s| (p, s.last + 1)))
            .collect()
    }

    /// Records recorded from offset `from` on in `partition` (an upper
    /// bound when offsets have gaps).
    pub fn records_from(&self, partition: i32, from: i64) -> u64 {
        self.segments.get(&partition).map_or(0, |list| {
            list.iter()
                .filter(|s| s.last >= from)
                .map(|s| (s.last - s.first.max(from) + 1) as u64)
                .sum()
        })
    }

    /// A reader of `partition` from offset `from` on.
    pub fn reader(&self, partition: i32, from: i64) -> PartitionReader {
        let files = self
            .segments
            .get(&partition)
            .into_iter()
            .flatten()
            .filter(|s| s.last >= from)
            .map(|s| s.path.clone())
            .collect();
        PartitionReader {
            partition,
            from,
            files,
            reader: None,
            batch: None,
            row: 0,
        }
    }
}

/// The columns a replay needs of one batch.
struct Batch {
    offset: Int64Array,
    timestamp: PrimitiveArray<TimestampMillisecondType>,
    key: BinaryArray,
    value: BinaryArray,
}

/// Reads one partition of a recording in offset order.
pub struct PartitionReader {
    partition: i32,
    from: i64,
    files: VecDeque<PathBuf>,
    reader: Option<(PathBuf, ParquetRecordBatchReader)>,
    batch: Option<Batch>,
    row: usize,
}

impl std::fmt::Debug for PartitionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionReader")
            .field("partition", &self.partition)
            .field("files", &self.files)
            .field("row", &self.row)
            .finish()
    }
}

impl PartitionReader {
    /// Hands up to `max` records to `f`; returns how many (0: the end).
    pub fn read(
        &mut self,
        max: usize,
        mut f: impl FnMut(RecordRef<'_>),
    ) -> Result<usize, RecordingError> {
        let mut n = 0;
        while n < max {
            let Some(batch) = self.batch.as_ref() else {
                if !self.next_batch()? {
                    break;
                }
                continue;
            };
            let stop = (self.row + max - n).min(batch.offset.len());
            for i in self.row..stop {
                let offset = batch.offset.value(i);
                if offset < self.from {
                    continue;
                }
                f(RecordRef {
                    partition: self.partition,
                    offset,
                    timestamp: batch
                        .timestamp
                        .is_valid(i)
                        .then(|| batch.timestamp.value(i)),
                    key: batch.key.is_valid(i).then(|| batch.key.value(i)),
                    value: batch.value.value(i),
                    headers: &[],
                });
                n += 1;
            }
            self.row = stop;
            if stop == batch.offset.len() {
                self.batch = None;
            }
        }
        Ok(n)
    }

    /// Loads the next batch; false at the end of the last segment.
    fn next_batch(&mut self) -> Result<bool, RecordingError> {
        loop {
            if let Some((path, reader)) = &mut self.reader {
                match reader.next() {
                    Some(batch) => {
                        let batch =
                            batch.map_err(|e| RecordingError::segment(path)(e.to_string()))?;
                        self.batch = Some(Batch {
                            offset: column(&batch, path, "offset", |a| {
                                a.as_primitive_opt::<Int64Type>()
                            })?,
                            timestamp: column(&batch, path, "timestamp", |a| {
                                a.as_primitive_opt::<TimestampMillisecondType>()
                            })?,
                            key: column(&batch, path, "key", |a| a.as_binary_opt::<i32>())?,
                            value: column(&batch, path, "value", |a| a.as_binary_opt::<i32>())?,
                        });
                        self.row = 0;
                        return Ok(true);
                    }
                    None => self.reader = None,
                }
            }
            let Some(path) = self.files.pop_front() else {
                return Ok(false);
            };
            let file = File::open(&path).map_err(RecordingError::io("open", &path))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| RecordingError::segment(&path)(e.to_string()))?;
            // Replays need neither the partition column nor the headers.
            let mask = ProjectionMask::roots(builder.parquet_schema(), [1, 2, 3, 4]);
            let reader = builder
                .with_projection(mask)
                .with_batch_size(8_192)
                .build()
                .map_err(|e| RecordingError::segment(&path)(e.to_string()))?;
            self.reader = Some((path, reader));
        }
    }
}

/// Column `name` of a segment's batch, as the array type `cast` gives.
fn column<T: Clone>(
    batch: &arrow_array::RecordBatch,
    path: &Path,
    name: &str,
    cast: impl Fn(&dyn Array) -> Option<&T>,
) -> Result<T, RecordingError> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| RecordingError::segment(path)(format!("no column `{name}`")))?;
    cast(array.as_ref())
        .cloned()
        .ok_or_else(|| RecordingError::segment(path)(format!("column `{name}` has the wrong type")))
}
