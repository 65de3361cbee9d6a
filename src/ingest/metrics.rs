//! What every metric protocol shares: series validation, the rows of `samples` and
//! `exemplars` built from one request, exemplar trace labels, and the expansion of
//! histograms into Prometheus's classic series (`_bucket{le}`, `_count`, `_sum`).
//!
//! Exponential (OTLP) and native (remote write) histograms have no column of their
//! own: they become classic series with one `le` per bucket boundary, cumulative from
//! the most negative bucket through the zero bucket to `+Inf`. The boundaries follow
//! from the scale, so the expansion loses nothing.

use std::collections::HashMap;

use arrow::array::RecordBatch;

use super::{Rejected, split_ids};
use crate::model::Signal;
use crate::model::schema::{
    ExemplarBatchBuilder, ExemplarFields, METRIC_NAME_LABEL, MetricMeta, SampleBatchBuilder,
    SampleFields, Series,
};

/// Most buckets one histogram point may have (OpenTelemetry's default for exponential
/// histograms, and Prometheus's limit for native ones). Exponential histograms with
/// more are merged down to fit; explicit ones are refused.
pub const MAX_HISTOGRAM_BUCKETS: usize = 160;

/// Most rows (samples plus exemplars) one request may expand to. A histogram point
/// is one row per bucket, so a small body can mean many rows; past this the request
/// is refused whole (413) rather than held in memory.
pub const MAX_ROWS_PER_REQUEST: usize = 500_000;

/// The rows one request adds to `samples` and `exemplars`, kept apart by `job` (the
/// label partition) so that each batch is written to one partition without a copy.
/// Past `MAX_JOB_GROUPS` jobs, further jobs share one group, which the head splits.
#[derive(Debug, Default)]
pub struct MetricRows {
    groups: Vec<JobRows>,
    /// `job` value (empty for none: empty label values do not exist) → `groups` index.
    group_index: HashMap<String, usize>,
    /// The group last used; consecutive series usually share a job.
    last_group: usize,
    sample_rows: usize,
    exemplar_rows: usize,
    pub rejected: Rejected,
    overflowed: bool,
}

/// Most job groups one request is kept apart in; each holds a pair of builders.
const MAX_JOB_GROUPS: usize = 64;

#[derive(Debug)]
struct JobRows {
    /// `None` for the shared group of jobs past `MAX_JOB_GROUPS`.
    key: Option<String>,
    samples: SampleBatchBuilder,
    exemplars: ExemplarBatchBuilder,
}

/// An exemplar as protocols deliver it: labels (including the trace ID) and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct RawExemplar {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Nanoseconds; `None` when the client sent none (the point's time is used).
    pub timestamp: Option<i64>,
}

