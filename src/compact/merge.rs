//! The streaming merge: chunks already sorted by stream and time are read batch by
//! batch and merged in order into one new chunk, written to a local file as it grows.
//! Memory holds one batch per input and the writer's open row group, never a whole
//! chunk, so it does not grow with the size of what is merged.
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
