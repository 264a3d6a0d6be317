//! Tests of the sources' shared logic: the ingest of one worker's
//! partitions, stopping, and watermark alignment.

mod alignment;
mod control;
mod ingest;
mod stop;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::ingest::Watermark;
use super::resume::PartitionResume;
use super::resume::RESUME_BUCKET_MS;
use super::Decode;
use super::{ingest_source, Alignment, Ingest, PartitionStart, Poller};
use crate::dead_letter::{DeadLetter, DeadLetterReason};
use crate::decode::Decoder;
use crate::recording::RecordRef;
use crate::run::{Env, Run};