impl MetricRows {
    /// Validates a series' labels. `__name__` is required and must be a valid metric
    /// name; a refusal is recorded and `None` returned.
    pub fn series<'a>(
        &mut self,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Series<'a>> {
        match Series::new(labels.into_iter().collect()) {
            Ok(series) => Some(series),
            Err(reason) => {
                self.rejected.add(reason);
                None
            }
        }
    }

    fn job_rows(&mut self, job: Option<&str>) -> &mut JobRows {
        let key = job.unwrap_or_default();
        let current = self.groups.get(self.last_group);
        if current.is_none_or(|g| g.key.as_deref() != Some(key)) {
            self.last_group = match self.group_index.get(key) {
                Some(i) => *i,
                None if self.group_index.len() < MAX_JOB_GROUPS => {
                    self.group_index.insert(key.to_owned(), self.groups.len());
                    self.new_group(Some(key.to_owned()))
                }
                None => match self.groups.iter().position(|g| g.key.is_none()) {
                    Some(i) => i,
                    None => self.new_group(None),
                },
            };
        }
        &mut self.groups[self.last_group]
    }

    fn new_group(&mut self, key: Option<String>) -> usize {
        self.groups.push(JobRows {
            key,
            samples: SampleBatchBuilder::default(),
            exemplars: ExemplarBatchBuilder::default(),
        });
        self.groups.len() - 1
    }

    pub fn sample(&mut self, series: &Series<'_>, meta: MetricMeta<'_>, point: SampleFields) {
        if self.full() {
            return;
        }
        self.sample_rows += 1;
        self.job_rows(series.job())
            .samples
            .append(series, meta, point);
    }

    fn full(&mut self) -> bool {
        if self.sample_rows + self.exemplar_rows >= MAX_ROWS_PER_REQUEST {
            self.overflowed = true;
        }
        self.overflowed
    }
    /// True when the request expanded past `MAX_ROWS_PER_REQUEST`; it must be refused.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Runs `write` for one data point and counts it as one refusal however many of
    /// its series (a histogram's buckets, say) were refused.
    pub fn point(&mut self, write: impl FnOnce(&mut Self)) {
        let before = self.rejected.count;
        write(self);
        if self.rejected.count > before {
            self.rejected.count = before + 1;
        }
    }

    /// Splits the trace and span IDs out of the exemplar's labels.
    pub fn exemplar(&mut self, series: &Series<'_>, exemplar: &RawExemplar, point_time: i64) {
        if self.full() {
            return;
        }
        self.exemplar_rows += 1;
        let (trace_id, span_id, rest) = split_ids(&exemplar.labels);
        self.job_rows(series.job()).exemplars.append(
            series,
            ExemplarFields {
                timestamp: exemplar.timestamp.unwrap_or(point_time),
                value: exemplar.value,
                trace_id,
                span_id,
                labels: &rest,
            },
        );
    }

    pub fn sample_count(&self) -> usize {
        self.sample_rows
    }

    pub fn exemplar_count(&self) -> usize {
        self.exemplar_rows
    }

    /// The batches to write: per job group, its samples and its exemplars (empty
    /// ones skipped).
    pub fn finish(self) -> (Vec<(Signal, RecordBatch)>, Rejected) {
        let mut batches = Vec::with_capacity(self.groups.len() * 2);
        for mut rows in self.groups {
            for (signal, batch) in [
                (Signal::Samples, rows.samples.finish()),
                (Signal::Exemplars, rows.exemplars.finish()),
            ] {
                if batch.num_rows() > 0 {
                    batches.push((signal, batch));
                }
            }
        }
        (batches, self.rejected)
    }
}

/// Owned label pairs as `MetricRows::series` takes them.
pub fn borrow_labels(labels: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    labels.iter().map(|(n, v)| (n.as_str(), v.as_str()))
}

/// A bucket boundary as an `le` / `quantile` label value: shortest round-trip form,
/// `+Inf` / `-Inf` for infinities.
pub fn format_bound(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".into()
    } else if bound == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{bound}")
    }
}

