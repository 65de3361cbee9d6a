//! LogQL metric queries, evaluated at every step of a range (or at one instant).
//!
//! Each range aggregation reads its log query's lines once for the whole range — from
//! the first window's start to the last step — runs the pipeline, turns each line into
//! a sample (1, its bytes, or an unwrapped label) of the series its labels name, and
//! then slides the window `(t - range, t]` over each series' sorted samples. Vector
//! aggregations and arithmetic work on the per-step values that result.
//!
//! When the pipeline reads only labels (no parser, no line filter after the scan, no
//! template over the line), a line's series follows from its stream and metadata
//! alone, and is worked out once per distinct pair rather than once per line.
//!
//! A range aggregation reads its scan to the end, so what passed the scan's filters
//! teaches the filter cache which streams of each chunk hold no such line.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::logql::{LineBatch, LineCounts, LineLabels, scan_lines};
use super::series::{
    MAX_SERIES, Series, SeriesLabels, Steps, Value, aggregate, binary, check_cells,
    extrapolated_rate, group_key, quantile, too_many_series,
};
use super::table::ScanStats;
use super::{QueryEngine, QueryError, Result};
use crate::logql::{
    Labels, MetricExpr, Pipeline, RangeAggregation, RangeOp, post_filter, unwrap_value,
};
use crate::model::{Signal, StreamId, Tenant};

/// Distinct (stream, metadata) pairs whose series is remembered in one range
/// aggregation.
const MAX_KNOWN_LABEL_SETS: usize = 65_536;

#[derive(Debug, Clone)]
pub struct MetricRequest {
    pub expr: MetricExpr,
    /// Evaluation instants: `start`, `start + step`, … up to `end`.
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

pub struct MetricResult {
    pub value: Value,
    pub steps: Steps,
    pub counts: LineCounts,
    pub stats: Arc<ScanStats>,
}

impl QueryEngine {
    pub async fn log_metrics(
        &self,
        tenant: &Tenant,
        request: &MetricRequest,
    ) -> Result<MetricResult> {
        self.counted(tenant, self.run_log_metrics(tenant, request))
            .await
    }

    async fn run_log_metrics(
        &self,
        tenant: &Tenant,
        request: &MetricRequest,
    ) -> Result<MetricResult> {
        let steps = Steps::new(request.start, request.end, request.step)?;
        self.check_range(
            tenant,
            (
                request.start.saturating_sub(request.expr.lookback_ns()),
                request.end,
            ),
        )?;
        let stats = Arc::new(ScanStats::default());
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let mut evaluation = Evaluation {
            engine: self,
            ctx: &ctx,
            stats: &stats,
            tenant,
            steps,
            counts: LineCounts::default(),
            held: 0,
        };
        let value = evaluation.eval(&request.expr).await?;
        Ok(MetricResult {
            value,
            steps,
            counts: evaluation.counts,
            stats,
        })
    }
}

struct Evaluation<'a> {
    engine: &'a QueryEngine,
    ctx: &'a SessionContext,
    stats: &'a ScanStats,
    tenant: &'a Tenant,
    steps: Steps,
    counts: LineCounts,
    /// Samples read by the query's range aggregations so far, against one budget.
    held: usize,
}

