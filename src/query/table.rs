//! The tables as DataFusion sees them: one `TableProvider` per tenant and signal that
//! reads the head and exactly the chunks the indexes allow.
//!
//! Filters DataFusion pushes down are read for what the indexes can use — the time
//! column's range, `trace_id = '…'`, `stream_id = …` / `IN (…)`, and equality on the
//! label columns (`service_name`, `severity`) — to choose chunks and head buffers. All
//! filters are reported as inexact: DataFusion keeps them above the scan and pushes
//! them down into the Parquet reader (row-group and page statistics, bloom filters, row
//! filtering during decode) and onto the head's batches.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::config::TableParquetOptions;
use datafusion::common::{Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};

use super::filter_cache::{ChunkRows, FilterCache, FilterScan};
use super::grep::line_filter_key;
use super::readers::ChunkReaders;
use crate::db::{Db, ScanFilter};
use crate::index::traces::BLOCK_ROWS;
use crate::model::{MatchOp, Matcher, Selector, Signal, SpanId, StreamId, Tenant, TraceId, schema};
use crate::storage::ChunkMeta;

/// The URL the chunk store is registered under in every session.
pub const STORE_URL: &str = "threadline://chunks";

/// What the indexes and the filter cache did for one query, summed over its scans.
#[derive(Debug, Default)]
pub struct ScanStats {
    pub chunks_selected: AtomicU64,
    pub chunks_pruned: AtomicU64,
    pub chunk_bytes: AtomicU64,
    pub head_rows: AtomicU64,
    /// Chunk rows left unread because the filter cache knew they cannot pass.
    pub filter_cache_rows_skipped: AtomicU64,
    /// The scans planned with row filters, for the filter cache to learn from once
    /// their output has been read to the end.
    filter_scans: Mutex<Vec<FilterScan>>,
}

impl ScanStats {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "chunks_selected": self.chunks_selected.load(Ordering::Relaxed),
            "chunks_pruned": self.chunks_pruned.load(Ordering::Relaxed),
            "chunk_bytes": self.chunk_bytes.load(Ordering::Relaxed),
            "head_rows": self.head_rows.load(Ordering::Relaxed),
            "filter_cache_rows_skipped": self.filter_cache_rows_skipped.load(Ordering::Relaxed),
        })
    }

    /// The filtered scans planned since the last call.
    pub fn take_filter_scans(&self) -> Vec<FilterScan> {
        std::mem::take(&mut *self.filter_scans.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

pub struct SignalTable {
    db: Arc<Db>,
    tenant: Tenant,
    signal: Signal,
    stats: Arc<ScanStats>,
    filter_cache: Arc<FilterCache>,
}

impl fmt::Debug for SignalTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalTable({}, {})", self.tenant, self.signal)
    }
}

impl SignalTable {
    pub fn new(
        db: Arc<Db>,
        tenant: Tenant,
        signal: Signal,
        stats: Arc<ScanStats>,
        filter_cache: Arc<FilterCache>,
    ) -> Self {
        Self {
            db,
            tenant,
            signal,
            stats,
            filter_cache,
        }
    }

