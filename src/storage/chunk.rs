//! Chunk encoding: head rows → one sorted Parquet file and the statistics its metadata
//! carries.
//!
//! Rows are sorted by stream, then time (profile samples by stream, stack, time), so
//! row-group and page statistics on `stream_id` and the time column prune a label
//! query down to the pages of its streams. zstd level 3 on every column; pages of at
//! most 1,024 rows, the trace locator's blocks; no bloom filters (the locator does
//! their work) and no dictionary on the high-cardinality text, ID and profile-bytes
//! columns, where it only costs time.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, TimestampNanosecondType, UInt64Type};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::meta::StreamStats;
use crate::index::TraceBlocks;
use crate::index::traces::{BLOCK_ROWS, TraceBlocksBuilder};
use crate::model::{LabelSet, Signal, SpanId, StreamId, TraceId, schema};

/// Rows per row group: small enough that a stream's rows span few groups, large
/// enough that each group compresses well.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;
/// The data page size of the `profiles` table.
const PROFILE_PAGE_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("chunk column {0} is missing or has the wrong type")]
    Column(&'static str),
    #[error("a chunk holds at most {} rows", crate::index::traces::MAX_CHUNK_ROWS)]
    TooManyRows,
}

/// An encoded chunk and what its metadata says about it.
pub struct EncodedChunk {
    pub bytes: bytes::Bytes,
    pub summary: ChunkSummary,
}

/// What a chunk's metadata says about its rows, gathered while it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkSummary {
    pub rows: u64,
    pub row_groups: usize,
    pub min_time: i64,
    pub max_time: i64,
    pub streams: Vec<StreamStats>,
    pub traces: TraceBlocks,
    pub row_group_rows: Vec<u64>,
}

/// Concatenates and sorts by (stream_id, time).
pub fn sort_for_chunk(signal: Signal, batches: &[RecordBatch]) -> Result<RecordBatch, ChunkError> {
    let batch = concat_batches(&schema::schema(signal), batches)?;
    let columns = sort_columns(signal)
        .iter()
        .map(|&name| {
            Ok(SortColumn {
                values: Arc::clone(batch.column_by_name(name).ok_or(ChunkError::Column(name))?),
                options: None,
            })
        })
        .collect::<Result<Vec<_>, ChunkError>>()?;
    let indices = lexsort_to_indices(&columns, None)?;
    Ok(take_record_batch(&batch, &indices)?)
}

/// The order of rows in a chunk: by stream, then time. Profile samples go by stream,
/// then stack, then time: a service's profiles repeat the same stacks, and rows with
/// equal stacks side by side compress to a small fraction (and merge in runs).
fn sort_columns(signal: Signal) -> Vec<&'static str> {
    match signal {
        Signal::ProfileSamples => vec!["stream_id", "stack_id", signal.time_column()],
        _ => vec!["stream_id", signal.time_column()],
    }
}

