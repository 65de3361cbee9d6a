//! Per-step series arithmetic shared by LogQL and PromQL metric queries: evaluation
//! steps, series of per-step values, vector aggregation, binary operators, and the
//! window functions (quantile, extrapolated rate) both languages define alike.

use std::collections::HashMap;

use super::{QueryError, Result};
use crate::logql::{BinaryOp, Grouping, VectorOp};

/// Most evaluation steps per series, as in Loki and Prometheus.
pub const MAX_STEPS: usize = 11_000;
/// Most series any stage of a query may hold.
pub const MAX_SERIES: usize = 20_000;
/// Most step values all series of one stage may hold together.
pub const MAX_CELLS: usize = 10_000_000;

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

    pub fn last(&self) -> i64 {
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

/// The labels a grouping keeps.
pub fn group_key(
    pairs: impl Iterator<Item = (String, String)>,
    grouping: &Grouping,
) -> SeriesLabels {
    pairs
        .filter(|(name, _)| grouping.labels.contains(name) != grouping.without)
        .collect()
}

pub fn too_many_series() -> QueryError {
    QueryError::ResourcesExhausted(format!(
        "the query produces more than {MAX_SERIES} series; aggregate with sum by (…) or narrow the selector"
    ))
}

pub fn check_cells(series: usize, steps: usize) -> Result<()> {
    if series.saturating_mul(steps) > MAX_CELLS {
        return Err(QueryError::ResourcesExhausted(format!(
            "{series} series × {steps} steps exceeds {MAX_CELLS} values; increase step, shorten the range or aggregate"
        )));
    }
    Ok(())
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

pub fn aggregate(
    op: VectorOp,
    grouping: Option<&Grouping>,
    param: Option<f64>,
    inner: Vec<Series>,
    steps: usize,
) -> Result<Vec<Series>> {
    let key = |labels: &SeriesLabels| -> SeriesLabels {
        match grouping {
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
    if matches!(op, VectorOp::Topk | VectorOp::Bottomk) {
        let k = param.unwrap_or(1.0) as usize;
        // Row-major: series × step.
        let mut keep = vec![false; inner.len() * steps];
        for (_, members) in &groups {
            for step in 0..steps {
                let mut present: Vec<(usize, f64)> = members
                    .iter()
                    .filter_map(|&i| inner[i].points[step].map(|x| (i, x)))
                    .collect();
                present.sort_by(|a, b| match op {
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
                (!values.is_empty()).then(|| combine(op, &values))
            })
            .collect();
        out.push(Series { labels, points });
    }
    Ok(out)
}

pub fn combine(op: VectorOp, values: &[f64]) -> f64 {
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

/// Applies an operator between two values. Series match when `key` of their labels
/// is equal; results keep the left side's labels (and, for `or`, the right side's
/// series that match none on the left).
pub fn binary(
    op: BinaryOp,
    return_bool: bool,
    lhs: Value,
    rhs: Value,
    key: impl Fn(&SeriesLabels) -> SeriesLabels,
) -> Result<Value> {
    let compare = matches!(op, BinaryOp::Cmp(_));
    // `x > y` keeps x where it holds; with `bool` it is 1 or 0.
    let apply = |x: f64, y: f64, keep: f64| -> Option<f64> {
        match op.apply(x, y) {
            Some(_) if compare && return_bool => Some(1.0),
            None if compare && return_bool => Some(0.0),
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
            if compare && !return_bool {
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
            Value::Vector(non_empty(vectors(op, left, right, key, apply)?))
        }
    })
}

/// An operator between two sets of series, which match when their keys are equal.
/// Arithmetic and comparisons match one to one; `and`, `unless` and `or` match any
/// number per key, step by step.
fn vectors(
    op: BinaryOp,
    left: Vec<Series>,
    right: Vec<Series>,
    key: impl Fn(&SeriesLabels) -> SeriesLabels,
    apply: impl Fn(f64, f64, f64) -> Option<f64>,
) -> Result<Vec<Series>> {
    let steps = left.first().or(right.first()).map_or(0, |s| s.points.len());
    if op.is_set_op() {
        // Per key, the steps where the other side has a value.
        let presence = |side: &[Series]| {
            let mut present: HashMap<SeriesLabels, Vec<bool>> = HashMap::new();
            for series in side {
                let slot = present
                    .entry(key(&series.labels))
                    .or_insert_with(|| vec![false; steps]);
                for (seen, point) in slot.iter_mut().zip(&series.points) {
                    *seen |= point.is_some();
                }
            }
            present
        };
        let on_right = presence(&right);
        let on_left = presence(&left);
        let mut out = Vec::new();
        for mut series in left {
            let other = on_right.get(&key(&series.labels));
            for (step, point) in series.points.iter_mut().enumerate() {
                let matched = other.is_some_and(|o| o[step]);
                *point = match op {
                    BinaryOp::And => point.filter(|_| matched),
                    BinaryOp::Unless => point.filter(|_| !matched),
                    _ => *point,
                };
            }
            out.push(series);
        }
        if op == BinaryOp::Or {
            for mut series in right {
                let other = on_left.get(&key(&series.labels));
                for (step, point) in series.points.iter_mut().enumerate() {
                    if other.is_some_and(|o| o[step]) {
                        *point = None;
                    }
                }
                out.push(series);
            }
        }
        return Ok(out);
    }
    let mut index: HashMap<SeriesLabels, usize> = HashMap::with_capacity(right.len());
    for (i, series) in right.iter().enumerate() {
        if index.insert(key(&series.labels), i).is_some() {
            return Err(many_to_many());
        }
    }
    let mut seen = std::collections::HashSet::with_capacity(left.len());
    let mut out = Vec::with_capacity(left.len());
    for mut series in left {
        let k = key(&series.labels);
        let other = index.get(&k).map(|&i| &right[i]);
        if !seen.insert(k) {
            return Err(many_to_many());
        }
        for (step, point) in series.points.iter_mut().enumerate() {
            let y = other.and_then(|o| o.points[step]);
            *point = point.and_then(|x| y.and_then(|y| apply(x, y, x)));
        }
        out.push(series);
    }
    Ok(out)
}

fn many_to_many() -> QueryError {
    QueryError::Invalid(
        "series on one side of an operator have the same labels: aggregate them first (sum by (…))"
            .into(),
    )
}

pub fn non_empty(series: Vec<Series>) -> Vec<Series> {
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
