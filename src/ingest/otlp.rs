//! OTLP/HTTP logs and traces: protobuf or JSON request bodies → Arrow batches.
//!
//! Resource attributes on the allow-list become labels; everything else (the rest of
//! the resource, the scope and the record attributes) is kept as attributes. Records
//! that cannot be stored (bad IDs, oversized bodies, out-of-range times) are rejected
//! one by one and reported through `partial_success`, per the OTLP/HTTP spec.

use std::borrow::Cow;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::{Decoded, IngestRules, Rejected, label_name_for_attribute};
use crate::model::schema::{
    LogBatchBuilder, LogFields, SpanBatchBuilder, SpanEvent, SpanFields, SpanLink, Stream,
};
use crate::model::{LabelSet, SpanId, TraceId};

/// The two encodings OTLP/HTTP defines; a response uses the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// `None` for any other content type (the caller answers 415).
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Self::Protobuf),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Protobuf => "application/x-protobuf",
            Self::Json => "application/json",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid OTLP JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub fn decode_logs_request(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportLogsServiceRequest, DecodeError> {
    Ok(match encoding {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    })
}

pub fn decode_traces_request(
    body: &[u8],
    encoding: Encoding,
) -> Result<ExportTraceServiceRequest, DecodeError> {
    Ok(match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    })
}

/// The export response body; `partial_success` only when something was rejected.
pub fn logs_response(rejected: &Rejected, total: usize, encoding: Encoding) -> Vec<u8> {
    let partial = (rejected.count > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: rejected.count as i64,
        error_message: rejected.message(total, "log records"),
    });
    match encoding {
        Encoding::Protobuf => ExportLogsServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => json_response(partial.map(|p| {
            serde_json::json!({
                "rejectedLogRecords": p.rejected_log_records.to_string(),
                "errorMessage": p.error_message,
            })
        })),
    }
}

pub fn traces_response(rejected: &Rejected, total: usize, encoding: Encoding) -> Vec<u8> {
    let partial = (rejected.count > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected.count as i64,
        error_message: rejected.message(total, "spans"),
    });
    match encoding {
        Encoding::Protobuf => ExportTraceServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec(),
        Encoding::Json => json_response(partial.map(|p| {
            serde_json::json!({
                "rejectedSpans": p.rejected_spans.to_string(),
                "errorMessage": p.error_message,
            })
        })),
    }
}

fn json_response(partial: Option<serde_json::Value>) -> Vec<u8> {
    let body = match partial {
        Some(p) => serde_json::json!({ "partialSuccess": p }),
        None => serde_json::json!({}),
    };
    body.to_string().into_bytes()
}

/// The stream a resource maps to (plus, for logs, the severity label), and the
/// resource attributes that stay attributes.
struct ResourceView {
    labels: Vec<(String, String)>,
    attributes: Vec<(String, String)>,
}

fn resource_view(resource: Option<&Resource>, rules: &IngestRules) -> ResourceView {
    let mut labels = Vec::new();
    let mut attributes = Vec::new();
    for kv in resource
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default()
    {
        let value = any_value_string(kv.value.as_ref());
        if rules.label_attributes.iter().any(|a| a == &kv.key) {
            labels.push((label_name_for_attribute(&kv.key), value));
        } else {
            attributes.push((kv.key.clone(), value));
        }
    }
    if !labels
        .iter()
        .any(|(n, v)| n == "service_name" && !v.is_empty())
    {
        labels.retain(|(n, _)| n != "service_name");
        labels.push(("service_name".into(), "unknown_service".into()));
    }
    ResourceView { labels, attributes }
}

/// Attribute values as text: strings as they are, scalars in their usual form, bytes
/// as hex, arrays and maps as JSON.
pub fn any_value_string(value: Option<&AnyValue>) -> String {
    any_value_text(value).into_owned()
}

/// As `any_value_string`, borrowing when the value already is a string.
pub fn any_value_text(value: Option<&AnyValue>) -> Cow<'_, str> {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Cow::Borrowed(s),
        Some(other) => Cow::Owned(match any_value_json(other) {
            serde_json::Value::String(s) => s,
            json => json.to_string(),
        }),
        None => Cow::Borrowed(""),
    }
}

