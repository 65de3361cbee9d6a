//! Compaction, retention and deletion against the catalog (see `crate::compact` for
//! the rules). One pass at a time: the background loop and on-demand runs share a
//! lock, so no chunk is merged twice or merged while it expires.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;
use tracing::{info, warn};

use super::{Db, Result};
use crate::compact::merge::{MergeError, merge_chunks};
use crate::compact::{Candidate, CompactionReport, Merge, PlanConfig, Progress, plan};
use crate::failpoint;
use crate::metrics::Metrics;
use crate::storage::{ChunkId, ChunkKey, ChunkMeta, WalMark};

/// A chunk out of force, still stored until its delay has passed.
#[derive(Debug)]
pub(super) struct Retired {
    pub meta: Arc<ChunkMeta>,
    pub since: Instant,
}

/// One signal's retention for one tenant.
#[derive(Debug, Clone)]
pub struct SignalRetention {
    pub signal: crate::model::Signal,
    /// `None` keeps rows for ever.
    pub period: Option<std::time::Duration>,
    /// Rows older than this (ns since the epoch) are deleted.
    pub cutoff: Option<i64>,
    /// The oldest row stored (in chunks or the head).
    pub oldest: Option<i64>,
    pub chunks: usize,
    pub bytes: u64,
    pub rows: u64,
}

/// Chunks deleted at once: deleting is two small requests per chunk, and a large
/// retention backlog should not take one round trip after another.
const DELETES_IN_FLIGHT: usize = 16;

/// Where merged chunks are written before upload, under the data directory.
pub(super) const SCRATCH_DIR: &str = "compaction";

