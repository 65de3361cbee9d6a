//! Stored rows back to OTLP: `spans` as `TracesData` and `logs` as `LogsData`, one
//! resource per stream (its labels under their attribute names, `service_name` as
//! `service.name`) and one scope per scope name. Attributes were stored as text and
//! come back as strings; resource attributes that were not labels were stored with the
//! record's and come back as record attributes.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, StructArray};
use arrow::datatypes::{Int32Type, TimestampNanosecondType, UInt64Type};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, LogsData, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, TracesData};

use super::{QueryError, Result, columns};
use crate::ingest::label_name_for_attribute;
use crate::model::{SpanId, TraceId};

/// A stream's resource: its labels under the attribute names they came from.
fn resource(labels: &arrow::array::MapArray, row: usize, label_attributes: &[String]) -> Resource {
    let attributes = map_pairs(labels, row)
        .into_iter()
        .map(|(label, value)| {
            let name = label_attributes
                .iter()
                .find(|a| label_name_for_attribute(a) == label)
                .cloned()
                .unwrap_or(label);
            key_value(&name, value)
        })
        .collect();
    Resource {
        attributes,
        ..Default::default()
    }
}

fn scope(name: String) -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name,
        ..Default::default()
    })
}

/// Rebuilds `LogsData` from log rows.
pub fn logs_data(batches: &[RecordBatch], label_attributes: &[String]) -> Result<LogsData> {
    let mut resources: Vec<ResourceLogs> = Vec::new();
    let mut by_stream: HashMap<u64, usize> = HashMap::new();
    for batch in batches {
        let times = columns::primitive::<TimestampNanosecondType>(batch, "timestamp")?;
        let observed = columns::primitive::<TimestampNanosecondType>(batch, "observed_timestamp")?;
        let streams = columns::primitive::<UInt64Type>(batch, "stream_id")?;
        let severities = columns::string(batch, "severity")?;
        let numbers = columns::primitive::<Int32Type>(batch, "severity_number")?;
        let labels = columns::map(batch, "labels")?;
        let bodies = columns::string(batch, "body")?;
        let trace_ids = columns::string(batch, "trace_id")?;
        let span_ids = columns::string(batch, "span_id")?;
        let attributes = columns::map(batch, "attributes")?;
        let scopes = columns::string(batch, "scope_name")?;
        for row in 0..batch.num_rows() {
            let slot = *by_stream.entry(streams.value(row)).or_insert_with(|| {
                resources.push(ResourceLogs {
                    resource: Some(resource(labels, row, label_attributes)),
                    ..Default::default()
                });
                resources.len() - 1
            });
            let scope_name = optional(scopes, row).unwrap_or_default();
            let scope_logs = &mut resources[slot].scope_logs;
            let at = match scope_logs
                .iter()
                .position(|s| s.scope.as_ref().map(|s| s.name.as_str()) == Some(&scope_name))
            {
                Some(i) => i,
                None => {
                    scope_logs.push(ScopeLogs {
                        scope: scope(scope_name),
                        ..Default::default()
                    });
                    scope_logs.len() - 1
                }
            };
            scope_logs[at].log_records.push(LogRecord {
                time_unix_nano: times.value(row).max(0) as u64,
                observed_time_unix_nano: if observed.is_valid(row) {
                    observed.value(row).max(0) as u64
                } else {
                    0
                },
                severity_number: if numbers.is_valid(row) {
                    numbers.value(row)
                } else {
                    0
                },
                severity_text: optional(severities, row).unwrap_or_default(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(bodies.value(row).to_owned())),
                }),
                attributes: map_pairs(attributes, row)
                    .into_iter()
                    .map(|(k, v)| key_value(&k, v))
                    .collect(),
                trace_id: match optional(trace_ids, row) {
                    Some(t) => trace_bytes(&t)?,
                    None => Vec::new(),
                },
                span_id: match optional(span_ids, row) {
                    Some(s) => span_bytes(&s)?,
                    None => Vec::new(),
                },
                ..Default::default()
            });
        }
    }
    Ok(LogsData {
        resource_logs: resources,
    })
}

