//! The in-memory head: rows acknowledged but not yet in a chunk, kept per tenant,
//! signal and label partition as immutable Arrow batches that queries read directly.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{TimestampNanosecondType, UInt64Type};

use crate::model::{Signal, StreamId, TraceId};
use crate::storage::keys::window_start;
use crate::storage::{ChunkError, PartitionKey};

/// The label whose value names a stream's partition.
pub const PARTITION_LABEL: &str = "service_name";

/// A slice of one request's rows for one partition, with the summary the head and the
/// indexes keep about it. Built outside any lock.
pub struct Part {
    pub partition: PartitionKey,
    pub batch: RecordBatch,
    pub streams: HashSet<StreamId>,
    pub traces: HashSet<u64>,
    pub min_time: i64,
    pub max_time: i64,
}

#[derive(Debug)]
pub struct HeadBuffer {
    /// Unique per buffer for the life of the process.
    pub id: u64,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    pub bytes: usize,
    /// WAL sequence numbers of the records whose rows are here.
    pub min_seq: u64,
    pub max_seq: u64,
    pub min_time: i64,
    pub max_time: i64,
    pub streams: HashSet<StreamId>,
    pub traces: HashSet<u64>,
    pub created: Instant,
}

impl HeadBuffer {
    pub fn new(id: u64, now: Instant) -> Self {
        Self {
            id,
            batches: Vec::new(),
            rows: 0,
            bytes: 0,
            min_seq: u64::MAX,
            max_seq: 0,
            min_time: i64::MAX,
            max_time: i64::MIN,
            streams: HashSet::new(),
            traces: HashSet::new(),
            created: now,
        }
    }

    pub fn push(&mut self, part: Part, seq: u64) {
        self.rows += part.batch.num_rows();
        self.bytes += part.batch.get_array_memory_size();
        self.min_seq = self.min_seq.min(seq);
        self.max_seq = self.max_seq.max(seq);
        self.min_time = self.min_time.min(part.min_time);
        self.max_time = self.max_time.max(part.max_time);
        self.streams.extend(part.streams);
        self.traces.extend(part.traces);
        self.batches.push(part.batch);
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_time <= end && self.max_time >= start
    }
}

fn column<'a, T: arrow::datatypes::ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a arrow::array::PrimitiveArray<T>, ChunkError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<T>())
        .ok_or(ChunkError::Column(name))
}

/// Splits a request's rows by label partition and summarises each part.
pub fn split_by_partition(signal: Signal, batch: &RecordBatch) -> Result<Vec<Part>, ChunkError> {
    let names = batch
        .column_by_name(PARTITION_LABEL)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or(ChunkError::Column(PARTITION_LABEL))?;
    let mut groups: HashMap<Option<&str>, Vec<u32>> = HashMap::new();
    for row in 0..batch.num_rows() {
        let name = names.is_valid(row).then(|| names.value(row));
        groups.entry(name).or_default().push(row as u32);
    }
    let single = groups.len() == 1;
    groups
        .into_iter()
        .map(|(name, rows)| {
            let part = if single {
                batch.clone()
            } else {
                take_record_batch(batch, &UInt32Array::from(rows))?
            };
            summarise(signal, PartitionKey::from_label_value(name), part)
        })
        .collect()
}

fn summarise(
    signal: Signal,
    partition: PartitionKey,
    batch: RecordBatch,
) -> Result<Part, ChunkError> {
    let streams = column::<UInt64Type>(&batch, "stream_id")?
        .values()
        .iter()
        .map(|v| StreamId(*v))
        .collect();
    let times = column::<TimestampNanosecondType>(&batch, signal.time_column())?;
    let (min_time, max_time) = times
        .values()
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(*t), hi.max(*t)));
    let trace_ids = batch
        .column_by_name("trace_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or(ChunkError::Column("trace_id"))?;
    let traces = trace_ids
        .iter()
        .flatten()
        .filter_map(|hex| TraceId::from_hex(hex).ok())
        .map(|t| t.fingerprint())
        .collect();
    Ok(Part {
        partition,
        batch,
        streams,
        traces,
        min_time,
        max_time,
    })
}

/// Splits rows by the hour window their time falls in.
pub fn split_by_window(
    signal: Signal,
    batch: &RecordBatch,
) -> Result<Vec<(i64, RecordBatch)>, ChunkError> {
    let times = column::<TimestampNanosecondType>(batch, signal.time_column())?;
    let mut groups: HashMap<i64, Vec<u32>> = HashMap::new();
    for (row, t) in times.values().iter().enumerate() {
        groups.entry(window_start(*t)).or_default().push(row as u32);
    }
    if groups.len() == 1 {
        let window = groups.into_keys().next().unwrap_or_default();
        return Ok(vec![(window, batch.clone())]);
    }
    let mut out = groups
        .into_iter()
        .map(|(window, rows)| Ok((window, take_record_batch(batch, &UInt32Array::from(rows))?)))
        .collect::<Result<Vec<_>, ChunkError>>()?;
    out.sort_by_key(|(w, _)| *w);
    Ok(out)
}
