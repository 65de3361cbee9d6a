//! Loki push (`POST /loki/api/v1/push`): snappy-compressed `logproto.PushRequest` or
//! JSON → log rows.
//!
//! Stream labels become the stream's labels. A stream without `service_name` gets one
//! from the first of the labels Loki itself looks at (`service`, `app`, …, `job`), or
//! `unknown_service`, so every stream has a partition. Structured metadata is kept as
//! attributes; a `trace_id` / `traceID` (and `span_id` / `spanID`) entry in it fills the
//! row's trace and span IDs, and otherwise the line text is searched with the
//! configured trace-ID pattern.

use std::collections::HashMap;

use prost::Message;
use serde::Deserialize;

use super::{Decoded, IngestRules, Rejected, split_ids};
use crate::model::schema::{LogBatchBuilder, LogFields, Stream};
use crate::model::{LabelSet, Selector};
use crate::proto::logproto;

/// Labels Loki derives `service_name` from, in its order of preference.
const SERVICE_NAME_SOURCES: &[&str] = &[
    "service",
    "app",
    "application",
    "name",
    "app_kubernetes_io_name",
    "container",
    "container_name",
    "component",
    "workload",
    "job",
];
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid Loki push protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("invalid Loki push JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid Loki push: {0}")]
    Shape(String),
}

/// One pushed stream, whichever encoding it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct PushStream {
    /// The labels as sent: a selector string (protobuf) or pairs (JSON).
    pub labels: Result<Vec<(String, String)>, String>,
    pub entries: Vec<PushEntry>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PushEntry {
    /// Nanoseconds since the epoch.
    pub timestamp: Result<i64, String>,
    pub line: String,
    pub metadata: Vec<(String, String)>,
}

pub fn decode_protobuf(body: &[u8]) -> Result<Vec<PushStream>, DecodeError> {
    let request = logproto::PushRequest::decode(body)?;
    Ok(request
        .streams
        .into_iter()
        .map(|stream| PushStream {
            labels: parse_labels(&stream.labels),
            entries: stream
                .entries
                .into_iter()
                .map(|entry| PushEntry {
                    timestamp: entry
                        .timestamp
                        .ok_or_else(|| "entry without a timestamp".to_owned())
                        .and_then(|t| {
                            t.seconds
                                .checked_mul(1_000_000_000)
                                .and_then(|s| s.checked_add(i64::from(t.nanos)))
                                .ok_or_else(|| format!("timestamp {}s is out of range", t.seconds))
                        }),
                    line: entry.line,
                    metadata: entry
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                })
                .collect(),
        })
        .collect())
}

#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    #[serde(default)]
    stream: HashMap<String, String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

pub fn decode_json(body: &[u8]) -> Result<Vec<PushStream>, DecodeError> {
    let push: JsonPush = serde_json::from_slice(body)?;
    push.streams
        .into_iter()
        .map(|stream| {
            let entries = stream
                .values
                .into_iter()
                .map(json_entry)
                .collect::<Result<_, _>>()?;
            Ok(PushStream {
                labels: Ok(stream.stream.into_iter().collect()),
                entries,
            })
        })
        .collect()
}

/// `["<unix ns as a string>", "line", {optional structured metadata}]`.
fn json_entry(value: Vec<serde_json::Value>) -> Result<PushEntry, DecodeError> {
    use serde_json::Value;
    let shape = || {
        DecodeError::Shape(
            "each value must be [\"<unix epoch in nanoseconds>\", \"<log line>\"] with an optional third element of structured metadata".into(),
        )
    };
    let mut items = value.into_iter();
    let timestamp = match items.next() {
        Some(Value::String(s)) => s
            .parse::<i64>()
            .map_err(|_| format!("timestamp {s:?} is not an integer of nanoseconds")),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("timestamp {n} is not an integer of nanoseconds")),
        _ => return Err(shape()),
    };
    let Some(Value::String(line)) = items.next() else {
        return Err(shape());
    };
    let metadata = match items.next() {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect(),
        Some(_) => return Err(shape()),
    };
    if items.next().is_some() {
        return Err(shape());
    }
    Ok(PushEntry {
        timestamp,
        line,
        metadata,
    })
}

/// `{job="varlog", host="a"}` → pairs; only `=` matchers make sense in a label set.
fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    if !text.trim_start().starts_with('{') {
        return Err(format!(
            "stream labels {text:?} must be in braces: {{name=\"value\"}}"
        ));
    }
    let selector = Selector::parse(text).map_err(|e| format!("stream labels {text:?}: {e}"))?;
    selector
        .matchers
        .into_iter()
        .map(|m| {
            if m.op == crate::model::MatchOp::Equal {
                Ok((m.name, m.value))
            } else {
                Err(format!(
                    "stream labels {text:?}: only name=\"value\" pairs are allowed"
                ))
            }
        })
        .collect()
}

