//! The streaming merge: chunks already sorted by stream and time are read batch by
//! batch and merged in order into one new chunk, written to a local file as it grows.
//! Memory holds, per input, one decoded batch and the compressed pages of the row
//! group it is in, and the writer's open row group: bounded by the inputs' count and
//! row group size (so by the target size), not by what is merged in total.
//!
//! Rows with equal sort keys keep the order of their inputs (oldest chunk first), so
//! the same inputs always give the same chunk.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::interleave_record_batch;
use arrow::datatypes::{TimestampNanosecondType, UInt64Type};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::model::Signal;
use crate::storage::ChunkMeta;
use crate::storage::chunk::{ChunkError, ChunkSummary, ChunkWriter};

/// Rows decoded at a time from each input.
const INPUT_BATCH_ROWS: usize = 2048;
/// Rows handed to the writer at a time (at most; fewer when an input moves on).
const OUTPUT_BATCH_ROWS: usize = 8192;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("reading chunk {path}: {source}")]
    Read {
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("chunk {path} is not sorted by stream and time")]
    Unsorted { path: String },
    #[error("cannot write the merged chunk to {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the chunk writer stopped: {0}")]
    Writer(#[from] tokio::task::JoinError),
    #[error("the chunk writer stopped early")]
    WriterStopped,
}

/// A row's place in chunk order: stream, stack (profile samples only), time.
type SortKey = (u64, u64, i64);

struct Input {
    path: String,
    stream: ParquetRecordBatchStream<ChunkFile>,
    batch: RecordBatch,
    keys: Vec<SortKey>,
    row: usize,
}

impl Input {
    async fn open(store: &Arc<dyn ObjectStore>, chunk: &ChunkMeta) -> Result<Self, MergeError> {
        let path = chunk.key().data_path();
        let read_error = |source| MergeError::Read {
            path: path.to_string(),
            source,
        };
        let reader = ChunkFile {
            store: Arc::clone(store),
            path: path.clone(),
            size: chunk.size,
        };
        let stream = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .map_err(read_error)?
            .with_batch_size(INPUT_BATCH_ROWS)
            .build()
            .map_err(read_error)?;
        Ok(Self {
            path: path.to_string(),
            stream,
            batch: RecordBatch::new_empty(crate::model::schema::schema(chunk.signal)),
            keys: Vec::new(),
            row: 0,
        })
    }

    /// Moves to the next non-empty batch; false at the end of the chunk.
    async fn advance(&mut self, signal: Signal) -> Result<bool, MergeError> {
        while let Some(batch) = self.stream.next().await {
            let batch = batch.map_err(|source| MergeError::Read {
                path: self.path.clone(),
                source,
            })?;
            if batch.num_rows() == 0 {
                continue;
            }
            let keys = sort_keys(signal, &batch)?;
            let in_order = keys.windows(2).all(|w| w[0] <= w[1])
                && self.keys.last().is_none_or(|last| *last <= keys[0]);
            if !in_order {
                return Err(MergeError::Unsorted {
                    path: self.path.clone(),
                });
            }
            (self.batch, self.keys, self.row) = (batch, keys, 0);
            return Ok(true);
        }
        Ok(false)
    }

    fn key(&self) -> SortKey {
        self.keys[self.row]
    }
}

/// A chunk's Parquet object, read in ranges.
struct ChunkFile {
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    size: u64,
}

impl AsyncFileReader for ChunkFile {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        Box::pin(async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        // One call for a row group's column chunks: the store may coalesce them.
        Box::pin(async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        Box::pin(async move {
            let size = self.size;
            // Chunk footers are small: one read fetches the footer and its length.
            let metadata = ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 << 10))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        })
    }
}

fn sort_keys(signal: Signal, batch: &RecordBatch) -> Result<Vec<SortKey>, ChunkError> {
    let streams = batch
        .column_by_name("stream_id")
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        .ok_or(ChunkError::Column("stream_id"))?;
    let times = batch
        .column_by_name(signal.time_column())
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or(ChunkError::Column("time"))?;
    let stacks = match signal {
        Signal::ProfileSamples => Some(
            batch
                .column_by_name("stack_id")
                .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                .ok_or(ChunkError::Column("stack_id"))?,
        ),
        _ => None,
    };
    Ok((0..batch.num_rows())
        .map(|row| {
            let stack = stacks.map_or(0, |s| s.value(row));
            (streams.value(row), stack, times.value(row))
        })
        .collect())
}