impl Evaluation<'_> {
    fn eval<'s>(
        &'s mut self,
        expr: &'s MetricExpr,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Value>> + Send + 's>> {
        Box::pin(async move {
            let n = self.steps.count;
            Ok(match expr {
                MetricExpr::Number(x) => Value::Scalar(vec![*x; n]),
                MetricExpr::VectorOf(x) => Value::Vector(vec![Series {
                    labels: Vec::new(),
                    points: vec![Some(*x); n],
                }]),
                MetricExpr::Range(r) => Value::Vector(self.range(r).await?),
                MetricExpr::Vector(v) => {
                    let inner = match self.eval(&v.inner).await? {
                        Value::Vector(series) => series,
                        Value::Scalar(_) => {
                            return Err(QueryError::Invalid(format!(
                                "{} aggregates series, not a number",
                                v.op.as_str()
                            )));
                        }
                    };
                    Value::Vector(aggregate(v.op, v.grouping.as_ref(), v.param, inner, n)?)
                }
                MetricExpr::Binary(b) => {
                    let lhs = self.eval(&b.lhs).await?;
                    let rhs = self.eval(&b.rhs).await?;
                    binary(b.op, b.return_bool, lhs, rhs, SeriesLabels::clone)?
                }
            })
        })
    }

    async fn range(&mut self, r: &RangeAggregation) -> Result<Vec<Series>> {
        let steps = self.steps;
        // Samples in (first window start, last step], shifted back by the offset.
        let lo = steps
            .start
            .saturating_sub(r.offset_ns)
            .saturating_sub(r.range_ns);
        let hi = steps.last().saturating_sub(r.offset_ns);
        let selected = self.engine.select_streams(
            self.tenant,
            Signal::Logs,
            &r.log.selector,
            (lo.saturating_add(1), hi),
        );
        if selected.is_empty() {
            return Ok(Vec::new());
        }
        let df = scan_lines(self.ctx, &selected, &r.log, (lo.saturating_add(1), hi + 1)).await?;
        let pipeline = Pipeline::new(r.log.remaining_stages());
        let by_labels_only = !pipeline.reads_line() && r.unwrap.is_none();
        let labels = LineLabels::new(&selected);
        let mut samples = Samples::new(self.engine.config(self.tenant).max_memory_bytes, self.held);
        // (stream, metadata fingerprint) → series, for pipelines that read only labels.
        let mut known: HashMap<(StreamId, u128), Option<usize>> = HashMap::new();
        let mut batches = df.execute_stream().await?;
        // Planned with the stream just now: what the filter cache can learn from it,
        // and the time span of each stream's lines that passed the scan's filters.
        let scans = self.stats.take_filter_scans();
        let mut passed: Option<HashMap<StreamId, (i64, i64)>> =
            (!scans.is_empty()).then(HashMap::new);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let lines = LineBatch::new(&batch)?;
            for row in 0..lines.rows() {
                let id = StreamId(lines.streams.value(row));
                let time = lines.timestamps.value(row);
                if let Some(passed) = &mut passed {
                    let span = passed.entry(id).or_insert((time, time));
                    *span = (span.0.min(time), span.1.max(time));
                }
                let body = lines.bodies.value(row);
                self.counts.lines += 1;
                self.counts.bytes += body.len() as u64;
                let bytes = body.len() as f64;
                if by_labels_only {
                    // Per-line metadata (trace IDs) makes every key new: keep the
                    // cache bounded.
                    if known.len() >= MAX_KNOWN_LABEL_SETS {
                        known.clear();
                    }
                    let key = (id, lines.metadata_fingerprint(row));
                    let slot = match known.get(&key) {
                        Some(slot) => *slot,
                        None => {
                            let mut line_labels = lines.labels(row, labels.stream(id));
                            let mut line = Cow::Borrowed(body);
                            let slot = if pipeline.run(&mut line, time, &mut line_labels) {
                                Some(samples.series(series_labels(line_labels, r, None)?)?)
                            } else {
                                None
                            };
                            known.insert(key, slot);
                            slot
                        }
                    };
                    if let Some(slot) = slot {
                        let value = if is_bytes(r.op) { bytes } else { 1.0 };
                        samples.push(slot, time, value)?;
                        self.counts.returned += 1;
                    }
                    continue;
                }
                let mut line_labels = lines.labels(row, labels.stream(id));
                let mut line = Cow::Borrowed(body);
                if !pipeline.run(&mut line, time, &mut line_labels) {
                    continue;
                }
                let value = match &r.unwrap {
                    Some(unwrap) => {
                        let value = unwrap_value(&mut line_labels, &unwrap.label, unwrap.unit);
                        if !post_filter(&unwrap.filters, &mut line_labels) {
                            continue;
                        }
                        value.unwrap_or(0.0)
                    }
                    None if is_bytes(r.op) => line.len() as f64,
                    None => 1.0,
                };
                let slot = samples.series(series_labels(
                    line_labels,
                    r,
                    r.unwrap.as_ref().map(|u| u.label.as_str()),
                )?)?;
                samples.push(slot, time, value)?;
                self.counts.returned += 1;
            }
        }
        if let Some(passed) = passed {
            for scan in &scans {
                self.engine.filter_cache().learn(scan, &passed);
            }
        }
        self.held = samples.held;
        samples.windows(r, &steps)
    }
}

fn is_bytes(op: RangeOp) -> bool {
    matches!(op, RangeOp::BytesOverTime | RangeOp::BytesRate)
}

