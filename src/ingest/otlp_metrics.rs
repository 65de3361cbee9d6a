//! OTLP metrics → Prometheus-style series, the way Prometheus's own OTLP receiver
//! names them, so dashboards written for Prometheus work on OTLP data:
//!
//! - names: invalid characters become `_`, the unit becomes a suffix
//!   (`http.server.duration` in `s` → `http_server_duration_seconds`), monotonic sums
//!   get `_total`, unit-less (`1`) gauges get `_ratio`;
//! - labels: data-point attributes, the resource attributes on the label allow-list
//!   (`service_name`, …), `job` (`service.namespace/service.name`) and `instance`
//!   (`service.instance.id`); every resource also gets one `target_info` series whose
//!   labels are its other attributes;
//! - gauges and sums are one series each; histograms become `_bucket{le}`, `_count`,
//!   `_sum` (plus `_min` / `_max` when sent); exponential histograms the same, with one
//!   `le` per bucket boundary; summaries `{quantile}`, `_count`, `_sum`;
//! - exemplars of every point, with trace and span IDs, on the series (for histograms
//!   the bucket) their value belongs to;
//! - delta temporality is kept as sent and marked in `metric_type` (`delta_counter`,
//!   `delta_histogram`), since Prometheus counters are cumulative.

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, Metric, NumberDataPoint, exemplar, metric, number_data_point,
};
use prost::Message;

use super::metrics::{
    ClassicHistogram, Exponential, MetricRows, RawExemplar, borrow_labels, format_bound, with_name,
};
use super::otlp::{DecodeError, Encoding, any_value_string};
use super::{IngestRules, Rejected, label_name_for_attribute};
use crate::model::schema::{MetricMeta, SampleFields};
use crate::model::{SpanId, TraceId};

/// Prometheus's staleness marker: a point with no recorded value.
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);
const FLAG_NO_RECORDED_VALUE: u32 = 1;