/// Merges `chunks` (each sorted, oldest first) into one chunk written to `file`, and
/// returns its summary. `progress` hears the rows merged so far.
pub async fn merge_chunks(
    store: &Arc<dyn ObjectStore>,
    signal: Signal,
    chunks: &[Arc<ChunkMeta>],
    file: std::path::PathBuf,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ChunkSummary, MergeError> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<RecordBatch>(2);
    // Encoding is CPU work: it runs on a blocking thread, fed through a short queue
    // so that reading never runs far ahead of writing.
    let writer_path = file.clone();
    let writer = tokio::task::spawn_blocking(move || -> Result<ChunkSummary, MergeError> {
        let io = |source| MergeError::Io {
            path: writer_path.clone(),
            source,
        };
        let out = std::fs::File::create(&writer_path).map_err(io)?;
        let mut writer = ChunkWriter::new(signal, std::io::BufWriter::new(out))?;
        while let Some(batch) = receiver.blocking_recv() {
            writer.write(&batch)?;
        }
        Ok(writer.finish()?)
    });

    let merged = merge_into(store, signal, chunks, &sender, progress).await;
    drop(sender);
    // A writer that failed closed the queue: its error is the one to report.
    let summary = writer.await??;
    merged?;
    Ok(summary)
}

async fn merge_into(
    store: &Arc<dyn ObjectStore>,
    signal: Signal,
    chunks: &[Arc<ChunkMeta>],
    sender: &tokio::sync::mpsc::Sender<RecordBatch>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), MergeError> {
    let mut inputs = Vec::with_capacity(chunks.len());
    let mut heap = BinaryHeap::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut input = Input::open(store, chunk).await?;
        if input.advance(signal).await? {
            heap.push(Reverse((input.key(), i)));
        }
        inputs.push(input);
    }
    let mut pending: Vec<(usize, usize)> = Vec::with_capacity(OUTPUT_BATCH_ROWS);
    let mut merged = 0u64;
    while let Some(Reverse((_, i))) = heap.pop() {
        // Take the run of rows this input holds before the next input's first row.
        let next = heap.peek().map(|Reverse(top)| *top);
        let input = &mut inputs[i];
        loop {
            pending.push((i, input.row));
            input.row += 1;
            let more = input.row < input.keys.len()
                && next.is_none_or(|top| (input.key(), i) < top)
                && pending.len() < OUTPUT_BATCH_ROWS;
            if !more {
                break;
            }
        }
        let exhausted = input.row == input.keys.len();
        if exhausted || pending.len() >= OUTPUT_BATCH_ROWS {
            // The batch an input leaves behind must be copied out before it goes.
            merged += emit(take_pending(&inputs, &mut pending)?, sender).await?;
            progress(merged);
        }
        let input = &mut inputs[i];
        if !exhausted || input.advance(signal).await? {
            heap.push(Reverse((input.key(), i)));
        }
    }
    merged += emit(take_pending(&inputs, &mut pending)?, sender).await?;
    progress(merged);
    Ok(())
}

/// Hands merged rows to the writer; returns how many.
async fn emit(
    batch: Option<RecordBatch>,
    sender: &tokio::sync::mpsc::Sender<RecordBatch>,
) -> Result<u64, MergeError> {
    let Some(batch) = batch else {
        return Ok(0);
    };
    let rows = batch.num_rows() as u64;
    sender
        .send(batch)
        .await
        .map_err(|_| MergeError::WriterStopped)?;
    Ok(rows)
}