pub fn entry_count(streams: &[PushStream]) -> usize {
    streams.iter().map(|s| s.entries.len()).sum()
}

/// Builds log rows; entries that cannot be stored are refused one by one.
pub fn push_to_batch(streams: &[PushStream], rules: &IngestRules, now_ns: i64) -> Decoded {
    let mut builder = LogBatchBuilder::default();
    let mut rejected = Rejected::default();
    for stream in streams {
        let labels =
            match stream.labels.clone().and_then(|pairs| {
                LabelSet::new(with_service_name(pairs)).map_err(|e| e.to_string())
            }) {
                Ok(labels) => labels,
                Err(reason) => {
                    for _ in &stream.entries {
                        rejected.add(reason.clone());
                    }
                    continue;
                }
            };
        let stream_ref = Stream::new(labels);
        for entry in &stream.entries {
            let timestamp = match &entry.timestamp {
                Ok(t) => *t,
                Err(reason) => {
                    rejected.add(reason.clone());
                    continue;
                }
            };
            if entry.line.len() > rules.max_line_bytes {
                rejected.add(format!(
                    "log line too long: {} > {} bytes",
                    entry.line.len(),
                    rules.max_line_bytes
                ));
                continue;
            }
            let (trace_id, span_id, attributes) = split_ids(&entry.metadata);
            let trace_id = trace_id.or_else(|| rules.trace_id_in(&entry.line));
            builder.append(
                &stream_ref,
                LogFields {
                    timestamp,
                    observed_timestamp: Some(now_ns),
                    severity_number: None,
                    body: &entry.line,
                    trace_id,
                    span_id,
                    attributes: &[&attributes],
                    scope_name: None,
                },
            );
        }
    }
    Decoded {
        batch: builder.finish(),
        rejected,
    }
}

fn with_service_name(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let has = |name: &str, pairs: &[(String, String)]| {
        pairs
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    if has("service_name", &pairs).is_some() {
        return pairs;
    }
    let service = SERVICE_NAME_SOURCES
        .iter()
        .find_map(|source| has(source, &pairs))
        .unwrap_or_else(|| "unknown_service".into());
    pairs.retain(|(n, _)| n != "service_name");
    pairs.push(("service_name".into(), service));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn json_push_keeps_metadata_and_finds_trace_ids() {
        let body = br#"{"streams":[{"stream":{"app":"shop","level":"error"},"values":[
            ["1700000000000000000","payment failed",{"traceID":"0af7651916cd43dd8448eb211c80319c","user":"7"}],
            ["1700000000000000001","retry trace_id=4bf92f3577b34da6a3ce929d0e0e4736"]]}]}"#;
        let streams = decode_json(body).unwrap();
        assert_eq!(entry_count(&streams), 2);
        let decoded = push_to_batch(&streams, &IngestRules::default(), 5);
        assert_eq!(decoded.rejected.count, 0);
        let batch = decoded.batch;
        let traces = batch.column_by_name("trace_id").unwrap().as_string::<i32>();
        assert_eq!(traces.value(0), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(traces.value(1), "4bf92f3577b34da6a3ce929d0e0e4736");
        let service = batch
            .column_by_name("service_name")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(service.value(0), "shop");
        let attributes = batch.column_by_name("attributes").unwrap().as_map();
        let first = crate::storage::chunk::row_labels(attributes, 0);
        assert_eq!(first.get("user"), Some("7"));
    }

    #[test]
    fn bad_entries_are_refused_one_by_one() {
        let body = br#"{"streams":[
            {"stream":{"job":"a"},"values":[["soon","x"],["1","ok"]]},
            {"stream":{"bad-name":"a"},"values":[["1","y"]]}]}"#;
        let streams = decode_json(body).unwrap();
        let decoded = push_to_batch(&streams, &IngestRules::default(), 0);
        assert_eq!(decoded.batch.num_rows(), 1);
        assert_eq!(decoded.rejected.count, 2);
        assert!(decode_json(br#"{"streams":[{"stream":{},"values":[[1]]}]}"#).is_err());
    }

    #[test]
    fn protobuf_labels_are_a_selector_of_equalities() {
        assert_eq!(
            parse_labels(r#"{job="varlog", host="a"}"#).unwrap(),
            vec![("job".into(), "varlog".into()), ("host".into(), "a".into())]
        );
        assert!(parse_labels(r#"{job=~"x"}"#).is_err());
        assert!(parse_labels("job").is_err());
    }

    #[test]
    fn service_name_is_derived_like_loki() {
        let pairs = with_service_name(vec![
            ("job".into(), "varlog".into()),
            ("app".into(), "web".into()),
        ]);
        assert!(pairs.contains(&("service_name".into(), "web".into())));
        let pairs = with_service_name(vec![("host".into(), "a".into())]);
        assert!(pairs.contains(&("service_name".into(), "unknown_service".into())));
    }
}