pub fn decode_metrics_request(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportMetricsServiceRequest, DecodeError> {
    Ok(match encoding {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    })
}

pub fn metrics_response(rejected: &Rejected, total: usize, encoding: Encoding) -> Vec<u8> {
    let partial = (rejected.count > 0).then(|| ExportMetricsPartialSuccess {
        rejected_data_points: rejected.count as i64,
        error_message: rejected.message(total, "data points"),
    });
    match encoding {
        Encoding::Protobuf => ExportMetricsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => {
            let body = match partial {
                Some(p) => serde_json::json!({ "partialSuccess": {
                    "rejectedDataPoints": p.rejected_data_points.to_string(),
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            body.to_string().into_bytes()
        }
    }
}

/// Data points in the request, the denominator of `partial_success`.
pub fn data_point_count(request: &ExportMetricsServiceRequest) -> usize {
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(metric::Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum()
}

pub fn metrics_to_rows(request: &ExportMetricsServiceRequest, rules: &IngestRules) -> MetricRows {
    let mut rows = MetricRows::default();
    for resource_metrics in &request.resource_metrics {
        let attributes = resource_metrics
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let resource = resource_labels(attributes, rules);
        let mut latest = None;
        for scope_metrics in &resource_metrics.scope_metrics {
            let mut labels = resource.labels.clone();
            if let Some(scope) = &scope_metrics.scope {
                if !scope.name.is_empty() {
                    labels.push(("otel_scope_name".into(), scope.name.clone()));
                }
                if !scope.version.is_empty() {
                    labels.push(("otel_scope_version".into(), scope.version.clone()));
                }
            }
            for metric in &scope_metrics.metrics {
                if let Some(t) = write_metric(&mut rows, metric, &labels) {
                    latest = latest.max(Some(t));
                }
            }
        }
        if let Some(timestamp) = latest
            && !resource.info.is_empty()
        {
            let mut info = resource.identity.clone();
            info.extend(resource.info.iter().cloned());
            // `target_info` is derived, not sent: a resource whose attributes cannot be
            // labels (too many, say) goes without it rather than counting a refusal.
            let rejected = rows.rejected.clone();
            let info = with_name(&info, "target_info");
            let series = rows.series(borrow_labels(&info));
            rows.rejected = rejected;
            if let Some(series) = series {
                rows.sample(
                    &series,
                    MetricMeta {
                        metric_type: Some("info"),
                        unit: None,
                    },
                    SampleFields {
                        timestamp,
                        start_timestamp: None,
                        value: 1.0,
                    },
                );
            }
        }
    }
    rows
}

struct ResourceLabels {
    /// Labels every series of the resource carries.
    labels: Vec<(String, String)>,
    /// `job` and `instance` alone, the key `target_info` joins on.
    identity: Vec<(String, String)>,
    /// The remaining attributes, as `target_info` labels.
    info: Vec<(String, String)>,
}

fn resource_labels(attributes: &[KeyValue], rules: &IngestRules) -> ResourceLabels {
    let value = |key: &str| {
        attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| any_value_string(kv.value.as_ref()))
            .filter(|v| !v.is_empty())
    };
    let mut identity = Vec::new();
    let job = match (value("service.namespace"), value("service.name")) {
        (Some(namespace), Some(name)) => Some(format!("{namespace}/{name}")),
        (None, Some(name)) => Some(name),
        (_, None) => None,
    };
    if let Some(job) = job {
        identity.push(("job".to_owned(), job));
    }
    if let Some(instance) = value("service.instance.id") {
        identity.push(("instance".to_owned(), instance));
    }
    let mut labels = identity.clone();
    let mut info = Vec::new();
    for kv in attributes {
        let name = label_name(&kv.key);
        let text = any_value_string(kv.value.as_ref());
        if rules.label_attributes.iter().any(|a| a == &kv.key) {
            labels.push((name, text));
        } else if !matches!(kv.key.as_str(), "service.instance.id") {
            info.push((name, text));
        }
    }
    ResourceLabels {
        labels,
        identity,
        info,
    }
}

/// An attribute name as a label name; a leading digit gets a `key_` prefix.
fn label_name(attribute: &str) -> String {
    let name = label_name_for_attribute(attribute);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{name}")
    } else {
        name
    }
}

/// The resource's labels plus the point's attributes as labels. Attributes that
/// sanitise to the same name are joined with `;` (as Prometheus does); a point
/// attribute overrides a resource label; `le` and `quantile` are left to the
/// histogram and summary series that generate them.
fn point_labels(base: &[(String, String)], attributes: &[KeyValue]) -> Vec<(String, String)> {
    use std::collections::BTreeMap;
    let mut from_point: BTreeMap<String, String> = BTreeMap::new();
    for kv in attributes {
        let name = label_name(&kv.key);
        if name == "le" || name == "quantile" {
            continue;
        }
        let value = any_value_string(kv.value.as_ref());
        from_point
            .entry(name)
            .and_modify(|v| {
                v.push(';');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let mut labels: Vec<(String, String)> = base
        .iter()
        .filter(|(n, _)| !from_point.contains_key(n))
        .cloned()
        .collect();
    labels.extend(from_point);
    labels
}

fn nanos(value: u64) -> Option<i64> {
    i64::try_from(value).ok()
}

fn start_time(value: u64) -> Option<i64> {
    nanos(value).filter(|t| *t > 0)
}

fn exemplars(list: &[Exemplar]) -> Vec<RawExemplar> {
    list.iter()
        .map(|e| {
            let mut labels: Vec<(String, String)> = e
                .filtered_attributes
                .iter()
                .map(|kv| (kv.key.clone(), any_value_string(kv.value.as_ref())))
                .collect();
            if let Ok(id) = TraceId::from_bytes(&e.trace_id) {
                labels.push(("trace_id".into(), id.to_hex()));
            }
            if let Ok(id) = SpanId::from_bytes(&e.span_id) {
                labels.push(("span_id".into(), id.to_hex()));
            }
            RawExemplar {
                labels,
                value: match e.value {
                    Some(exemplar::Value::AsDouble(v)) => v,
                    Some(exemplar::Value::AsInt(v)) => v as f64,
                    None => 0.0,
                },
                timestamp: nanos(e.time_unix_nano).filter(|t| *t > 0),
            }
        })
        .collect()
}

/// Writes one metric's points; returns the latest point time.
fn write_metric(rows: &mut MetricRows, metric: &Metric, base: &[(String, String)]) -> Option<i64> {
    let unit = (!metric.unit.is_empty()).then_some(metric.unit.as_str());
    let mut latest = None;
    let mut time_of = |rows: &mut MetricRows, value: u64| match nanos(value) {
        Some(t) => {
            latest = latest.max(Some(t));
            Some(t)
        }
        None => {
            rows.rejected.add(format!(
                "{}: point time {value} ns is out of range",
                metric.name
            ));
            None
        }
    };
    match &metric.data {
        Some(metric::Data::Gauge(gauge)) => {
            let name = prometheus_name(&metric.name, &metric.unit, Kind::Gauge);
            let meta = MetricMeta {
                metric_type: Some("gauge"),
                unit,
            };
            for point in &gauge.data_points {
                let Some(timestamp) = time_of(rows, point.time_unix_nano) else {
                    continue;
                };
                number_point(rows, &name, meta, base, point, timestamp);
            }
        }
        Some(metric::Data::Sum(sum)) => {
            let delta = sum.aggregation_temporality == AggregationTemporality::Delta as i32;
            let (kind, metric_type) = match (sum.is_monotonic, delta) {
                (true, false) => (Kind::Counter, "counter"),
                (true, true) => (Kind::Counter, "delta_counter"),
                (false, _) => (Kind::Gauge, "gauge"),
            };
            let name = prometheus_name(&metric.name, &metric.unit, kind);
            let meta = MetricMeta {
                metric_type: Some(metric_type),
                unit,
            };
            for point in &sum.data_points {
                let Some(timestamp) = time_of(rows, point.time_unix_nano) else {
                    continue;
                };
                number_point(rows, &name, meta, base, point, timestamp);
            }
        }
        Some(metric::Data::Histogram(histogram)) => {
            let name = prometheus_name(&metric.name, &metric.unit, Kind::Histogram);
            let meta = histogram_meta(histogram.aggregation_temporality, unit);
            for point in &histogram.data_points {
                let Some(timestamp) = time_of(rows, point.time_unix_nano) else {
                    continue;
                };
                let counts: Vec<f64> = point.bucket_counts.iter().map(|c| *c as f64).collect();
                let classic =
                    ClassicHistogram::explicit(&point.explicit_bounds, &counts).map(|mut c| {
                        c.set_count(point.count as f64);
                        c.sum = point.sum;
                        c.min = point.min;
                        c.max = point.max;
                        c
                    });
                let parts = PointParts {
                    timestamp,
                    start: point.start_time_unix_nano,
                    flags: point.flags,
                    attributes: &point.attributes,
                    exemplars: &point.exemplars,
                };
                histogram_point(rows, &metric.name, (&name, meta), base, classic, parts);
            }
        }
        Some(metric::Data::ExponentialHistogram(histogram)) => {
            let name = prometheus_name(&metric.name, &metric.unit, Kind::Histogram);
            let meta = histogram_meta(histogram.aggregation_temporality, unit);
            for point in &histogram.data_points {
                let Some(timestamp) = time_of(rows, point.time_unix_nano) else {
                    continue;
                };
                let classic = ClassicHistogram::exponential(&Exponential {
                    scale: point.scale,
                    zero_threshold: point.zero_threshold,
                    zero_count: point.zero_count as f64,
                    positive: buckets(point.positive.as_ref()),
                    negative: buckets(point.negative.as_ref()),
                    count: point.count as f64,
                    sum: point.sum,
                    min: point.min,
                    max: point.max,
                });
                let parts = PointParts {
                    timestamp,
                    start: point.start_time_unix_nano,
                    flags: point.flags,
                    attributes: &point.attributes,
                    exemplars: &point.exemplars,
                };
                histogram_point(rows, &metric.name, (&name, meta), base, classic, parts);
            }
        }
        Some(metric::Data::Summary(summary)) => {
            let name = prometheus_name(&metric.name, &metric.unit, Kind::Summary);
            let meta = MetricMeta {
                metric_type: Some("summary"),
                unit,
            };
            for point in &summary.data_points {
                let Some(timestamp) = time_of(rows, point.time_unix_nano) else {
                    continue;
                };
                let stale = point.flags & FLAG_NO_RECORDED_VALUE != 0;
                let value = |v: f64| if stale { STALE_NAN } else { v };
                let labels = point_labels(base, &point.attributes);
                let fields = |v: f64| SampleFields {
                    timestamp,
                    start_timestamp: start_time(point.start_time_unix_nano),
                    value: value(v),
                };
                rows.point(|rows| {
                    for q in &point.quantile_values {
                        let mut series_labels = with_name(&labels, &name);
                        series_labels.push(("quantile".into(), format_bound(q.quantile)));
                        if let Some(series) = rows.series(borrow_labels(&series_labels)) {
                            rows.sample(&series, meta, fields(q.value));
                        }
                    }
                    for (suffix, v) in [("_count", point.count as f64), ("_sum", point.sum)] {
                        let series_labels = with_name(&labels, &format!("{name}{suffix}"));
                        if let Some(series) = rows.series(borrow_labels(&series_labels)) {
                            rows.sample(&series, meta, fields(v));
                        }
                    }
                });
            }
        }
        None => {}
    }
    latest
}

/// What every histogram point has besides its buckets.
struct PointParts<'a> {
    timestamp: i64,
    start: u64,
    flags: u32,
    attributes: &'a [KeyValue],
    exemplars: &'a [Exemplar],
}

fn histogram_meta(temporality: i32, unit: Option<&str>) -> MetricMeta<'_> {
    let delta = temporality == AggregationTemporality::Delta as i32;
    MetricMeta {
        metric_type: Some(if delta {
            "delta_histogram"
        } else {
            "histogram"
        }),
        unit,
    }
}

/// Writes one histogram point (explicit or exponential, already converted) as classic
/// series, or records why it was refused.
fn histogram_point(
    rows: &mut MetricRows,
    metric: &str,
    (name, meta): (&str, MetricMeta<'_>),
    base: &[(String, String)],
    classic: Result<ClassicHistogram, String>,
    point: PointParts<'_>,
) {
    let mut classic = match classic {
        Ok(classic) => classic,
        Err(reason) => {
            rows.rejected.add(format!("{metric}: {reason}"));
            return;
        }
    };
    if point.flags & FLAG_NO_RECORDED_VALUE != 0 {
        stale(&mut classic);
    }
    let labels = point_labels(base, point.attributes);
    let exemplars = exemplars(point.exemplars);
    rows.point(|rows| {
        classic.write(
            rows,
            name,
            &labels,
            meta,
            (point.timestamp, start_time(point.start)),
            &exemplars,
        )
    });
}

fn buckets(buckets: Option<&Buckets>) -> Vec<(i64, f64)> {
    let Some(b) = buckets else {
        return Vec::new();
    };
    b.bucket_counts
        .iter()
        .enumerate()
        .map(|(i, c)| (i64::from(b.offset) + i as i64, *c as f64))
        .collect()
}

fn stale(classic: &mut ClassicHistogram) {
    for bucket in &mut classic.buckets {
        bucket.1 = STALE_NAN;
    }
    classic.count = STALE_NAN;
    classic.sum = classic.sum.map(|_| STALE_NAN);
    classic.min = classic.min.map(|_| STALE_NAN);
    classic.max = classic.max.map(|_| STALE_NAN);
}

fn number_point(
    rows: &mut MetricRows,
    name: &str,
    meta: MetricMeta<'_>,
    base: &[(String, String)],
    point: &NumberDataPoint,
    timestamp: i64,
) {
    let value = if point.flags & FLAG_NO_RECORDED_VALUE != 0 {
        STALE_NAN
    } else {
        match point.value {
            Some(number_data_point::Value::AsDouble(v)) => v,
            Some(number_data_point::Value::AsInt(v)) => v as f64,
            None => STALE_NAN,
        }
    };
    let labels = with_name(&point_labels(base, &point.attributes), name);
    let Some(series) = rows.series(borrow_labels(&labels)) else {
        return;
    };
    rows.sample(
        &series,
        meta,
        SampleFields {
            timestamp,
            start_timestamp: start_time(point.start_time_unix_nano),
            value,
        },
    );
    for exemplar in exemplars(&point.exemplars) {
        rows.exemplar(&series, &exemplar, timestamp);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

/// The Prometheus name of an OTLP metric: sanitised, with the unit and `_total` /
/// `_ratio` suffixes Prometheus's OTLP receiver adds.
pub fn prometheus_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut out = sanitize(name);
    let mut suffixes: Vec<String> = Vec::new();
    let unit = strip_annotations(unit);
    if let Some((main, per)) = unit.split_once('/') {
        let main = unit_word(main);
        let per = per_unit_word(per);
        match (main.is_empty(), per.is_empty()) {
            (false, false) => suffixes.push(format!("{main}_per_{per}")),
            (false, true) => suffixes.push(main),
            (true, false) => suffixes.push(format!("per_{per}")),
            (true, true) => {}
        }
    } else if unit == "1" && kind == Kind::Gauge {
        suffixes.push("ratio".into());
    } else {
        let word = unit_word(unit);
        if !word.is_empty() {
            suffixes.push(word);
        }
    }
    if kind == Kind::Counter {
        suffixes.push("total".into());
    }
    for suffix in suffixes {
        let suffix = sanitize(&suffix);
        if !out.ends_with(&format!("_{suffix}")) && out != suffix {
            out.push('_');
            out.push_str(&suffix);
        }
    }
    out
}

/// Drops `{…}` annotations (`{requests}`), which UCUM uses for counted things.
fn strip_annotations(unit: &str) -> &str {
    let unit = unit.trim();
    if unit.starts_with('{') && unit.ends_with('}') {
        ""
    } else {
        unit
    }
}

fn unit_word(unit: &str) -> String {
    let unit = strip_annotations(unit);
    let word = match unit {
        "" | "1" => "",
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        other => return sanitize(other),
    };
    word.to_owned()
}

fn per_unit_word(unit: &str) -> String {
    let word = match strip_annotations(unit) {
        "" => "",
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => return sanitize(other),
    };
    word.to_owned()
}

/// Every character outside `[a-zA-Z0-9_:]` becomes `_`, runs of `_` collapse, and a
/// leading digit gets a `_` prefix.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::metrics::tests::table;

    #[test]
    fn names_follow_prometheus_otlp_conventions() {
        assert_eq!(
            prometheus_name("http.server.request.duration", "s", Kind::Histogram),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            prometheus_name("http.server.requests", "{request}", Kind::Counter),
            "http_server_requests_total"
        );
        assert_eq!(
            prometheus_name("requests_total", "1", Kind::Counter),
            "requests_total"
        );
        assert_eq!(
            prometheus_name("cpu.utilization", "1", Kind::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            prometheus_name("network.io", "By/s", Kind::Gauge),
            "network_io_bytes_per_second"
        );
        assert_eq!(
            prometheus_name("queue.size_bytes", "By", Kind::Gauge),
            "queue_size_bytes"
        );
        assert_eq!(prometheus_name("2xx", "", Kind::Gauge), "_2xx");
    }

    #[test]
    fn every_kind_of_point_becomes_series_and_exemplars_keep_their_trace() {
        let body = br#"{"resourceMetrics":[{
          "resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"checkout"}},
            {"key":"service.instance.id","value":{"stringValue":"pod-1"}},
            {"key":"host.arch","value":{"stringValue":"arm64"}}]},
          "scopeMetrics":[{"scope":{"name":"app"},"metrics":[
            {"name":"orders","unit":"{order}","sum":{"isMonotonic":true,"aggregationTemporality":2,
              "dataPoints":[{"timeUnixNano":"2000","startTimeUnixNano":"1000","asInt":"7",
                "attributes":[{"key":"region","value":{"stringValue":"eu"}}],
                "exemplars":[{"timeUnixNano":"1500","asDouble":1,
                  "traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}]}]}},
            {"name":"queue.depth","gauge":{"dataPoints":[{"timeUnixNano":"2000","asDouble":3.5}]}},
            {"name":"latency","unit":"s","histogram":{"aggregationTemporality":2,"dataPoints":[
              {"timeUnixNano":"2000","count":"3","sum":1.2,"bucketCounts":["1","2","0"],"explicitBounds":[0.1,1],
               "exemplars":[{"timeUnixNano":"1900","asDouble":0.5,"traceId":"0af7651916cd43dd8448eb211c80319c"}]}]}},
            {"name":"size","unit":"By","exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[
              {"timeUnixNano":"2000","count":"3","sum":10,"scale":0,"zeroCount":"1",
               "positive":{"offset":1,"bucketCounts":["2"]}}]}},
            {"name":"rpc.duration","unit":"ms","summary":{"dataPoints":[
              {"timeUnixNano":"2000","count":"4","sum":8,
               "quantileValues":[{"quantile":0.5,"value":1.5},{"quantile":0.99,"value":4}]}]}}
          ]}]}]}"#;
        let request = decode_metrics_request(body, Encoding::Json).unwrap();
        assert_eq!(data_point_count(&request), 5);
        let rows = metrics_to_rows(&request, &IngestRules::default());
        assert_eq!(rows.rejected.count, 0, "{:?}", rows.rejected);
        // orders_total 1, queue_depth 1, latency 3 buckets + count + sum, size 3
        // buckets (zero, le=4, +Inf) + count + sum, rpc 2 quantiles + count + sum,
        // target_info 1.
        assert_eq!(rows.sample_count(), 1 + 1 + 5 + 5 + 4 + 1);
        assert_eq!(rows.exemplar_count(), 2);
        let (batches, _) = rows.finish();
        let samples = &table(&batches, crate::model::Signal::Samples);
        let names: Vec<String> = arrow::array::AsArray::as_string::<i32>(
            samples.column_by_name("metric").unwrap().as_ref(),
        )
        .iter()
        .map(|s| s.unwrap().to_owned())
        .collect();
        for name in [
            "orders_total",
            "queue_depth",
            "latency_seconds_bucket",
            "latency_seconds_count",
            "size_bytes_bucket",
            "rpc_duration_milliseconds",
            "rpc_duration_milliseconds_sum",
            "target_info",
        ] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} missing from {names:?}"
            );
        }
        let labels = samples.column_by_name("labels").unwrap();
        let first =
            crate::storage::chunk::row_labels(arrow::array::AsArray::as_map(labels.as_ref()), 0);
        assert_eq!(first.get("job"), Some("checkout"));
        assert_eq!(first.get("instance"), Some("pod-1"));
        assert_eq!(first.get("service_name"), Some("checkout"));
        assert_eq!(first.get("region"), Some("eu"));
        assert_eq!(first.get("otel_scope_name"), Some("app"));
        let exemplars = &table(&batches, crate::model::Signal::Exemplars);
        let traces = arrow::array::AsArray::as_string::<i32>(
            exemplars.column_by_name("trace_id").unwrap().as_ref(),
        );
        assert_eq!(traces.value(0), "0af7651916cd43dd8448eb211c80319c");
        let spans = arrow::array::AsArray::as_string::<i32>(
            exemplars.column_by_name("span_id").unwrap().as_ref(),
        );
        assert_eq!(spans.value(0), "b7ad6b7169203331");
    }
}
