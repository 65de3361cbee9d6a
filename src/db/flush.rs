//! Cutting the head into chunks.
//!
//! A cut moves a partition's active buffer to `flushing` (still served to queries),
//! sorts and encodes it per hour window, writes each chunk and then its metadata, and
//! only then, under the catalog lock, registers the chunks and drops the buffer. Rows
//! of a window whose write failed, or took longer than the upload timeout, go back to
//! the head. Last, WAL segments whose every record is now in chunks are removed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arrow::array::RecordBatch;
use tracing::{debug, warn};

use super::head::{HeadBuffer, split_by_partition, split_by_window};
use super::{Db, Result};
use crate::metrics::Metrics;
use crate::model::{Signal, Tenant};
use crate::storage::{
    ChunkId, ChunkKey, ChunkMeta, PartitionKey, WalMark, encode_chunk, sort_for_chunk,
};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub chunks: usize,
    pub rows: u64,
    pub failed_windows: usize,
    pub wal_segments_removed: usize,
}

struct Job {
    tenant: Tenant,
    signal: Signal,
    partition: PartitionKey,
    buffer: Arc<HeadBuffer>,
}

impl Db {
    /// Cuts every partition that is due (or every non-empty one with `force`).
    pub async fn flush(&self, force: bool) -> Result<FlushReport> {
        let _one_at_a_time = self.flush_lock.lock().await;
        let now = Instant::now();
        let jobs = {
            let mut catalog = self.write_catalog();
            let mut jobs = Vec::new();
            for ((tenant, signal), table) in catalog.tables.iter_mut() {
                for (partition, head) in table.partitions.iter_mut() {
                    let due = head.active.as_ref().is_some_and(|a| {
                        !a.is_empty()
                            && (force
                                || a.bytes >= self.config.head_max_bytes
                                || now.duration_since(a.created) >= self.config.head_max_age)
                    });
                    if !due {
                        continue;
                    }
                    if let Some(active) = head.active.take() {
                        let buffer = Arc::new(active);
                        head.flushing.push(Arc::clone(&buffer));
                        jobs.push(Job {
                            tenant: tenant.clone(),
                            signal: *signal,
                            partition: partition.clone(),
                            buffer,
                        });
                    }
                }
            }
            jobs
        };
        let mut report = FlushReport::default();
        for job in jobs {
            self.flush_job(job, &mut report).await;
        }
        // Both read under the catalog lock, which every append also holds: no record can
        // be sequenced between the two reads without being in the head.
        let watermark = {
            let catalog = self.read_catalog();
            catalog
                .min_unflushed_seq()
                .unwrap_or_else(|| self.wal.next_seq())
        };
        if report.chunks > 0 {
            crate::failpoint::pause_async(crate::failpoint::FLUSH_BEFORE_TRUNCATE).await;
        }
        report.wal_segments_removed = self.wal.remove_before(watermark)?;
        self.update_head_gauges();
        Ok(report)
    }

    async fn flush_job(&self, job: Job, report: &mut FlushReport) {
        let mut written = Vec::new();
        let mut failed: Vec<RecordBatch> = Vec::new();
        match self.encode_windows(&job).await {
            Ok(windows) => {
                for (window, sorted) in windows {
                    match self.write_chunk(&job, window, &sorted).await {
                        Ok(meta) => {
                            report.rows += meta.rows;
                            written.push(Arc::new(meta));
                        }
                        Err(e) => {
                            Metrics::add(&self.metrics.chunk_write_errors_total, 1);
                            warn!(tenant = %job.tenant, signal = %job.signal, partition = %job.partition, error = %e, "chunk write failed; rows stay in the head");
                            failed.push(sorted);
                        }
                    }
                }
            }
            Err(e) => {
                Metrics::add(&self.metrics.chunk_write_errors_total, 1);
                warn!(tenant = %job.tenant, signal = %job.signal, partition = %job.partition, error = %e, "chunk encoding failed; rows stay in the head");
                failed.extend(job.buffer.batches.iter().cloned());
            }
        }
        report.chunks += written.len();
        report.failed_windows += failed.len();

        let mut catalog = self.write_catalog();
        let table = catalog
            .tables
            .entry((job.tenant.clone(), job.signal))
            .or_default();
        for meta in written {
            table.register_chunk(meta);
        }
        self.update_chunk_gauges(&catalog);
        let fresh = catalog.new_buffer(job.buffer.created);
        let table = catalog
            .tables
            .entry((job.tenant.clone(), job.signal))
            .or_default();
        let head = table.partitions.entry(job.partition.clone()).or_default();
        head.flushing.retain(|b| !Arc::ptr_eq(b, &job.buffer));
        if !failed.is_empty() {
            // Keep the buffer's sequence range so the WAL is not truncated past it.
            let active = head.active.get_or_insert(fresh);
            for batch in failed {
                match split_by_partition(job.signal, &batch) {
                    Ok(parts) => {
                        for part in parts {
                            active.push(part, job.buffer.min_seq);
                            active.max_seq = active.max_seq.max(job.buffer.max_seq);
                        }
                    }
                    Err(e) => warn!(error = %e, "cannot return rows to the head"),
                }
            }
        }
    }