/// A histogram point reduced to cumulative buckets, ready to become classic series.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassicHistogram {
    /// `(upper bound, cumulative count)`, bounds ascending, ending with `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl ClassicHistogram {
    /// From explicit bounds and per-bucket counts (`counts.len() == bounds.len() + 1`;
    /// the last bucket is `+Inf`).
    pub fn explicit(bounds: &[f64], counts: &[f64]) -> Result<Self, String> {
        if bounds.len() >= MAX_HISTOGRAM_BUCKETS {
            return Err(format!(
                "histogram has {} bounds; at most {} are accepted",
                bounds.len(),
                MAX_HISTOGRAM_BUCKETS - 1
            ));
        }
        if counts.len() != bounds.len() + 1 && !(bounds.is_empty() && counts.is_empty()) {
            return Err(format!(
                "histogram with {} bounds needs {} bucket counts, got {}",
                bounds.len(),
                bounds.len() + 1,
                counts.len()
            ));
        }
        let mut buckets = Vec::with_capacity(counts.len());
        let mut total = 0.0;
        for (i, count) in counts.iter().enumerate() {
            total += count;
            let bound = bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, total));
        }
        if buckets.is_empty() {
            buckets.push((f64::INFINITY, 0.0));
        }
        Ok(Self {
            buckets,
            count: total,
            sum: None,
            min: None,
            max: None,
        })
    }

    /// Sets the total count; the `+Inf` bucket, which holds every observation, follows
    /// it (it can exceed the bucket sum, e.g. by NaN observations).
    pub fn set_count(&mut self, count: f64) {
        let count = count.max(self.count);
        self.count = count;
        if let Some(last) = self.buckets.last_mut() {
            last.1 = count;
        }
    }

    /// From base-2 exponential buckets: bucket `i` at `scale` covers
    /// `(2^(i·2^-scale), 2^((i+1)·2^-scale)]`, negative buckets mirror it, and the
    /// zero bucket covers `[-zero_threshold, zero_threshold]`.
    pub fn exponential(h: &Exponential) -> Result<Self, String> {
        if !(-10..=20).contains(&h.scale) {
            return Err(format!(
                "exponential histogram scale {} is outside -10..=20",
                h.scale
            ));
        }
        let (scale, positive, negative) = fit(h.scale, &h.positive, &h.negative)?;
        let h = &Exponential {
            scale,
            positive,
            negative,
            ..h.clone()
        };
        let factor = (-f64::from(h.scale)).exp2();
        let bound = |index: i64| ((index as f64) * factor).exp2();
        let mut buckets = Vec::new();
        let mut total = 0.0;
        // Most negative first: the highest negative index has the lowest bound.
        for (index, count) in h.negative.iter().rev() {
            total += count;
            buckets.push((-bound(*index), total));
        }
        total += h.zero_count;
        buckets.push((h.zero_threshold, total));
        for (index, count) in &h.positive {
            total += count;
            buckets.push((bound(index + 1), total));
        }
        let count = h.count.max(total);
        buckets.push((f64::INFINITY, count));
        // Equal bounds (a zero threshold on a boundary) keep the later, larger count.
        buckets.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        Ok(Self {
            buckets,
            count,
            sum: h.sum,
            min: h.min,
            max: h.max,
        })
    }

    /// Writes the `_bucket`, `_count`, `_sum` (and `_min` / `_max` when known) series,
    /// and attaches each exemplar to the bucket its value falls in.
    pub fn write(
        &self,
        rows: &mut MetricRows,
        name: &str,
        labels: &[(String, String)],
        meta: MetricMeta<'_>,
        point: (i64, Option<i64>),
        exemplars: &[RawExemplar],
    ) {
        let (timestamp, start_timestamp) = point;
        let sample = |value: f64| SampleFields {
            timestamp,
            start_timestamp,
            value,
        };
        let bucket_labels: Vec<Vec<(String, String)>> = self
            .buckets
            .iter()
            .map(|(bound, _)| {
                let mut series_labels = with_name(labels, &format!("{name}_bucket"));
                series_labels.push(("le".into(), format_bound(*bound)));
                series_labels
            })
            .collect();
        let mut bucket_series = Vec::with_capacity(self.buckets.len());
        for ((bound, cumulative), series_labels) in self.buckets.iter().zip(&bucket_labels) {
            if let Some(series) = rows.series(borrow_labels(series_labels)) {
                rows.sample(&series, meta, sample(*cumulative));
                bucket_series.push((*bound, series));
            }
        }
        let mut scalar = |suffix: &str, value: f64| {
            let series_labels = with_name(labels, &format!("{name}{suffix}"));
            if let Some(series) = rows.series(borrow_labels(&series_labels)) {
                rows.sample(&series, meta, sample(value));
            }
        };
        scalar("_count", self.count);
        for (suffix, value) in [("_sum", self.sum), ("_min", self.min), ("_max", self.max)] {
            if let Some(value) = value {
                scalar(suffix, value);
            }
        }
        for exemplar in exemplars {
            let bucket = bucket_series
                .iter()
                .find(|(bound, _)| exemplar.value <= *bound)
                .or(bucket_series.last());
            if let Some((_, series)) = bucket {
                rows.exemplar(series, exemplar, timestamp);
            }
        }
    }
}

/// `(bucket index, count)`, ascending by index.
type Buckets = Vec<(i64, f64)>;

