//! The `samples` and `exemplars` tables: one row per metric point and one per
//! exemplar. A series is a stream whose labels include `__name__`; the name is also
//! broken out as `metric`, and `job` (the partition label) as its own column.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::{
    StringMapBuilder, append_map, finish_batch, hex_or_null, map_builder, string_map_type,
    timestamp_type, ts_builder,
};
use crate::model::labels::{canonicalize, stream_id, valid_metric_name};
use crate::model::{Signal, SpanId, StreamId, TraceId};

/// The label that names a series' metric, as in Prometheus.
pub const METRIC_NAME_LABEL: &str = "__name__";

pub(super) static SAMPLES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_type(), false),
        Field::new("start_timestamp", timestamp_type(), true),
        Field::new("stream_id", DataType::UInt64, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("job", DataType::Utf8, true),
        Field::new("labels", string_map_type(), false),
        Field::new("value", DataType::Float64, false),
        Field::new("metric_type", DataType::Utf8, true),
        Field::new("unit", DataType::Utf8, true),
    ]))
});

pub(super) static EXEMPLARS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("timestamp", timestamp_type(), false),
        Field::new("stream_id", DataType::UInt64, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("job", DataType::Utf8, true),
        Field::new("labels", string_map_type(), false),
        Field::new("value", DataType::Float64, false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("span_id", DataType::Utf8, true),
        Field::new("exemplar_labels", string_map_type(), false),
    ]))
});

/// A series as the metric builders take it: canonical labels borrowed from the
/// request, its stream ID, and the two labels that are also columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Series<'a> {
    pub id: StreamId,
    labels: Vec<(&'a str, &'a str)>,
    name: &'a str,
    job: Option<&'a str>,
}

impl<'a> Series<'a> {
    /// Canonicalises and validates the labels; `__name__` must be a valid metric name.
    pub fn new(mut labels: Vec<(&'a str, &'a str)>) -> Result<Self, String> {
        let label = |labels: &[(&'a str, &'a str)], name: &str| {
            labels.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        };
        let name = label(&labels, METRIC_NAME_LABEL).unwrap_or_default();
        if name.is_empty() {
            return Err("series without a metric name (__name__ label)".into());
        }
        if !valid_metric_name(name) {
            return Err(format!(
                "invalid metric name {name:?}: use [a-zA-Z_:][a-zA-Z0-9_:]*"
            ));
        }
        canonicalize(&mut labels).map_err(|e| format!("series {name}: {e}"))?;
        Ok(Self {
            id: stream_id(&labels),
            job: label(&labels, "job"),
            labels,
            name,
        })
    }

    pub fn metric_name(&self) -> &'a str {
        self.name
    }

    pub fn job(&self) -> Option<&'a str> {
        self.job
    }

    /// Sorted by name.
    pub fn labels(&self) -> &[(&'a str, &'a str)] {
        &self.labels
    }

    /// The labels without `__name__`, for deriving related series (a histogram's
    /// `_bucket`, `_count` and `_sum`).
    pub fn labels_without_name(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.labels
            .iter()
            .copied()
            .filter(|(n, _)| *n != METRIC_NAME_LABEL)
    }
}

/// What a family says about its points; Prometheus calls it metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricMeta<'a> {
    /// `counter`, `gauge`, `histogram`, `summary`, … as OpenMetrics names them.
    pub metric_type: Option<&'a str>,
    pub unit: Option<&'a str>,
}

/// One metric point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleFields {
    pub timestamp: i64,
    /// When a cumulative series started counting (OTLP start time, OpenMetrics
    /// `_created`).
    pub start_timestamp: Option<i64>,
    pub value: f64,
}

#[derive(Debug)]
pub struct SampleBatchBuilder {
    timestamp: TimestampNanosecondBuilder,
    start_timestamp: TimestampNanosecondBuilder,
    stream_id: UInt64Builder,
    metric: StringBuilder,
    job: StringBuilder,
    labels: StringMapBuilder,
    value: Float64Builder,
    metric_type: StringBuilder,
    unit: StringBuilder,
    rows: usize,
}

impl Default for SampleBatchBuilder {
    fn default() -> Self {
        Self {
            timestamp: ts_builder(),
            start_timestamp: ts_builder(),
            stream_id: UInt64Builder::new(),
            metric: StringBuilder::new(),
            job: StringBuilder::new(),
            labels: map_builder(),
            value: Float64Builder::new(),
            metric_type: StringBuilder::new(),
            unit: StringBuilder::new(),
            rows: 0,
        }
    }
}

