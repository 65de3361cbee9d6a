//! Profile queries, both ways across the trace ID:
//!
//! - a merged profile of one profile type for a selector and time range, narrowed to
//!   one trace, a set of spans, or the spans a SQL predicate over `spans` matches;
//! - the traces whose samples ran a given function, most time first;
//! - the profile samples of one trace, per span (for the trace document).
//!
//! Samples name their span by `span_id` and often carry no trace ID (tracing
//! integrations label samples with the span only), so a trace's samples are those
//! with its trace ID or with the ID of one of its spans, within the trace's time plus
//! `PROFILE_WINDOW` either side: a profile is stamped with its start, up to a window
//! before the spans it covers.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, TimestampNanosecondType, UInt64Type};
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::functions_nested::expr_fn::array_has;
use datafusion::logical_expr::{Expr, col, lit};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use serde::Serialize;

use super::logql::ts_literal;
use super::series::SeriesLabels;
use super::table::ScanStats;
use super::{QueryEngine, QueryError, Result, columns};
use crate::model::{Selector, Signal, SpanId, Tenant, TraceId};
use crate::profile::ProfileType;
use crate::profile::merge::Merged;

/// How far a profile's timestamp may lie from the spans it covers.
pub const PROFILE_WINDOW_NS: i64 = 5 * 60 * 1_000_000_000;

/// Spans a predicate may name for one merged profile.
pub const MAX_SPANS: usize = 10_000;

/// Which samples a profile query merges.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every sample of the selected streams in the time range.
    All,
    /// The samples of one trace; needs no time range.
    Trace(TraceId),
    /// The samples of these spans of one trace.
    Spans(TraceId, Vec<SpanId>),
    /// The samples of every span in the time range that a SQL predicate over the
    /// `spans` table matches, e.g. `name = 'checkout' AND duration_ns > 2e9`.
    SpanPredicate(String),
    /// The samples in the time range labelled with one of these spans, whatever
    /// their trace (Grafana's trace-to-profiles names spans only).
    SpanIds(Vec<SpanId>),
}

#[derive(Debug, Clone)]
pub struct ProfileQuery {
    pub profile_type: ProfileType,
    pub selector: Selector,
    /// Required for `All` and `SpanPredicate`.
    pub range: Option<(i64, i64)>,
    pub scope: Scope,
}

pub struct MergeResult {
    pub merged: Merged,
    pub samples: usize,
    pub stats: Arc<ScanStats>,
}

/// A trace whose samples ran a function.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionTrace {
    pub trace_id: String,
    /// Summed sample values (in the profile type's unit) that ran the function.
    pub value: i64,
    pub samples: i64,
    /// The trace's spans that ran it.
    pub span_ids: Vec<String>,
}

/// One span's samples of one profile type.
#[derive(Debug, Clone, Serialize)]
pub struct SpanProfile {
    pub span_id: Option<String>,
    pub span_name: Option<String>,
    pub profile_type: String,
    pub value: i64,
    pub samples: i64,
    /// The functions the samples ended in (flat), most value first, at most ten.
    pub top_functions: Vec<FunctionValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FunctionValue {
    pub function: String,
    pub value: i64,
}

/// A trace's spans and the time they cover, widened by the profile window.
pub struct TraceSpans {
    span_ids: Vec<String>,
    window: Option<(i64, i64)>,
}

impl TraceSpans {
    /// Spans whose earliest start and latest end are `start` and `end`.
    pub fn new(mut span_ids: Vec<String>, start: i64, end: i64) -> Self {
        span_ids.sort();
        span_ids.dedup();
        let window = (!span_ids.is_empty()).then(|| {
            (
                start.saturating_sub(PROFILE_WINDOW_NS),
                end.saturating_add(PROFILE_WINDOW_NS),
            )
        });
        Self { span_ids, window }
    }
}

impl QueryEngine {
    /// Merges the samples a query selects. `with_lines` also reads files and line
    /// numbers (pprof output needs them; folded stacks and flame graphs do not).
    pub async fn merge_profile(
        &self,
        tenant: &Tenant,
        query: &ProfileQuery,
        with_lines: bool,
    ) -> Result<MergeResult> {
        self.counted(tenant, self.run_merge(tenant, query, with_lines))
            .await
    }

