//! Trace lookup with no time range: the trace-ID index names the chunks (and head
//! buffers) that may hold the trace in each signal; the scans filter by the full ID.
//! The answer is one time-ordered timeline of its spans, log lines and exemplars, and
//! the profile samples taken while its spans ran, summed per span.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampNanosecondType;
use datafusion::logical_expr::{col, lit};
use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::{Map, Value};

use super::profiles::{SpanProfile, TraceSpans};
use super::table::ScanStats;
use super::time::format_time;
use super::{QueryEngine, Result, columns, to_json_rows};
use crate::model::{Signal, Tenant, TraceId};

#[derive(Debug, Serialize)]
pub struct TraceDocument {
    pub trace_id: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub duration_ns: Option<i64>,
    pub services: Vec<String>,
    pub span_count: usize,
    pub log_count: usize,
    pub exemplar_count: usize,
    pub profile_sample_count: i64,
    /// Spans (at their start), log lines and exemplars (each with its series' labels),
    /// oldest first; each item has `signal`.
    pub timeline: Vec<Map<String, Value>>,
    /// The spans as a tree, depth first: each after its parent, children in start
    /// order; spans whose parent is missing are roots.
    pub tree: Vec<TreeSpan>,
    /// The trace's profile samples per span and profile type, most value first.
    pub profiles: Vec<SpanProfile>,
    #[serde(skip)]
    pub stats: Arc<ScanStats>,
}

/// One span's place in the trace's tree.
#[derive(Debug, Serialize)]
pub struct TreeSpan {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub depth: usize,
    pub name: String,
    pub service_name: Option<String>,
    pub start_time: String,
    pub duration_ns: i64,
    pub status_code: String,
    pub children: Vec<String>,
}

impl QueryEngine {
    /// `None` when no signal mentions the trace.
    pub async fn trace(&self, tenant: &Tenant, id: TraceId) -> Result<Option<TraceDocument>> {
        self.counted(tenant, self.run_trace(tenant, id)).await
    }

    async fn run_trace(&self, tenant: &Tenant, id: TraceId) -> Result<Option<TraceDocument>> {
        let stats = Arc::new(ScanStats::default());
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let hex = id.to_hex();
        let mut items: Vec<(i64, Map<String, Value>)> = Vec::new();
        let (mut start, mut end) = (i64::MAX, i64::MIN);
        let mut services = BTreeSet::new();
        let mut counts = BTreeMap::new();
        let mut span_ids = Vec::new();
        let mut span_range = (i64::MAX, i64::MIN);
        let mut tree = Vec::new();
        // Spans first: the profile lookup after the loop needs their IDs and times.
        let (spans, logs, exemplars) = futures::try_join!(
            self.trace_rows(&ctx, Signal::Spans, &hex),
            self.trace_rows(&ctx, Signal::Logs, &hex),
            self.trace_rows(&ctx, Signal::Exemplars, &hex),
        )?;
        let timeline = [
            (Signal::Spans, spans),
            (Signal::Logs, logs),
            (Signal::Exemplars, exemplars),
        ];
        for (signal, batches) in timeline {
            let time = signal.time_column();
            let times = time_values(&batches, time)?;
            if signal == Signal::Spans {
                tree = span_tree(&batches)?;
                for batch in &batches {
                    span_ids.extend(
                        columns::string(batch, "span_id")?
                            .iter()
                            .flatten()
                            .map(str::to_owned),
                    );
                    if let Some(ends) = batch
                        .column_by_name("end_time")
                        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
                    {
                        end = end.max(ends.values().iter().copied().max().unwrap_or(i64::MIN));
                    }
                }
            }
            let rows = to_json_rows(&batches)?;
            counts.insert(signal, rows.len());
            for (t, mut row) in times.into_iter().zip(rows) {
                start = start.min(t);
                end = end.max(t);
                if let Some(Value::String(service)) = row.get("service_name") {
                    services.insert(service.clone());
                }
                row.insert("signal".into(), Value::from(signal_item(signal)));
                items.push((t, row));
            }
            if signal == Signal::Spans {
                span_range = (start, end);
            }
        }
        let spans = TraceSpans::new(span_ids, span_range.0, span_range.1);
        let profiles = self.trace_profiles(&ctx, id, &spans).await?;
        if items.is_empty() && profiles.is_empty() {
            return Ok(None);
        }
        items.sort_by_key(|(t, _)| *t);
        let known = !items.is_empty();
        Ok(Some(TraceDocument {
            trace_id: hex,
            start_time: known.then(|| format_time(start)),
            end_time: known.then(|| format_time(end)),
            duration_ns: known.then(|| end - start),
            services: services.into_iter().collect(),
            span_count: counts.get(&Signal::Spans).copied().unwrap_or(0),
            log_count: counts.get(&Signal::Logs).copied().unwrap_or(0),
            exemplar_count: counts.get(&Signal::Exemplars).copied().unwrap_or(0),
            timeline: items.into_iter().map(|(_, row)| row).collect(),
            tree,
            profile_sample_count: profiles.iter().map(|p| p.samples).sum(),
            profiles,
            stats,
        }))
    }
}

