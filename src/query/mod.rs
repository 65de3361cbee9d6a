//! The read path: SQL, label-matcher queries and trace lookups, all planned and run by
//! DataFusion over the tables in `table`, one session per query, scoped to one tenant
//! and bounded in time and memory.

mod columns;
pub mod exemplars;
pub mod filter_cache;
pub mod grep;
pub mod log_metrics;
pub mod logql;
pub mod otlp;
pub mod profiles;
pub mod promql;
mod readers;
pub mod samples;
pub mod sampling;
pub mod series;
pub mod sql_limits;
pub mod streams;
pub mod table;
pub mod time;
pub mod trace;
pub mod traceql;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SQLOptions, SessionConfig, SessionContext};

use crate::db::Db;
use crate::metrics::Metrics;
use crate::model::{Signal, Tenant};
use filter_cache::{FILTER_CACHE_BYTES, FilterCache};
use table::{STORE_URL, ScanStats, SignalTable};

/// Views that ship with the product, created in a session when a statement names them.
pub const VIEWS: &str = include_str!("../../sql/views.sql");

#[derive(Debug, Clone)]
pub struct QueryConfig {
    pub timeout: Duration,
    pub max_memory_bytes: usize,
    /// Most rows a SQL query may return (the rest is cut and reported).
    pub max_result_rows: usize,
    /// Longest time range a LogQL, PromQL, TraceQL or profile query may cover.
    pub max_range: Duration,
    /// Queries run at once; more wait for a slot, within their `timeout`.
    pub max_concurrent: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query is wrong: syntax, unknown table or column, bad argument.
    #[error("{0}")]
    Invalid(String),
    #[error("query timed out after {0:?}")]
    Timeout(Duration),
    #[error(
        "{0} queries are running (query.max_concurrent) and none finished in time; retry later"
    )]
    Busy(usize),
    #[error("query exceeded its memory limit: {0}")]
    ResourcesExhausted(String),
    /// Reading or computing failed for a reason that is not the query's.
    #[error("query execution failed: {0}")]
    Execution(String),
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        let message = e.to_string();
        match e.find_root() {
            DataFusionError::ResourcesExhausted(_) => Self::ResourcesExhausted(message),
            // Regex functions report a pattern that does not compile (bad syntax, or too
            // large) as an internal error; it is the query's fault.
            DataFusionError::Internal(m) | DataFusionError::Execution(m)
                if m.contains(REGEX_DID_NOT_COMPILE) =>
            {
                let (_, detail) = m.split_at(m.find(REGEX_DID_NOT_COMPILE).unwrap_or(0));
                let detail = detail.trim_end_matches('.').replacen('R', "r", 1);
                Self::Invalid(if detail.contains("CompiledTooBig") {
                    format!(
                        "{detail}: the pattern is too large once compiled (repetitions multiply its size)"
                    )
                } else {
                    detail
                })
            }
            // The optimizer parses literal patterns first and passes on the parser's
            // error (regex-syntax's, or regex's).
            DataFusionError::External(inner)
                if inner.to_string().starts_with("regex parse error") =>
            {
                Self::Invalid(format!("invalid regex: {inner}"))
            }
            DataFusionError::ObjectStore(_)
            | DataFusionError::IoError(_)
            | DataFusionError::ParquetError(_)
            | DataFusionError::Internal(_)
            | DataFusionError::External(_)
            | DataFusionError::Shared(_) => Self::Execution(message),
            DataFusionError::Plan(m) if m.starts_with("table '") && m.ends_with("not found") => {
                Self::Invalid(format!(
                    "{message}; the tables are logs, spans, samples, exemplars, profiles and profile_samples, the views traces, log_streams, span_metrics and span_duration_histogram"
                ))
            }
            _ => Self::Invalid(message),
        }
    }
}

/// How DataFusion's regex functions say a pattern failed to compile.
const REGEX_DID_NOT_COMPILE: &str = "Regular expression did not compile";

/// A query's result and what the indexes did for it.
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub truncated: bool,
    pub stats: Arc<ScanStats>,
}

/// Memory for parsed chunk footers (schema, row-group and page statistics, bloom
/// filter offsets) kept across queries, so a lookup does not re-read them.
pub const CHUNK_METADATA_CACHE_BYTES: usize = 256 << 20;

pub struct QueryEngine {
    db: Arc<Db>,
    config: QueryConfig,
    /// Tenants with limits of their own.
    overrides: BTreeMap<Tenant, QueryConfig>,
    chunk_metadata: Arc<FileMetadataCache>,
    filter_cache: Arc<FilterCache>,
    /// Per tenant, one permit per query allowed to run at once.
    slots: Mutex<HashMap<Tenant, Arc<tokio::sync::Semaphore>>>,
}