fn any_value_json(value: &any_value::Value) -> serde_json::Value {
    use any_value::Value as V;
    match value {
        V::StringValue(s) => s.clone().into(),
        V::BoolValue(b) => b.to_string().into(),
        V::IntValue(i) => i.to_string().into(),
        V::DoubleValue(d) => d.to_string().into(),
        V::BytesValue(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
        V::ArrayValue(a) => a
            .values
            .iter()
            .map(|v| v.value.as_ref().map(any_value_json).unwrap_or_default())
            .collect(),
        V::KvlistValue(kv) => kv
            .values
            .iter()
            .map(|kv| {
                let v = kv.value.as_ref().and_then(|v| v.value.as_ref());
                (kv.key.clone(), v.map(any_value_json).unwrap_or_default())
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
        V::StringValueStrindex(_) => serde_json::Value::Null,
    }
}

fn push_attributes(out: &mut Vec<(String, String)>, attributes: &[KeyValue]) {
    out.extend(
        attributes
            .iter()
            .map(|kv| (kv.key.clone(), any_value_string(kv.value.as_ref()))),
    );
}

fn time_ns(value: u64, what: &str) -> Result<i64, String> {
    i64::try_from(value).map_err(|_| format!("{what} out of range: {value}"))
}

/// Empty means absent; anything else must be a valid ID.
fn optional_trace_id(bytes: &[u8]) -> Result<Option<TraceId>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    TraceId::from_bytes(bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn optional_span_id(bytes: &[u8]) -> Result<Option<SpanId>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    SpanId::from_bytes(bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Loki-style level names from OTLP severity text or number.
fn severity_label(text: &str, number: i32) -> Option<&'static str> {
    let from_text = match text.trim().to_ascii_lowercase().as_str() {
        "" => None,
        "trace" => Some("trace"),
        "debug" | "dbg" => Some("debug"),
        "info" | "information" | "notice" => Some("info"),
        "warn" | "warning" => Some("warn"),
        "error" | "err" => Some("error"),
        "fatal" | "critical" | "crit" | "emergency" | "alert" | "panic" => Some("fatal"),
        _ => None,
    };
    from_text.or(match number {
        1..=4 => Some("trace"),
        5..=8 => Some("debug"),
        9..=12 => Some("info"),
        13..=16 => Some("warn"),
        17..=20 => Some("error"),
        21..=24 => Some("fatal"),
        _ => None,
    })
}

/// A small cache so records of one resource share one validated stream per severity.
struct Streams {
    base: Vec<(String, String)>,
    built: Vec<(Option<&'static str>, Result<Stream, String>)>,
}

impl Streams {
    fn new(base: Vec<(String, String)>) -> Self {
        Self {
            base,
            built: Vec::new(),
        }
    }

    fn get(&mut self, severity: Option<&'static str>) -> Result<&Stream, String> {
        let index = match self.built.iter().position(|(s, _)| *s == severity) {
            Some(i) => i,
            None => {
                let mut pairs = self.base.clone();
                if let Some(level) = severity {
                    pairs.push(("severity".into(), level.into()));
                }
                let stream = LabelSet::new(pairs)
                    .map(Stream::new)
                    .map_err(|e| e.to_string());
                self.built.push((severity, stream));
                self.built.len() - 1
            }
        };
        self.built[index].1.as_ref().map_err(|e| e.clone())
    }
}

pub fn logs_to_batch(
    request: &ExportLogsServiceRequest,
    rules: &IngestRules,
    now_ns: i64,
) -> Decoded {
    let mut builder = LogBatchBuilder::default();
    let mut rejected = Rejected::default();
    let mut attributes = Vec::new();
    let mut scope_attributes = Vec::new();
    for resource_logs in &request.resource_logs {
        let view = resource_view(resource_logs.resource.as_ref(), rules);
        let mut streams = Streams::new(view.labels);
        for scope_logs in &resource_logs.scope_logs {
            let scope = scope_logs.scope.as_ref();
            scope_attributes.clear();
            if let Some(scope) = scope {
                push_attributes(&mut scope_attributes, &scope.attributes);
            }
            for record in &scope_logs.log_records {
                let row = (|| -> Result<(), String> {
                    let body = any_value_text(record.body.as_ref());
                    if body.len() > rules.max_line_bytes {
                        return Err(format!(
                            "log body too long: {} > {} bytes",
                            body.len(),
                            rules.max_line_bytes
                        ));
                    }
                    let trace_id = match optional_trace_id(&record.trace_id)? {
                        Some(id) => Some(id),
                        None => rules.trace_id_in(&body),
                    };
                    let span_id = optional_span_id(&record.span_id)?;
                    let observed = match record.observed_time_unix_nano {
                        0 => None,
                        t => Some(time_ns(t, "observed time")?),
                    };
                    let timestamp = match record.time_unix_nano {
                        0 => observed.unwrap_or(now_ns),
                        t => time_ns(t, "timestamp")?,
                    };
                    let stream = streams.get(severity_label(
                        &record.severity_text,
                        record.severity_number,
                    ))?;
                    attributes.clear();
                    push_attributes(&mut attributes, &record.attributes);
                    builder.append(
                        stream,
                        LogFields {
                            timestamp,
                            observed_timestamp: observed,
                            severity_number: (record.severity_number != 0)
                                .then_some(record.severity_number),
                            body: &body,
                            trace_id,
                            span_id,
                            attributes: &[&view.attributes, &scope_attributes, &attributes],
                            scope_name: scope.map(|s| s.name.as_str()).filter(|n| !n.is_empty()),
                        },
                    );
                    Ok(())
                })();
                if let Err(reason) = row {
                    rejected.add(reason);
                }
            }
        }
    }
    Decoded {
        batch: builder.finish(),
        rejected,
    }
}

fn span_kind(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn status_code(code: i32) -> &'static str {
    match code {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

pub fn traces_to_batch(request: &ExportTraceServiceRequest, rules: &IngestRules) -> Decoded {
    let mut builder = SpanBatchBuilder::default();
    let mut rejected = Rejected::default();
    let mut attributes = Vec::new();
    let mut scope_attributes = Vec::new();
    for resource_spans in &request.resource_spans {
        let view = resource_view(resource_spans.resource.as_ref(), rules);
        let mut streams = Streams::new(view.labels);
        for scope_spans in &resource_spans.scope_spans {
            let scope = scope_spans.scope.as_ref();
            scope_attributes.clear();
            if let Some(scope) = scope {
                push_attributes(&mut scope_attributes, &scope.attributes);
            }
            for span in &scope_spans.spans {
                let row = (|| -> Result<(), String> {
                    let trace_id =
                        optional_trace_id(&span.trace_id)?.ok_or("span has no trace id")?;
                    let span_id = optional_span_id(&span.span_id)?.ok_or("span has no span id")?;
                    let parent_span_id = optional_span_id(&span.parent_span_id)?;
                    let start_time = time_ns(span.start_time_unix_nano, "start time")?;
                    let end_time = time_ns(span.end_time_unix_nano, "end time")?;
                    let stream = streams.get(None)?;
                    attributes.clear();
                    push_attributes(&mut attributes, &span.attributes);
                    let events = span
                        .events
                        .iter()
                        .map(|e| {
                            let mut attrs = Vec::new();
                            push_attributes(&mut attrs, &e.attributes);
                            Ok(SpanEvent {
                                timestamp: time_ns(e.time_unix_nano, "event time")?,
                                name: &e.name,
                                attributes: attrs,
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    let links = span
                        .links
                        .iter()
                        .map(|l| {
                            let mut attrs = Vec::new();
                            push_attributes(&mut attrs, &l.attributes);
                            Ok(SpanLink {
                                trace_id: optional_trace_id(&l.trace_id)?,
                                span_id: optional_span_id(&l.span_id)?,
                                attributes: attrs,
                            })
                        })
                        .collect::<Result<Vec<_>, String>>()?;
                    let status = span.status.as_ref();
                    builder.append(
                        stream,
                        SpanFields {
                            trace_id,
                            span_id,
                            parent_span_id,
                            trace_state: &span.trace_state,
                            name: &span.name,
                            kind: span_kind(span.kind),
                            start_time,
                            end_time,
                            status_code: status_code(status.map(|s| s.code).unwrap_or(0)),
                            status_message: status.map(|s| s.message.as_str()).unwrap_or(""),
                            attributes: &[&view.attributes, &scope_attributes, &attributes],
                            events,
                            links,
                            scope_name: scope.map(|s| s.name.as_str()).filter(|n| !n.is_empty()),
                        },
                    );
                    Ok(())
                })();
                if let Err(reason) = row {
                    rejected.add(reason);
                }
            }
        }
    }
    Decoded {
        batch: builder.finish(),
        rejected,
    }
}

/// Counts records so partial-success messages can say "n of total".
pub fn log_record_count(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

pub fn span_count(request: &ExportTraceServiceRequest) -> usize {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    fn rules() -> IngestRules {
        IngestRules::default()
    }

    #[test]
    fn json_logs_with_string_and_number_ints_and_unknown_fields() {
        let body = br#"{"resourceLogs":[{"resource":{"attributes":[
            {"key":"service.name","value":{"stringValue":"checkout"}},
            {"key":"service.instance.id","value":{"stringValue":"i-1"}}]},
          "scopeLogs":[{"scope":{"name":"app"},"someFutureField":1,"logRecords":[
            {"timeUnixNano":"1700000000000000000","severityText":"WARN","body":{"stringValue":"slow trace_id=0af7651916cd43dd8448eb211c80319c"},
             "attributes":[{"key":"user","value":{"intValue":42}}]},
            {"timeUnixNano":1700000000000000001,"severityNumber":17,"body":{"stringValue":"boom"},
             "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}"#;
        let request = decode_logs_request(body, Encoding::Json).unwrap();
        let decoded = logs_to_batch(&request, &rules(), 0);
        assert_eq!(decoded.rejected.count, 0);
        let batch = decoded.batch;
        assert_eq!(batch.num_rows(), 2);
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        let trace = col("trace_id");
        let trace = trace.as_string::<i32>();
        assert_eq!(trace.value(0), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(trace.value(1), "5b8efff798038103d269b633813fc60c");
        let severity = col("severity");
        assert_eq!(severity.as_string::<i32>().value(0), "warn");
        assert_eq!(severity.as_string::<i32>().value(1), "error");
        assert_eq!(col("service_name").as_string::<i32>().value(0), "checkout");
        let attrs = col("attributes");
        let attrs = attrs.as_map();
        let keys = attrs.keys().as_string::<i32>();
        let first: Vec<_> = (0..attrs.value_length(0) as usize)
            .map(|i| keys.value(i))
            .collect();
        assert_eq!(first, ["service.instance.id", "user"]);
    }

    #[test]
    fn bad_ids_are_rejected_one_by_one() {
        let body = br#"{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[
            {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok","kind":2,
             "startTimeUnixNano":"10","endTimeUnixNano":"25"},
            {"traceId":"5b8efff798038103d269b633813fc6","spanId":"eee19b7ec3c1b174","name":"short"}]}]}]}"#;
        let request = decode_traces_request(body, Encoding::Json).unwrap();
        let decoded = traces_to_batch(&request, &rules());
        assert_eq!(decoded.batch.num_rows(), 1);
        assert_eq!(decoded.rejected.count, 1);
        let message = decoded.rejected.message(span_count(&request), "spans");
        assert_eq!(
            message,
            "rejected 1 of 2 spans: trace id must be 16 bytes, got 15"
        );
        let response: serde_json::Value =
            serde_json::from_slice(&traces_response(&decoded.rejected, 2, Encoding::Json)).unwrap();
        assert_eq!(response["partialSuccess"]["rejectedSpans"], "1");
        let labels = decoded.batch.column_by_name("service_name").unwrap();
        assert_eq!(labels.as_string::<i32>().value(0), "unknown_service");
    }

    #[test]
    fn long_lines_are_rejected() {
        let rules = IngestRules {
            max_line_bytes: 4,
            ..IngestRules::default()
        };
        let body = br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"12345"}},{"body":{"stringValue":"1234"}}]}]}]}"#;
        let request = decode_logs_request(body, Encoding::Json).unwrap();
        let decoded = logs_to_batch(&request, &rules, 7);
        assert_eq!(decoded.batch.num_rows(), 1);
        assert_eq!(decoded.rejected.reasons, ["log body too long: 5 > 4 bytes"]);
        let ts = decoded.batch.column_by_name("timestamp").unwrap();
        assert!(!ts.is_null(0));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf"),
            Some(Encoding::Protobuf)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }
}
