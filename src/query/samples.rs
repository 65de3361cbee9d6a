//! Metric points by series selector and time range: the raw points of every matching
//! series, grouped by series and in time order (a Prometheus range query without
//! functions).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Float64Type, TimestampNanosecondType, UInt64Type};
use datafusion::logical_expr::{col, lit};

use super::logql::ts_literal;
use super::table::ScanStats;
use super::{QueryEngine, Result, columns};
use crate::model::{LabelSet, Selector, Signal, StreamId, Tenant};

pub struct SeriesPoints {
    pub series: LabelSet,
    /// `(nanoseconds, value)`, oldest first.
    pub points: Vec<(i64, f64)>,
}

pub struct SampleResult {
    pub series: Vec<SeriesPoints>,
    /// True when `limit` points were reached and later ones left out.
    pub truncated: bool,
    pub stats: Arc<ScanStats>,
}

impl QueryEngine {
    /// `(metric, type, unit)` of the metrics with samples in the range, by name; an
    /// unknown type is `unknown` and an unknown unit empty.
    pub async fn metric_metadata(
        &self,
        tenant: &Tenant,
        (start, end): (i64, i64),
        metric: Option<&str>,
    ) -> Result<Vec<(String, String, String)>> {
        self.counted(tenant, async {
            self.check_range(tenant, (start, end))?;
            let ctx = self.session(tenant, Arc::default())?;
            let mut df = ctx
                .table(Signal::Samples.as_str())
                .await?
                .filter(col("timestamp").between(ts_literal(start), ts_literal(end)))?;
            if let Some(metric) = metric {
                df = df.filter(col("metric").eq(lit(metric.to_owned())))?;
            }
            let df = df
                .aggregate(vec![col("metric"), col("metric_type"), col("unit")], vec![])?
                .sort(vec![col("metric").sort(true, false)])?;
            let (_, batches) = self.collect(df).await?;
            let mut out = Vec::new();
            for batch in &batches {
                let metrics = columns::string(batch, "metric")?;
                let kinds = columns::string(batch, "metric_type")?;
                let units = columns::string(batch, "unit")?;
                for row in 0..batch.num_rows() {
                    out.push((
                        metrics.value(row).to_owned(),
                        columns::optional(kinds, row).unwrap_or_else(|| "unknown".into()),
                        columns::optional(units, row).unwrap_or_default(),
                    ));
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn samples(
        &self,
        tenant: &Tenant,
        selector: &Selector,
        range: (i64, i64),
        limit: usize,
    ) -> Result<SampleResult> {
        self.counted(tenant, self.run_samples(tenant, selector, range, limit))
            .await
    }

    async fn run_samples(
        &self,
        tenant: &Tenant,
        selector: &Selector,
        (start, end): (i64, i64),
        limit: usize,
    ) -> Result<SampleResult> {
        let stats = Arc::new(ScanStats::default());
        let selected = self.select_streams(tenant, Signal::Samples, selector, (start, end));
        if selected.is_empty() {
            return Ok(SampleResult {
                series: Vec::new(),
                truncated: false,
                stats,
            });
        }
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let df = selected
            .scan(&ctx, Signal::Samples, (start, end))
            .await?
            .select_columns(&["stream_id", "timestamp", "value"])?
            .sort(vec![
                col("stream_id").sort(true, false),
                col("timestamp").sort(true, false),
            ])?
            .limit(0, Some(limit.saturating_add(1)))?;
        let (_, batches) = self.collect(df).await?;
        let mut order: Vec<StreamId> = Vec::new();
        let mut grouped: HashMap<StreamId, Vec<(i64, f64)>> = HashMap::new();
        let mut taken = 0usize;
        let mut truncated = false;
        'batches: for batch in &batches {
            let ids = columns::primitive::<UInt64Type>(batch, "stream_id")?;
            let times = columns::primitive::<TimestampNanosecondType>(batch, "timestamp")?;
            let values = columns::primitive::<Float64Type>(batch, "value")?;
            for row in 0..batch.num_rows() {
                if taken == limit {
                    truncated = true;
                    break 'batches;
                }
                taken += 1;
                let id = StreamId(ids.value(row));
                grouped
                    .entry(id)
                    .or_insert_with(|| {
                        order.push(id);
                        Vec::new()
                    })
                    .push((times.value(row), values.value(row)));
            }
        }
        let series = order
            .into_iter()
            .map(|id| SeriesPoints {
                series: selected.labels.get(&id).cloned().unwrap_or_default(),
                points: grouped.remove(&id).unwrap_or_default(),
            })
            .collect();
        Ok(SampleResult {
            series,
            truncated,
            stats,
        })
    }
}