    async fn run_merge(
        &self,
        tenant: &Tenant,
        query: &ProfileQuery,
        with_lines: bool,
    ) -> Result<MergeResult> {
        if let Some(range) = query.range {
            self.check_range(tenant, range)?;
        }
        let stats = Arc::new(ScanStats::default());
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let mut merged = Merged::new(query.profile_type.clone());
        if let Some((start, end)) = query.range {
            merged.time_nanos = start;
            merged.duration_nanos = end.saturating_sub(start);
        }
        let Some(df) = self
            .scoped_samples(tenant, &ctx, &query.selector, query.range, &query.scope)
            .await?
        else {
            return Ok(MergeResult {
                merged,
                samples: 0,
                stats,
            });
        };
        let mut projection = vec!["stack_id", "value", "functions"];
        if with_lines {
            projection.extend(["files", "lines"]);
        }
        let df = df
            .filter(col("profile_type").eq(lit(query.profile_type.to_string())))?
            .select_columns(&projection)?;
        // Batch by batch: only distinct stacks stay in memory.
        let mut stream = df.execute_stream().await?;
        let mut samples = 0;
        while let Some(batch) = stream.next().await {
            samples += merge_batch(&mut merged, &batch?, with_lines)?;
        }
        Ok(MergeResult {
            merged,
            samples,
            stats,
        })
    }

    /// The `profile_samples` rows a query's selector, range and scope allow, or
    /// `None` when nothing can match.
    async fn scoped_samples(
        &self,
        tenant: &Tenant,
        ctx: &SessionContext,
        selector: &Selector,
        range: Option<(i64, i64)>,
        scope: &Scope,
    ) -> Result<Option<DataFrame>> {
        let signal = Signal::ProfileSamples;
        let (condition, range) = match scope {
            Scope::All => (None, range),
            Scope::Trace(trace_id) => {
                let spans = trace_spans(self, ctx, *trace_id).await?;
                let condition = trace_condition(*trace_id, &spans.span_ids);
                (Some(condition), intersect(spans.window, range))
            }
            Scope::Spans(trace_id, ids) => {
                let spans = trace_spans(self, ctx, *trace_id).await?;
                let list = ids.iter().map(|id| lit(id.to_hex())).collect();
                (
                    Some(col("span_id").in_list(list, false)),
                    intersect(spans.window, range),
                )
            }
            Scope::SpanIds(ids) => {
                if range.is_none() {
                    return Err(QueryError::Invalid("span IDs need a time range".into()));
                }
                let list = ids.iter().map(|id| lit(id.to_hex())).collect();
                (Some(col("span_id").in_list(list, false)), range)
            }
            Scope::SpanPredicate(predicate) => {
                let range = range.ok_or_else(|| {
                    QueryError::Invalid("a span predicate needs a time range".into())
                })?;
                let spans = matching_spans(self, ctx, predicate, range).await?;
                if spans.span_ids.is_empty() {
                    return Ok(None);
                }
                let list = spans.span_ids.iter().map(|id| lit(id.as_str())).collect();
                (
                    Some(col("span_id").in_list(list, false)),
                    spans.window.or(Some(range)),
                )
            }
        };
        let df = match range {
            Some(range) => {
                let selected = self.select_streams(tenant, signal, selector, range);
                if selected.is_empty() {
                    return Ok(None);
                }
                selected.scan(ctx, signal, range).await?
            }
            None if matches!(scope, Scope::Trace(_)) => {
                // No spans to place the trace in time: the trace-ID index finds the
                // chunks whose samples carry the ID.
                let df = ctx.table(signal.as_str()).await?;
                if selector.matchers.is_empty() {
                    df
                } else {
                    return Err(QueryError::Invalid(
                        "a label selector on a trace's profile needs a time range when the trace has no spans"
                            .into(),
                    ));
                }
            }
            None => {
                return Err(QueryError::Invalid(
                    "give a time range (start and end), or a trace ID".into(),
                ));
            }
        };
        Ok(Some(match condition {
            Some(condition) => df.filter(condition)?,
            None => df,
        }))
    }

    /// Every profile sample of a trace: those carrying its ID, and those of its spans
    /// near the trace's time.
    pub async fn trace_profile_rows(
        &self,
        tenant: &Tenant,
        ctx: &SessionContext,
        id: TraceId,
    ) -> Result<Vec<RecordBatch>> {
        let selector = Selector::default();
        match self
            .scoped_samples(tenant, ctx, &selector, None, &Scope::Trace(id))
            .await?
        {
            Some(df) => Ok(self.collect(df).await?.1),
            None => Ok(Vec::new()),
        }
    }

