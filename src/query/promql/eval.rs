//! PromQL evaluation over the `samples` table, at every step of a range or at one
//! instant: selectors (with `offset`), the range functions `rate`, `irate`,
//! `increase`, `delta` and `*_over_time`, `histogram_quantile` over classic `le`
//! buckets, the aggregations `sum`, `avg`, `min`, `max`, `count`, `stddev`,
//! `stdvar`, `topk` and `bottomk` with `by` / `without`, arithmetic and comparisons
//! (series match when their labels other than `__name__` are equal), and a few
//! functions of one value. Everything else is refused by name.
//!
//! As in Prometheus 3, an instant selector takes the latest sample in
//! `(t - 5m, t]` and a range selector the samples in `(t - range, t]`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Float64Type, TimestampNanosecondType, UInt64Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use promql_parser::label::METRIC_NAME;
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector, Offset,
    VectorMatchCardinality, VectorSelector,
};

use super::convert;
use crate::logql::{BinaryOp, CompareOp, Grouping, VectorOp};
use crate::model::{Signal, StreamId, Tenant};
use crate::query::series::{
    MAX_SERIES, Series, SeriesLabels, Steps, Value, aggregate, binary, check_cells,
    extrapolated_rate, non_empty, quantile, too_many_series,
};
use crate::query::streams::SelectedStreams;
use crate::query::table::ScanStats;
use crate::query::{QueryEngine, QueryError, Result, columns};

/// How far back an instant selector looks for a sample.
pub const LOOKBACK_NS: i64 = 300_000_000_000;

pub struct PromResult {
    pub value: Value,
    pub steps: Steps,
    pub stats: Arc<ScanStats>,
}

fn unsupported(what: impl std::fmt::Display) -> QueryError {
    QueryError::Invalid(format!("{what} is not supported"))
}

impl QueryEngine {
    /// Evaluates `expr` at `start`, `start + step`, … up to `end`.
    pub async fn promql(
        &self,
        tenant: &Tenant,
        expr: &Expr,
        (start, end): (i64, i64),
        step: i64,
    ) -> Result<PromResult> {
        self.counted(tenant, async {
            self.check_range(tenant, (start.saturating_sub(lookback_ns(expr)), end))?;
            let steps = Steps::new(start, end, step)?;
            let stats = Arc::new(ScanStats::default());
            let ctx = self.session(tenant, Arc::clone(&stats))?;
            let mut evaluation = Evaluation {
                engine: self,
                ctx: &ctx,
                tenant,
                steps,
                held: 0,
            };
            let value = evaluation.eval(expr).await?;
            Ok(PromResult {
                value,
                steps,
                stats,
            })
        })
        .await
    }
}

struct Evaluation<'a> {
    engine: &'a QueryEngine,
    ctx: &'a SessionContext,
    tenant: &'a Tenant,
    steps: Steps,
    /// Samples read by the query's selectors so far, against one budget.
    held: usize,
}

/// One stored series: labels and samples in time order.
struct Raw {
    labels: SeriesLabels,
    points: Vec<(i64, f64)>,
}

