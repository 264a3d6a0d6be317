//! A JSON-lines file as a sink's destination: one JSON document per line,
//! each with its `id`, and the file's length as its end.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use std::time::Instant;

use prometheus_client::metrics::histogram::Histogram;

use super::{Destination, Progress};

/// A JSON-lines file written by one sink.
#[derive(Debug)]
pub struct JsonLines {
    path: PathBuf,
    file: BufWriter<File>,
    written: u64,
    latency: Option<Histogram>,
}

impl JsonLines {
    /// Opens `path` for a sink: a fresh run starts the file anew; a run
    /// restored from a checkpoint keeps it, without a last line left
    /// incomplete by an interruption.
    pub fn open(path: PathBuf, restoring: bool) -> Result<Self, String> {
        let error =
            |action: &str, e: std::io::Error| format!("cannot {action} {}: {e}", path.display());
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| error("create the directory of", e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(!restoring)
            .open(&path)
            .map_err(|e| error("open", e))?;
        if restoring {
            let complete = complete_length(&mut file).map_err(|e| error("read", e))?;
            file.set_len(complete).map_err(|e| error("truncate", e))?;
        }
        file.seek(SeekFrom::End(0)).map_err(|e| error("seek", e))?;
        Ok(JsonLines {
            path,
            file: BufWriter::with_capacity(1 << 16, file),
            written: 0,
            latency: None,
        })
    }

    /// Observes in `latency` the time from a record's input arriving to its
    /// line being written.
    pub fn with_latency(mut self, latency: Option<Histogram>) -> Self {
        self.latency = latency;
        self
    }
}

/// The length of a file's complete lines.
fn complete_length(file: &mut File) -> std::io::Result<u64> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i as u64 + 1))
}

impl Destination for JsonLines {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn send(
        &mut self,
        _key: &[u8],
        payload: &[u8],
        _id: &str,
        arrived: Option<Instant>,
    ) -> Result<(), String> {
        self.file
            .write_all(payload)
            .and_then(|()| self.file.write_all(b"\n"))
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        self.written += 1;
        if let (Some(latency), Some(arrived)) = (&self.latency, arrived) {
            latency.observe(arrived.elapsed().as_secs_f64());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        self.file
            .flush()
            .and_then(|()| self.file.get_ref().sync_data())
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn progress(&mut self) -> Progress {
        Progress {
            delivered: self.written,
            ..Progress::default()
        }
    }

    fn ends(&mut self) -> Result<Vec<(i32, i64)>, String> {
        let len = self
            .file
            .get_ref()
            .metadata()
            .map_err(|e| format!("cannot read the length of {}: {e}", self.path.display()))?
            .len();
        Ok(vec![(0, len as i64)])
    }

    fn read_back(&mut self, from: &BTreeMap<i32, i64>) -> Result<HashSet<String>, String> {
        let error = |e: std::io::Error| format!("cannot read back {}: {e}", self.path.display());
        let mut file = File::open(&self.path).map_err(error)?;
        let start = from.get(&0).copied().unwrap_or(0).max(0) as u64;
        file.seek(SeekFrom::Start(start)).map_err(error)?;
        let mut ids = HashSet::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(error)?;
            let doc: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
                format!("{} holds a line that is not JSON: {e}", self.path.display())
            })?;
            if let Some(id) = doc.get("id").and_then(|v| v.as_str()) {
                ids.insert(id.to_owned());
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_file_drops_an_incomplete_last_line_and_reads_back_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/alerts.jsonl");
        let mut f = JsonLines::open(path.clone(), false).unwrap();
        f.send(b"", br#"{"id":"a"}"#, "a", None).unwrap();
        f.flush().unwrap();
        let end = f.ends().unwrap()[0].1;
        f.send(b"", br#"{"id":"b"}"#, "b", None).unwrap();
        f.flush().unwrap();
        drop(f);
        // An interruption in the middle of a line.
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(br#"{"id":"c"#)
            .unwrap();
        let mut f = JsonLines::open(path.clone(), true).unwrap();
        let ids = f.read_back(&BTreeMap::from([(0, end)])).unwrap();
        assert_eq!(ids, HashSet::from(["b".to_owned()]));
        f.send(b"", br#"{"id":"c"}"#, "c", None).unwrap();
        f.flush().unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "{\"id\":\"a\"}\n{\"id\":\"b\"}\n{\"id\":\"c\"}\n"
        );
        // A fresh run starts anew.
        drop(JsonLines::open(path.clone(), false).unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
    }
}