    /// The profile types with samples in the range, sorted.
    pub async fn profile_types(
        &self,
        tenant: &Tenant,
        (start, end): (i64, i64),
    ) -> Result<Vec<String>> {
        self.counted(tenant, async {
            self.check_range(tenant, (start, end))?;
            let ctx = self.session(tenant, Arc::default())?;
            let df = ctx
                .table(Signal::ProfileSamples.as_str())
                .await?
                .filter(col("timestamp").between(ts_literal(start), ts_literal(end)))?
                .aggregate(vec![col("profile_type")], vec![])?
                .sort(vec![col("profile_type").sort(true, false)])?;
            let (_, batches) = self.collect(df).await?;
            let mut out = Vec::new();
            for batch in &batches {
                out.extend(
                    columns::string(batch, "profile_type")?
                        .iter()
                        .flatten()
                        .map(str::to_owned),
                );
            }
            Ok(out)
        })
        .await
    }

    /// The total value of each profile a query selects, summed (or averaged over the
    /// profiles) per step from the range's start and per combination of `group_by`
    /// labels: `(labels, [(step start ns, value)])`.
    pub async fn profile_series(
        &self,
        tenant: &Tenant,
        query: &ProfileQuery,
        group_by: &[String],
        step: i64,
        average: bool,
    ) -> Result<Vec<(SeriesLabels, Vec<(i64, f64)>)>> {
        self.counted(tenant, async {
            let (start, end) = query
                .range
                .ok_or_else(|| QueryError::Invalid("a series query needs a time range".into()))?;
            self.check_range(tenant, (start, end))?;
            if step <= 0 || (end - start) / step > crate::query::series::MAX_STEPS as i64 {
                return Err(QueryError::Invalid(format!(
                    "step must be positive and give at most {} points",
                    crate::query::series::MAX_STEPS
                )));
            }
            let ctx = self.session(tenant, Arc::default())?;
            let selected = self.select_streams(
                tenant,
                Signal::ProfileSamples,
                &query.selector,
                (start, end),
            );
            if selected.is_empty() {
                return Ok(Vec::new());
            }
            let df = selected
                .scan(&ctx, Signal::ProfileSamples, (start, end))
                .await?
                .filter(col("profile_type").eq(lit(query.profile_type.to_string())))?
                .aggregate(
                    vec![col("stream_id"), col("timestamp")],
                    vec![sum(col("value")).alias("total")],
                )?;
            let (_, batches) = self.collect(df).await?;
            // (group, step) -> (sum, profiles)
            let mut cells: HashMap<(SeriesLabels, i64), (f64, u32)> = HashMap::new();
            for batch in &batches {
                let ids = columns::primitive::<UInt64Type>(batch, "stream_id")?;
                let times = columns::primitive::<TimestampNanosecondType>(batch, "timestamp")?;
                let totals = columns::primitive::<Int64Type>(batch, "total")?;
                for row in 0..batch.num_rows() {
                    let labels = selected.labels.get(&crate::model::StreamId(ids.value(row)));
                    let key: SeriesLabels = group_by
                        .iter()
                        .filter_map(|name| {
                            labels
                                .and_then(|l| l.get(name))
                                .map(|v| (name.clone(), v.to_owned()))
                        })
                        .collect();
                    let bucket = start + (times.value(row) - start) / step * step;
                    let cell = cells.entry((key, bucket)).or_default();
                    cell.0 += totals.value(row) as f64;
                    cell.1 += 1;
                }
            }
            let mut series: HashMap<SeriesLabels, Vec<(i64, f64)>> = HashMap::new();
            for ((key, bucket), (total, profiles)) in cells {
                if series.len() >= crate::query::series::MAX_SERIES && !series.contains_key(&key) {
                    return Err(crate::query::series::too_many_series());
                }
                let value = if average {
                    total / profiles as f64
                } else {
                    total
                };
                series.entry(key).or_default().push((bucket, value));
            }
            let mut out: Vec<_> = series
                .into_iter()
                .map(|(key, mut points)| {
                    points.sort_by_key(|(t, _)| *t);
                    (key, points)
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        })
        .await
    }

    /// The traces whose samples of one profile type in the selected streams ran
    /// `function` (anywhere in the stack), most value first.
    pub async fn function_traces(
        &self,
        tenant: &Tenant,
        function: &str,
        profile_type: &ProfileType,
        selector: &Selector,
        range: (i64, i64),
        limit: usize,
    ) -> Result<Vec<FunctionTrace>> {
        self.counted(tenant, async {
            let stats = Arc::new(ScanStats::default());
            let ctx = self.session(tenant, stats)?;
            let signal = Signal::ProfileSamples;
            let selected = self.select_streams(tenant, signal, selector, range);
            if selected.is_empty() {
                return Ok(Vec::new());
            }
            let df = selected
                .scan(&ctx, signal, range)
                .await?
                .filter(col("profile_type").eq(lit(profile_type.to_string())))?
                .filter(array_has(col("functions"), lit(function)))?
                .filter(
                    col("trace_id")
                        .is_not_null()
                        .or(col("span_id").is_not_null()),
                )?
                .aggregate(
                    vec![col("trace_id"), col("span_id")],
                    vec![
                        sum(col("value")).alias("value"),
                        count(lit(1)).alias("samples"),
                    ],
                )?;
            let (_, batches) = self.collect(df).await?;
            let mut rows = Vec::new();
            for batch in &batches {
                let traces = columns::string(batch, "trace_id")?;
                let spans = columns::string(batch, "span_id")?;
                let values = columns::primitive::<Int64Type>(batch, "value")?;
                let samples = columns::primitive::<Int64Type>(batch, "samples")?;
                for row in 0..batch.num_rows() {
                    rows.push((
                        columns::optional(traces, row),
                        columns::optional(spans, row),
                        values.value(row),
                        samples.value(row),
                    ));
                }
            }
            // Spans without a trace ID on the sample: their trace is in `spans`.
            let unknown: Vec<&str> = rows
                .iter()
                .filter(|r| r.0.is_none())
                .filter_map(|r| r.1.as_deref())
                .collect();
            let traces_of = span_traces(self, &ctx, &unknown, range).await?;
            let mut by_trace: HashMap<String, FunctionTrace> = HashMap::new();
            for (trace, span, value, samples) in rows {
                let Some(trace) =
                    trace.or_else(|| span.as_ref().and_then(|s| traces_of.get(s).cloned()))
                else {
                    continue;
                };
                let entry = by_trace.entry(trace.clone()).or_insert(FunctionTrace {
                    trace_id: trace,
                    value: 0,
                    samples: 0,
                    span_ids: Vec::new(),
                });
                entry.value = entry.value.saturating_add(value);
                entry.samples += samples;
                if let Some(span) = span
                    && !entry.span_ids.contains(&span)
                {
                    entry.span_ids.push(span);
                }
            }
            let mut out: Vec<FunctionTrace> = by_trace.into_values().collect();
            out.sort_by(|a, b| b.value.cmp(&a.value).then(a.trace_id.cmp(&b.trace_id)));
            out.truncate(limit);
            for t in &mut out {
                t.span_ids.sort();
            }
            Ok(out)
        })
        .await
    }

    /// The profile samples of one trace with these spans, per span and profile type,
    /// most value first.
    pub async fn trace_profiles(
        &self,
        ctx: &SessionContext,
        trace_id: TraceId,
        spans: &TraceSpans,
    ) -> Result<Vec<SpanProfile>> {
        let mut df = ctx
            .table(Signal::ProfileSamples.as_str())
            .await?
            .filter(trace_condition(trace_id, &spans.span_ids))?;
        if let Some((start, end)) = spans.window {
            df = df.filter(col("timestamp").between(ts_literal(start), ts_literal(end)))?;
        }
        let df =
            df.select_columns(&["span_id", "span_name", "profile_type", "value", "functions"])?;
        let (_, batches) = self.collect(df).await?;
        // Per (span, profile type): the totals and the value per leaf function.
        type Group = (SpanProfile, HashMap<String, i64>);
        let mut groups: HashMap<(Option<String>, String), Group> = HashMap::new();
        for batch in &batches {
            let span_ids = columns::string(batch, "span_id")?;
            let names = columns::string(batch, "span_name")?;
            let types = columns::string(batch, "profile_type")?;
            let values = columns::primitive::<Int64Type>(batch, "value")?;
            let functions = columns::list(batch, "functions")?;
            for row in 0..batch.num_rows() {
                let span_id = columns::optional(span_ids, row);
                let key = (span_id.clone(), types.value(row).to_owned());
                let (profile, flat) = groups.entry(key).or_insert_with(|| {
                    (
                        SpanProfile {
                            span_id,
                            span_name: columns::optional(names, row),
                            profile_type: types.value(row).to_owned(),
                            value: 0,
                            samples: 0,
                            top_functions: Vec::new(),
                        },
                        HashMap::new(),
                    )
                });
                let value = values.value(row);
                profile.value = profile.value.saturating_add(value);
                profile.samples += 1;
                let stack = functions.value(row);
                let stack = stack.as_string::<i32>();
                if !stack.is_empty() {
                    let leaf = stack.value(stack.len() - 1).to_owned();
                    let slot = flat.entry(leaf).or_insert(0);
                    *slot = slot.saturating_add(value);
                }
            }
        }
        let mut out: Vec<SpanProfile> = groups
            .into_values()
            .map(|(mut profile, flat)| {
                let mut top: Vec<FunctionValue> = flat
                    .into_iter()
                    .map(|(function, value)| FunctionValue { function, value })
                    .collect();
                top.sort_by(|a, b| b.value.cmp(&a.value).then(a.function.cmp(&b.function)));
                top.truncate(10);
                profile.top_functions = top;
                profile
            })
            .collect();
        out.sort_by(|a, b| {
            b.value
                .cmp(&a.value)
                .then(a.span_id.cmp(&b.span_id))
                .then(a.profile_type.cmp(&b.profile_type))
        });
        Ok(out)
    }
}

/// Both ranges' overlap (an empty one when they do not overlap); either when only one
/// is given.
fn intersect(a: Option<(i64, i64)>, b: Option<(i64, i64)>) -> Option<(i64, i64)> {
    match (a, b) {
        (Some((s1, e1)), Some((s2, e2))) => Some((s1.max(s2), e1.min(e2).max(s1.max(s2)))),
        (a, b) => a.or(b),
    }
}

fn trace_condition(trace_id: TraceId, span_ids: &[String]) -> Expr {
    let by_trace = col("trace_id").eq(lit(trace_id.to_hex()));
    if span_ids.is_empty() {
        return by_trace;
    }
    let list = span_ids.iter().map(|id| lit(id.as_str())).collect();
    by_trace.or(col("span_id").in_list(list, false))
}

/// The spans of a trace (through the trace-ID index) and their time, widened by the
/// profile window.
async fn trace_spans(
    engine: &QueryEngine,
    ctx: &SessionContext,
    trace_id: TraceId,
) -> Result<TraceSpans> {
    let df = ctx
        .table(Signal::Spans.as_str())
        .await?
        .filter(col("trace_id").eq(lit(trace_id.to_hex())))?
        .select_columns(&["span_id", "start_time", "end_time"])?;
    spans_of(engine, df).await
}

/// The spans in `range` a SQL predicate matches.
async fn matching_spans(
    engine: &QueryEngine,
    ctx: &SessionContext,
    predicate: &str,
    (start, end): (i64, i64),
) -> Result<TraceSpans> {
    super::sql_limits::check(predicate, &[])
        .map_err(|e| QueryError::Invalid(format!("span predicate: {e}")))?;
    let df = ctx.table(Signal::Spans.as_str()).await?;
    let condition = ctx
        .parse_sql_expr(predicate, df.schema())
        .map_err(|e| QueryError::Invalid(format!("span predicate: {e}")))?;
    let df = df
        .filter(col("start_time").between(ts_literal(start), ts_literal(end)))?
        .filter(condition)?
        .select_columns(&["span_id", "start_time", "end_time"])?
        .limit(0, Some(MAX_SPANS + 1))?;
    let spans = spans_of(engine, df).await?;
    if spans.span_ids.len() > MAX_SPANS {
        return Err(QueryError::Invalid(format!(
            "the span predicate matches more than {MAX_SPANS} spans; narrow it or the time range"
        )));
    }
    Ok(spans)
}

async fn spans_of(engine: &QueryEngine, df: DataFrame) -> Result<TraceSpans> {
    let (_, batches) = engine.collect(df).await?;
    let mut span_ids = Vec::new();
    let (mut start, mut end) = (i64::MAX, i64::MIN);
    for batch in &batches {
        let ids = columns::string(batch, "span_id")?;
        let starts = columns::primitive::<TimestampNanosecondType>(batch, "start_time")?;
        let ends = columns::primitive::<TimestampNanosecondType>(batch, "end_time")?;
        for row in 0..batch.num_rows() {
            span_ids.push(ids.value(row).to_owned());
            start = start.min(starts.value(row));
            end = end.max(ends.value(row));
        }
    }
    Ok(TraceSpans::new(span_ids, start, end))
}

/// The trace of each of these spans, from the `spans` table.
async fn span_traces(
    engine: &QueryEngine,
    ctx: &SessionContext,
    span_ids: &[&str],
    (start, end): (i64, i64),
) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    if span_ids.is_empty() {
        return Ok(out);
    }
    for chunk in span_ids.chunks(MAX_SPANS) {
        let list = chunk.iter().map(|id| lit(*id)).collect();
        let df = ctx
            .table(Signal::Spans.as_str())
            .await?
            .filter(col("start_time").between(
                ts_literal(start.saturating_sub(PROFILE_WINDOW_NS)),
                ts_literal(end.saturating_add(PROFILE_WINDOW_NS)),
            ))?
            .filter(col("span_id").in_list(list, false))?
            .select_columns(&["span_id", "trace_id"])?;
        let (_, batches) = engine.collect(df).await?;
        for batch in &batches {
            let spans = columns::string(batch, "span_id")?;
            let traces = columns::string(batch, "trace_id")?;
            for row in 0..batch.num_rows() {
                out.insert(spans.value(row).to_owned(), traces.value(row).to_owned());
            }
        }
    }
    Ok(out)
}

/// Adds rows of (`stack_id`, `value`, `functions`[, `files`, `lines`]) to a merge;
/// each distinct stack's frames are read once per batch. Returns the rows merged.
pub fn merge_batch(merged: &mut Merged, batch: &RecordBatch, with_lines: bool) -> Result<usize> {
    let bad = |what: &str| QueryError::Execution(format!("profile_samples: {what}"));
    let ids = columns::primitive::<UInt64Type>(batch, "stack_id")?;
    let values = columns::primitive::<Int64Type>(batch, "value")?;
    let functions = columns::list(batch, "functions")?;
    let function_names = functions
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| bad("functions is not a list of strings"))?;
    let lines = if with_lines {
        let files = columns::list(batch, "files")?;
        let lines = columns::list(batch, "lines")?;
        let names = files
            .values()
            .as_string_opt::<i32>()
            .ok_or_else(|| bad("files is not a list of strings"))?;
        let numbers = lines
            .values()
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| bad("lines is not a list of integers"))?;
        Some((files, names, lines, numbers))
    } else {
        None
    };
    let offsets = functions.value_offsets();
    let mut stacks: HashMap<u64, (i64, Vec<u32>)> = HashMap::new();
    for row in 0..batch.num_rows() {
        let value = values.value(row);
        match stacks.entry(ids.value(row)) {
            Entry::Occupied(mut e) => {
                e.get_mut().0 = e.get().0.saturating_add(value);
            }
            Entry::Vacant(e) => {
                let (from, to) = (offsets[row] as usize, offsets[row + 1] as usize);
                let at = match &lines {
                    Some((files, _, lines, _)) => {
                        if files.value_length(row) as usize != to - from
                            || lines.value_length(row) as usize != to - from
                        {
                            return Err(bad("functions, files and lines differ in length"));
                        }
                        Some((
                            files.value_offsets()[row] as usize,
                            lines.value_offsets()[row] as usize,
                        ))
                    }
                    None => None,
                };
                let mut stack = Vec::with_capacity(to - from);
                for (i, f) in (from..to).enumerate() {
                    let (file, line) = match (&lines, at) {
                        (Some((_, names, _, numbers)), Some((file_at, line_at))) => {
                            (names.value(file_at + i), numbers.value(line_at + i))
                        }
                        _ => ("", 0),
                    };
                    stack.push(merged.frame(function_names.value(f), file, line));
                }
                e.insert((value, stack));
            }
        }
    }
    for (_, (value, stack)) in stacks {
        merged.add(stack, value);
    }
    Ok(batch.num_rows())
}