    /// The label a column's value is, for columns that carry one of the stream's labels.
    fn label_of_column(&self, column: &str) -> Option<&'static str> {
        self.signal
            .label_columns()
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, label)| *label)
    }

    /// The fingerprints the trace-ID index can look up for a filter: `trace_id = X`
    /// and, for profile samples, `span_id = X` and `span_id IN (…)`, alone or joined
    /// by OR.
    fn located_ids(&self, expr: &Expr) -> Option<Vec<u64>> {
        let spans = self.signal == Signal::ProfileSamples;
        let id = |column: &str, value: &Expr| -> Option<u64> {
            let Expr::Literal(value, _) = value else {
                return None;
            };
            match column {
                "trace_id" => TraceId::from_hex(text(value)?)
                    .ok()
                    .map(|t| t.fingerprint()),
                "span_id" if spans => SpanId::from_hex(text(value)?).ok().map(|s| s.fingerprint()),
                _ => None,
            }
        };
        match expr {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match (left.as_ref(), op) {
                (_, Operator::Or) => {
                    let mut ids = self.located_ids(left)?;
                    ids.extend(self.located_ids(right)?);
                    Some(ids)
                }
                (Expr::Column(c), Operator::Eq) => Some(vec![id(&c.name, right)?]),
                _ => None,
            },
            Expr::InList(list) if !list.negated => match list.expr.as_ref() {
                Expr::Column(c) => list.list.iter().map(|v| id(&c.name, v)).collect(),
                _ => None,
            },
            _ => None,
        }
    }

    /// What the indexes can use of `filters`, and the filter cache's key: the line
    /// filters among them, when they are all the rest (`None` when there are none, or
    /// when other conditions test rows too).
    fn scan_filter(&self, filters: &[Expr]) -> (ScanFilter, Option<Arc<str>>) {
        let mut rest = Vec::new();
        let filter = self.index_filter(filters, &mut rest);
        let key = rest
            .iter()
            .map(|expr| line_filter_key(expr))
            .collect::<Option<Vec<String>>>()
            .filter(|keys| !keys.is_empty())
            .map(|mut keys| {
                keys.sort();
                keys.dedup();
                Arc::from(keys.join("\n"))
            });
        (filter, key)
    }

    /// The time range, streams and trace IDs `filters` allow; every condition that
    /// says more than these goes to `rest`.
    fn index_filter<'e>(&self, filters: &'e [Expr], rest: &mut Vec<&'e Expr>) -> ScanFilter {
        let mut filter = ScanFilter::default();
        let (mut start, mut end) = (i64::MIN, i64::MAX);
        let mut label_matchers = Vec::new();
        let mut streams: Option<HashSet<StreamId>> = None;
        let mut intersect = |set: HashSet<StreamId>| {
            streams = Some(match streams.take() {
                Some(have) => have.intersection(&set).copied().collect(),
                None => set,
            });
        };
        let mut narrow = |lo: i64, hi: i64| {
            (start, end) = (start.max(lo), end.min(hi));
            true
        };
        let time_column = self.signal.time_column();
        for expr in filters.iter().flat_map(split_conjunction) {
            if let Some(ids) = self.located_ids(expr) {
                filter.ids = Some(ids);
                rest.push(expr);
                continue;
            }
            // Whether the time range or the stream set now says all this condition does.
            let said = match expr {
                Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                    match comparison(left, *op, right) {
                        Some((c, op, value)) if c == time_column => match (op, timestamp_ns(value))
                        {
                            (Operator::Eq, Some(t)) => narrow(t, t),
                            (Operator::Gt, Some(t)) => narrow(t.saturating_add(1), i64::MAX),
                            (Operator::GtEq, Some(t)) => narrow(t, i64::MAX),
                            (Operator::Lt, Some(t)) => narrow(i64::MIN, t.saturating_sub(1)),
                            (Operator::LtEq, Some(t)) => narrow(i64::MIN, t),
                            _ => false,
                        },
                        Some(("stream_id", Operator::Eq, value)) => match unsigned(value) {
                            Some(id) => {
                                intersect([StreamId(id)].into());
                                true
                            }
                            None => false,
                        },
                        Some((c, Operator::Eq, value)) => {
                            if let Some(label) = self.label_of_column(c)
                                && let Some(m) = text(value)
                                    .and_then(|v| Matcher::new(label, MatchOp::Equal, v).ok())
                            {
                                label_matchers.push(m);
                            }
                            false
                        }
                        _ => false,
                    }
                }
                Expr::InList(list)
                    if !list.negated
                        && matches!(list.expr.as_ref(), Expr::Column(c) if c.name == "stream_id") =>
                {
                    let ids: Option<HashSet<StreamId>> = list
                        .list
                        .iter()
                        .map(|e| match e {
                            Expr::Literal(v, _) => unsigned(v).map(StreamId),
                            _ => None,
                        })
                        .collect();
                    match ids {
                        Some(ids) => {
                            intersect(ids);
                            true
                        }
                        None => false,
                    }
                }
                Expr::Between(Between {
                    expr,
                    negated: false,
                    low,
                    high,
                }) => {
                    if let (Expr::Column(c), Expr::Literal(lo, _), Expr::Literal(hi, _)) =
                        (expr.as_ref(), low.as_ref(), high.as_ref())
                        && c.name == time_column
                        && let (Some(lo), Some(hi)) = (timestamp_ns(lo), timestamp_ns(hi))
                    {
                        narrow(lo, hi)
                    } else {
                        false
                    }
                }
                _ => false,
            };
            if !said {
                rest.push(expr);
            }
        }
        if !label_matchers.is_empty() {
            let selector = Selector {
                matchers: label_matchers,
            };
            let catalog = self.db.read_catalog();
            let selected = catalog
                .table(&self.tenant, self.signal)
                .map(|t| t.labels.select(&selector))
                .unwrap_or_default();
            intersect(selected);
        }
        filter.streams = streams;
        if start != i64::MIN || end != i64::MAX {
            filter.time = Some((start, end));
        }
        filter
    }

    /// The chunks that may hold rows passing `conditions`, with the rows to read, as
    /// far as the filter cache knows; the streams of each chunk this scan reads in
    /// full are noted for it to learn from.
    fn consult_filter_cache(
        &self,
        filter: &ScanFilter,
        conditions: Arc<str>,
        chunks: Vec<Arc<ChunkMeta>>,
    ) -> Vec<(Arc<ChunkMeta>, ChunkRows)> {
        let wanted = |id: StreamId| filter.streams.as_ref().is_none_or(|s| s.contains(&id));
        let whole = |lo: i64, hi: i64| {
            filter
                .time
                .is_none_or(|(start, end)| start <= lo && hi <= end)
        };
        let mut learnable = Vec::new();
        let mut skipped = 0;
        let mut out = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let rows = self.filter_cache.rows(&chunk, &conditions, wanted);
            let wanted_rows = || -> u64 {
                let streams = chunk.streams.iter().filter(|s| wanted(s.id));
                streams.map(|s| s.rows).sum()
            };
            match &rows {
                ChunkRows::All => {}
                ChunkRows::None => {
                    skipped += wanted_rows();
                    continue;
                }
                ChunkRows::Ranges(ranges) => {
                    let read: u64 = ranges.iter().map(|r| r.end - r.start).sum();
                    skipped += wanted_rows().saturating_sub(read);
                }
            }
            let covered: Vec<StreamId> = chunk
                .streams
                .iter()
                .filter(|s| wanted(s.id) && whole(s.min_time, s.max_time))
                .map(|s| s.id)
                .collect();
            if !covered.is_empty() {
                learnable.push((Arc::clone(&chunk), covered));
            }
            out.push((chunk, rows));
        }
        self.stats
            .filter_cache_rows_skipped
            .fetch_add(skipped, Ordering::Relaxed);
        if !learnable.is_empty() {
            self.stats
                .filter_scans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(FilterScan {
                    filters: conditions,
                    chunks: learnable,
                });
        }
        out
    }
}

