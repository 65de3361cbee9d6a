//! The store's write side and its catalog: WAL + head + chunks + indexes, per tenant
//! and signal.
//!
//! One lock (`catalog`) covers the head, the chunk lists and the indexes, so a query's
//! snapshot sees every acknowledged row exactly once: in the head, in a chunk being
//! flushed (still served from memory), or in a registered chunk — never two of these.
//! Writers take it only to append to the WAL queue and push batches; all encoding,
//! I/O and syncing happens outside it.

mod compact;
mod flush;
pub mod head;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use tracing::{error, info, warn};

pub use compact::SignalRetention;
pub use flush::FlushReport;
use head::{HeadBuffer, Part, split_by_partition, split_by_window};

use crate::compact::{CompactionConfig, Retention};
use crate::index::LabelIndex;
use crate::metrics::Metrics;
use crate::model::{Selector, Signal, StreamId, Tenant};
use crate::storage::{ChunkError, ChunkId, ChunkMeta, ChunkStore, PartitionKey, StoreError};
use crate::wal::{self, SyncPolicy, Wal, WalConfig, WalRecord};

#[derive(Debug, Clone)]
pub struct DbConfig {
    pub data_dir: PathBuf,
    /// Empty for `{data_dir}/chunks`; otherwise an object store URL.
    pub object_store: String,
    pub wal_sync: SyncPolicy,
    pub wal_segment_bytes: u64,
    /// Pushes are refused (503) while the WAL's segments hold this many bytes.
    pub wal_max_disk_bytes: u64,
    /// Longest one chunk or metadata upload may take before it counts as failed.
    pub upload_timeout: Duration,
    /// A partition's head is cut into chunks when it holds this many bytes…
    pub head_max_bytes: usize,
    /// …or when its oldest rows are this old.
    pub head_max_age: Duration,
    pub compaction: CompactionConfig,
    pub retention: Retention,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wal(#[from] wal::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error("cannot read ingester id {path}: {source}")]
    IngesterId {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Merge(#[from] crate::compact::merge::MergeError),
    #[error("compaction: {0}")]
    Compaction(String),
    #[error("a compaction pass is already running")]
    CompactionRunning,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A chunk object without metadata this old is an abandoned write (a flush or merge cut
/// short), not one in progress, and is deleted on start.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// A head buffer with at least this many small batches at its end merges them into one.
const COALESCE_BATCHES: usize = 32;

/// A head batch of at least this many rows is not merged again: copying it at every
/// merge would cost time and memory quadratic in the head's size.
const COALESCED_ROWS: usize = 65_536;

#[derive(Debug, Default)]
struct PartitionHead {
    active: Option<HeadBuffer>,
    /// Buffers being written as chunks; served from memory until registered.
    flushing: Vec<Arc<HeadBuffer>>,
}

/// One tenant's table for one signal.
#[derive(Debug, Default)]
pub struct Table {
    partitions: HashMap<PartitionKey, PartitionHead>,
    chunks: BTreeMap<ChunkId, Arc<ChunkMeta>>,
    pub labels: LabelIndex,
}

impl Table {
    fn register_chunk(&mut self, meta: Arc<ChunkMeta>) {
        for stream in &meta.streams {
            self.labels.insert(stream.id, &stream.labels);
        }
        self.chunks.insert(meta.id.clone(), meta);
    }

    /// Drops from the label index the streams no chunk or head holds any more.
    fn prune_labels(&mut self) {
        let chunks = self
            .chunks
            .values()
            .flat_map(|c| c.streams.iter().map(|s| s.id));
        let heads = self.heads().flat_map(|h| h.streams.iter().copied());
        self.labels = self.labels.retain(chunks.chain(heads).collect::<Vec<_>>());
    }

    fn heads(&self) -> impl Iterator<Item = &HeadBuffer> {
        self.partitions
            .values()
            .flat_map(|p| p.active.iter().chain(p.flushing.iter().map(|b| b.as_ref())))
    }
}

#[derive(Debug, Default)]
pub struct Catalog {
    tables: HashMap<(Tenant, Signal), Table>,
    /// Chunks out of force (replaced or expired) and not yet deleted.
    retired: Vec<compact::Retired>,
    /// Chunks whose merge may or may not have committed (its metadata PUT failed in a
    /// way that may yet land): not merged again before the next start.
    unsettled: HashSet<ChunkId>,
    next_buffer_id: u64,
}

impl Catalog {
    pub fn table(&self, tenant: &Tenant, signal: Signal) -> Option<&Table> {
        self.tables.get(&(tenant.clone(), signal))
    }

    pub fn tenants(&self) -> Vec<Tenant> {
        let mut tenants: Vec<_> = self.tables.keys().map(|(t, _)| t.clone()).collect();
        tenants.sort();
        tenants.dedup();
        tenants
    }

    fn new_buffer(&mut self, now: Instant) -> HeadBuffer {
        self.next_buffer_id += 1;
        HeadBuffer::new(self.next_buffer_id, now)
    }

    fn insert(
        &mut self,
        tenant: &Tenant,
        signal: Signal,
        parts: Vec<Part>,
        seq: u64,
        now: Instant,
    ) {
        for part in parts {
            let needs_buffer = self
                .tables
                .get(&(tenant.clone(), signal))
                .and_then(|t| t.partitions.get(&part.partition))
                .is_none_or(|p| p.active.is_none());
            let fresh = needs_buffer.then(|| self.new_buffer(now));
            let table = self.tables.entry((tenant.clone(), signal)).or_default();
            for id in &part.streams {
                if !table.labels.contains(*id) {
                    add_stream_labels(&mut table.labels, *id, &part.batch);
                }
            }
            let head = table.partitions.entry(part.partition.clone()).or_default();
            if let Some(buffer) = fresh {
                head.active = Some(buffer);
            }
            if let Some(active) = head.active.as_mut() {
                active.push(part, seq);
            }
        }
    }

    /// The lowest WAL sequence number still only in memory.
    fn min_unflushed_seq(&self) -> Option<u64> {
        self.tables
            .values()
            .flat_map(|t| t.heads())
            .filter(|h| !h.is_empty())
            .map(|h| h.min_seq)
            .min()
    }
}

fn add_stream_labels(index: &mut LabelIndex, id: StreamId, batch: &RecordBatch) {
    use arrow::datatypes::UInt64Type;
    let (Some(ids), Some(labels)) = (
        batch
            .column_by_name("stream_id")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>()),
        batch.column_by_name("labels").and_then(|c| c.as_map_opt()),
    ) else {
        return;
    };
    if let Some(row) = ids.values().iter().position(|v| *v == id.0) {
        index.insert(id, &crate::storage::chunk::row_labels(labels, row));
    }
}

/// What a scan should read, chosen by the indexes.
#[derive(Debug, Clone, Default)]
pub struct ScanFilter {
    /// Inclusive time range, ns since the epoch.
    pub time: Option<(i64, i64)>,
    pub streams: Option<HashSet<StreamId>>,
    /// Fingerprints of trace IDs (and, for profile samples, span IDs): only rows
    /// carrying one of them are wanted.
    pub ids: Option<Vec<u64>>,
}

#[derive(Debug, Default)]
pub struct Selection {
    pub chunks: Vec<Arc<ChunkMeta>>,
    pub head: Vec<RecordBatch>,
    pub pruned_chunks: usize,
}

/// Rows and stored bytes per stream, and the chunks holding them.
#[derive(Debug, Default)]
pub struct Volumes {
    pub chunks: usize,
    pub streams: HashMap<StreamId, (u64, u64)>,
}

pub struct Db {
    config: DbConfig,
    wal: Arc<Wal>,
    store: ChunkStore,
    catalog: RwLock<Catalog>,
    ingester: String,
    chunk_counter: AtomicU32,
    flush_lock: tokio::sync::Mutex<()>,
    compact_lock: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
}

impl Db {
    /// Opens the store: loads chunk metadata into the indexes, then replays the WAL,
    /// skipping rows already in chunks.
    pub async fn open(config: DbConfig, metrics: Arc<Metrics>) -> Result<Arc<Self>> {
        let store = ChunkStore::open(&config.object_store, &config.data_dir, Arc::clone(&metrics))?;
        Self::open_with_store(config, store, metrics).await
    }

    pub async fn open_with_store(
        config: DbConfig,
        store: ChunkStore,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>> {
        let store = store.with_upload_timeout(config.upload_timeout);
        let wal_dir = config.data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir).map_err(|source| Error::IngesterId {
            path: wal_dir.clone(),
            source,
        })?;
        let ingester = ingester_id(&wal_dir)?;
        let listing = store.load_metas(ORPHAN_AGE).await?;
        let metas = listing.metas;
        let mut catalog = Catalog::default();
        // Per (tenant, signal, partition, window): the WAL sequence number through which
        // this ingester's rows are already in chunks.
        let mut flushed: HashMap<(Tenant, Signal, PartitionKey, i64), u64> = HashMap::new();
        for meta in &metas {
            for mark in meta.wal.iter().filter(|m| m.ingester == ingester) {
                let key = (
                    meta.tenant.clone(),
                    meta.signal,
                    meta.partition.clone(),
                    meta.window_start,
                );
                let through = flushed.entry(key).or_default();
                *through = (*through).max(mark.through);
            }
        }
        let (in_force, replaced) = compact::split_replaced(metas);
        for meta in in_force {
            catalog
                .tables
                .entry((meta.tenant.clone(), meta.signal))
                .or_default()
                .register_chunk(Arc::new(meta));
        }
        // Compacted away before the last stop, and not yet deleted: deleted after the
        // delay, counted from now.
        let now = Instant::now();
        catalog
            .retired
            .extend(replaced.into_iter().map(|meta| compact::Retired {
                meta: Arc::new(meta),
                since: now,
            }));
        // Merges cut short by the last stop.
        let _ = std::fs::remove_dir_all(config.data_dir.join(compact::SCRATCH_DIR));
        for orphan in &listing.orphans {
            match store.delete(orphan).await {
                Ok(()) => {
                    info!(object = %orphan, "deleted a chunk object whose metadata was never written")
                }
                Err(e) => {
                    warn!(object = %orphan, error = %e, "cannot delete an abandoned chunk object")
                }
            }
        }
        let chunk_count: usize = catalog.tables.values().map(|t| t.chunks.len()).sum();

        let min_next_seq = flushed.values().max().map_or(1, |s| s + 1);
        let (wal, records, report) = Wal::open(
            WalConfig {
                dir: wal_dir,
                sync: config.wal_sync,
                segment_bytes: config.wal_segment_bytes,
                max_disk_bytes: config.wal_max_disk_bytes,
            },
            min_next_seq,
            Arc::clone(&metrics),
        )?;
        let now = Instant::now();
        let mut replayed_rows = 0;
        for record in records {
            let seq = record.seq;
            match replay_record(&mut catalog, &flushed, &config.retention, record, now) {
                Ok(rows) => replayed_rows += rows,
                Err(e) => {
                    Metrics::add(&metrics.wal_corruptions_total, 1);
                    error!(seq, error = %e, "wal: cannot replay a record; skipping it");
                }
            }
        }
        info!(
            chunks = chunk_count,
            wal_segments = report.segments,
            wal_records = report.records,
            replayed_rows,
            torn_tail = report.torn_tail.is_some(),
            corrupt_segments = report.corrupt.len(),
            "store opened"
        );
        let db = Arc::new(Self {
            config,
            wal,
            store,
            catalog: RwLock::new(catalog),
            ingester,
            chunk_counter: AtomicU32::new(0),
            flush_lock: tokio::sync::Mutex::new(()),
            compact_lock: tokio::sync::Mutex::new(()),
            metrics,
        });
        db.update_head_gauges();
        db.update_chunk_gauges(&db.read_catalog());
        Ok(db)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn store(&self) -> &ChunkStore {
        &self.store
    }

    /// Appends rows to the WAL and the head; returns once they are durable per the
    /// sync policy. Visible to queries from the moment they enter the head.
    pub async fn write(&self, tenant: &Tenant, signal: Signal, batch: RecordBatch) -> Result<()> {
        self.write_all(tenant, vec![(signal, batch)]).await
    }

    /// Writes the rows of one request that spans several signals (metric samples and
    /// their exemplars): their WAL records share one group commit, so they become
    /// durable, or fail, together.
    pub async fn write_all(
        &self,
        tenant: &Tenant,
        batches: Vec<(Signal, RecordBatch)>,
    ) -> Result<()> {
        let batches: Vec<_> = batches
            .into_iter()
            .filter(|(_, batch)| batch.num_rows() > 0)
            .collect();
        if batches.is_empty() {
            return Ok(());
        }
        let mut prepared = Vec::with_capacity(batches.len());
        let (mut rows, mut bytes) = (0u64, 0u64);
        for (signal, batch) in &batches {
            rows += batch.num_rows() as u64;
            bytes += head::memory_size(batch) as u64;
            prepared.push((
                *signal,
                wal::encode_rows(batch)?,
                split_by_partition(*signal, batch)?,
            ));
        }
        let appended = {
            let mut catalog = self.write_catalog();
            let records: Vec<_> = prepared
                .iter()
                .map(|(signal, encoded, _)| (*signal, encoded))
                .collect();
            let appended = self.wal.append_all(tenant, &records)?;
            for ((signal, _, parts), record) in prepared.into_iter().zip(&appended) {
                catalog.insert(tenant, signal, parts, record.seq, Instant::now());
            }
            appended
        };
        // Flushes recount these exactly; between flushes they only grow.
        Metrics::add(&self.metrics.head_rows, rows);
        Metrics::add(&self.metrics.head_bytes, bytes);
        for record in appended {
            record.durable().await?;
        }
        Metrics::add(&self.metrics.ingested_rows_total, rows);
        Ok(())
    }

    pub fn read_catalog(&self) -> RwLockReadGuard<'_, Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_catalog(&self) -> RwLockWriteGuard<'_, Catalog> {
        self.catalog
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Chooses the chunks and head batches a scan must read.
    pub fn select(&self, tenant: &Tenant, signal: Signal, filter: &ScanFilter) -> Selection {
        let catalog = self.read_catalog();
        let Some(table) = catalog.table(tenant, signal) else {
            return Selection::default();
        };
        let mut selection = Selection::default();
        let time_ok = |lo: i64, hi: i64| filter.time.is_none_or(|(s, e)| lo <= e && hi >= s);
        let streams_ok = |has: &dyn Fn(StreamId) -> bool| {
            filter
                .streams
                .as_ref()
                .is_none_or(|wanted| wanted.iter().any(|id| has(*id)))
        };
        let located = |has: &dyn Fn(u64) -> bool| {
            filter
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|&id| has(id)))
        };
        for chunk in table.chunks.values() {
            if located(&|id| chunk.traces.contains(id))
                && time_ok(chunk.min_time, chunk.max_time)
                && streams_ok(&|id| chunk.has_stream(id))
            {
                selection.chunks.push(Arc::clone(chunk));
            } else {
                selection.pruned_chunks += 1;
            }
        }
        for head in table.heads() {
            if located(&|id| head.traces.contains(&id))
                && time_ok(head.min_time, head.max_time)
                && streams_ok(&|id| head.streams.contains(&id))
            {
                selection.head.extend(head.batches.iter().cloned());
            }
        }
        Metrics::add(
            &self.metrics.query_chunks_selected_total,
            selection.chunks.len() as u64,
        );
        Metrics::add(
            &self.metrics.query_chunks_pruned_total,
            selection.pruned_chunks as u64,
        );
        selection
    }

    /// Streams with rows in `[start, end]` (all streams when no range is given).
    pub fn streams_in_range(
        &self,
        tenant: &Tenant,
        signal: Signal,
        range: Option<(i64, i64)>,
    ) -> HashSet<StreamId> {
        let catalog = self.read_catalog();
        let Some(table) = catalog.table(tenant, signal) else {
            return HashSet::new();
        };
        let mut out = HashSet::new();
        for chunk in table.chunks.values() {
            for stream in &chunk.streams {
                if range.is_none_or(|(s, e)| stream.min_time <= e && stream.max_time >= s) {
                    out.insert(stream.id);
                }
            }
        }
        for head in table.heads() {
            if range.is_none_or(|(s, e)| head.overlaps(s, e)) {
                out.extend(head.streams.iter().copied());
            }
        }
        out
    }

    /// Streams with rows in `range` that any of the selectors selects: every stream
    /// in the range when there is no selector or one without matchers.
    pub fn streams_matching(
        &self,
        tenant: &Tenant,
        signal: Signal,
        selectors: &[Selector],
        range: (i64, i64),
    ) -> HashSet<StreamId> {
        let mut ids = self.streams_in_range(tenant, signal, Some(range));
        if selectors.is_empty() || selectors.iter().any(|s| s.matchers.is_empty()) {
            return ids;
        }
        let catalog = self.read_catalog();
        let chosen: HashSet<StreamId> = catalog
            .table(tenant, signal)
            .map(|t| selectors.iter().flat_map(|s| t.labels.select(s)).collect())
            .unwrap_or_default();
        ids.retain(|id| chosen.contains(id));
        ids
    }

    /// What the rows of some streams in `[start, end]` amount to, from chunk
    /// metadata and the head's batches, without reading any chunk: per stream its
    /// rows and stored bytes (a chunk's size shared by row count; a head batch's
    /// memory likewise), and how many chunks hold them. A stream that only partly
    /// overlaps the range counts for the share of its time span inside it.
    pub fn stream_volumes(
        &self,
        tenant: &Tenant,
        signal: Signal,
        streams: Option<&HashSet<StreamId>>,
        (start, end): (i64, i64),
    ) -> Volumes {
        let catalog = self.read_catalog();
        let mut volumes = Volumes::default();
        let Some(table) = catalog.table(tenant, signal) else {
            return volumes;
        };
        let wanted = |id: &StreamId| streams.is_none_or(|s| s.contains(id));
        for chunk in table.chunks.values() {
            if chunk.max_time < start || chunk.min_time > end {
                continue;
            }
            let mut touched = false;
            for stream in &chunk.streams {
                if !wanted(&stream.id) || stream.max_time < start || stream.min_time > end {
                    continue;
                }
                touched = true;
                let span = (stream.max_time as i128 - stream.min_time as i128 + 1) as u128;
                let inside = (stream.max_time.min(end) as i128 - stream.min_time.max(start) as i128
                    + 1) as u128;
                let rows = (stream.rows as u128 * inside).div_ceil(span);
                let bytes = chunk.size as u128 * rows / chunk.rows.max(1) as u128;
                let entry = volumes.streams.entry(stream.id).or_default();
                entry.0 += rows as u64;
                entry.1 += bytes as u64;
            }
            volumes.chunks += usize::from(touched);
        }
        for head in table.heads() {
            if !head.overlaps(start, end) {
                continue;
            }
            for batch in &head.batches {
                let (Some(ids), Some(times)) = (
                    batch
                        .column_by_name("stream_id")
                        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt64Type>()),
                    batch.column_by_name(signal.time_column()).and_then(|c| {
                        c.as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>()
                    }),
                ) else {
                    continue;
                };
                let per_row = head::memory_size(batch) as u64 / batch.num_rows().max(1) as u64;
                for (id, time) in ids.values().iter().zip(times.values()) {
                    let id = StreamId(*id);
                    if wanted(&id) && (start..=end).contains(time) {
                        let entry = volumes.streams.entry(id).or_default();
                        entry.0 += 1;
                        entry.1 += per_row;
                    }
                }
            }
        }
        volumes
    }

    fn update_head_gauges(&self) {
        let catalog = self.read_catalog();
        let (rows, bytes) = catalog
            .tables
            .values()
            .flat_map(|t| t.heads())
            .fold((0, 0), |(r, b), h| (r + h.rows, b + h.bytes));
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.head_rows.store(rows as u64, Relaxed);
        self.metrics.head_bytes.store(bytes as u64, Relaxed);
    }

    /// Merges the many small batches a partition's head gathers (one per push) into one,
    /// so scans of the head pay per-batch costs once. Only the batches after the last
    /// large one are merged. The merge runs outside the lock; it is swapped in only if
    /// the buffer is still the one it was made from (buffers only grow at the end until
    /// a flush takes them).
    pub fn coalesce_heads(&self) -> Result<usize> {
        let candidates: Vec<_> = {
            let catalog = self.read_catalog();
            catalog
                .tables
                .iter()
                .flat_map(|(key, table)| {
                    table
                        .partitions
                        .iter()
                        .filter_map(move |(partition, head)| {
                            let active = head.active.as_ref()?;
                            let start = active
                                .batches
                                .iter()
                                .rposition(|b| b.num_rows() >= COALESCED_ROWS)
                                .map_or(0, |last_large| last_large + 1);
                            (active.batches.len() - start >= COALESCE_BATCHES).then(|| {
                                (
                                    key.clone(),
                                    partition.clone(),
                                    active.id,
                                    start,
                                    active.batches[start..].to_vec(),
                                )
                            })
                        })
                })
                .collect()
        };
        let mut merged_count = 0;
        for ((tenant, signal), partition, buffer_id, start, batches) in candidates {
            let merged =
                arrow::compute::concat_batches(&crate::model::schema::schema(signal), &batches)
                    .map_err(ChunkError::from)?;
            let mut catalog = self.write_catalog();
            let active = catalog
                .tables
                .get_mut(&(tenant, signal))
                .and_then(|t| t.partitions.get_mut(&partition))
                .and_then(|p| p.active.as_mut())
                .filter(|a| a.id == buffer_id && a.batches.len() >= start + batches.len());
            if let Some(active) = active {
                active
                    .batches
                    .splice(start..start + batches.len(), [merged]);
                merged_count += 1;
            }
        }
        Ok(merged_count)
    }

    /// Runs the periodic cut until the token is cancelled. Once the WAL holds half its
    /// disk bound, every head is cut, due or not: only flushed segments can be removed.
    pub async fn run_flusher(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let period = (self.config.head_max_age / 10)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.coalesce_heads() {
                warn!(error = %e, "merging head batches failed; they stay as they are");
            }
            let pressure = self.wal.disk_pressure();
            if pressure {
                info!(
                    wal_bytes = self.wal.disk_bytes(),
                    limit = self.config.wal_max_disk_bytes,
                    "wal past half its disk bound; cutting every head"
                );
            }
            if let Err(e) = self.flush(pressure).await {
                warn!(error = %e, "periodic flush failed; rows stay in the head and the wal");
            }
        }
    }

    /// Stops the WAL writer after it has written everything queued.
    pub fn close(&self) {
        self.wal.close();
    }
}

/// Re-inserts a replayed record, minus rows whose partition and window already have
/// them in a chunk, and rows past retention (their chunk may be deleted, and its WAL
/// mark with it). Returns the number of rows kept.
fn replay_record(
    catalog: &mut Catalog,
    flushed: &HashMap<(Tenant, Signal, PartitionKey, i64), u64>,
    retention: &Retention,
    record: WalRecord,
    now: Instant,
) -> Result<usize> {
    let cutoff = retention.cutoff(&record.tenant, record.signal, crate::ingest::now_ns());
    let record = match cutoff {
        Some(cutoff) => WalRecord {
            batch: rows_since(record.signal, &record.batch, cutoff)?,
            ..record
        },
        None => record,
    };
    if record.batch.num_rows() == 0 {
        return Ok(0);
    }
    let mut keep = Vec::new();
    for part in split_by_partition(record.signal, &record.batch)? {
        for (window, batch) in split_by_window(record.signal, &part.batch)? {
            let key = (
                record.tenant.clone(),
                record.signal,
                part.partition.clone(),
                window,
            );
            if flushed
                .get(&key)
                .is_some_and(|through| *through >= record.seq)
            {
                continue;
            }
            keep.push(batch);
        }
    }
    let mut rows = 0;
    for batch in keep {
        rows += batch.num_rows();
        let parts = split_by_partition(record.signal, &batch)?;
        catalog.insert(&record.tenant, record.signal, parts, record.seq, now);
    }
    Ok(rows)
}

/// The rows of `batch` at or after `cutoff`.
fn rows_since(signal: Signal, batch: &RecordBatch, cutoff: i64) -> Result<RecordBatch> {
    let times = batch
        .column_by_name(signal.time_column())
        .and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>())
        .ok_or(ChunkError::Column("time"))?;
    let keep: arrow::array::BooleanArray = times.iter().map(|t| Some(t >= Some(cutoff))).collect();
    if keep.true_count() == batch.num_rows() {
        return Ok(batch.clone());
    }
    Ok(arrow::compute::filter_record_batch(batch, &keep).map_err(ChunkError::from)?)
}

/// A random ID for this WAL, kept beside it: chunk IDs include it, and replay trusts
/// only watermarks written by the same WAL.
fn ingester_id(wal_dir: &std::path::Path) -> Result<String> {
    let path = wal_dir.join("ingester-id");
    let err = |source| Error::IngesterId {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if id.trim().len() == 16 && id.trim().bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(id.trim().to_owned())
        }
        Ok(_) | Err(_) if !path.exists() => {
            let id = format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().0);
            let tmp = wal_dir.join("ingester-id.tmp");
            std::fs::write(&tmp, &id).map_err(err)?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(err)?;
            std::fs::rename(&tmp, &path).map_err(err)?;
            std::fs::File::open(wal_dir)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
            Ok(id)
        }
        Ok(_) => Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not 16 hex digits",
        ))),
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod compact_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod tests;
