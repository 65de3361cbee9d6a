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

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::logql::{LineBatch, LineCounts, LineLabels, scan_lines};
use super::table::ScanStats;
use super::{QueryEngine, QueryError, Result};
use crate::logql::{
    BinaryExpr, BinaryOp, Grouping, Labels, MetricExpr, Pipeline, RangeAggregation, RangeOp,
    VectorAggregation, VectorOp, post_filter, unwrap_value,
};
use crate::model::{Signal, StreamId, Tenant};

/// Most evaluation steps per series, as in Loki and Prometheus.
pub const MAX_STEPS: usize = 11_000;
/// Most series any stage of a query may hold.
pub const MAX_SERIES: usize = 20_000;
/// Most step values all series of one stage may hold together.
pub const MAX_CELLS: usize = 10_000_000;

#[derive(Debug, Clone)]
pub struct MetricRequest {
    pub expr: MetricExpr,
    /// Evaluation instants: `start`, `start + step`, … up to `end`.
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

/// The instants a query is evaluated at.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    pub start: i64,
    pub step: i64,
    pub count: usize,
}

impl Steps {
    pub fn new(start: i64, end: i64, step: i64) -> Result<Self> {
        if step <= 0 {
            return Err(QueryError::Invalid("step must be positive".into()));
        }
        if end < start {
            return Err(QueryError::Invalid("end must not be before start".into()));
        }
        let count = ((end - start) / step) as u128 + 1;
        if count > MAX_STEPS as u128 {
            return Err(QueryError::Invalid(format!(
                "exceeded maximum resolution of {MAX_STEPS} points per series ({count} requested); increase step"
            )));
        }
        Ok(Self {
            start,
            step,
            count: count as usize,
        })
    }

    pub fn time(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }

    fn last(&self) -> i64 {
        self.time(self.count - 1)
    }
}

/// A series' labels, sorted by name.
pub type SeriesLabels = Vec<(String, String)>;

#[derive(Debug, Clone)]
pub struct Series {
    pub labels: SeriesLabels,
    /// One value per step; `None` where the series has none.
    pub points: Vec<Option<f64>>,
}

