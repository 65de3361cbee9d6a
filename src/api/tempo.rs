//! Tempo's API, as Grafana's Tempo data source calls it: trace by ID (v1 and v2,
//! protobuf or JSON by `Accept`), TraceQL search, tag names and values (v1 and v2),
//! `echo` and `status/buildinfo`. Trace lookups need no time range: the trace-ID
//! index finds the chunks.

use std::collections::BTreeSet;

use arrow::array::AsArray;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use datafusion::functions_nested::expr_fn::map_keys;
use datafusion::logical_expr::col;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use serde_json::{Value, json};

use super::params::Params;
use super::{ApiError, AppState, ErrorCode, now_ns, parse_query, tenant};
use crate::ingest::label_name_for_attribute;
use crate::model::{Signal, Tenant, TraceId};
use crate::query::QueryEngine;
use crate::query::logql::ts_literal;
use crate::query::time::HOUR_NS;
use crate::query::traceql::SearchRequest;
use crate::traceql::{self, INTRINSICS, KINDS, STATUSES};

/// The Tempo API version these endpoints follow, reported by `status/buildinfo`.
pub const TEMPO_API_VERSION: &str = "2.8.0";
const PROTOBUF: &str = "application/protobuf";
/// Most tag names or values returned.
const MAX_TAG_RESULTS: usize = 5_000;

/// Tempo's v2 trace response: the trace, and whether it is complete.
#[derive(Clone, PartialEq, Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(PROTOBUF) || v.contains("application/x-protobuf"))
}

/// A trace ID as Tempo takes it: up to 32 hex digits, left-padded with zeros.
fn trace_id(text: &str) -> Result<TraceId, ApiError> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "invalid trace ID {text:?}: expected up to 32 hex digits"
        )));
    }
    TraceId::from_hex(&format!("{text:0>32}").to_ascii_lowercase())
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn lookup(state: &AppState, headers: &HeaderMap, id: &str) -> Result<TracesData, ApiError> {
    let tenant = tenant(headers)?;
    let id = trace_id(id)?;
    let batches = state.engine.trace_spans(&tenant, id).await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("trace not found: {id}"),
        ));
    }
    Ok(crate::query::otlp::traces_data(
        &batches,
        &state.ingest.label_attributes,
    )?)
}

fn protobuf(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, PROTOBUF)], bytes).into_response()
}

fn json_value<T: serde::Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
}

/// `GET /api/traces/{id}`: `tempopb.Trace` (wire-identical to OTLP `TracesData`), or
/// JSON `{"batches": [ResourceSpans…]}`.
pub async fn trace_v1(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let trace = lookup(&state, &headers, &id).await?;
    if wants_protobuf(&headers) {
        return Ok(protobuf(trace.encode_to_vec()));
    }
    Ok(axum::Json(json!({ "batches": json_value(&trace.resource_spans)? })).into_response())
}

/// `GET /api/v2/traces/{id}`: `tempopb.TraceByIDResponse`, or JSON
/// `{"trace": {"resourceSpans": […]}}`.
pub async fn trace_v2(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let trace = lookup(&state, &headers, &id).await?;
    if wants_protobuf(&headers) {
        let response = TraceByIdResponse { trace: Some(trace) };
        return Ok(protobuf(response.encode_to_vec()));
    }
    Ok(axum::Json(json!({ "trace": json_value(&trace)? })).into_response())
}

pub async fn echo() -> &'static str {
    "echo"
}