/// The series a sample belongs to: its labels less the unwrapped one, grouped as the
/// aggregation says. A line still marked with a pipeline error fails the query, as in
/// Loki: the user decides whether to skip such lines.
fn series_labels(
    labels: Labels,
    r: &RangeAggregation,
    unwrapped: Option<&str>,
) -> Result<SeriesLabels> {
    if let Some((kind, details)) = labels.error() {
        return Err(QueryError::Invalid(format!(
            "pipeline error {kind} ({details}); skip such lines with | __error__=\"\" or drop the marker with | drop __error__, __error_details__"
        )));
    }
    let pairs = labels
        .iter()
        .filter(|(name, _, _)| Some(*name) != unwrapped)
        .map(|(n, v, _)| (n.to_owned(), v.to_owned()));
    Ok(match &r.grouping {
        Some(grouping) => group_key(pairs, grouping),
        None => pairs.collect(),
    })
}

/// The samples of one range aggregation, per series, bounded in count.
struct Samples {
    index: HashMap<SeriesLabels, usize>,
    series: Vec<(SeriesLabels, Vec<(i64, f64)>)>,
    held: usize,
    max_held: usize,
}

impl Samples {
    /// A budget of `query.max_memory_bytes` worth of samples for the whole query, of
    /// which earlier range aggregations hold `held`.
    fn new(max_memory_bytes: usize, held: usize) -> Self {
        Self {
            index: HashMap::new(),
            series: Vec::new(),
            held,
            max_held: max_memory_bytes / std::mem::size_of::<(i64, f64)>(),
        }
    }

    fn series(&mut self, labels: SeriesLabels) -> Result<usize> {
        if let Some(slot) = self.index.get(&labels) {
            return Ok(*slot);
        }
        if self.series.len() >= MAX_SERIES {
            return Err(too_many_series());
        }
        self.series.push((labels.clone(), Vec::new()));
        self.index.insert(labels, self.series.len() - 1);
        Ok(self.series.len() - 1)
    }

    fn push(&mut self, slot: usize, time: i64, value: f64) -> Result<()> {
        self.held += 1;
        if self.held > self.max_held {
            return Err(QueryError::ResourcesExhausted(format!(
                "the query holds more than {} samples (query.max_memory_bytes); narrow the selector or the time range",
                self.max_held
            )));
        }
        self.series[slot].1.push((time, value));
        Ok(())
    }

    /// Slides the window over each series.
    fn windows(self, r: &RangeAggregation, steps: &Steps) -> Result<Vec<Series>> {
        check_cells(self.series.len(), steps.count)?;
        let range_seconds = r.range_ns as f64 / 1e9;
        let mut out = Vec::with_capacity(self.series.len());
        for (labels, mut points) in self.series {
            points.sort_by_key(|(t, _)| *t);
            let mut values = Vec::with_capacity(steps.count);
            let (mut from, mut to) = (0, 0);
            for i in 0..steps.count {
                let end = steps.time(i).saturating_sub(r.offset_ns);
                let start = end.saturating_sub(r.range_ns);
                while to < points.len() && points[to].0 <= end {
                    to += 1;
                }
                while from < to && points[from].0 <= start {
                    from += 1;
                }
                let window = &points[from..to];
                values.push(if window.is_empty() {
                    None
                } else {
                    window_value(r, window, (start, end), range_seconds)
                });
            }
            if values.iter().any(Option::is_some) {
                out.push(Series {
                    labels,
                    points: values,
                });
            }
        }
        Ok(out)
    }
}

fn window_value(
    r: &RangeAggregation,
    window: &[(i64, f64)],
    bounds: (i64, i64),
    range_seconds: f64,
) -> Option<f64> {
    let values = || window.iter().map(|(_, v)| *v);
    let n = window.len() as f64;
    let sum = || values().sum::<f64>();
    let variance = || {
        let mean = sum() / n;
        values().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n
    };
    Some(match r.op {
        RangeOp::CountOverTime => n,
        RangeOp::Rate | RangeOp::BytesRate => sum() / range_seconds,
        RangeOp::BytesOverTime | RangeOp::SumOverTime => sum(),
        RangeOp::AvgOverTime => sum() / n,
        RangeOp::MinOverTime => values().fold(f64::INFINITY, f64::min),
        RangeOp::MaxOverTime => values().fold(f64::NEG_INFINITY, f64::max),
        RangeOp::StdvarOverTime => variance(),
        RangeOp::StddevOverTime => variance().sqrt(),
        RangeOp::QuantileOverTime => {
            let mut sorted: Vec<f64> = values().collect();
            sorted.sort_by(f64::total_cmp);
            quantile(r.param.unwrap_or(0.5), &sorted)
        }
        RangeOp::FirstOverTime => window[0].1,
        RangeOp::LastOverTime => window[window.len() - 1].1,
        RangeOp::RateCounter => return extrapolated_rate(window, bounds, true, true),
    })
}