fn writer_properties(signal: Signal) -> Result<WriterProperties, ChunkError> {
    let schema = schema::schema(signal);
    let index = |name: &'static str| schema.index_of(name).map_err(|_| ChunkError::Column(name));
    let sorting = sort_columns(signal)
        .into_iter()
        .map(|name| {
            Ok(SortingColumn {
                column_idx: index(name)? as i32,
                descending: false,
                nulls_first: false,
            })
        })
        .collect::<Result<Vec<_>, ChunkError>>()?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        // A trace lookup reads the pages of its blocks: a page never spans more.
        .set_data_page_row_count_limit(BLOCK_ROWS)
        .set_sorting_columns(Some(sorting));
    if signal == Signal::Profiles {
        // Profiles of one service repeat most of their bytes (string tables, stacks):
        // large pages let zstd find the repeats across profiles.
        builder = builder.set_data_page_size_limit(PROFILE_PAGE_BYTES);
    }
    // Times and durations are nearly all distinct: a dictionary only adds a page
    // every read of one row must fetch. Deltas of times sorted within a stream pack
    // into a few bits each.
    for field in schema.fields() {
        if matches!(field.data_type(), DataType::Timestamp(..)) || field.name() == "duration_ns" {
            let column = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(column.clone(), false)
                .set_column_encoding(column, Encoding::DELTA_BINARY_PACKED);
        }
    }
    for column in ["body", "trace_id", "span_id", "parent_span_id", "pprof"] {
        if schema.index_of(column).is_ok() {
            builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
    }
    Ok(builder.build())
}

/// Encodes rows already sorted by `sort_for_chunk`.
pub fn encode_chunk(signal: Signal, sorted: &RecordBatch) -> Result<EncodedChunk, ChunkError> {
    let mut buf = Vec::with_capacity(sorted.get_array_memory_size() / 4);
    let mut writer = ChunkWriter::new(signal, &mut buf)?;
    writer.write(sorted)?;
    let summary = writer.finish()?;
    Ok(EncodedChunk {
        bytes: buf.into(),
        summary,
    })
}

/// Writes a chunk from batches that arrive in chunk order (each sorted, and each
/// starting at or after the end of the one before), gathering its summary on the way.
///
/// The Parquet writer starts a page only between the pieces it is handed, so rows go
/// to it in whole blocks of `BLOCK_ROWS`: pages then line up with the trace locator's
/// blocks whatever the sizes of the batches written.
pub struct ChunkWriter<W: std::io::Write + Send> {
    writer: ArrowWriter<W>,
    stats: StatsBuilder,
    /// Rows short of a whole block, held until more come.
    partial: Vec<RecordBatch>,
    partial_rows: usize,
}

impl<W: std::io::Write + Send> ChunkWriter<W> {
    pub fn new(signal: Signal, out: W) -> Result<Self, ChunkError> {
        let writer = ArrowWriter::try_new(
            out,
            schema::schema(signal),
            Some(writer_properties(signal)?),
        )?;
        Ok(Self {
            writer,
            stats: StatsBuilder::new(signal),
            partial: Vec::new(),
            partial_rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ChunkError> {
        self.stats.add(batch)?;
        if self.partial.is_empty() && batch.num_rows().is_multiple_of(BLOCK_ROWS) {
            self.writer.write(batch)?;
            return Ok(());
        }
        self.partial.push(batch.clone());
        self.partial_rows += batch.num_rows();
        if self.partial_rows >= BLOCK_ROWS {
            let held = concat_batches(&batch.schema(), &self.partial)?;
            let whole = held.num_rows() / BLOCK_ROWS * BLOCK_ROWS;
            self.writer.write(&held.slice(0, whole))?;
            let rest = held.slice(whole, held.num_rows() - whole);
            self.partial_rows = rest.num_rows();
            self.partial = vec![rest];
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.stats.rows
    }

    pub fn finish(mut self) -> Result<ChunkSummary, ChunkError> {
        for batch in std::mem::take(&mut self.partial) {
            self.writer.write(&batch)?;
        }
        let metadata = self.writer.close()?;
        let stats = self.stats;
        Ok(ChunkSummary {
            rows: stats.rows,
            row_groups: metadata.num_row_groups(),
            min_time: stats.min_time,
            max_time: stats.max_time,
            streams: stats.streams,
            traces: stats.traces.finish(),
            row_group_rows: metadata
                .row_groups()
                .iter()
                .map(|g| g.num_rows() as u64)
                .collect(),
        })
    }
}

/// Streams, time range and trace locator of rows seen in chunk order.
struct StatsBuilder {
    signal: Signal,
    rows: u64,
    streams: Vec<StreamStats>,
    traces: TraceBlocksBuilder,
    min_time: i64,
    max_time: i64,
}

impl StatsBuilder {
    fn new(signal: Signal) -> Self {
        Self {
            signal,
            rows: 0,
            streams: Vec::new(),
            traces: TraceBlocksBuilder::default(),
            min_time: i64::MAX,
            max_time: i64::MIN,
        }
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<(), ChunkError> {
        let stream_ids = batch
            .column_by_name("stream_id")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or(ChunkError::Column("stream_id"))?;
        let times = batch
            .column_by_name(self.signal.time_column())
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or(ChunkError::Column("time"))?;
        let labels = batch
            .column_by_name("labels")
            .and_then(|c| c.as_map_opt())
            .ok_or(ChunkError::Column("labels"))?;
        if self.rows + batch.num_rows() as u64 > crate::index::traces::MAX_CHUNK_ROWS as u64 {
            return Err(ChunkError::TooManyRows);
        }
        for row in 0..batch.num_rows() {
            let id = StreamId(stream_ids.value(row));
            let t = times.value(row);
            self.min_time = self.min_time.min(t);
            self.max_time = self.max_time.max(t);
            match self.streams.last_mut() {
                Some(last) if last.id == id => {
                    last.rows += 1;
                    last.min_time = last.min_time.min(t);
                    last.max_time = last.max_time.max(t);
                }
                _ => self.streams.push(StreamStats {
                    id,
                    labels: row_labels(labels, row),
                    rows: 1,
                    min_time: t,
                    max_time: t,
                }),
            }
        }
        for (fingerprint, row) in located_ids(self.signal, batch)? {
            self.traces
                .add(fingerprint, self.rows + u64::from(row))
                .ok_or(ChunkError::TooManyRows)?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }
}

/// The (fingerprint, row) pairs the trace-ID index lists for a batch: every row's
/// trace ID and, for profile samples, its span ID too, since profilers label samples
/// with the span they ran in and rarely with its trace.
pub fn located_ids(signal: Signal, batch: &RecordBatch) -> Result<Vec<(u64, u32)>, ChunkError> {
    let mut out = Vec::new();
    if !signal.has_trace_id() {
        return Ok(out);
    }
    let column = |name: &'static str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or(ChunkError::Column(name))
    };
    for (row, hex) in column("trace_id")?.iter().enumerate() {
        if let Some(id) = hex.and_then(|h| TraceId::from_hex(h).ok()) {
            out.push((id.fingerprint(), row as u32));
        }
    }
    if signal == Signal::ProfileSamples {
        for (row, hex) in column("span_id")?.iter().enumerate() {
            if let Some(id) = hex.and_then(|h| SpanId::from_hex(h).ok()) {
                out.push((id.fingerprint(), row as u32));
            }
        }
    }
    Ok(out)
}

/// Reads back the label set a row was written with.
pub fn row_labels(labels: &arrow::array::MapArray, row: usize) -> LabelSet {
    let entries = labels.value(row);
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_string::<i32>();
    let pairs = (0..entries.len())
        .map(|i| (keys.value(i).to_owned(), values.value(i).to_owned()))
        .collect();
    // These labels were validated when the row was ingested.
    LabelSet::new(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{LogBatchBuilder, LogFields, Stream};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn profile_samples_are_sorted_by_stack_within_a_stream() {
        use crate::ingest::profiles::{ProfileRows, Received};
        use crate::profile::{Frame, Profile, Sample, ValueType};
        let frames = ["a", "b", "c"]
            .iter()
            .map(|f| Frame {
                function: (*f).into(),
                ..Frame::default()
            })
            .collect();
        let sample = |stack: Vec<u32>| Sample {
            stack,
            values: vec![1],
            labels: vec![],
        };
        let mut rows = ProfileRows::default();
        for time in [2, 1] {
            let profile = Profile {
                time_nanos: time,
                sample_types: vec![ValueType::new("cpu", "nanoseconds")],
                frames: Vec::clone(&frames),
                samples: vec![sample(vec![0, 1]), sample(vec![0, 2]), sample(vec![0, 1])],
                ..Profile::default()
            };
            rows.add(Received {
                labels: vec![("service_name".into(), "shop".into())],
                profile: &profile,
                original: b"",
                default_time: 0,
                default_duration: 0,
                id: None,
            })
            .unwrap();
        }
        let batches: Vec<RecordBatch> = rows
            .finish()
            .into_iter()
            .filter(|(signal, _)| *signal == Signal::ProfileSamples)
            .map(|(_, b)| b)
            .collect();
        let sorted = sort_for_chunk(Signal::ProfileSamples, &batches).unwrap();
        let stacks = sorted
            .column_by_name("stack_id")
            .unwrap()
            .as_primitive::<UInt64Type>();
        let times = sorted
            .column_by_name("timestamp")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        let rows: Vec<(u64, i64)> = (0..sorted.num_rows())
            .map(|i| (stacks.value(i), times.value(i)))
            .collect();
        let mut expected = rows.clone();
        expected.sort();
        assert_eq!(rows, expected);
    }

    /// Batches of any size give pages of whole blocks (the last one aside).
    #[test]
    fn pages_hold_whole_blocks_whatever_the_batch_sizes() {
        let stream = Stream::new(LabelSet::new(vec![("service_name".into(), "a".into())]).unwrap());
        let batch = |start: i64, n: usize| {
            let mut b = LogBatchBuilder::default();
            for i in 0..n {
                b.append(
                    &stream,
                    LogFields {
                        timestamp: start + i as i64,
                        observed_timestamp: None,
                        severity_number: None,
                        body: "line",
                        trace_id: None,
                        span_id: None,
                        attributes: &[],
                        scope_name: None,
                    },
                );
            }
            b.finish()
        };
        let mut out = Vec::new();
        let mut writer = ChunkWriter::new(Signal::Logs, &mut out).unwrap();
        let mut start = 0;
        for n in [700, 300, 5000, 1, 1023, 2048, 77] {
            writer.write(&batch(start, n)).unwrap();
            start += n as i64;
        }
        let summary = writer.finish().unwrap();
        assert_eq!(summary.rows, start as u64);
        let options = parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Required);
        let reader =
            ParquetRecordBatchReaderBuilder::try_new_with_options(bytes::Bytes::from(out), options)
                .unwrap();
        let offsets = reader.metadata().offset_index().unwrap();
        for column in &offsets[0] {
            let firsts: Vec<i64> = column
                .page_locations()
                .iter()
                .map(|p| p.first_row_index)
                .collect();
            assert!(
                firsts.iter().all(|f| f % BLOCK_ROWS as i64 == 0),
                "pages start at {firsts:?}"
            );
        }
    }

    #[test]
    fn chunk_is_sorted_and_round_trips() {
        let streams: Vec<_> = ["b", "a"]
            .iter()
            .map(|s| {
                Stream::new(LabelSet::new(vec![("service_name".into(), s.to_string())]).unwrap())
            })
            .collect();
        let mut b = LogBatchBuilder::default();
        for i in 0..10i64 {
            let trace = TraceId::from_bytes(&[(i % 3 + 1) as u8; 16]).ok();
            b.append(
                &streams[(i % 2) as usize],
                LogFields {
                    timestamp: 100 - i,
                    observed_timestamp: None,
                    severity_number: None,
                    body: "line",
                    trace_id: trace,
                    span_id: None,
                    attributes: &[],
                    scope_name: None,
                },
            );
        }
        let sorted = sort_for_chunk(Signal::Logs, &[b.finish()]).unwrap();
        let encoded = encode_chunk(Signal::Logs, &sorted).unwrap();
        let chunk = &encoded.summary;
        assert_eq!(chunk.rows, 10);
        assert_eq!(chunk.streams.len(), 2);
        assert!(chunk.streams[0].id < chunk.streams[1].id || chunk.streams.len() == 1);
        assert_eq!(chunk.traces.len(), 3);
        let fingerprint = |b: u8| TraceId::from_bytes(&[b; 16]).unwrap().fingerprint();
        assert_eq!(chunk.traces.blocks(fingerprint(2)), &[0]);
        assert!(!chunk.traces.contains(fingerprint(9)));
        assert_eq!((chunk.min_time, chunk.max_time), (91, 100));

        let reader = ParquetRecordBatchReaderBuilder::try_new(encoded.bytes.clone()).unwrap();
        let batches: Vec<_> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(batches[0].schema(), schema::schema(Signal::Logs));
        let ids = batches[0]
            .column_by_name("stream_id")
            .unwrap()
            .as_primitive::<UInt64Type>();
        assert!(ids.values().windows(2).all(|w| w[0] <= w[1]));
    }
}