/// `GET /api/status/buildinfo`
pub async fn buildinfo() -> Response {
    axum::Json(json!({
        "version": TEMPO_API_VERSION,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "threadline": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

/// Tempo's legacy `tags` parameter (`k=v k2="v 2"`) as TraceQL conditions.
fn legacy_tags(text: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or_else(|| {
            ApiError::bad_request(format!("tags: expected key=value in {rest:?}"))
        })?;
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| ApiError::bad_request("tags: unterminated quoted value"))?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            after.split_once(' ').unwrap_or((after, ""))
        };
        let key = key.trim();
        let field = match key {
            "name" | "status" | "kind" => key.to_owned(),
            "service.name" => "resource.service.name".into(),
            _ => format!(".{key}"),
        };
        let literal = if matches!(key, "status" | "kind") {
            value.to_owned()
        } else {
            serde_json::to_string(value).unwrap_or_default()
        };
        out.push(format!("{field} = {literal}"));
        rest = after.trim_start();
    }
    Ok(out)
}

/// `GET /api/search?q=<TraceQL>&tags=&minDuration=&maxDuration=&limit=&start=&end=&spss=`
pub async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let mut text = params.get("q").unwrap_or("{}").to_owned();
    if let Some(tags) = params.get("tags") {
        let conditions = legacy_tags(tags)?;
        if !conditions.is_empty() {
            text = format!("({text}) && {{ {} }}", conditions.join(" && "));
        }
    }
    let search = parse_query("invalid TraceQL query: ", move || traceql::parse(&text)).await?;
    let (start, end) = params.range(now_ns(), HOUR_NS)?;
    let duration = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|t| {
                crate::logql::parse_duration(t)
                    .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
            })
            .transpose()
    };
    let request = SearchRequest {
        search,
        start,
        end,
        limit: params.count("limit", 20, 10_000)?,
        spans_per_set: params.count("spss", 3, 1_000)?,
        min_duration: duration("minDuration")?,
        max_duration: duration("maxDuration")?,
    };
    let result = state
        .engine
        .search_traces(&tenant, &request, &state.ingest.label_attributes)
        .await?;
    let traces: Vec<Value> = result
        .traces
        .iter()
        .map(|t| {
            let spans: Vec<Value> = t
                .spans
                .iter()
                .map(|s| {
                    let mut attributes = Vec::new();
                    if let Some(service) = &s.service {
                        attributes.push(json!({ "key": "service.name", "value": { "stringValue": service } }));
                    }
                    json!({
                        "spanID": s.span_id,
                        "name": s.name,
                        "startTimeUnixNano": s.start_ns.to_string(),
                        "durationNanos": s.duration_ns.to_string(),
                        "attributes": attributes,
                    })
                })
                .collect();
            let spanset = json!({ "spans": spans, "matched": t.matched });
            let mut trace = json!({
                "traceID": t.trace_id,
                "rootServiceName": t.root_service.as_deref().unwrap_or("<root span not yet received>"),
                "startTimeUnixNano": t.start_ns.to_string(),
                "spanSet": spanset,
                "spanSets": [spanset],
            });
            if let Some(name) = &t.root_name {
                trace["rootTraceName"] = json!(name);
            }
            let millis = t.duration_ns / 1_000_000;
            if millis > 0 {
                trace["durationMs"] = json!(millis.min(u32::MAX as i64));
            }
            trace
        })
        .collect();
    use std::sync::atomic::Ordering::Relaxed;
    Ok(axum::Json(json!({
        "traces": traces,
        "metrics": {
            "inspectedBytes": result.stats.chunk_bytes.load(Relaxed).to_string(),
            "totalBlocks": result.stats.chunks_selected.load(Relaxed),
            "completedJobs": 1,
            "totalJobs": 1,
        },
    }))
    .into_response())
}

/// Resource attribute names that are stream labels, as their attribute names.
fn resource_tags(state: &AppState, tenant: &Tenant, range: (i64, i64)) -> BTreeSet<String> {
    let ids = state
        .db
        .streams_in_range(tenant, Signal::Spans, Some(range));
    let catalog = state.db.read_catalog();
    let labels = catalog
        .table(tenant, Signal::Spans)
        .map(|t| t.labels.names(Some(&ids)))
        .unwrap_or_default();
    labels
        .into_iter()
        .map(|label| {
            state
                .ingest
                .label_attributes
                .iter()
                .find(|a| label_name_for_attribute(a) == label)
                .cloned()
                .unwrap_or(label)
        })
        .collect()
}

/// What to list the distinct values of, over the spans of a time range.
enum SpanValues<'a> {
    /// The attribute names.
    AttributeKeys,
    /// A SQL expression over `spans`.
    Sql(&'a str),
}

/// The distinct non-empty values, at most `MAX_TAG_RESULTS`.
async fn distinct_span_values(
    engine: &QueryEngine,
    tenant: &Tenant,
    range: (i64, i64),
    values: SpanValues<'_>,
) -> Result<BTreeSet<String>, ApiError> {
    Ok(engine
        .counted(tenant, async {
            engine.check_range(tenant, range)?;
            let ctx = engine.session(tenant, Default::default())?;
            let df = ctx
                .table(Signal::Spans.as_str())
                .await?
                .filter(col("start_time").between(ts_literal(range.0), ts_literal(range.1)))?;
            let df = match values {
                SpanValues::AttributeKeys => df
                    .select(vec![map_keys(col("attributes")).alias("value")])?
                    .unnest_columns(&["value"])?,
                SpanValues::Sql(sql) => {
                    let value = df.parse_sql_expr(sql)?;
                    df.select(vec![value.alias("value")])?
                }
            };
            let df = df
                .filter(col("value").is_not_null())?
                .aggregate(vec![col("value")], vec![])?
                .limit(0, Some(MAX_TAG_RESULTS))?;
            let (_, batches) = engine.collect(df).await?;
            let mut out = BTreeSet::new();
            for batch in &batches {
                if let Some(array) = batch.column(0).as_string_opt::<i32>() {
                    out.extend(
                        array
                            .iter()
                            .flatten()
                            .filter(|v| !v.is_empty())
                            .map(str::to_owned),
                    );
                }
            }
            Ok(out)
        })
        .await?)
}