impl Db {
    /// One pass: retention, then compaction of windows that ended before
    /// `settled_before` (ns since the epoch), then deletion of chunks whose delay has
    /// passed. `progress` hears each step as it happens.
    pub async fn compact(
        &self,
        settled_before: i64,
        now_ns: i64,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<CompactionReport> {
        let Ok(_one_at_a_time) = self.compact_lock.try_lock() else {
            return Err(super::Error::CompactionRunning);
        };
        let started = Instant::now();
        let mut report = CompactionReport {
            chunks_before: self.chunk_count(),
            ..CompactionReport::default()
        };
        report.chunks_expired = self.expire(now_ns);
        if report.chunks_expired > 0 {
            progress(Progress::Expired {
                chunks: report.chunks_expired,
            });
        }

        let candidates: Vec<Candidate> = {
            let catalog = self.read_catalog();
            catalog
                .tables
                .values()
                .flat_map(|t| t.chunks.values())
                .filter(|meta| !catalog.unsettled.contains(&meta.id))
                .map(|meta| Candidate::of(meta))
                .collect()
        };
        let merges = plan(
            &candidates,
            &PlanConfig {
                target_bytes: self.config.compaction.target_bytes,
                settled_before,
            },
        );
        progress(Progress::Planned {
            merges: merges.len(),
            chunks: merges.iter().map(|m| m.inputs.len()).sum(),
            bytes: merges.iter().map(Merge::size).sum(),
        });
        let of = merges.len();
        for (n, merge) in merges.iter().enumerate() {
            let index = n + 1;
            report.merges += 1;
            match self.run_merge(merge, index, of, progress).await {
                Ok(out) => {
                    report.chunks_merged += merge.inputs.len();
                    report.chunks_written += 1;
                    report.rows_merged += out.rows;
                    report.bytes_read += merge.size();
                    report.bytes_written += out.size;
                    progress(Progress::Merged {
                        merge: index,
                        of,
                        chunks: merge.inputs.len(),
                        bytes_read: merge.size(),
                        bytes_written: out.size,
                    });
                }
                Err(e) => {
                    report.failed_merges += 1;
                    Metrics::add(&self.metrics.compaction_failures_total, 1);
                    warn!(tenant = %merge.inputs[0].tenant, signal = %merge.inputs[0].signal,
                        partition = %merge.inputs[0].partition, error = %e,
                        "compaction failed; the chunks stay as they were");
                    progress(Progress::MergeFailed {
                        merge: index,
                        of,
                        error: e.to_string(),
                    });
                }
            }
        }
        report.chunks_deleted = self.delete_retired(Instant::now()).await;
        if report.chunks_deleted > 0 {
            progress(Progress::Deleted {
                chunks: report.chunks_deleted,
            });
        }
        report.chunks_after = self.chunk_count();
        Metrics::add(&self.metrics.compaction_runs_total, 1);
        if report.merges + report.chunks_expired + report.chunks_deleted > 0 {
            info!(
                merges = report.merges,
                failed = report.failed_merges,
                chunks_merged = report.chunks_merged,
                chunks_expired = report.chunks_expired,
                chunks_deleted = report.chunks_deleted,
                chunks_before = report.chunks_before,
                chunks_after = report.chunks_after,
                bytes_read = report.bytes_read,
                bytes_written = report.bytes_written,
                seconds = started.elapsed().as_secs_f64(),
                "compaction pass done"
            );
        }
        Ok(report)
    }

    /// Merges one planned group into a new chunk, commits it and swaps it in.
    async fn run_merge(
        &self,
        merge: &Merge,
        index: usize,
        of: usize,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Arc<ChunkMeta>> {
        let first = &merge.inputs[0];
        let inputs: Vec<Arc<ChunkMeta>> = {
            let catalog = self.read_catalog();
            let table = catalog.table(&first.tenant, first.signal);
            merge
                .inputs
                .iter()
                .filter_map(|c| table.and_then(|t| t.chunks.get(&c.id)).cloned())
                .collect()
        };
        if inputs.len() != merge.inputs.len() {
            return Err(super::Error::Compaction(
                "an input chunk left the catalog before its merge".into(),
            ));
        }
        let key = ChunkKey {
            tenant: first.tenant.clone(),
            signal: first.signal,
            partition: first.partition.clone(),
            window_start: first.window_start,
            id: self.next_chunk_id(),
        };
        let scratch = self.config.data_dir.join(SCRATCH_DIR);
        std::fs::create_dir_all(&scratch).map_err(|source| MergeError::Io {
            path: scratch.clone(),
            source,
        })?;
        let file = scratch.join(format!("{}.parquet", key.id));
        let rows = merge.rows();
        let report_rows = |rows_done| {
            progress(Progress::Merging {
                merge: index,
                of,
                rows_done,
                rows,
            })
        };
        let written = self
            .write_merged(&key, &inputs, &file, rows, &report_rows)
            .await;
        let _ = std::fs::remove_file(&file);
        let (size, summary) = written?;

        let meta = Arc::new(ChunkMeta::new(
            &key,
            merged_wal_marks(&inputs),
            inputs.iter().map(|m| m.id.clone()).collect(),
            size,
            summary,
        ));
        // A failed commit leaves the object behind: its metadata may still land (a PUT
        // that timed out), and a chunk in force must never lose its data. For the same
        // reason the inputs are not merged again until the next start, which finds out
        // whether the commit landed: a second merge of them could be in force beside it.
        if let Err(e) = self.commit_meta(&meta).await {
            self.write_catalog()
                .unsettled
                .extend(inputs.iter().map(|m| m.id.clone()));
            return Err(e);
        }
        failpoint::pause_async(failpoint::COMPACT_AFTER_COMMIT).await;
        self.swap_in(&meta, &inputs);
        Metrics::add(
            &self.metrics.compaction_chunks_merged_total,
            inputs.len() as u64,
        );
        Metrics::add(&self.metrics.compaction_chunks_written_total, 1);
        Metrics::add(&self.metrics.compaction_bytes_read_total, merge.size());
        Metrics::add(&self.metrics.compaction_bytes_written_total, size);
        Ok(meta)
    }

    /// Writes the merged chunk's object; returns its size and summary.
    async fn write_merged(
        &self,
        key: &ChunkKey,
        inputs: &[Arc<ChunkMeta>],
        file: &std::path::Path,
        rows: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<(u64, crate::storage::chunk::ChunkSummary)> {
        let store = self.store.object_store();
        let summary = merge_chunks(&store, key.signal, inputs, file.to_owned(), progress).await?;
        // Every input row lands in the output: a merge that lost or made rows is not
        // committed.
        if summary.rows != rows {
            return Err(super::Error::Compaction(format!(
                "merged {} rows from chunks holding {rows}",
                summary.rows
            )));
        }
        let size = std::fs::metadata(file)
            .map_err(|source| MergeError::Io {
                path: file.to_owned(),
                source,
            })?
            .len();
        self.store.put_file(&key.data_path(), file).await?;
        failpoint::pause_async(failpoint::COMPACT_AFTER_UPLOAD).await;
        Ok((size, summary))
    }

    /// Replaces `inputs` by `merged` in the catalog, in one step under its lock.
    fn swap_in(&self, merged: &Arc<ChunkMeta>, inputs: &[Arc<ChunkMeta>]) {
        let now = Instant::now();
        let mut catalog = self.write_catalog();
        let table = catalog
            .tables
            .entry((merged.tenant.clone(), merged.signal))
            .or_default();
        for input in inputs {
            table.chunks.remove(&input.id);
        }
        table.register_chunk(Arc::clone(merged));
        catalog.retired.extend(inputs.iter().map(|meta| Retired {
            meta: Arc::clone(meta),
            since: now,
        }));
        self.update_chunk_gauges(&catalog);
    }

    /// Takes chunks past their retention out of the catalog; returns how many.
    fn expire(&self, now_ns: i64) -> usize {
        let now = Instant::now();
        let retention = &self.config.retention;
        let mut catalog = self.write_catalog();
        let mut expired = Vec::new();
        for ((tenant, signal), table) in catalog.tables.iter_mut() {
            let Some(cutoff) = retention.cutoff(tenant, *signal, now_ns) else {
                continue;
            };
            let gone: Vec<ChunkId> = table
                .chunks
                .values()
                .filter(|c| c.max_time < cutoff)
                .map(|c| c.id.clone())
                .collect();
            if gone.is_empty() {
                continue;
            }
            for id in gone {
                if let Some(meta) = table.chunks.remove(&id) {
                    expired.push(Retired { meta, since: now });
                }
            }
            table.prune_labels();
        }
        let count = expired.len();
        catalog.retired.extend(expired);
        self.update_chunk_gauges(&catalog);
        Metrics::add(&self.metrics.retention_chunks_expired_total, count as u64);
        count
    }

    /// Deletes retired chunks whose delay has passed, metadata first; returns how
    /// many. A chunk whose replaced chunks are not yet deleted waits for them.
    pub async fn delete_retired(&self, now: Instant) -> usize {
        let delay = self.config.compaction.delete_delay;
        let mut deleted = 0;
        loop {
            let due: Vec<Arc<ChunkMeta>> = {
                let catalog = self.read_catalog();
                let waiting: HashSet<&ChunkId> =
                    catalog.retired.iter().map(|r| &r.meta.id).collect();
                catalog
                    .retired
                    .iter()
                    .filter(|r| now.saturating_duration_since(r.since) >= delay)
                    .filter(|r| !r.meta.replaces.iter().any(|id| waiting.contains(id)))
                    .map(|r| Arc::clone(&r.meta))
                    .collect()
            };
            if due.is_empty() {
                return deleted;
            }
            let results: Vec<(ChunkId, bool)> = futures::stream::iter(due)
                .map(|meta| async move {
                    let key = meta.key();
                    let result = async {
                        self.store.delete(&key.meta_path()).await?;
                        failpoint::pause_async(failpoint::DELETE_AFTER_META).await;
                        self.store.delete(&key.data_path()).await
                    }
                    .await;
                    if let Err(e) = &result {
                        warn!(chunk = %key.data_path(), error = %e, "cannot delete a chunk; retrying on the next pass");
                    }
                    (meta.id.clone(), result.is_ok())
                })
                .buffer_unordered(DELETES_IN_FLIGHT)
                .collect()
                .await;
            let gone: HashSet<ChunkId> = results
                .into_iter()
                .filter_map(|(id, ok)| ok.then_some(id))
                .collect();
            if gone.is_empty() {
                return deleted;
            }
            let mut catalog = self.write_catalog();
            catalog.retired.retain(|r| !gone.contains(&r.meta.id));
            self.update_chunk_gauges(&catalog);
            drop(catalog);
            Metrics::add(&self.metrics.chunks_deleted_total, gone.len() as u64);
            deleted += gone.len();
        }
    }

    /// What a tenant keeps of each signal: its period, the instant before which rows
    /// go, and what is stored now.
    pub fn retention_status(
        &self,
        tenant: &crate::model::Tenant,
        now_ns: i64,
    ) -> Vec<SignalRetention> {
        let retention = &self.config.retention;
        let catalog = self.read_catalog();
        crate::model::Signal::ALL
            .iter()
            .map(|&signal| {
                let mut status = SignalRetention {
                    signal,
                    period: retention.period(tenant, signal),
                    cutoff: retention.cutoff(tenant, signal, now_ns),
                    oldest: None,
                    chunks: 0,
                    bytes: 0,
                    rows: 0,
                };
                if let Some(table) = catalog.table(tenant, signal) {
                    for chunk in table.chunks.values() {
                        status.chunks += 1;
                        status.bytes += chunk.size;
                        status.rows += chunk.rows;
                        status.oldest = Some(
                            status
                                .oldest
                                .map_or(chunk.min_time, |o| o.min(chunk.min_time)),
                        );
                    }
                    for head in table.heads().filter(|h| !h.is_empty()) {
                        status.rows += head.rows as u64;
                        status.oldest = Some(
                            status
                                .oldest
                                .map_or(head.min_time, |o| o.min(head.min_time)),
                        );
                    }
                }
                status
            })
            .collect()
    }

    /// Windows that ended before this instant are settled at `now_ns`: their last
    /// rows have had the head's age limit to be cut into chunks.
    pub fn settled_before(&self, now_ns: i64) -> i64 {
        let age = i64::try_from(self.config.head_max_age.as_nanos()).unwrap_or(i64::MAX);
        now_ns.saturating_sub(age)
    }

    /// Whether a compaction pass is running.
    pub fn compacting(&self) -> bool {
        self.compact_lock.try_lock().is_err()
    }

    fn chunk_count(&self) -> usize {
        let catalog = self.read_catalog();
        catalog.tables.values().map(|t| t.chunks.len()).sum()
    }

    pub(super) fn update_chunk_gauges(&self, catalog: &super::Catalog) {
        self.metrics.chunks.store(
            catalog.tables.values().map(|t| t.chunks.len() as u64).sum(),
            Ordering::Relaxed,
        );
        self.metrics
            .chunks_retired
            .store(catalog.retired.len() as u64, Ordering::Relaxed);
    }

    /// Runs a pass every interval until stopped.
    pub async fn run_compactor(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let interval = self.config.compaction.interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
            let now_ns = crate::ingest::now_ns();
            let pass = self.compact(self.settled_before(now_ns), now_ns, &|_| {});
            tokio::select! {
                result = pass => match result {
                    Ok(_) => {}
                    // An on-demand pass is running: this one is not needed.
                    Err(super::Error::CompactionRunning) => {}
                    Err(e) => warn!(error = %e, "compaction pass failed"),
                },
                _ = stop.changed() => return,
            }
        }
    }
}

/// The highest WAL mark of each ingester among the inputs, so replay keeps skipping
/// what the inputs held.
pub(super) fn merged_wal_marks(inputs: &[Arc<ChunkMeta>]) -> Vec<WalMark> {
    let mut marks: BTreeMap<&str, u64> = BTreeMap::new();
    for mark in inputs.iter().flat_map(|m| &m.wal) {
        let through = marks.entry(&mark.ingester).or_default();
        *through = (*through).max(mark.through);
    }
    marks
        .into_iter()
        .map(|(ingester, through)| WalMark {
            ingester: ingester.to_owned(),
            through,
        })
        .collect()
}

/// Splits loaded metadata into the chunks in force and those a compacted chunk
/// replaces.
pub(super) fn split_replaced(metas: Vec<ChunkMeta>) -> (Vec<ChunkMeta>, Vec<ChunkMeta>) {
    let replaced: HashSet<ChunkId> = metas
        .iter()
        .flat_map(|m| m.replaces.iter().cloned())
        .collect();
    metas.into_iter().partition(|m| !replaced.contains(&m.id))
}