/// Reads only the blocks of rows where the chunk's locator puts these IDs: the pages
/// holding them, in the row groups holding them.
fn trace_access_plan(chunk: &ChunkMeta, ids: &[u64]) -> Option<ParquetAccessPlan> {
    let mut blocks: Vec<u16> = ids
        .iter()
        .flat_map(|&id| chunk.traces.blocks(id))
        .copied()
        .collect();
    blocks.sort_unstable();
    blocks.dedup();
    access_plan(chunk, &block_ranges(&blocks, chunk.rows))
}

/// The rows of each block, up to the chunk's `total` rows.
fn block_ranges(blocks: &[u16], total: u64) -> Vec<Range<u64>> {
    let block_rows = BLOCK_ROWS as u64;
    blocks
        .iter()
        .map(|&block| {
            let start = u64::from(block) * block_rows;
            start..(start + block_rows).min(total)
        })
        .collect()
}

/// Reads only `rows` of the chunk; `None` when they do not describe it.
fn access_plan(chunk: &ChunkMeta, rows: &[Range<u64>]) -> Option<ParquetAccessPlan> {
    if chunk.row_group_rows.iter().sum::<u64>() != chunk.rows {
        return None;
    }
    let groups = select_rows(&chunk.row_group_rows, rows)?;
    let mut plan = ParquetAccessPlan::new_none(groups.len());
    for (group, selection) in groups.into_iter().enumerate() {
        if let Some(selection) = selection {
            plan.set(group, RowGroupAccess::Selection(selection));
        }
    }
    Some(plan)
}

