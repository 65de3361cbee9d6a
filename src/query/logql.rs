//! Label-matcher queries: a selector resolved through the label index to stream IDs,
//! then line filters, compiled to a DataFusion plan over the `logs` table so they share
//! its pruning with SQL. Results come back grouped by stream.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{TimestampNanosecondType, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, col, lit, not};
use serde::Serialize;

use super::grep::{line_contains_udf, line_regex_udf};
use super::table::ScanStats;
use super::time::format_time;
use super::{QueryEngine, QueryError, Result, columns};
use crate::model::schema::UTC;
use crate::model::{LabelSet, LineFilterOp, LogQuery, Signal, StreamId, Tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

#[derive(Debug, Clone)]
pub struct LogRequest {
    pub query: LogQuery,
    pub start: i64,
    pub end: i64,
    pub limit: usize,
    pub direction: Direction,
}

#[derive(Debug, Serialize)]
pub struct Entry {
    pub timestamp: String,
    pub timestamp_ns: String,
    pub line: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct StreamResult {
    pub labels: serde_json::Map<String, serde_json::Value>,
    pub entries: Vec<Entry>,
}

pub struct LogResult {
    pub streams: Vec<StreamResult>,
    pub stats: Arc<ScanStats>,
}

pub fn ts_literal(ns: i64) -> Expr {
    lit(ScalarValue::TimestampNanosecond(Some(ns), Some(UTC.into())))
}

fn line_filter(filter: &crate::model::LineFilter) -> Result<Expr> {
    let body = col("body");
    Ok(match (filter.op, filter.regex()) {
        (LineFilterOp::Contains, _) => {
            line_contains_udf().call(vec![body, lit(filter.pattern.clone())])
        }
        (LineFilterOp::NotContains, _) => {
            not(line_contains_udf().call(vec![body, lit(filter.pattern.clone())]))
        }
        (LineFilterOp::Regex, Some(re)) => line_regex_udf(re.clone()).call(vec![body]),
        (LineFilterOp::NotRegex, Some(re)) => not(line_regex_udf(re.clone()).call(vec![body])),
        (_, None) => return Err(QueryError::Invalid("regex filter without a regex".into())),
    })
}

impl QueryEngine {
    pub async fn logs(&self, tenant: &Tenant, request: &LogRequest) -> Result<LogResult> {
        self.counted(self.run_logs(tenant, request)).await
    }

    async fn run_logs(&self, tenant: &Tenant, request: &LogRequest) -> Result<LogResult> {
        let stats = Arc::new(ScanStats::default());
        let selected = self.select_streams(
            tenant,
            Signal::Logs,
            &request.query.selector,
            (request.start, request.end),
        );
        if selected.is_empty() {
            return Ok(LogResult {
                streams: Vec::new(),
                stats,
            });
        }
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let mut df = selected
            .scan(&ctx, Signal::Logs, (request.start, request.end))
            .await?;
        for filter in &request.query.filters {
            df = df.filter(line_filter(filter)?)?;
        }
        let descending = request.direction == Direction::Backward;
        let df = df
            .select_columns(&["timestamp", "stream_id", "body", "trace_id", "span_id"])?
            .sort(vec![col("timestamp").sort(!descending, false)])?
            .limit(0, Some(request.limit))?;
        let (_, batches) = self.collect(df).await?;
        Ok(LogResult {
            streams: group_by_stream(&batches, &selected.labels)?,
            stats,
        })
    }
}

fn group_by_stream(
    batches: &[RecordBatch],
    labels: &HashMap<StreamId, LabelSet>,
) -> Result<Vec<StreamResult>> {
    let mut order: Vec<StreamId> = Vec::new();
    let mut grouped: HashMap<StreamId, Vec<Entry>> = HashMap::new();
    for batch in batches {
        let ts = columns::primitive::<TimestampNanosecondType>(batch, "timestamp")?;
        let ids = columns::primitive::<UInt64Type>(batch, "stream_id")?;
        let body = columns::string(batch, "body")?;
        let trace = columns::string(batch, "trace_id")?;
        let span = columns::string(batch, "span_id")?;
        for row in 0..batch.num_rows() {
            let id = StreamId(ids.value(row));
            let entries = grouped.entry(id).or_insert_with(|| {
                order.push(id);
                Vec::new()
            });
            entries.push(Entry {
                timestamp: format_time(ts.value(row)),
                timestamp_ns: ts.value(row).to_string(),
                line: body.value(row).to_owned(),
                trace_id: columns::optional(trace, row),
                span_id: columns::optional(span, row),
            });
        }
    }
    Ok(order
        .into_iter()
        .map(|id| StreamResult {
            labels: labels
                .get(&id)
                .map(|l| l.iter().map(|(k, v)| (k.to_owned(), v.into())).collect())
                .unwrap_or_default(),
            entries: grouped.remove(&id).unwrap_or_default(),
        })
        .collect())
}