/// Copies the pending rows out of the inputs' batches (no reference to an input may
/// be held across an await: its reader is not `Sync`).
fn take_pending(
    inputs: &[Input],
    pending: &mut Vec<(usize, usize)>,
) -> Result<Option<RecordBatch>, MergeError> {
    if pending.is_empty() {
        return Ok(None);
    }
    let batches: Vec<&RecordBatch> = inputs.iter().map(|i| &i.batch).collect();
    let batch = interleave_record_batch(&batches, pending)?;
    pending.clear();
    Ok(Some(batch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::schema::{LogBatchBuilder, LogFields, Stream};
    use crate::model::{LabelSet, Tenant, TraceId};
    use crate::storage::keys::{ChunkId, ChunkKey, PartitionKey};
    use crate::storage::{encode_chunk, sort_for_chunk};
    use object_store::ObjectStoreExt;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use proptest::prelude::*;

    /// One log row: (stream, time, body).
    type Row = (u8, i64, String);

    /// Stores `rows` as one chunk (sorted as flushes sort them).
    async fn store_chunk(store: &Arc<dyn ObjectStore>, n: u32, rows: &[Row]) -> Arc<ChunkMeta> {
        let mut b = LogBatchBuilder::default();
        for (stream, time, body) in rows {
            let labels = vec![
                ("service_name".into(), "api".into()),
                ("pod".into(), format!("p{stream}")),
            ];
            b.append(
                &Stream::new(LabelSet::new(labels).unwrap()),
                LogFields {
                    timestamp: *time,
                    observed_timestamp: None,
                    severity_number: None,
                    body,
                    trace_id: TraceId::from_bytes(&[*stream + 1; 16]).ok(),
                    span_id: None,
                    attributes: &[],
                    scope_name: None,
                },
            );
        }
        let sorted = sort_for_chunk(Signal::Logs, &[b.finish()]).unwrap();
        let encoded = encode_chunk(Signal::Logs, &sorted).unwrap();
        let key = ChunkKey {
            tenant: Tenant::default_tenant(),
            signal: Signal::Logs,
            partition: PartitionKey::from_label_value(Some("api")),
            window_start: 0,
            id: ChunkId::new(1, "00ff", n),
        };
        let size = encoded.bytes.len() as u64;
        store
            .put(&key.data_path(), encoded.bytes.into())
            .await
            .unwrap();
        Arc::new(ChunkMeta::new(
            &key,
            Vec::new(),
            Vec::new(),
            size,
            encoded.summary,
        ))
    }

    /// The merged chunk's (stream_id, time, body) rows, in file order.
    fn read_rows(path: &std::path::Path) -> Vec<(u64, i64, String)> {
        let file = std::fs::File::open(path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let keys = sort_keys(Signal::Logs, &batch).unwrap();
            let body = arrow::compute::cast(
                batch.column_by_name("body").unwrap(),
                &arrow::datatypes::DataType::Utf8,
            )
            .unwrap();
            let body = body.as_string::<i32>();
            for (row, (stream, _, time)) in keys.into_iter().enumerate() {
                rows.push((stream, time, body.value(row).to_owned()));
            }
        }
        rows
    }

    fn chunks() -> impl Strategy<Value = Vec<Vec<Row>>> {
        prop::collection::vec(
            prop::collection::vec((0..4u8, 0..50i64, "[a-c]{0,3}"), 0..40),
            1..6,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Every input row lands in the merged chunk exactly once, in stream-then-time
        /// order, with its statistics those of the rows it holds.
        #[test]
        fn merging_keeps_every_row_once_in_chunk_order(chunks in chunks()) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("merged.parquet");
            let (summary, metas) = rt.block_on(async {
                let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
                let mut metas = Vec::new();
                for (n, rows) in chunks.iter().enumerate() {
                    metas.push(store_chunk(&store, n as u32, rows).await);
                }
                let summary = merge_chunks(&store, Signal::Logs, &metas, out.clone(), &|_| {})
                    .await
                    .unwrap();
                (summary, metas)
            });
            let merged = read_rows(&out);
            let total: usize = chunks.iter().map(Vec::len).sum();
            prop_assert_eq!(merged.len(), total);
            prop_assert_eq!(summary.rows as usize, total);
            prop_assert!(merged.windows(2).all(|w| (w[0].0, w[0].1) <= (w[1].0, w[1].1)));
            // The same rows as went in: the bodies with their times, as multisets.
            let mut got: Vec<(i64, String)> = merged.iter().map(|(_, t, b)| (*t, b.clone())).collect();
            let mut want: Vec<(i64, String)> = chunks.iter().flatten().map(|(_, t, b)| (*t, b.clone())).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
            let streams: std::collections::BTreeSet<u64> = merged.iter().map(|r| r.0).collect();
            prop_assert_eq!(summary.streams.len(), streams.len());
            prop_assert_eq!(summary.streams.iter().map(|s| s.rows).sum::<u64>(), total as u64);
            if total > 0 {
                prop_assert_eq!(summary.min_time, merged.iter().map(|r| r.1).min().unwrap());
                prop_assert_eq!(summary.max_time, merged.iter().map(|r| r.1).max().unwrap());
            }
            // Each input's trace is found in the merged chunk's locator.
            for meta in &metas {
                for stream in &meta.streams {
                    let pod = stream.labels.get("pod").unwrap();
                    let byte = pod[1..].parse::<u8>().unwrap() + 1;
                    let id = TraceId::from_bytes(&[byte; 16]).unwrap();
                    prop_assert!(summary.traces.contains(id.fingerprint()));
                }
            }
        }
    }
}
