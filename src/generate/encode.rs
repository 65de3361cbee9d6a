//! Generated telemetry as the wire formats clients send: OTLP requests for logs,
//! traces and metrics, pprof for profiles.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
    exemplar, metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};

use prost::Message;

use super::topology::{Kind, OPERATIONS, SERVICES};
use super::{Batch, DURATION_BOUNDS, HistogramPoint, Profile, Source, SpanRecord};
use crate::model::to_hex;
use crate::proto::perftools::profiles as pprof;

/// One ingest request: where it goes, its body, and how many records it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Path and query, from the server's root.
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub records: u64,
}

impl Request {
    /// The path without its query.
    pub fn endpoint(&self) -> &str {
        self.path.split('?').next().unwrap_or_default()
    }
}

/// The requests a client would send for a batch: OTLP/HTTP protobuf for logs, traces
/// and metrics; one pprof upload per profile.
pub fn requests(batch: &Batch) -> Vec<Request> {
    const PROTOBUF: &str = "application/x-protobuf";
    let mut out = Vec::new();
    let mut add = |path: String, content_type: &str, body: Vec<u8>, records: usize| {
        if records > 0 {
            out.push(Request {
                path,
                content_type: content_type.to_owned(),
                body,
                records: records as u64,
            });
        }
    };
    if !batch.logs.is_empty() {
        let body = logs_request(&batch.logs).encode_to_vec();
        add("/v1/logs".into(), PROTOBUF, body, batch.logs.len());
    }
    if !batch.spans.is_empty() {
        let body = traces_request(&batch.spans).encode_to_vec();
        add("/v1/traces".into(), PROTOBUF, body, batch.spans.len());
    }
    if !batch.histograms.is_empty() {
        let body = metrics_request(&batch.histograms).encode_to_vec();
        add("/v1/metrics".into(), PROTOBUF, body, batch.histograms.len());
    }
    for profile in &batch.profiles {
        let path = format!(
            "/threadline/v1/profiles?service_name={}&k8s_pod_name={}&k8s_namespace_name=shop",
            profile.source.service_name(),
            profile.source.instance_name()
        );
        add(
            path,
            "application/octet-stream",
            pprof(profile).encode_to_vec(),
            1,
        );
    }
    out
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource(source: Source) -> Option<Resource> {
    let mut attributes = vec![
        kv("service.name", source.service_name()),
        kv("k8s.namespace.name", "shop"),
        kv("host.name", source.node()),
    ];
    if let Some(s) = source.service {
        attributes.push(kv("k8s.pod.name", source.instance_name()));
        attributes.push(kv("telemetry.sdk.language", SERVICES[s].language));
    }
    Some(Resource {
        attributes,
        ..Default::default()
    })
}

fn scope() -> Option<opentelemetry_proto::tonic::common::v1::InstrumentationScope> {
    Some(
        opentelemetry_proto::tonic::common::v1::InstrumentationScope {
            name: "threadline-generate".into(),
            ..Default::default()
        },
    )
}

/// Log records, one resource per pod or node.
pub fn logs_request(logs: &[super::LogRecord]) -> ExportLogsServiceRequest {
    let mut by_source: BTreeMap<Source, Vec<LogRecord>> = BTreeMap::new();
    for log in logs {
        let (trace_id, span_id) = log
            .trace
            .map_or((Vec::new(), Vec::new()), |(t, s)| (t.to_vec(), s.to_vec()));
        by_source.entry(log.source).or_default().push(LogRecord {
            time_unix_nano: log.time_ns as u64,
            observed_time_unix_nano: log.time_ns as u64,
            severity_number: log.severity.number(),
            severity_text: log.severity.as_str().into(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(log.body.clone())),
            }),
            trace_id,
            span_id,
            ..Default::default()
        });
    }
    ExportLogsServiceRequest {
        resource_logs: by_source
            .into_iter()
            .map(|(source, log_records)| ResourceLogs {
                resource: resource(source),
                scope_logs: vec![ScopeLogs {
                    scope: scope(),
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// Spans, one resource per pod.
pub fn traces_request(spans: &[SpanRecord]) -> ExportTraceServiceRequest {
    let mut by_source: BTreeMap<Source, Vec<Span>> = BTreeMap::new();
    for span in spans {
        let op = &OPERATIONS[span.operation];
        by_source.entry(span.source).or_default().push(Span {
            trace_id: span.trace_id.to_vec(),
            span_id: span.span_id.to_vec(),
            parent_span_id: span.parent.map(|p| p.to_vec()).unwrap_or_default(),
            name: op.name.into(),
            kind: match op.kind {
                Kind::Server => 2,
                Kind::Client => 3,
            },
            start_time_unix_nano: span.start_ns as u64,
            end_time_unix_nano: span.end_ns as u64,
            attributes: span
                .attributes
                .iter()
                .map(|(k, v)| kv(k, v.as_str()))
                .collect(),
            status: Some(match &span.error {
                Some(message) => Status {
                    message: message.clone(),
                    code: status::StatusCode::Error as i32,
                },
                None => Status::default(),
            }),
            ..Default::default()
        });
    }
    ExportTraceServiceRequest {
        resource_spans: by_source
            .into_iter()
            .map(|(source, spans)| ResourceSpans {
                resource: resource(source),
                scope_spans: vec![ScopeSpans {
                    scope: scope(),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// `http.server.request.duration` points with their exemplars, one resource per pod.
pub fn metrics_request(points: &[HistogramPoint]) -> ExportMetricsServiceRequest {
    let mut by_source: BTreeMap<Source, Vec<HistogramDataPoint>> = BTreeMap::new();
    for point in points {
        by_source
            .entry(point.source)
            .or_default()
            .push(HistogramDataPoint {
                attributes: vec![
                    kv("http.route", point.route),
                    kv("http.request.method", point.method),
                    kv("http.response.status_code", point.status_code.to_string()),
                ],
                start_time_unix_nano: point.start_ns as u64,
                time_unix_nano: point.time_ns as u64,
                count: point.count,
                sum: Some(point.sum),
                bucket_counts: point.bucket_counts.to_vec(),
                explicit_bounds: DURATION_BOUNDS.to_vec(),
                exemplars: point
                    .exemplars
                    .iter()
                    .map(|e| opentelemetry_proto::tonic::metrics::v1::Exemplar {
                        time_unix_nano: e.time_ns as u64,
                        span_id: e.span_id.to_vec(),
                        trace_id: e.trace_id.to_vec(),
                        value: Some(exemplar::Value::AsDouble(e.value)),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
    }
    ExportMetricsServiceRequest {
        resource_metrics: by_source
            .into_iter()
            .map(|(source, data_points)| ResourceMetrics {
                resource: resource(source),
                scope_metrics: vec![ScopeMetrics {
                    scope: scope(),
                    metrics: vec![Metric {
                        name: "http.server.request.duration".into(),
                        description: "Duration of HTTP server requests.".into(),
                        unit: "s".into(),
                        data: Some(metric::Data::Histogram(Histogram {
                            data_points,
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// Interns strings and functions while a pprof profile is built.
#[derive(Default)]
struct Tables {
    strings: Vec<String>,
    string_ids: HashMap<String, i64>,
    functions: Vec<pprof::Function>,
    locations: Vec<pprof::Location>,
    location_ids: HashMap<&'static str, u64>,
}

impl Tables {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as i64;
        self.strings.push(s.to_owned());
        self.string_ids.insert(s.to_owned(), id);
        id
    }

    fn location(&mut self, frame: &'static str) -> u64 {
        if let Some(&id) = self.location_ids.get(frame) {
            return id;
        }
        let id = self.locations.len() as u64 + 1;
        let name = self.string(frame);
        self.functions.push(pprof::Function {
            id,
            name,
            system_name: name,
            ..Default::default()
        });
        self.locations.push(pprof::Location {
            id,
            line: vec![pprof::Line {
                function_id: id,
                ..Default::default()
            }],
            ..Default::default()
        });
        self.location_ids.insert(frame, id);
        id
    }
}

/// A CPU profile in pprof: samples and CPU nanoseconds, span-attributed samples
/// labelled `span_id` and `span_name` as Pyroscope's OpenTelemetry integration does.
pub fn pprof(profile: &Profile) -> pprof::Profile {
    let mut t = Tables::default();
    t.string("");
    let sample_type = vec![
        pprof::ValueType {
            r#type: t.string("samples"),
            unit: t.string("count"),
        },
        pprof::ValueType {
            r#type: t.string("cpu"),
            unit: t.string("nanoseconds"),
        },
    ];
    let samples = profile
        .samples
        .iter()
        .map(|s| {
            let label = match s.span {
                Some((span_id, name)) => {
                    let id = to_hex(&span_id);
                    vec![
                        pprof::Label {
                            key: t.string("span_id"),
                            str: t.string(&id),
                            ..Default::default()
                        },
                        pprof::Label {
                            key: t.string("span_name"),
                            str: t.string(name),
                            ..Default::default()
                        },
                    ]
                }
                None => Vec::new(),
            };
            pprof::Sample {
                location_id: s.stack.iter().rev().map(|f| t.location(f)).collect(),
                value: vec![s.cpu_ns / super::CPU_PERIOD_NS, s.cpu_ns],
                label,
            }
        })
        .collect();
    let period_type = Some(pprof::ValueType {
        r#type: t.string("cpu"),
        unit: t.string("nanoseconds"),
    });
    pprof::Profile {
        sample_type,
        sample: samples,
        location: t.locations,
        function: t.functions,
        string_table: t.strings,
        time_nanos: profile.start_ns,
        duration_nanos: profile.duration_ns,
        period_type,
        period: super::CPU_PERIOD_NS,
        ..Default::default()
    }
}