impl QueryEngine {
    pub fn new(db: Arc<Db>, config: QueryConfig) -> Self {
        let cache =
            DefaultCache::new(CHUNK_METADATA_CACHE_BYTES).with_name("threadline_chunk_metadata");
        Self {
            db,
            config,
            overrides: BTreeMap::new(),
            slots: Mutex::new(HashMap::new()),
            chunk_metadata: Arc::new(cache),
            filter_cache: Arc::new(FilterCache::new(FILTER_CACHE_BYTES)),
        }
    }

    /// Limits for the tenants named, instead of the defaults.
    pub fn with_overrides(mut self, overrides: BTreeMap<Tenant, QueryConfig>) -> Self {
        self.overrides = overrides;
        self
    }

    fn slots(&self, tenant: &Tenant) -> Arc<tokio::sync::Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let max = self.config(tenant).max_concurrent;
        Arc::clone(
            slots
                .entry(tenant.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(max))),
        )
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// The query limits of a tenant.
    pub fn config(&self, tenant: &Tenant) -> &QueryConfig {
        self.overrides.get(tenant).unwrap_or(&self.config)
    }

    pub fn filter_cache(&self) -> &FilterCache {
        &self.filter_cache
    }

    /// A fresh session that sees only `tenant`'s tables (the shipped views are added
    /// by `sql`, the only path that can name them).
    pub fn session(&self, tenant: &Tenant, stats: Arc<ScanStats>) -> Result<SessionContext> {
        let caches = CacheManagerConfig::default()
            .with_file_metadata_cache(Some(Arc::clone(&self.chunk_metadata)))
            .with_metadata_cache_limit(CHUNK_METADATA_CACHE_BYTES);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.config(tenant).max_memory_bytes, 1.0)
            .with_cache_manager(caches)
            .build_arc()?;
        let url = url::Url::parse(STORE_URL).map_err(|e| QueryError::Execution(e.to_string()))?;
        runtime.register_object_store(&url, self.db.store().object_store());
        let mut config = SessionConfig::new().with_information_schema(false);
        config.options_mut().execution.parquet.pushdown_filters = true;
        config.options_mut().execution.parquet.reorder_filters = true;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        for signal in Signal::ALL {
            let table = SignalTable::new(
                Arc::clone(&self.db),
                tenant.clone(),
                signal,
                Arc::clone(&stats),
                Arc::clone(&self.filter_cache),
            );
            ctx.register_table(signal.as_str(), Arc::new(table))?;
        }
        ctx.register_udf(grep::line_contains_udf());
        ctx.register_udf(sampling::span_weight_udf());
        Ok(ctx)
    }

    /// Runs one read-only SQL statement for a tenant.
    pub async fn sql(&self, tenant: &Tenant, text: &str) -> Result<QueryOutput> {
        sql_limits::check(text, &view_names()).map_err(QueryError::Invalid)?;
        let stats = Arc::new(ScanStats::default());
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        for statement in views_named_in(text) {
            ctx.sql(statement).await?;
        }
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let max_rows = self.config(tenant).max_result_rows;
        let run = async {
            let df = ctx.sql_with_options(text, options).await?;
            // EXPLAIN must stay the root of its plan; everything else is capped.
            let df = match df.logical_plan() {
                LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => df,
                _ => df.limit(0, Some(max_rows + 1))?,
            };
            self.collect(df).await
        };
        let (schema, mut batches) = self.counted(tenant, run).await?;
        let truncated = truncate(&mut batches, max_rows);
        Ok(QueryOutput {
            schema,
            batches,
            truncated,
            stats,
        })
    }

    /// Collects a DataFrame. Callers run inside `counted`, which bounds their time.
    pub async fn collect(&self, df: DataFrame) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        Ok((schema, df.collect().await?))
    }

    /// Runs a query in one of the concurrency slots, within the time limit, and
    /// counts it, its failure, or its cancellation (the caller dropped it: the client
    /// went away) in the metrics.
    pub async fn counted<T>(
        &self,
        tenant: &Tenant,
        run: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let config = self.config(tenant);
        let slots = self.slots(tenant);
        let metrics = self.db.metrics();
        Metrics::add(&metrics.queries_total, 1);
        let mut guard = Unfinished {
            metrics,
            finished: false,
        };
        // Waiting for a slot and running share one time limit. A query that spent
        // most of it waiting is reported as refused for lack of a slot.
        let queued = tokio::time::Instant::now();
        let deadline = queued + config.timeout;
        let busy = || {
            Metrics::add(&metrics.query_rejected_total, 1);
            Err(QueryError::Busy(config.max_concurrent))
        };
        let result = async {
            let Ok(Ok(_slot)) = tokio::time::timeout_at(deadline, slots.acquire()).await else {
                return busy();
            };
            let waited = queued.elapsed();
            match tokio::time::timeout_at(deadline, run).await {
                Ok(result) => result,
                Err(_) if waited > config.timeout / 2 => busy(),
                Err(_) => Err(QueryError::Timeout(config.timeout)),
            }
        }
        .await;
        guard.finished = true;
        if result.is_err() {
            Metrics::add(&metrics.query_errors_total, 1);
        }
        result
    }

    /// Refuses a time range longer than the tenant's `query.max_range`.
    pub fn check_range(&self, tenant: &Tenant, (start, end): (i64, i64)) -> Result<()> {
        let span = (end as i128 - start as i128).max(0) as u128;
        let max = self.config(tenant).max_range.as_nanos();
        if span > max {
            return Err(QueryError::Invalid(format!(
                "the query covers {}; at most {} (query.max_range) may be queried at once: narrow start and end",
                human_duration(span),
                human_duration(max)
            )));
        }
        Ok(())
    }
}

