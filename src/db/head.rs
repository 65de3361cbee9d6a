//! The in-memory head: rows acknowledged but not yet in a chunk, kept per tenant,
//! signal and label partition as immutable Arrow batches that queries read directly.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{TimestampNanosecondType, UInt64Type};

use crate::model::{Signal, StreamId};
use crate::storage::chunk::located_ids;
use crate::storage::keys::window_start;
use crate::storage::{ChunkError, PartitionKey};

/// A slice of one request's rows for one partition, with the summary the head and the
/// indexes keep about it. Built outside any lock.
pub struct Part {
    pub partition: PartitionKey,
    pub batch: RecordBatch,
    /// Memory the part holds, for the head's size limit.
    pub bytes: usize,
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
        self.bytes += part.bytes;
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
///
/// Decoders emit a resource's records together, so a partition's rows are usually one
/// contiguous run: then each part is a zero-copy slice of the request's batch. Only
/// interleaved partitions are gathered with a copy.
pub fn split_by_partition(signal: Signal, batch: &RecordBatch) -> Result<Vec<Part>, ChunkError> {
    let partition_label = signal.partition_label();
    let names = batch
        .column_by_name(partition_label)
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or(ChunkError::Column(partition_label))?;
    let name = |row: usize| names.is_valid(row).then(|| names.value(row));
    // Runs of equal partition values, in row order.
    let mut runs: Vec<(Option<&str>, usize, usize)> = Vec::new();
    for row in 0..batch.num_rows() {
        match runs.last_mut() {
            Some((value, _, len)) if *value == name(row) => *len += 1,
            _ => runs.push((name(row), row, 1)),
        }
    }
    let total_bytes = memory_size(batch);
    let share = |rows: usize| total_bytes * rows / batch.num_rows().max(1);
    let mut seen = std::collections::HashSet::new();
    if runs.iter().all(|(value, _, _)| seen.insert(*value)) {
        return runs
            .into_iter()
            .map(|(value, offset, len)| {
                let part = batch.slice(offset, len);
                summarise(
                    signal,
                    PartitionKey::from_label_value(value),
                    part,
                    share(len),
                )
            })
            .collect();
    }
    let mut groups: HashMap<Option<&str>, Vec<u32>> = HashMap::new();
    for row in 0..batch.num_rows() {
        groups.entry(name(row)).or_default().push(row as u32);
    }
    groups
        .into_iter()
        .map(|(value, rows)| {
            let part = take_record_batch(batch, &UInt32Array::from(rows))?;
            let bytes = memory_size(&part);
            summarise(signal, PartitionKey::from_label_value(value), part, bytes)
        })
        .collect()
}

/// The bytes a batch's rows take. Counts only the part of each buffer the columns
/// use: a batch read back from the WAL has all its columns in one shared message
/// buffer, which `get_array_memory_size` would count once per column.
pub fn memory_size(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| {
            c.to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size())
        })
        .sum()
}

/// `bytes` is the part's share of memory (a slice shares its parent's buffers, so its
/// own `get_array_memory_size` would count them whole).
fn summarise(
    signal: Signal,
    partition: PartitionKey,
    batch: RecordBatch,
    bytes: usize,
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
    let traces = located_ids(signal, &batch)?
        .into_iter()
        .map(|(fingerprint, _)| fingerprint)
        .collect();
    Ok(Part {
        partition,
        batch,
        bytes,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LabelSet;
    use crate::model::schema::{LogBatchBuilder, LogFields, Stream};

    fn batch(services: &[&str]) -> RecordBatch {
        let mut b = LogBatchBuilder::default();
        for (i, service) in services.iter().enumerate() {
            let stream = Stream::new(
                LabelSet::new(vec![("service_name".into(), service.to_string())]).unwrap(),
            );
            b.append(
                &stream,
                LogFields {
                    timestamp: i as i64,
                    observed_timestamp: None,
                    severity_number: None,
                    body: service,
                    trace_id: None,
                    span_id: None,
                    attributes: &[],
                    scope_name: None,
                },
            );
        }
        b.finish()
    }

    fn split(services: &[&str]) -> Vec<(String, Vec<String>)> {
        let mut parts: Vec<_> = split_by_partition(Signal::Logs, &batch(services))
            .unwrap()
            .into_iter()
            .map(|p| {
                let body = p
                    .batch
                    .column_by_name("body")
                    .unwrap()
                    .as_string::<i32>()
                    .clone();
                (
                    p.partition.to_string(),
                    body.iter().flatten().map(str::to_owned).collect(),
                )
            })
            .collect();
        parts.sort();
        parts
    }

    #[test]
    fn contiguous_and_interleaved_partitions_split_the_same() {
        let want = vec![
            ("a".to_owned(), vec!["a".to_owned(); 2]),
            ("b".to_owned(), vec!["b".to_owned(); 2]),
        ];
        assert_eq!(split(&["a", "a", "b", "b"]), want);
        assert_eq!(split(&["a", "b", "a", "b"]), want);
    }

    /// Replayed batches once counted their whole WAL message per column (265 times
    /// their size in one crash test), so every partition looked full after a restart
    /// and was cut into a small chunk at once.
    #[test]
    fn batches_read_back_from_the_wal_count_only_their_rows() {
        use crate::wal::record::{FRAME_HEADER, decode_body, encode_frame_head};
        let whole = batch(&["checkout"; 500]);
        let rows = crate::wal::encode_rows(&whole).unwrap();
        let head = encode_frame_head(
            1,
            &crate::model::Tenant::default_tenant(),
            Signal::Logs,
            &rows,
        );
        let body = [&head[FRAME_HEADER..], &rows.bytes[..]].concat();
        let replayed = decode_body(&body).unwrap().batch;
        let (fresh, again) = (memory_size(&whole), memory_size(&replayed));
        assert!(
            again <= fresh * 2 && fresh <= again * 2,
            "{fresh} vs {again}"
        );
        assert!(replayed.get_array_memory_size() > 4 * again);
    }

    #[test]
    fn slices_report_their_share_of_memory() {
        let whole = batch(&["a", "a", "b", "b"]);
        let parts = split_by_partition(Signal::Logs, &whole).unwrap();
        let total: usize = parts.iter().map(|p| p.bytes).sum();
        assert!(total <= whole.get_array_memory_size());
        assert!(parts.iter().all(|p| p.bytes > 0));
    }
}