    async fn encode_windows(&self, job: &Job) -> Result<Vec<(i64, RecordBatch)>> {
        let signal = job.signal;
        let buffer = Arc::clone(&job.buffer);
        let windows = tokio::task::spawn_blocking(move || -> Result<Vec<(i64, RecordBatch)>> {
            let all = sort_for_chunk(signal, &buffer.batches)?;
            let mut out = Vec::new();
            for (window, batch) in split_by_window(signal, &all)? {
                // split_by_window keeps row order, so each window stays sorted.
                out.push((window, batch));
            }
            Ok(out)
        })
        .await??;
        Ok(windows)
    }

    async fn write_chunk(&self, job: &Job, window: i64, sorted: &RecordBatch) -> Result<ChunkMeta> {
        let signal = job.signal;
        let batch = sorted.clone();
        let encoded = tokio::task::spawn_blocking(move || encode_chunk(signal, &batch)).await??;
        let key = ChunkKey {
            tenant: job.tenant.clone(),
            signal,
            partition: job.partition.clone(),
            window_start: window,
            id: self.next_chunk_id(),
        };
        let size = encoded.bytes.len() as u64;
        let wal = vec![WalMark {
            ingester: self.ingester.clone(),
            through: job.buffer.max_seq,
        }];
        let meta = ChunkMeta::new(&key, wal, Vec::new(), size, encoded.summary);
        crate::failpoint::pause_async(crate::failpoint::FLUSH_BEFORE_UPLOAD).await;
        self.store.put(&key.data_path(), encoded.bytes).await?;
        crate::failpoint::pause_async(crate::failpoint::FLUSH_AFTER_UPLOAD).await;
        self.commit_meta(&meta).await?;
        crate::failpoint::pause_async(crate::failpoint::FLUSH_AFTER_META).await;
        Metrics::add(&self.metrics.chunks_written_total, 1);
        Metrics::add(&self.metrics.chunk_bytes_written_total, size);
        debug!(chunk = %key.data_path(), rows = meta.rows, bytes = size, "chunk written");
        Ok(meta)
    }

    /// A chunk ID unique to this ingester, sortable by creation time.
    pub(super) fn next_chunk_id(&self) -> ChunkId {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        ChunkId::new(
            unix_ms,
            &self.ingester,
            self.chunk_counter.fetch_add(1, Ordering::Relaxed),
        )
    }

    /// Writes a chunk's metadata, the commit point of its chunk: once it is stored, the
    /// chunk is part of the store (and the chunks it replaces are not).
    pub(super) async fn commit_meta(&self, meta: &ChunkMeta) -> Result<()> {
        let path = meta.key().meta_path();
        let encoded = meta
            .encode()
            .map_err(|reason| crate::storage::StoreError::Meta {
                path: path.to_string(),
                reason,
            })?;
        if let Err(e) = self.store.put(&path, encoded.into()).await {
            // A PUT can fail after the object was stored (a timeout on the reply); if it
            // is there, the chunk is committed, and undoing it (returning its rows to the
            // head, or keeping the chunks it replaces) would store rows twice. (One that
            // is not there yet but lands later, after this answer, would do so; nothing
            // short of a conditional write can rule that out.)
            if !self.store.exists(&path).await {
                return Err(e.into());
            }
            warn!(chunk = %path, error = %e, "metadata write reported an error but the object exists");
        }
        Ok(())
    }
}