/// Merges pairs of adjacent buckets (one scale down) until there are at most
/// `MAX_HISTOGRAM_BUCKETS` and the scale is at most 8, as Prometheus does with OTLP
/// exponential histograms: the series stay few and the boundaries stay representable.
fn fit(
    scale: i32,
    positive: &[(i64, f64)],
    negative: &[(i64, f64)],
) -> Result<(i32, Buckets, Buckets), String> {
    let merge = |buckets: &[(i64, f64)], shift: i32| {
        let mut out: Vec<(i64, f64)> = Vec::new();
        for (index, count) in buckets {
            let index = index >> shift;
            match out.last_mut() {
                Some(last) if last.0 == index => last.1 += count,
                _ => out.push((index, *count)),
            }
        }
        out
    };
    let mut shift = 0;
    loop {
        let (p, n) = (merge(positive, shift), merge(negative, shift));
        if scale - shift <= 8 && p.len() + n.len() <= MAX_HISTOGRAM_BUCKETS {
            return Ok((scale - shift, p, n));
        }
        if scale - shift <= -10 {
            return Err(format!(
                "exponential histogram has too many buckets to fit {MAX_HISTOGRAM_BUCKETS} at any scale"
            ));
        }
        shift += 1;
    }
}

/// An exponential histogram point with its buckets as `(index, count)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exponential {
    pub scale: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    /// Ascending bucket index.
    pub positive: Vec<(i64, f64)>,
    /// Ascending bucket index (of the absolute value).
    pub negative: Vec<(i64, f64)>,
    pub count: f64,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// `labels` plus `__name__ = name`.
