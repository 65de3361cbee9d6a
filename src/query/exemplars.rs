//! Exemplar queries: by series selector and time range (what Prometheus's
//! `/api/v1/query_exemplars` answers), and by trace ID with no time range (the
//! trace-ID index names the chunks). Results are grouped by series.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampNanosecondType, UInt64Type};
use datafusion::logical_expr::{col, lit};

use super::streams::SelectedStreams;
use super::table::ScanStats;
use super::{QueryEngine, Result, columns};
use crate::model::{LabelSet, Selector, Signal, StreamId, Tenant, TraceId};

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// The exemplar's own labels, `trace_id` and `span_id` included.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SeriesExemplars {
    pub series: LabelSet,
    pub exemplars: Vec<Exemplar>,
}

pub struct ExemplarResult {
    pub series: Vec<SeriesExemplars>,
    pub stats: Arc<ScanStats>,
}

/// At most this many exemplars are returned by one query.
pub const MAX_EXEMPLARS: usize = 100_000;

const COLUMNS: [&str; 6] = [
    "timestamp",
    "stream_id",
    "value",
    "trace_id",
    "span_id",
    "exemplar_labels",
];

impl QueryEngine {
    /// The exemplars of every series any of `selectors` matches.
    pub async fn exemplars(
        &self,
        tenant: &Tenant,
        selectors: &[Selector],
        start: i64,
        end: i64,
    ) -> Result<ExemplarResult> {
        self.counted(tenant, self.run_exemplars(tenant, selectors, start, end))
            .await
    }

    async fn run_exemplars(
        &self,
        tenant: &Tenant,
        selectors: &[Selector],
        start: i64,
        end: i64,
    ) -> Result<ExemplarResult> {
        let stats = Arc::new(ScanStats::default());
        let selected = selectors
            .iter()
            .map(|s| self.select_streams(tenant, Signal::Exemplars, s, (start, end)))
            .reduce(SelectedStreams::union)
            .unwrap_or_default();
        if selected.is_empty() {
            return Ok(ExemplarResult {
                series: Vec::new(),
                stats,
            });
        }
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let df = selected
            .scan(&ctx, Signal::Exemplars, (start, end))
            .await?
            .select_columns(&COLUMNS)?
            .sort(vec![
                col("stream_id").sort(true, false),
                col("timestamp").sort(true, false),
            ])?
            .limit(0, Some(MAX_EXEMPLARS))?;
        let (_, batches) = self.collect(df).await?;
        Ok(ExemplarResult {
            series: group_by_series(&batches, &selected.labels)?,
            stats,
        })
    }

    /// The exemplars that name `trace`, with their series: the reverse of following
    /// an exemplar to its trace.
    pub async fn trace_exemplars(&self, tenant: &Tenant, trace: TraceId) -> Result<ExemplarResult> {
        self.counted(tenant, self.run_trace_exemplars(tenant, trace))
            .await
    }

    async fn run_trace_exemplars(&self, tenant: &Tenant, trace: TraceId) -> Result<ExemplarResult> {
        let stats = Arc::new(ScanStats::default());
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let df = ctx
            .table(Signal::Exemplars.as_str())
            .await?
            .filter(col("trace_id").eq(lit(trace.to_hex())))?
            .select_columns(&COLUMNS)?
            .sort(vec![col("timestamp").sort(true, false)])?
            .limit(0, Some(MAX_EXEMPLARS))?;
        let (_, batches) = self.collect(df).await?;
        let labels = {
            let catalog = self.db.read_catalog();
            let mut labels = HashMap::new();
            if let Some(table) = catalog.table(tenant, Signal::Exemplars) {
                for batch in &batches {
                    if let Some(ids) = batch
                        .column_by_name("stream_id")
                        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
                    {
                        for id in ids.values().iter().map(|v| StreamId(*v)) {
                            if let Some(l) = table.labels.labels(id) {
                                labels.insert(id, l.clone());
                            }
                        }
                    }
                }
            }
            labels
        };
        Ok(ExemplarResult {
            series: group_by_series(&batches, &labels)?,
            stats,
        })
    }
}

fn group_by_series(
    batches: &[RecordBatch],
    labels: &HashMap<StreamId, LabelSet>,
) -> Result<Vec<SeriesExemplars>> {
    let mut order: Vec<StreamId> = Vec::new();
    let mut grouped: HashMap<StreamId, Vec<Exemplar>> = HashMap::new();
    for batch in batches {
        let times = columns::primitive::<TimestampNanosecondType>(batch, "timestamp")?;
        let ids = columns::primitive::<UInt64Type>(batch, "stream_id")?;
        let values = columns::primitive::<Float64Type>(batch, "value")?;
        let traces = columns::string(batch, "trace_id")?;
        let spans = columns::string(batch, "span_id")?;
        let extra = columns::map(batch, "exemplar_labels")?;
        for row in 0..batch.num_rows() {
            let mut exemplar_labels = BTreeMap::new();
            let entries = extra.value(row);
            let keys = entries.column(0).as_string::<i32>();
            let vals = entries.column(1).as_string::<i32>();
            for i in 0..entries.len() {
                exemplar_labels.insert(keys.value(i).to_owned(), vals.value(i).to_owned());
            }
            if let Some(trace) = columns::optional(traces, row) {
                exemplar_labels.insert("trace_id".into(), trace);
            }
            if let Some(span) = columns::optional(spans, row) {
                exemplar_labels.insert("span_id".into(), span);
            }
            let id = StreamId(ids.value(row));
            grouped
                .entry(id)
                .or_insert_with(|| {
                    order.push(id);
                    Vec::new()
                })
                .push(Exemplar {
                    labels: exemplar_labels,
                    value: values.value(row),
                    timestamp: times.value(row),
                });
        }
    }
    Ok(order
        .into_iter()
        .map(|id| SeriesExemplars {
            series: labels.get(&id).cloned().unwrap_or_default(),
            exemplars: grouped.remove(&id).unwrap_or_default(),
        })
        .collect())
}