#[derive(Debug)]
pub enum Value {
    /// One number per step.
    Scalar(Vec<f64>),
    Vector(Vec<Series>),
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
        self.counted(self.run_log_metrics(tenant, request)).await
    }

    async fn run_log_metrics(
        &self,
        tenant: &Tenant,
        request: &MetricRequest,
    ) -> Result<MetricResult> {
        let steps = Steps::new(request.start, request.end, request.step)?;
        let stats = Arc::new(ScanStats::default());
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let mut evaluation = Evaluation {
            engine: self,
            ctx: &ctx,
            tenant,
            steps,
            counts: LineCounts::default(),
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
    tenant: &'a Tenant,
    steps: Steps,
    counts: LineCounts,
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
                    Value::Vector(aggregate(v, inner, n)?)
                }
                MetricExpr::Binary(b) => {
                    let lhs = self.eval(&b.lhs).await?;
                    let rhs = self.eval(&b.rhs).await?;
                    binary(b, lhs, rhs)?
                }
            })
        })
    }

    async fn range(&mut self, r: &RangeAggregation) -> Result<Vec<Series>> {
        let steps = self.steps;
        // Samples in (first window start, last step], shifted back by the offset.
        let lo = steps.start - r.offset_ns - r.range_ns;
        let hi = steps.last() - r.offset_ns;
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
        let mut samples = Samples::new(self.engine.config().max_memory_bytes);
        // (stream, metadata fingerprint) → series, for pipelines that read only labels.
        let mut known: HashMap<(StreamId, u128), Option<usize>> = HashMap::new();
        let mut batches = df.execute_stream().await?;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let lines = LineBatch::new(&batch)?;
            for row in 0..lines.rows() {
                let id = StreamId(lines.streams.value(row));
                let time = lines.timestamps.value(row);
                let body = lines.bodies.value(row);
                self.counts.lines += 1;
                self.counts.bytes += body.len() as u64;
                let bytes = body.len() as f64;
                if by_labels_only {
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

fn group_key(pairs: impl Iterator<Item = (String, String)>, grouping: &Grouping) -> SeriesLabels {
    pairs
        .filter(|(name, _)| grouping.labels.contains(name) != grouping.without)
        .collect()
}

/// The samples of one range aggregation, per series, bounded in count.
struct Samples {
    index: HashMap<SeriesLabels, usize>,
    series: Vec<(SeriesLabels, Vec<(i64, f64)>)>,
    held: usize,
    max_held: usize,
}

impl Samples {
    fn new(max_memory_bytes: usize) -> Self {
        Self {
            index: HashMap::new(),
            series: Vec::new(),
            held: 0,
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
                let end = steps.time(i) - r.offset_ns;
                let start = end - r.range_ns;
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

fn too_many_series() -> QueryError {
    QueryError::ResourcesExhausted(format!(
        "the query produces more than {MAX_SERIES} series; aggregate with sum by (…) or narrow the selector"
    ))
}

fn check_cells(series: usize, steps: usize) -> Result<()> {
    if series.saturating_mul(steps) > MAX_CELLS {
        return Err(QueryError::ResourcesExhausted(format!(
            "{series} series × {steps} steps exceeds {MAX_CELLS} values; increase step, shorten the range or aggregate"
        )));
    }
    Ok(())
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

/// The φ-quantile of sorted values, interpolating between neighbours (Prometheus's
/// `quantile`).
pub fn quantile(q: f64, sorted: &[f64]) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    let rank = q * (sorted.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let upper = (lower + 1).min(sorted.len() - 1);
    let weight = rank - rank.floor();
    sorted[lower] * (1.0 - weight) + sorted[upper] * weight
}

/// Prometheus's extrapolated rate or increase over a window `(start, end]`: the change
/// between the first and last samples (counter resets added back), extrapolated
/// towards the window's edges by at most half a sample interval, and for counters
/// never below zero.
pub fn extrapolated_rate(
    points: &[(i64, f64)],
    (start, end): (i64, i64),
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let mut result = last.1 - first.1;
    if is_counter {
        for pair in points.windows(2) {
            if pair[1].1 < pair[0].1 {
                result += pair[0].1;
            }
        }
    }
    let sampled = (last.0 - first.0) as f64 / 1e9;
    if sampled <= 0.0 {
        return None;
    }
    let average = sampled / (points.len() - 1) as f64;
    let threshold = average * 1.1;
    let mut to_start = (first.0 - start) as f64 / 1e9;
    let mut to_end = (end - last.0) as f64 / 1e9;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= (end - start) as f64 / 1e9;
    }
    Some(result * factor)
}

fn aggregate(v: &VectorAggregation, inner: Vec<Series>, steps: usize) -> Result<Vec<Series>> {
    let key = |labels: &SeriesLabels| -> SeriesLabels {
        match &v.grouping {
            Some(g) => group_key(labels.iter().cloned(), g),
            None => Vec::new(),
        }
    };
    let mut groups: Vec<(SeriesLabels, Vec<usize>)> = Vec::new();
    let mut index: HashMap<SeriesLabels, usize> = HashMap::new();
    for (i, series) in inner.iter().enumerate() {
        let k = key(&series.labels);
        let slot = *index.entry(k.clone()).or_insert_with(|| {
            groups.push((k, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(i);
    }
    if matches!(v.op, VectorOp::Topk | VectorOp::Bottomk) {
        let k = v.param.unwrap_or(1.0) as usize;
        // Row-major: series × step.
        let mut keep = vec![false; inner.len() * steps];
        for (_, members) in &groups {
            for step in 0..steps {
                let mut present: Vec<(usize, f64)> = members
                    .iter()
                    .filter_map(|&i| inner[i].points[step].map(|x| (i, x)))
                    .collect();
                present.sort_by(|a, b| match v.op {
                    VectorOp::Topk => b.1.total_cmp(&a.1),
                    _ => a.1.total_cmp(&b.1),
                });
                for (i, _) in present.into_iter().take(k) {
                    keep[i * steps + step] = true;
                }
            }
        }
        return Ok(inner
            .into_iter()
            .zip(keep.chunks(steps.max(1)))
            .filter_map(|(mut series, keep)| {
                for (point, keep) in series.points.iter_mut().zip(keep) {
                    if !*keep {
                        *point = None;
                    }
                }
                series.points.iter().any(Option::is_some).then_some(series)
            })
            .collect());
    }
    check_cells(groups.len(), steps)?;
    let mut out = Vec::with_capacity(groups.len());
    for (labels, members) in groups {
        let points = (0..steps)
            .map(|step| {
                let values: Vec<f64> = members
                    .iter()
                    .filter_map(|&i| inner[i].points[step])
                    .collect();
                (!values.is_empty()).then(|| combine(v.op, &values))
            })
            .collect();
        out.push(Series { labels, points });
    }
    Ok(out)
}

fn combine(op: VectorOp, values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let sum: f64 = values.iter().sum();
    let variance = || {
        let mean = sum / n;
        values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n
    };
    match op {
        VectorOp::Sum => sum,
        VectorOp::Avg => sum / n,
        VectorOp::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        VectorOp::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        VectorOp::Count => n,
        VectorOp::Stdvar => variance(),
        VectorOp::Stddev => variance().sqrt(),
        VectorOp::Topk | VectorOp::Bottomk => f64::NAN,
    }
}

fn binary(b: &BinaryExpr, lhs: Value, rhs: Value) -> Result<Value> {
    let op = b.op;
    let compare = matches!(op, BinaryOp::Cmp(_));
    // `x > y` keeps x where it holds; with `bool` it is 1 or 0.
    let apply = |x: f64, y: f64, keep: f64| -> Option<f64> {
        match op.apply(x, y) {
            Some(_) if compare && b.return_bool => Some(1.0),
            None if compare && b.return_bool => Some(0.0),
            Some(_) if compare => Some(keep),
            other => other,
        }
    };
    Ok(match (lhs, rhs) {
        (Value::Scalar(x), Value::Scalar(y)) => {
            if op.is_set_op() {
                return Err(QueryError::Invalid(
                    "and, or and unless need series on both sides".into(),
                ));
            }
            if compare && !b.return_bool {
                return Err(QueryError::Invalid(
                    "comparisons between numbers need bool".into(),
                ));
            }
            Value::Scalar(
                x.iter()
                    .zip(&y)
                    .map(|(x, y)| apply(*x, *y, *x).unwrap_or(f64::NAN))
                    .collect(),
            )
        }
        (Value::Vector(_), Value::Scalar(_)) | (Value::Scalar(_), Value::Vector(_))
            if op.is_set_op() =>
        {
            return Err(QueryError::Invalid(
                "and, or and unless need series on both sides".into(),
            ));
        }
        (Value::Vector(mut series), Value::Scalar(s)) => {
            for one in &mut series {
                for (point, y) in one.points.iter_mut().zip(&s) {
                    *point = point.and_then(|x| apply(x, *y, x));
                }
            }
            Value::Vector(non_empty(series))
        }
        (Value::Scalar(s), Value::Vector(mut series)) => {
            for one in &mut series {
                for (point, x) in one.points.iter_mut().zip(&s) {
                    *point = point.and_then(|y| apply(*x, y, y));
                }
            }
            Value::Vector(non_empty(series))
        }
        (Value::Vector(left), Value::Vector(right)) => {
            let index: HashMap<&SeriesLabels, usize> = right
                .iter()
                .enumerate()
                .map(|(i, s)| (&s.labels, i))
                .collect();
            let mut out = Vec::new();
            for mut one in left.iter().cloned() {
                let other = index.get(&one.labels).map(|&i| &right[i]);
                for (step, point) in one.points.iter_mut().enumerate() {
                    let y = other.and_then(|o| o.points[step]);
                    *point = match op {
                        BinaryOp::And => point.filter(|_| y.is_some()),
                        BinaryOp::Unless => point.filter(|_| y.is_none()),
                        BinaryOp::Or => *point,
                        _ => point.and_then(|x| y.and_then(|y| apply(x, y, x))),
                    };
                }
                out.push(one);
            }
            if op == BinaryOp::Or {
                let left_index: HashMap<&SeriesLabels, usize> = left
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (&s.labels, i))
                    .collect();
                for mut one in right.iter().cloned() {
                    if let Some(&i) = left_index.get(&one.labels) {
                        // Same labels: the left side wins where it has a value.
                        for (step, point) in one.points.iter_mut().enumerate() {
                            if out[i].points[step].is_none() {
                                out[i].points[step] = *point;
                            }
                        }
                        continue;
                    }
                    out.push(one);
                }
            }
            Value::Vector(non_empty(out))
        }
    })
}

fn non_empty(series: Vec<Series>) -> Vec<Series> {
    series
        .into_iter()
        .filter(|s| s.points.iter().any(Option::is_some))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(0.5, &v), 2.5);
        assert_eq!(quantile(0.0, &v), 1.0);
        assert_eq!(quantile(1.0, &v), 4.0);
        assert!(quantile(0.5, &[]).is_nan());
    }

    #[test]
    fn rates_extrapolate_like_prometheus() {
        let s = 1_000_000_000i64;
        // A counter rising 1/s since 0, sampled every 10s inside a 60s window.
        let points: Vec<(i64, f64)> = (0..6)
            .map(|i| ((5 + 10 * i) * s, (5 + 10 * i) as f64))
            .collect();
        let rate = extrapolated_rate(&points, (0, 60 * s), true, true).unwrap();
        assert!((rate - 1.0).abs() < 1e-9, "{rate}");
        // Extrapolation stops where the counter would have been zero.
        let from_zero: Vec<(i64, f64)> = points.iter().map(|(t, v)| (*t, v - 5.0)).collect();
        let rate = extrapolated_rate(&from_zero, (0, 60 * s), true, true).unwrap();
        assert!((rate - 55.0 / 60.0).abs() < 1e-9, "{rate}");
        // A reset adds the value before it back: 2 - 5 + 8 over 20s, extrapolated to 30s.
        let reset = [(10 * s, 5.0), (20 * s, 8.0), (30 * s, 2.0)];
        let increase = extrapolated_rate(&reset, (5 * s, 35 * s), true, false).unwrap();
        assert!((increase - 7.5).abs() < 1e-9, "{increase}");
        assert_eq!(
            extrapolated_rate(&reset[..1], (0, 60 * s), true, true),
            None
        );
    }

    #[test]
    fn steps_are_bounded() {
        assert_eq!(Steps::new(0, 100, 10).unwrap().count, 11);
        assert!(Steps::new(0, MAX_STEPS as i64, 1).is_err());
        assert!(Steps::new(10, 0, 1).is_err());
        assert!(Steps::new(0, 10, 0).is_err());
    }
}