/// For each row group (of `group_rows` rows), the selection of the rows of `ranges`
/// in it, or `None` when it has none. `None` overall when the ranges are empty, not
/// increasing and disjoint, or lie past the end: metadata that does not describe the
/// file.
fn select_rows(group_rows: &[u64], ranges: &[Range<u64>]) -> Option<Vec<Option<RowSelection>>> {
    let total: u64 = group_rows.iter().sum();
    let mut end = 0;
    for range in ranges {
        if range.start < end || range.start >= range.end || range.end > total {
            return None;
        }
        end = range.end;
    }
    let mut out = Vec::with_capacity(group_rows.len());
    let (mut first, mut group_start) = (0, 0);
    for &count in group_rows {
        let group_end = group_start + count;
        while ranges.get(first).is_some_and(|r| r.end <= group_start) {
            first += 1;
        }
        let mut selectors = Vec::new();
        let mut at = group_start;
        for range in ranges[first..].iter().take_while(|r| r.start < group_end) {
            let (start, end) = (range.start.max(group_start), range.end.min(group_end));
            if start > at {
                selectors.push(RowSelector::skip((start - at) as usize));
            }
            selectors.push(RowSelector::select((end - start) as usize));
            at = end;
        }
        if selectors.is_empty() {
            out.push(None);
        } else {
            if at < group_end {
                selectors.push(RowSelector::skip((group_end - at) as usize));
            }
            out.push(Some(selectors.into()));
        }
        group_start = group_end;
    }
    Some(out)
}

/// `column op literal`, with the literal on either side.
fn comparison<'a>(
    left: &'a Expr,
    op: Operator,
    right: &'a Expr,
) -> Option<(&'a str, Operator, &'a ScalarValue)> {
    match (left, right) {
        (Expr::Column(c), Expr::Literal(v, _)) => Some((c.name.as_str(), op, v)),
        (Expr::Literal(v, _), Expr::Column(c)) => Some((c.name.as_str(), op.swap()?, v)),
        _ => None,
    }
}