/// Rebuilds `TracesData` from span rows. `label_attributes` maps stream labels back to
/// the resource attribute names they came from.
pub fn traces_data(batches: &[RecordBatch], label_attributes: &[String]) -> Result<TracesData> {
    let mut resources: Vec<ResourceSpans> = Vec::new();
    let mut by_stream: HashMap<u64, usize> = HashMap::new();
    for batch in batches {
        let trace_ids = columns::string(batch, "trace_id")?;
        let span_ids = columns::string(batch, "span_id")?;
        let parents = columns::string(batch, "parent_span_id")?;
        let states = columns::string(batch, "trace_state")?;
        let names = columns::string(batch, "name")?;
        let kinds = columns::string(batch, "kind")?;
        let starts = columns::primitive::<TimestampNanosecondType>(batch, "start_time")?;
        let ends = columns::primitive::<TimestampNanosecondType>(batch, "end_time")?;
        let statuses = columns::string(batch, "status_code")?;
        let messages = columns::string(batch, "status_message")?;
        let streams = columns::primitive::<UInt64Type>(batch, "stream_id")?;
        let labels = columns::map(batch, "labels")?;
        let attributes = columns::map(batch, "attributes")?;
        let events = columns::list(batch, "events")?;
        let links = columns::list(batch, "links")?;
        let scopes = columns::string(batch, "scope_name")?;
        for row in 0..batch.num_rows() {
            let stream = streams.value(row);
            let slot = *by_stream.entry(stream).or_insert_with(|| {
                resources.push(ResourceSpans {
                    resource: Some(resource(labels, row, label_attributes)),
                    ..Default::default()
                });
                resources.len() - 1
            });
            let scope_name = optional(scopes, row).unwrap_or_default();
            let scope_spans = &mut resources[slot].scope_spans;
            let scope_slot = match scope_spans
                .iter()
                .position(|s| s.scope.as_ref().map(|s| s.name.as_str()) == Some(&scope_name))
            {
                Some(i) => i,
                None => {
                    scope_spans.push(ScopeSpans {
                        scope: scope(scope_name),
                        ..Default::default()
                    });
                    scope_spans.len() - 1
                }
            };
            let span = Span {
                trace_id: trace_bytes(trace_ids.value(row))?,
                span_id: span_bytes(span_ids.value(row))?,
                parent_span_id: match optional(parents, row) {
                    Some(p) if !p.is_empty() => span_bytes(&p)?,
                    _ => Vec::new(),
                },
                trace_state: optional(states, row).unwrap_or_default(),
                name: names.value(row).to_owned(),
                kind: kind_code(kinds.value(row)),
                start_time_unix_nano: starts.value(row).max(0) as u64,
                end_time_unix_nano: ends.value(row).max(0) as u64,
                attributes: map_pairs(attributes, row)
                    .into_iter()
                    .map(|(k, v)| key_value(&k, v))
                    .collect(),
                events: span_events(events, row)?,
                links: span_links(links, row)?,
                status: Some(Status {
                    message: optional(messages, row).unwrap_or_default(),
                    code: status_code(statuses.value(row)) as i32,
                }),
                ..Default::default()
            };
            scope_spans[scope_slot].spans.push(span);
        }
    }
    Ok(TracesData {
        resource_spans: resources,
    })
}

fn optional(array: &StringArray, row: usize) -> Option<String> {
    columns::optional(array, row)
}

fn key_value(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

fn map_pairs(map: &arrow::array::MapArray, row: usize) -> Vec<(String, String)> {
    if map.is_null(row) {
        return Vec::new();
    }
    let entries = map.value(row);
    let keys = entries.column(0).as_string::<i32>();
    let values = entries.column(1).as_string::<i32>();
    (0..entries.len())
        .map(|i| (keys.value(i).to_owned(), values.value(i).to_owned()))
        .collect()
}

fn struct_rows(list: &arrow::array::ListArray, row: usize) -> Option<StructArray> {
    if list.is_null(row) {
        return None;
    }
    list.value(row).as_struct_opt().cloned()
}

fn bad_row(what: &str) -> QueryError {
    QueryError::Execution(format!("stored span has a malformed {what}"))
}

fn span_events(list: &arrow::array::ListArray, row: usize) -> Result<Vec<Event>> {
    let Some(events) = struct_rows(list, row) else {
        return Ok(Vec::new());
    };
    let times = events
        .column_by_name("timestamp")
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .ok_or_else(|| bad_row("event time"))?;
    let names = events
        .column_by_name("name")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| bad_row("event name"))?;
    let attributes = events
        .column_by_name("attributes")
        .and_then(|c| c.as_map_opt())
        .ok_or_else(|| bad_row("event attributes"))?;
    Ok((0..events.len())
        .map(|i| Event {
            time_unix_nano: times.value(i).max(0) as u64,
            name: optional(names, i).unwrap_or_default(),
            attributes: map_pairs(attributes, i)
                .into_iter()
                .map(|(k, v)| key_value(&k, v))
                .collect(),
            ..Default::default()
        })
        .collect())
}

fn span_links(list: &arrow::array::ListArray, row: usize) -> Result<Vec<Link>> {
    let Some(links) = struct_rows(list, row) else {
        return Ok(Vec::new());
    };
    let trace_ids = links
        .column_by_name("trace_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| bad_row("link trace"))?;
    let span_ids = links
        .column_by_name("span_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| bad_row("link span"))?;
    let attributes = links
        .column_by_name("attributes")
        .and_then(|c| c.as_map_opt())
        .ok_or_else(|| bad_row("link attributes"))?;
    (0..links.len())
        .map(|i| {
            Ok(Link {
                trace_id: match optional(trace_ids, i) {
                    Some(t) => trace_bytes(&t)?,
                    None => Vec::new(),
                },
                span_id: match optional(span_ids, i) {
                    Some(s) => span_bytes(&s)?,
                    None => Vec::new(),
                },
                attributes: map_pairs(attributes, i)
                    .into_iter()
                    .map(|(k, v)| key_value(&k, v))
                    .collect(),
                ..Default::default()
            })
        })
        .collect()
}

fn trace_bytes(hex: &str) -> Result<Vec<u8>> {
    TraceId::from_hex(hex)
        .map(|id| id.as_bytes().to_vec())
        .map_err(|_| bad_row("trace ID"))
}

fn span_bytes(hex: &str) -> Result<Vec<u8>> {
    SpanId::from_hex(hex)
        .map(|id| id.as_bytes().to_vec())
        .map_err(|_| bad_row("span ID"))
}

fn kind_code(kind: &str) -> i32 {
    match kind {
        "internal" => 1,
        "server" => 2,
        "client" => 3,
        "producer" => 4,
        "consumer" => 5,
        _ => 0,
    }
}

fn status_code(code: &str) -> StatusCode {
    match code {
        "ok" => StatusCode::Ok,
        "error" => StatusCode::Error,
        _ => StatusCode::Unset,
    }
}