/// Counts a query as cancelled when dropped before it finished.
struct Unfinished<'a> {
    metrics: &'a Metrics,
    finished: bool,
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if !self.finished {
            Metrics::add(&self.metrics.query_cancelled_total, 1);
        }
    }
}

fn human_duration(ns: u128) -> String {
    let hours = ns / 3_600_000_000_000;
    if hours >= 48 {
        format!("{}d{}h", hours / 24, hours % 24)
    } else if hours > 0 {
        format!("{hours}h{}m", ns / 60_000_000_000 % 60)
    } else {
        format!("{}s", ns / 1_000_000_000)
    }
}

/// The shipped views a statement may read: those whose name it mentions. Planning a
/// view costs milliseconds, more than a small query itself, so the others are left
/// out. A name that appears only inside a string literal merely plans one view more.
fn views_named_in(text: &str) -> impl Iterator<Item = &'static str> {
    let text = text.to_ascii_lowercase();
    VIEWS
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty() && !is_comment(s))
        .filter(move |statement| {
            view_name(statement).is_none_or(|name| text.contains(&name.to_ascii_lowercase()))
        })
}

/// The names of the shipped views.
pub fn view_names() -> Vec<&'static str> {
    VIEWS.split(';').filter_map(view_name).collect()
}

/// The name a `CREATE VIEW name AS …` statement defines.
fn view_name(statement: &str) -> Option<&str> {
    let mut words = statement
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .flat_map(str::split_whitespace);
    loop {
        if words.next()?.eq_ignore_ascii_case("create") {
            break;
        }
    }
    words
        .next()?
        .eq_ignore_ascii_case("view")
        .then(|| words.next())?
}

fn is_comment(statement: &str) -> bool {
    statement
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

/// Keeps at most `limit` rows; true when rows were dropped.
fn truncate(batches: &mut Vec<RecordBatch>, limit: usize) -> bool {
    let mut left = limit;
    let mut truncated = false;
    for batch in batches.iter_mut() {
        if batch.num_rows() > left {
            *batch = batch.slice(0, left);
            truncated = true;
        }
        left -= batch.num_rows();
    }
    batches.retain(|b| b.num_rows() > 0);
    truncated
}

/// 64-bit unsigned values (stream IDs) exceed what JSON numbers carry exactly in most
/// clients, so JSON gets them as decimal strings.
fn u64_as_text(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::datatypes::{DataType, Field, Schema};
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| f.data_type() == &DataType::UInt64)
    {
        return Ok(batch.clone());
    }
    let err = |e: arrow::error::ArrowError| QueryError::Execution(e.to_string());
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.data_type() == &DataType::UInt64 {
            fields.push(Field::new(
                field.name(),
                DataType::Utf8,
                field.is_nullable(),
            ));
            columns.push(arrow::compute::cast(column, &DataType::Utf8).map_err(err)?);
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(err)
}

/// Rows as JSON objects, the way the HTTP API returns them.
pub fn to_json_rows(
    batches: &[RecordBatch],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let mut buf = Vec::new();
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(&mut buf);
    for batch in batches {
        writer
            .write(&u64_as_text(batch)?)
            .map_err(|e| QueryError::Execution(e.to_string()))?;
    }
    writer
        .finish()
        .map_err(|e| QueryError::Execution(e.to_string()))?;
    drop(writer);
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| QueryError::Execution(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_plans_only_the_views_it_names() {
        let names = |text| {
            views_named_in(text)
                .filter_map(view_name)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names("select * from TRACES, span_metrics, span_duration_histogram, log_streams"),
            [
                "traces",
                "log_streams",
                "span_metrics",
                "span_duration_histogram"
            ]
        );
        assert_eq!(
            names("SELECT count(*) FROM \"log_streams\""),
            ["log_streams"]
        );
        assert!(names("SELECT 1").is_empty());
        // Every statement in the file defines a view the filter can name.
        let statements = VIEWS
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty() && !is_comment(s));
        assert!(statements.clone().all(|s| view_name(s).is_some()));
        assert_eq!(statements.count(), 4);
    }
}