impl SampleBatchBuilder {
    pub fn append(&mut self, series: &Series<'_>, meta: MetricMeta<'_>, point: SampleFields) {
        self.timestamp.append_value(point.timestamp);
        self.start_timestamp.append_option(point.start_timestamp);
        self.stream_id.append_value(series.id.0);
        self.metric.append_value(series.metric_name());
        self.job.append_option(series.job());
        append_map(&mut self.labels, series.labels().iter().copied());
        self.value.append_value(point.value);
        self.metric_type.append_option(meta.metric_type);
        self.unit.append_option(meta.unit);
        self.rows += 1;
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.timestamp.finish()),
            Arc::new(self.start_timestamp.finish()),
            Arc::new(self.stream_id.finish()),
            Arc::new(self.metric.finish()),
            Arc::new(self.job.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.metric_type.finish()),
            Arc::new(self.unit.finish()),
        ];
        finish_batch(Signal::Samples, columns)
    }
}

/// One exemplar: a traced observation attached to a series.
#[derive(Debug, Clone, Copy)]
pub struct ExemplarFields<'a> {
    pub timestamp: i64,
    pub value: f64,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    /// The exemplar's other labels (filtered attributes in OTLP).
    pub labels: &'a [(String, String)],
}

#[derive(Debug)]
pub struct ExemplarBatchBuilder {
    timestamp: TimestampNanosecondBuilder,
    stream_id: UInt64Builder,
    metric: StringBuilder,
    job: StringBuilder,
    labels: StringMapBuilder,
    value: Float64Builder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    exemplar_labels: StringMapBuilder,
    rows: usize,
}

impl Default for ExemplarBatchBuilder {
    fn default() -> Self {
        Self {
            timestamp: ts_builder(),
            stream_id: UInt64Builder::new(),
            metric: StringBuilder::new(),
            job: StringBuilder::new(),
            labels: map_builder(),
            value: Float64Builder::new(),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            exemplar_labels: map_builder(),
            rows: 0,
        }
    }
}

impl ExemplarBatchBuilder {
    pub fn append(&mut self, series: &Series<'_>, exemplar: ExemplarFields<'_>) {
        self.timestamp.append_value(exemplar.timestamp);
        self.stream_id.append_value(series.id.0);
        self.metric.append_value(series.metric_name());
        self.job.append_option(series.job());
        append_map(&mut self.labels, series.labels().iter().copied());
        self.value.append_value(exemplar.value);
        hex_or_null(&mut self.trace_id, exemplar.trace_id);
        hex_or_null(&mut self.span_id, exemplar.span_id);
        append_map(
            &mut self.exemplar_labels,
            exemplar
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        self.rows += 1;
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn finish(&mut self) -> RecordBatch {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.timestamp.finish()),
            Arc::new(self.stream_id.finish()),
            Arc::new(self.metric.finish()),
            Arc::new(self.job.finish()),
            Arc::new(self.labels.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.exemplar_labels.finish()),
        ];
        finish_batch(Signal::Exemplars, columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Series<'static> {
        Series::new(vec![("job", "api"), ("__name__", "http_requests_total")]).unwrap()
    }

    #[test]
    fn series_are_canonical_and_need_a_valid_metric_name() {
        let s = series();
        assert_eq!(
            s.labels(),
            &[("__name__", "http_requests_total"), ("job", "api")]
        );
        assert_eq!(
            (s.metric_name(), s.job()),
            ("http_requests_total", Some("api"))
        );
        assert_eq!(s.id, crate::model::labels::stream_id(s.labels()));
        assert!(Series::new(vec![("job", "a")]).is_err());
        assert!(Series::new(vec![("__name__", "1bad")]).is_err());
        assert!(Series::new(vec![("__name__", "a"), ("x", "1"), ("x", "2")]).is_err());
        assert!(Series::new(vec![("__name__", "ns:good_total")]).is_ok());
    }

    #[test]
    fn sample_builder_matches_schema() {
        let mut b = SampleBatchBuilder::default();
        let meta = MetricMeta {
            metric_type: Some("counter"),
            unit: None,
        };
        b.append(
            &series(),
            meta,
            SampleFields {
                timestamp: 1,
                start_timestamp: Some(0),
                value: 2.5,
            },
        );
        let batch = b.finish();
        assert_eq!(batch.schema(), super::super::schema(Signal::Samples));
        assert_eq!(batch.num_rows(), 1);
        assert!(b.is_empty());
    }

    #[test]
    fn exemplar_builder_matches_schema() {
        let mut b = ExemplarBatchBuilder::default();
        let labels = vec![("user".to_owned(), "7".to_owned())];
        b.append(
            &series(),
            ExemplarFields {
                timestamp: 1,
                value: 0.5,
                trace_id: TraceId::from_bytes(&[1; 16]).ok(),
                span_id: None,
                labels: &labels,
            },
        );
        let batch = b.finish();
        assert_eq!(batch.schema(), super::super::schema(Signal::Exemplars));
    }
}