/// `GET /api/search/tags`: every tag name.
pub async fn tags_v1(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let range = params.range(now_ns(), HOUR_NS)?;
    let mut names = resource_tags(&state, &tenant, range);
    names.extend(
        distinct_span_values(&state.engine, &tenant, range, SpanValues::AttributeKeys).await?,
    );
    Ok(axum::Json(json!({ "tagNames": names, "metrics": {} })).into_response())
}

/// `GET /api/v2/search/tags`: tag names by scope.
pub async fn tags_v2(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let range = params.range(now_ns(), HOUR_NS)?;
    let scope = params.get("scope").unwrap_or("all");
    let mut scopes = Vec::new();
    if matches!(scope, "all" | "resource") {
        scopes.push(json!({ "name": "resource", "tags": resource_tags(&state, &tenant, range) }));
    }
    if matches!(scope, "all" | "span") {
        scopes.push(
            json!({ "name": "span", "tags": distinct_span_values(&state.engine, &tenant, range, SpanValues::AttributeKeys).await? }),
        );
    }
    if matches!(scope, "all" | "intrinsic") {
        scopes.push(json!({ "name": "intrinsic", "tags": INTRINSICS }));
    }
    if scopes.is_empty() {
        return Err(ApiError::bad_request(format!(
            "unknown scope {scope:?}: use resource, span, intrinsic or all"
        )));
    }
    Ok(axum::Json(json!({ "scopes": scopes, "metrics": {} })).into_response())
}

/// The values of a tag, each with its TraceQL type (`keyword` for status and kind,
/// which TraceQL writes unquoted).
async fn tag_values(
    state: &AppState,
    tenant: &Tenant,
    tag: &str,
    range: (i64, i64),
) -> Result<Vec<(&'static str, String)>, ApiError> {
    let keywords = |values: &[&str]| values.iter().map(|v| ("keyword", v.to_string())).collect();
    let (scope, name) = match tag.split_once('.') {
        Some(("span", rest)) => ("span", rest),
        Some(("resource", rest)) => ("resource", rest),
        Some(("", rest)) => ("any", rest),
        _ => ("intrinsic", tag),
    };
    let column = match (scope, name) {
        ("intrinsic", "status") => return Ok(keywords(&STATUSES)),
        ("intrinsic", "kind") => return Ok(keywords(&KINDS)),
        ("intrinsic", "name" | "rootName") => "name".to_owned(),
        ("intrinsic", "rootServiceName") | ("resource" | "any", "service.name") => {
            "service_name".to_owned()
        }
        ("intrinsic", "statusMessage") => "status_message".to_owned(),
        ("intrinsic", other) if !other.contains('.') && !other.is_empty() => {
            if INTRINSICS.contains(&other) {
                return Ok(Vec::new());
            }
            format!("attributes['{}']", other.replace('\'', "''"))
        }
        (_, attribute) => {
            let label = state
                .ingest
                .label_attributes
                .iter()
                .any(|a| a == attribute)
                .then(|| label_name_for_attribute(attribute));
            match label {
                Some(label) if scope != "span" => format!("labels['{label}']"),
                _ => format!("attributes['{}']", attribute.replace('\'', "''")),
            }
        }
    };
    let values =
        distinct_span_values(&state.engine, tenant, range, SpanValues::Sql(&column)).await?;
    Ok(values.into_iter().map(|v| ("string", v)).collect())
}

/// `GET /api/search/tag/{tag}/values`: plain strings.
pub async fn tag_values_v1(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let range = params.range(now_ns(), HOUR_NS)?;
    // v1 names are unscoped: an attribute of a span or its resource.
    let scoped = if tag.contains('.') || INTRINSICS.contains(&tag.as_str()) {
        tag.clone()
    } else {
        format!(".{tag}")
    };
    let values: Vec<String> = tag_values(&state, &tenant, &scoped, range)
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    Ok(axum::Json(json!({ "tagValues": values, "metrics": {} })).into_response())
}

/// `GET /api/v2/search/tag/{tag}/values`: typed values of a scoped tag.
pub async fn tag_values_v2(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let range = params.range(now_ns(), HOUR_NS)?;
    let values: Vec<Value> = tag_values(&state, &tenant, &tag, range)
        .await?
        .into_iter()
        .map(|(kind, value)| json!({ "type": kind, "value": value }))
        .collect();
    Ok(axum::Json(json!({ "tagValues": values, "metrics": {} })).into_response())
}