fn timestamp_ns(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

fn text(value: &ScalarValue) -> Option<&str> {
    match value {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn unsigned(value: &ScalarValue) -> Option<u64> {
    match value {
        ScalarValue::UInt64(Some(v)) => Some(*v),
        ScalarValue::Int64(Some(v)) => u64::try_from(*v).ok(),
        _ => None,
    }
}

#[async_trait]
impl TableProvider for SignalTable {
    fn schema(&self) -> SchemaRef {
        schema::schema(self.signal)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table_schema = self.schema();
        let (filter, conditions) = self.scan_filter(filters);
        let selection = self.db.select(&self.tenant, self.signal, &filter);
        let selected = selection.chunks.len();
        let chunks = match conditions {
            // A trace lookup reads little already; a limited scan may stop early, so
            // its output does not tell the cache anything.
            Some(conditions) if filter.ids.is_none() && limit.is_none() => {
                self.consult_filter_cache(&filter, conditions, selection.chunks)
            }
            _ => selection
                .chunks
                .into_iter()
                .map(|chunk| (chunk, ChunkRows::All))
                .collect::<Vec<_>>(),
        };
        let pruned = selection.pruned_chunks + (selected - chunks.len());
        self.stats
            .chunks_selected
            .fetch_add(chunks.len() as u64, Ordering::Relaxed);
        self.stats
            .chunks_pruned
            .fetch_add(pruned as u64, Ordering::Relaxed);
        self.stats
            .chunk_bytes
            .fetch_add(chunks.iter().map(|(c, _)| c.size).sum(), Ordering::Relaxed);
        self.stats.head_rows.fetch_add(
            selection.head.iter().map(|b| b.num_rows() as u64).sum(),
            Ordering::Relaxed,
        );
        let parallelism = state.config().target_partitions().max(1);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        if !chunks.is_empty() {
            let runtime = state.runtime_env();
            let store_url = ObjectStoreUrl::parse(STORE_URL)?;
            let readers = ChunkReaders::new(
                runtime.object_store(&store_url)?,
                runtime.cache_manager.get_file_metadata_cache(),
            );
            let mut options = TableParquetOptions::default();
            if filter.ids.is_some() {
                // The reader caches filter columns it also returns in whole batches
                // of rows, widening a trace's few blocks to 8,192 rows of pages.
                options.global.max_predicate_cache_size = Some(0);
            }
            // No predicate is set here: DataFusion pushes the filters above this scan
            // into the Parquet reader itself (statistics, page indexes, row filters),
            // through the union with the head; setting them here too would evaluate
            // every filter twice.
            let source = ParquetSource::new(Arc::clone(&table_schema))
                .with_table_parquet_options(options)
                .with_parquet_file_reader_factory(Arc::new(readers))
                .with_pushdown_filters(true)
                .with_reorder_filters(true)
                .with_enable_page_index(true)
                // Chunks carry no bloom filters: the trace locator does their work.
                .with_bloom_filter_on_read(false);
            let mut groups: Vec<Vec<PartitionedFile>> =
                vec![Vec::new(); parallelism.min(chunks.len())];
            let count = groups.len();
            for (i, (chunk, rows)) in chunks.iter().enumerate() {
                let mut file =
                    PartitionedFile::new(chunk.key().data_path().to_string(), chunk.size);
                let plan = match (&filter.ids, rows) {
                    (Some(ids), _) => trace_access_plan(chunk, ids),
                    (None, ChunkRows::Ranges(ranges)) => access_plan(chunk, ranges),
                    _ => None,
                };
                if let Some(plan) = plan {
                    file = file.with_extension(plan);
                }
                groups[i % count].push(file);
            }
            let config = FileScanConfigBuilder::new(store_url, Arc::new(source))
                .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        if !selection.head.is_empty() {
            let mut partitions = vec![Vec::new(); parallelism.min(selection.head.len())];
            let count = partitions.len();
            for (i, batch) in selection.head.into_iter().enumerate() {
                partitions[i % count].push(batch);
            }
            let memory = MemorySourceConfig::try_new(
                &partitions,
                Arc::clone(&table_schema),
                projection.cloned(),
            )?
            .with_limit(limit);
            inputs.push(DataSourceExec::from_data_source(memory));
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(table_schema.project(p)?),
                None => table_schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Each row group's selection picks exactly the rows of the listed blocks
        /// that fall in it.
        #[test]
        fn selections_pick_exactly_the_rows_of_the_blocks(
            group_rows in prop::collection::vec(1u64..3000, 1..5),
            picks in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let total: u64 = group_rows.iter().sum();
            let block_count = total.div_ceil(BLOCK_ROWS as u64) as usize;
            let mut blocks: Vec<u16> = picks.iter().map(|i| i.index(block_count) as u16).collect();
            blocks.sort_unstable();
            blocks.dedup();
            let groups = select_rows(&group_rows, &block_ranges(&blocks, total)).unwrap();
            let mut picked = Vec::new();
            let mut start = 0;
            for (selection, count) in groups.iter().zip(&group_rows) {
                if let Some(selection) = selection {
                    let selectors: Vec<RowSelector> = selection.clone().into();
                    prop_assert_eq!(selectors.iter().map(|s| s.row_count as u64).sum::<u64>(), *count);
                    let mut at = start;
                    for s in selectors {
                        if !s.skip {
                            picked.extend(at..at + s.row_count as u64);
                        }
                        at += s.row_count as u64;
                    }
                }
                start += count;
            }
            let expected: Vec<u64> = (0..total)
                .filter(|r| blocks.contains(&((r / BLOCK_ROWS as u64) as u16)))
                .collect();
            prop_assert_eq!(picked, expected);
        }
    }

    #[test]
    fn blocks_that_do_not_describe_the_file_are_refused() {
        let select = |blocks: &[u16]| select_rows(&[1024, 1024], &block_ranges(blocks, 2048));
        assert!(select(&[1, 1]).is_none());
        assert!(select(&[1, 0]).is_none());
        assert!(select(&[2]).is_none());
        let groups = select(&[1]).unwrap();
        assert!(groups[0].is_none() && groups[1].is_some());
    }
}