impl QueryEngine {
    /// Every span of a trace, oldest first, found through the trace-ID index with no
    /// time range; empty when the trace is unknown.
    pub async fn trace_spans(&self, tenant: &Tenant, id: TraceId) -> Result<Vec<RecordBatch>> {
        self.counted(tenant, async {
            let ctx = self.session(tenant, Arc::new(ScanStats::default()))?;
            self.trace_rows(&ctx, Signal::Spans, &id.to_hex()).await
        })
        .await
    }

    /// Every row about a trace, per signal: its spans, log lines, exemplars and profile
    /// samples (the trace bundle). Empty when nothing mentions the trace.
    pub async fn trace_bundle(
        &self,
        tenant: &Tenant,
        id: TraceId,
    ) -> Result<Vec<(Signal, Vec<RecordBatch>)>> {
        self.counted(tenant, async {
            let ctx = self.session(tenant, Arc::new(ScanStats::default()))?;
            let hex = id.to_hex();
            let (spans, logs, exemplars, samples) = futures::try_join!(
                self.trace_rows(&ctx, Signal::Spans, &hex),
                self.trace_rows(&ctx, Signal::Logs, &hex),
                self.trace_rows(&ctx, Signal::Exemplars, &hex),
                self.trace_profile_rows(tenant, &ctx, id),
            )?;
            Ok(vec![
                (Signal::Spans, spans),
                (Signal::Logs, logs),
                (Signal::Exemplars, exemplars),
                (Signal::ProfileSamples, samples),
            ])
        })
        .await
    }

    /// The rows of `signal` naming a trace (lowercase hex), in time order.
    pub async fn trace_rows(
        &self,
        ctx: &SessionContext,
        signal: Signal,
        hex: &str,
    ) -> Result<Vec<RecordBatch>> {
        let df = ctx
            .table(signal.as_str())
            .await?
            .filter(col("trace_id").eq(lit(hex.to_owned())))?
            .sort(vec![col(signal.time_column()).sort(true, false)])?;
        Ok(self.collect(df).await?.1)
    }
}

/// The spans of a trace (in start order) as a depth-first tree, built without
/// recursion: a trace may nest deeply.
fn span_tree(batches: &[RecordBatch]) -> Result<Vec<TreeSpan>> {
    let mut spans = Vec::new();
    for batch in batches {
        let ids = columns::string(batch, "span_id")?;
        let parents = columns::string(batch, "parent_span_id")?;
        let names = columns::string(batch, "name")?;
        let services = columns::string(batch, "service_name")?;
        let starts = columns::primitive::<TimestampNanosecondType>(batch, "start_time")?;
        let durations = columns::primitive::<arrow::datatypes::Int64Type>(batch, "duration_ns")?;
        let statuses = columns::string(batch, "status_code")?;
        for row in 0..batch.num_rows() {
            spans.push(TreeSpan {
                span_id: ids.value(row).to_owned(),
                parent_span_id: columns::optional(parents, row).filter(|p| !p.is_empty()),
                depth: 0,
                name: names.value(row).to_owned(),
                service_name: columns::optional(services, row),
                start_time: format_time(starts.value(row)),
                duration_ns: durations.value(row),
                status_code: statuses.value(row).to_owned(),
                children: Vec::new(),
            });
        }
    }
    let index: std::collections::HashMap<String, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.clone(), i))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        match span.parent_span_id.as_ref().and_then(|p| index.get(p)) {
            Some(&parent) if parent != i => children[parent].push(i),
            _ => roots.push(i),
        }
    }
    // Spans are in start order, so each child list is too.
    let mut order = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    let mut pending: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    while let Some((i, depth)) = pending.pop() {
        if std::mem::replace(&mut visited[i], true) {
            continue;
        }
        order.push((i, depth));
        pending.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
    }
    // A parent cycle leaves spans unreached: they become roots.
    order.extend(
        visited
            .iter()
            .enumerate()
            .filter(|(_, seen)| !**seen)
            .map(|(i, _)| (i, 0)),
    );
    let child_ids: Vec<Vec<String>> = children
        .iter()
        .map(|list| list.iter().map(|&c| spans[c].span_id.clone()).collect())
        .collect();
    let mut slots: Vec<Option<TreeSpan>> = spans.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|(i, depth)| {
            let mut span = slots[i].take()?;
            span.depth = depth;
            span.children = child_ids[i].clone();
            Some(span)
        })
        .collect())
}

fn signal_item(signal: Signal) -> &'static str {
    match signal {
        Signal::Logs => "log",
        Signal::Spans => "span",
        Signal::Samples => "sample",
        Signal::Exemplars => "exemplar",
        Signal::Profiles => "profile",
        Signal::ProfileSamples => "profile_sample",
    }
}

fn time_values(batches: &[RecordBatch], column: &str) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for batch in batches {
        let values = columns::primitive::<TimestampNanosecondType>(batch, column)?;
        out.extend_from_slice(values.values());
    }
    Ok(out)
}