pub fn with_name(labels: &[(String, String)], name: &str) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(labels.len() + 2);
    out.extend(labels.iter().cloned());
    out.push((METRIC_NAME_LABEL.into(), name.into()));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn explicit_buckets_are_cumulative_and_end_at_inf() {
        let h = ClassicHistogram::explicit(&[0.1, 1.0], &[2.0, 3.0, 1.0]).unwrap();
        assert_eq!(
            h.buckets,
            vec![(0.1, 2.0), (1.0, 5.0), (f64::INFINITY, 6.0)]
        );
        assert_eq!(h.count, 6.0);
        assert!(ClassicHistogram::explicit(&[0.1], &[1.0]).is_err());
    }

    #[test]
    fn exponential_bounds_follow_the_scale() {
        // Scale 0: bucket i covers (2^i, 2^(i+1)].
        let h = ClassicHistogram::exponential(&Exponential {
            scale: 0,
            zero_threshold: 0.0,
            zero_count: 1.0,
            positive: vec![(0, 2.0), (1, 3.0)],
            negative: vec![(0, 4.0)],
            count: 10.0,
            sum: Some(1.5),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            h.buckets,
            vec![
                (-1.0, 4.0),
                (0.0, 5.0),
                (2.0, 7.0),
                (4.0, 10.0),
                (f64::INFINITY, 10.0)
            ]
        );
        // Scale 1: boundaries at powers of √2.
        let h = ClassicHistogram::exponential(&Exponential {
            scale: 1,
            positive: vec![(1, 1.0)],
            count: 1.0,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(h.buckets[1].0, 2.0);
        assert!(
            ClassicHistogram::exponential(&Exponential {
                scale: 99,
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn fine_exponential_histograms_are_merged_down_to_the_bucket_limit() {
        let h = ClassicHistogram::exponential(&Exponential {
            scale: 20,
            positive: (0..1000).map(|i| (1_000_000 + i, 1.0)).collect(),
            count: 1000.0,
            ..Default::default()
        })
        .unwrap();
        assert!(
            h.buckets.len() <= MAX_HISTOGRAM_BUCKETS + 2,
            "{}",
            h.buckets.len()
        );
        assert_eq!(h.buckets.last().unwrap().1, 1000.0);
        assert!(
            h.buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
    }

    #[test]
    fn histogram_series_carry_exemplars_to_their_bucket() {
        let mut rows = MetricRows::default();
        let h = ClassicHistogram::explicit(&[0.1, 1.0], &[1.0, 1.0, 0.0]).unwrap();
        let exemplar = RawExemplar {
            labels: vec![
                ("trace_id".into(), "0af7651916cd43dd8448eb211c80319c".into()),
                ("span_id".into(), "b7ad6b7169203331".into()),
                ("user".into(), "7".into()),
            ],
            value: 0.5,
            timestamp: None,
        };
        let labels = vec![("job".to_owned(), "api".to_owned())];
        h.write(
            &mut rows,
            "latency_seconds",
            &labels,
            MetricMeta::default(),
            (10, None),
            &[exemplar],
        );
        assert_eq!(rows.sample_count(), 4);
        assert_eq!(rows.exemplar_count(), 1);
        let (batches, rejected) = rows.finish();
        assert_eq!(rejected.count, 0);
        let exemplars = &table(&batches, Signal::Exemplars);
        let labels = exemplars.column_by_name("labels").unwrap();
        let labels =
            crate::storage::chunk::row_labels(arrow::array::AsArray::as_map(labels.as_ref()), 0);
        assert_eq!(labels.get("le"), Some("1"));
        assert_eq!(labels.get("__name__"), Some("latency_seconds_bucket"));
    }

    #[test]
    fn refused_series_are_counted() {
        let mut rows = MetricRows::default();
        assert!(rows.series([("job", "a")]).is_none());
        assert!(rows.series([("__name__", "1bad")]).is_none());
        assert!(rows.series([("__name__", "ns:good_total")]).is_some());
        assert_eq!(rows.rejected.count, 2);
    }

    #[test]
    fn each_batch_holds_one_job() {
        let mut rows = MetricRows::default();
        for (i, job) in ["a", "b", "a", "c", "b", "a"].into_iter().enumerate() {
            let series = rows.series([("__name__", "m"), ("job", job)]).unwrap();
            let point = SampleFields {
                timestamp: i as i64,
                start_timestamp: None,
                value: 1.0,
            };
            rows.sample(&series, MetricMeta::default(), point);
        }
        let unnamed = rows.series([("__name__", "m")]).unwrap();
        rows.sample(
            &unnamed,
            MetricMeta::default(),
            SampleFields {
                timestamp: 9,
                start_timestamp: None,
                value: 1.0,
            },
        );
        let (batches, _) = rows.finish();
        let sizes: Vec<usize> = batches.iter().map(|(_, b)| b.num_rows()).collect();
        assert_eq!(sizes, [3, 2, 1, 1]);
        for (_, batch) in &batches {
            let jobs = arrow::array::AsArray::as_string::<i32>(
                batch.column_by_name("job").unwrap().as_ref(),
            );
            assert!(jobs.iter().all(|j| j == jobs.iter().next().unwrap()));
        }
    }

    #[test]
    fn jobs_past_the_group_limit_share_one_group() {
        let mut rows = MetricRows::default();
        let jobs: Vec<String> = (0..MAX_JOB_GROUPS + 10).map(|i| format!("j{i}")).collect();
        for job in &jobs {
            let series = rows.series([("__name__", "m"), ("job", job)]).unwrap();
            let point = SampleFields {
                timestamp: 1,
                start_timestamp: None,
                value: 1.0,
            };
            rows.sample(&series, MetricMeta::default(), point);
        }
        let (batches, _) = rows.finish();
        assert_eq!(batches.len(), MAX_JOB_GROUPS + 1);
        assert_eq!(batches.last().unwrap().1.num_rows(), 10);
        assert_eq!(table(&batches, Signal::Samples).num_rows(), jobs.len());
    }

    /// All of one table's rows, whatever their job.
    pub(crate) fn table(batches: &[(Signal, RecordBatch)], signal: Signal) -> RecordBatch {
        let parts: Vec<&RecordBatch> = batches
            .iter()
            .filter(|(s, _)| *s == signal)
            .map(|(_, b)| b)
            .collect();
        arrow::compute::concat_batches(&crate::model::schema::schema(signal), parts).unwrap()
    }
}