/// How far before an evaluation instant the expression reads: its widest range
/// selector or lookback, plus offset.
fn lookback_ns(root: &Expr) -> i64 {
    let mut widest = 0i64;
    let mut pending = vec![root];
    while let Some(expr) = pending.pop() {
        match expr {
            Expr::VectorSelector(vs) => {
                widest = widest.max(LOOKBACK_NS.saturating_add(offset_ns(&vs.offset)));
            }
            Expr::MatrixSelector(ms) => {
                widest = widest.max(nanos(&ms.range).saturating_add(offset_ns(&ms.vs.offset)));
            }
            Expr::Aggregate(a) => {
                pending.push(&a.expr);
                pending.extend(a.param.as_deref());
            }
            Expr::Unary(u) => pending.push(&u.expr),
            Expr::Binary(b) => pending.extend([b.lhs.as_ref(), b.rhs.as_ref()]),
            Expr::Paren(p) => pending.push(&p.expr),
            Expr::Subquery(s) => pending.push(&s.expr),
            Expr::Call(call) => pending.extend(call.args.args.iter().map(|a| a.as_ref())),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
    widest
}

fn nanos(d: &std::time::Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn offset_ns(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => nanos(d),
        Some(Offset::Neg(d)) => -nanos(d),
    }
}

fn without_name(mut labels: SeriesLabels) -> SeriesLabels {
    labels.retain(|(k, _)| k != METRIC_NAME);
    labels
}

impl Evaluation<'_> {
    fn eval<'s>(
        &'s mut self,
        expr: &'s Expr,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Value>> + Send + 's>> {
        Box::pin(async move {
            let n = self.steps.count;
            match expr {
                Expr::NumberLiteral(x) => Ok(Value::Scalar(vec![x.val; n])),
                Expr::Paren(p) => self.eval(&p.expr).await,
                Expr::Unary(u) => {
                    let inner = self.eval(&u.expr).await?;
                    Ok(map_values(inner, |x| -x, true))
                }
                Expr::VectorSelector(vs) => self.instant(vs).await,
                Expr::MatrixSelector(_) => Err(QueryError::Invalid(
                    "a range selector such as x[5m] needs a function such as rate()".into(),
                )),
                Expr::Aggregate(a) => self.aggregate(a).await,
                Expr::Binary(b) => self.binary(b).await,
                Expr::Call(call) => self.call(call).await,
                Expr::Subquery(_) => Err(unsupported("subqueries (x[1h:5m])")),
                Expr::StringLiteral(_) => Err(unsupported("a string as a result")),
                Expr::Extension(_) => Err(unsupported("this expression")),
            }
        })
    }

    /// The stored series a selector names, with their samples in `(lo, hi]`.
    async fn fetch(&mut self, vs: &VectorSelector, (lo, hi): (i64, i64)) -> Result<Vec<Raw>> {
        if vs.at.is_some() {
            return Err(unsupported("the @ modifier"));
        }
        let mut selected = SelectedStreams::default();
        for selector in convert(vs).map_err(QueryError::Invalid)? {
            selected = selected.union(self.engine.select_streams(
                self.tenant,
                Signal::Samples,
                &selector,
                (lo.saturating_add(1), hi),
            ));
        }
        if selected.is_empty() {
            return Ok(Vec::new());
        }
        let df = selected
            .scan(self.ctx, Signal::Samples, (lo.saturating_add(1), hi))
            .await?
            .select_columns(&["stream_id", "timestamp", "value"])?;
        let max_points = self.engine.config(self.tenant).max_memory_bytes / 16;
        let mut by_stream: HashMap<StreamId, Vec<(i64, f64)>> = HashMap::new();
        let mut batches = df.execute_stream().await?;
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let ids = columns::primitive::<UInt64Type>(&batch, "stream_id")?;
            let times = columns::primitive::<TimestampNanosecondType>(&batch, "timestamp")?;
            let values = columns::primitive::<Float64Type>(&batch, "value")?;
            self.held += batch.num_rows();
            if self.held > max_points {
                return Err(QueryError::ResourcesExhausted(format!(
                    "the query reads more than {max_points} samples (query.max_memory_bytes); narrow the selector or the range"
                )));
            }
            for row in 0..batch.num_rows() {
                by_stream
                    .entry(StreamId(ids.value(row)))
                    .or_default()
                    .push((times.value(row), values.value(row)));
            }
        }
        if by_stream.len() > MAX_SERIES {
            return Err(too_many_series());
        }
        let mut out: Vec<Raw> = by_stream
            .into_iter()
            .map(|(id, mut points)| {
                points.sort_by_key(|(t, _)| *t);
                let labels = selected
                    .labels
                    .get(&id)
                    .map(|l| {
                        l.iter()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                Raw { labels, points }
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// An instant selector: each series' latest sample in `(t - 5m, t]`.
    async fn instant(&mut self, vs: &VectorSelector) -> Result<Value> {
        let steps = self.steps;
        let offset = offset_ns(&vs.offset);
        let window = (
            steps
                .start
                .saturating_sub(offset)
                .saturating_sub(LOOKBACK_NS),
            steps.last().saturating_sub(offset),
        );
        let raw = self.fetch(vs, window).await?;
        check_cells(raw.len(), steps.count)?;
        let series = raw
            .into_iter()
            .map(|r| {
                let mut next = 0;
                let points = (0..steps.count)
                    .map(|i| {
                        let t = steps.time(i).saturating_sub(offset);
                        while next < r.points.len() && r.points[next].0 <= t {
                            next += 1;
                        }
                        (next > 0 && r.points[next - 1].0 > t.saturating_sub(LOOKBACK_NS))
                            .then(|| r.points[next - 1].1)
                    })
                    .collect();
                Series {
                    labels: r.labels,
                    points,
                }
            })
            .collect();
        Ok(Value::Vector(non_empty(series)))
    }

    /// A function over a range selector, applied to each window `(t - range, t]`.
    async fn over_range(
        &mut self,
        ms: &MatrixSelector,
        function: impl Fn(&[(i64, f64)], (i64, i64)) -> Option<f64>,
        keep_name: bool,
    ) -> Result<Value> {
        let steps = self.steps;
        let offset = offset_ns(&ms.vs.offset);
        let range = nanos(&ms.range);
        let raw = self
            .fetch(
                &ms.vs,
                (
                    steps.start.saturating_sub(offset).saturating_sub(range),
                    steps.last().saturating_sub(offset),
                ),
            )
            .await?;
        check_cells(raw.len(), steps.count)?;
        let series = raw
            .into_iter()
            .map(|r| {
                let (mut from, mut to) = (0, 0);
                let points = (0..steps.count)
                    .map(|i| {
                        let end = steps.time(i).saturating_sub(offset);
                        let start = end.saturating_sub(range);
                        while to < r.points.len() && r.points[to].0 <= end {
                            to += 1;
                        }
                        while from < to && r.points[from].0 <= start {
                            from += 1;
                        }
                        let window = &r.points[from..to];
                        (!window.is_empty())
                            .then(|| function(window, (start, end)))
                            .flatten()
                    })
                    .collect();
                Series {
                    labels: if keep_name {
                        r.labels
                    } else {
                        without_name(r.labels)
                    },
                    points,
                }
            })
            .collect();
        Ok(Value::Vector(non_empty(series)))
    }

    async fn call(&mut self, call: &Call) -> Result<Value> {
        let name = call.func.name;
        let args = &call.args.args;
        let matrix = |i: usize| -> Result<&MatrixSelector> {
            match args.get(i).map(|a| a.as_ref()) {
                Some(Expr::MatrixSelector(ms)) => Ok(ms),
                _ => Err(QueryError::Invalid(format!(
                    "{name} takes a range selector such as x[5m]"
                ))),
            }
        };
        let values = |w: &[(i64, f64)]| w.iter().map(|(_, v)| *v).collect::<Vec<f64>>();
        match name {
            "rate" | "increase" | "delta" => {
                let counter = name != "delta";
                let per_second = name == "rate";
                self.over_range(
                    matrix(0)?,
                    |w, bounds| extrapolated_rate(w, bounds, counter, per_second),
                    false,
                )
                .await
            }
            "irate" | "idelta" => {
                let per_second = name == "irate";
                self.over_range(
                    matrix(0)?,
                    |w, _| {
                        let [.., (t0, v0), (t1, v1)] = w else {
                            return None;
                        };
                        let change = if per_second && v1 < v0 { *v1 } else { v1 - v0 };
                        if per_second {
                            let seconds = (t1 - t0) as f64 / 1e9;
                            (seconds > 0.0).then(|| change / seconds)
                        } else {
                            Some(change)
                        }
                    },
                    false,
                )
                .await
            }
            "sum_over_time" => {
                self.over_range(matrix(0)?, |w, _| Some(values(w).iter().sum()), false)
                    .await
            }
            "avg_over_time" => {
                self.over_range(
                    matrix(0)?,
                    |w, _| Some(values(w).iter().sum::<f64>() / w.len() as f64),
                    false,
                )
                .await
            }
            "min_over_time" => {
                self.over_range(
                    matrix(0)?,
                    |w, _| values(w).into_iter().reduce(f64::min),
                    false,
                )
                .await
            }
            "max_over_time" => {
                self.over_range(
                    matrix(0)?,
                    |w, _| values(w).into_iter().reduce(f64::max),
                    false,
                )
                .await
            }
            "count_over_time" => {
                self.over_range(matrix(0)?, |w, _| Some(w.len() as f64), false)
                    .await
            }
            "last_over_time" => {
                self.over_range(matrix(0)?, |w, _| w.last().map(|(_, v)| *v), true)
                    .await
            }
            "quantile_over_time" => {
                let q = self.number(args.first().map(AsRef::as_ref))?;
                self.over_range(
                    matrix(1)?,
                    |w, _| {
                        let mut sorted = values(w);
                        sorted.sort_by(f64::total_cmp);
                        Some(quantile(q, &sorted))
                    },
                    false,
                )
                .await
            }
            "histogram_quantile" => {
                let q = self.number(args.first().map(AsRef::as_ref))?;
                let inner = self
                    .vector_arg(args.get(1).map(AsRef::as_ref), name)
                    .await?;
                Ok(Value::Vector(histogram_quantile(
                    q,
                    inner,
                    self.steps.count,
                )))
            }
            "abs" | "ceil" | "floor" | "sqrt" | "exp" | "ln" | "log2" | "log10" => {
                let f: fn(f64) -> f64 = match name {
                    "abs" => f64::abs,
                    "ceil" => f64::ceil,
                    "floor" => f64::floor,
                    "sqrt" => f64::sqrt,
                    "exp" => f64::exp,
                    "ln" => f64::ln,
                    "log2" => f64::log2,
                    _ => f64::log10,
                };
                let inner = self
                    .vector_arg(args.first().map(AsRef::as_ref), name)
                    .await?;
                Ok(map_values(Value::Vector(inner), f, true))
            }
            "clamp_min" | "clamp_max" => {
                let bound = self.number(args.get(1).map(AsRef::as_ref))?;
                let inner = self
                    .vector_arg(args.first().map(AsRef::as_ref), name)
                    .await?;
                let f = move |x: f64| {
                    if name == "clamp_min" {
                        x.max(bound)
                    } else {
                        x.min(bound)
                    }
                };
                Ok(map_values(Value::Vector(inner), f, true))
            }
            "vector" => match self.eval(args.first().ok_or_else(|| arity(name))?).await? {
                Value::Scalar(values) => Ok(Value::Vector(vec![Series {
                    labels: Vec::new(),
                    points: values.into_iter().map(Some).collect(),
                }])),
                Value::Vector(_) => Err(QueryError::Invalid("vector() takes a number".into())),
            },
            "scalar" => {
                let inner = self
                    .vector_arg(args.first().map(AsRef::as_ref), name)
                    .await?;
                let points = (0..self.steps.count)
                    .map(|i| {
                        let mut present = inner.iter().filter_map(|s| s.points[i]);
                        match (present.next(), present.next()) {
                            (Some(v), None) => v,
                            _ => f64::NAN,
                        }
                    })
                    .collect();
                Ok(Value::Scalar(points))
            }
            "time" => Ok(Value::Scalar(
                (0..self.steps.count)
                    .map(|i| self.steps.time(i) as f64 / 1e9)
                    .collect(),
            )),
            other => Err(unsupported(format!("the function {other}()"))),
        }
    }

    async fn vector_arg(&mut self, arg: Option<&Expr>, name: &str) -> Result<Vec<Series>> {
        match self.eval(arg.ok_or_else(|| arity(name))?).await? {
            Value::Vector(series) => Ok(series),
            Value::Scalar(_) => Err(QueryError::Invalid(format!(
                "{name} takes series, not a number"
            ))),
        }
    }

    /// A number argument: a literal, or an expression constant over the range.
    fn number(&self, arg: Option<&Expr>) -> Result<f64> {
        match arg {
            Some(Expr::NumberLiteral(n)) => Ok(n.val),
            Some(Expr::Paren(p)) => self.number(Some(p.expr.as_ref())),
            Some(Expr::Unary(u)) => self.number(Some(u.expr.as_ref())).map(|x| -x),
            _ => Err(QueryError::Invalid(
                "this argument must be a number literal".into(),
            )),
        }
    }

    async fn aggregate(&mut self, a: &AggregateExpr) -> Result<Value> {
        let op_name = a.op.to_string();
        let op = VectorOp::ALL
            .into_iter()
            .find(|op| op.as_str() == op_name)
            .ok_or_else(|| unsupported(format!("the aggregation {op_name}")))?;
        let param = match op {
            VectorOp::Topk | VectorOp::Bottomk => {
                let k = self.number(a.param.as_deref())?;
                if k < 1.0 {
                    return Err(QueryError::Invalid(format!("{op_name} needs k ≥ 1")));
                }
                Some(k.floor())
            }
            _ => None,
        };
        let grouping = a.modifier.as_ref().map(|m| Grouping {
            without: !matches!(m, LabelModifier::Include(_)),
            labels: m.labels().labels.clone(),
        });
        let inner = self.vector_arg(Some(a.expr.as_ref()), &op_name).await?;
        let inner = match op {
            // topk keeps its input series as they are.
            VectorOp::Topk | VectorOp::Bottomk => inner,
            _ => inner
                .into_iter()
                .map(|s| Series {
                    labels: without_name(s.labels),
                    points: s.points,
                })
                .collect(),
        };
        aggregate(op, grouping.as_ref(), param, inner, self.steps.count).map(Value::Vector)
    }

    async fn binary(&mut self, b: &BinaryExpr) -> Result<Value> {
        let text = b.op.to_string();
        let op = match text.as_str() {
            "+" => BinaryOp::Add,
            "-" => BinaryOp::Sub,
            "*" => BinaryOp::Mul,
            "/" => BinaryOp::Div,
            "%" => BinaryOp::Mod,
            "^" => BinaryOp::Pow,
            "==" => BinaryOp::Cmp(CompareOp::Eq),
            "!=" => BinaryOp::Cmp(CompareOp::Ne),
            ">" => BinaryOp::Cmp(CompareOp::Gt),
            ">=" => BinaryOp::Cmp(CompareOp::Ge),
            "<" => BinaryOp::Cmp(CompareOp::Lt),
            "<=" => BinaryOp::Cmp(CompareOp::Le),
            "and" => BinaryOp::And,
            "or" => BinaryOp::Or,
            "unless" => BinaryOp::Unless,
            other => return Err(unsupported(format!("the operator {other}"))),
        };
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        if let Some(modifier) = &b.modifier {
            if modifier
                .matching
                .as_ref()
                .is_some_and(|m| !m.labels().labels.is_empty())
            {
                return Err(unsupported(
                    "vector matching with on(…) or ignoring(…); series match when all their labels but __name__ are equal",
                ));
            }
            if matches!(
                modifier.card,
                VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
            ) {
                return Err(unsupported("group_left and group_right"));
            }
        }
        let lhs = self.eval(&b.lhs).await?;
        let rhs = self.eval(&b.rhs).await?;
        // Series match on their labels other than `__name__`. Arithmetic, and
        // comparisons with `bool`, drop the name; filters and set operators keep it.
        let result = binary(op, return_bool, lhs, rhs, |labels| {
            without_name(labels.clone())
        })?;
        let drops_name = !op.is_set_op() && (!matches!(op, BinaryOp::Cmp(_)) || return_bool);
        Ok(if drops_name {
            strip_names(result)
        } else {
            result
        })
    }
}

fn arity(name: &str) -> QueryError {
    QueryError::Invalid(format!("{name} is missing an argument"))
}

fn strip_names(value: Value) -> Value {
    match value {
        Value::Vector(series) => Value::Vector(
            series
                .into_iter()
                .map(|s| Series {
                    labels: without_name(s.labels),
                    points: s.points,
                })
                .collect(),
        ),
        scalar => scalar,
    }
}

fn map_values(value: Value, f: impl Fn(f64) -> f64, drop_name: bool) -> Value {
    match value {
        Value::Scalar(values) => Value::Scalar(values.into_iter().map(f).collect()),
        Value::Vector(series) => Value::Vector(
            series
                .into_iter()
                .map(|s| Series {
                    labels: if drop_name {
                        without_name(s.labels)
                    } else {
                        s.labels
                    },
                    points: s.points.into_iter().map(|p| p.map(&f)).collect(),
                })
                .collect(),
        ),
    }
}

/// `histogram_quantile` over classic buckets: series grouped by their labels other
/// than `le`, and per step Prometheus's bucket interpolation.
fn histogram_quantile(q: f64, inner: Vec<Series>, steps: usize) -> Vec<Series> {
    let mut groups: Vec<(SeriesLabels, Vec<(f64, &Series)>)> = Vec::new();
    let mut index: HashMap<SeriesLabels, usize> = HashMap::new();
    for series in &inner {
        let Some(le) = series
            .labels
            .iter()
            .find(|(k, _)| k == "le")
            .and_then(|(_, v)| parse_bound(v))
        else {
            continue;
        };
        let key: SeriesLabels = series
            .labels
            .iter()
            .filter(|(k, _)| k != "le" && k != METRIC_NAME)
            .cloned()
            .collect();
        let slot = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push((le, series));
    }
    let out = groups
        .into_iter()
        .map(|(labels, buckets)| {
            let points = (0..steps)
                .map(|i| {
                    let present: Vec<(f64, f64)> = buckets
                        .iter()
                        .filter_map(|(le, s)| s.points[i].map(|c| (*le, c)))
                        .collect();
                    (!present.is_empty()).then(|| bucket_quantile(q, present))
                })
                .collect();
            Series { labels, points }
        })
        .collect();
    non_empty(out)
}

fn parse_bound(text: &str) -> Option<f64> {
    match text.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

/// Prometheus's `BucketQuantile` for one step's `(upper bound, cumulative count)`s.
pub fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
        return f64::NAN;
    }
    // Equal bounds are one bucket.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (le, count) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += count,
            _ => merged.push((le, count)),
        }
    }
    // Counts must not fall; tiny differences are rounding.
    let mut previous = merged[0].1;
    for bucket in merged.iter_mut().skip(1) {
        let current = bucket.1;
        if current == previous {
            continue;
        }
        let tolerance = 1e-12 * previous.abs().max(current.abs());
        if (current - previous).abs() <= tolerance || current < previous {
            bucket.1 = previous;
            continue;
        }
        previous = current;
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let rank = q * observations;
    let last = merged.len() - 1;
    let b = merged[..last].partition_point(|(_, count)| *count < rank);
    if b == last {
        return merged[last - 1].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (start, below) = if b == 0 {
        (0.0, 0.0)
    } else {
        (merged[b - 1].0, merged[b - 1].1)
    };
    let count = merged[b].1 - below;
    start + (merged[b].0 - start) * (rank - below) / count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_quantiles_interpolate_like_prometheus() {
        let buckets = vec![
            (0.1, 10.0),
            (0.5, 60.0),
            (1.0, 90.0),
            (f64::INFINITY, 100.0),
        ];
        // Rank 50 falls in (0.1, 0.5]: 40 of its 50 observations.
        assert!((bucket_quantile(0.5, buckets.clone()) - 0.42).abs() < 1e-9);
        // Rank 95 is in the +Inf bucket: the highest finite bound.
        assert_eq!(bucket_quantile(0.95, buckets.clone()), 1.0);
        assert_eq!(bucket_quantile(0.05, buckets.clone()), 0.05);
        assert!(bucket_quantile(0.5, vec![(0.1, 1.0)]).is_nan());
        assert!(bucket_quantile(0.5, vec![(1.0, 0.0), (f64::INFINITY, 0.0)]).is_nan());
        assert_eq!(bucket_quantile(2.0, buckets), f64::INFINITY);
        // A falling count is lifted to keep the buckets monotonic.
        let fixed = bucket_quantile(0.5, vec![(1.0, 10.0), (2.0, 8.0), (f64::INFINITY, 10.0)]);
        assert_eq!(fixed, 0.5);
    }
}
