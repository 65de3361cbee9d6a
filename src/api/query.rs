//! Threadline's own query API under `/threadline/v1/`: SQL, label-matcher queries,
//! label names, values and series, and trace lookup.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use arrow::ipc::writer::StreamWriter;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::params::Params;
use super::{ApiError, AppState, ErrorCode, bundle, now_ns, parse_query, read_body, tenant};
use crate::logql::{self, Origin};
use crate::model::{Selector, Signal, StreamId, Tenant, TraceId};
use crate::query::logql::{Direction, Entry, LogRequest};
use crate::query::time::{HOUR_NS, format_time};
use crate::query::{QueryOutput, to_json_rows};

/// Largest SQL text accepted.
const MAX_SQL_BYTES: usize = 1 << 20;
pub const DEFAULT_LOG_LIMIT: usize = 100;
pub const MAX_LOG_LIMIT: usize = 10_000;

#[derive(Debug, Deserialize)]
pub struct SqlParams {
    format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Arrow,
}

pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

fn result_format(params: &SqlParams, headers: &HeaderMap) -> Result<Format, ApiError> {
    match params.format.as_deref() {
        Some("json") => return Ok(Format::Json),
        Some("csv") => return Ok(Format::Csv),
        Some("arrow") => return Ok(Format::Arrow),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown format {other:?}: use json, csv or arrow"
            )));
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains(ARROW_STREAM) {
        Format::Arrow
    } else if accept.contains("text/csv") {
        Format::Csv
    } else {
        Format::Json
    })
}

/// `POST /threadline/v1/sql`: the body is the SQL text, or JSON `{"query": "…"}`.
pub async fn sql(
    State(state): State<AppState>,
    Query(params): Query<SqlParams>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let format = result_format(&params, &headers)?;
    let body = read_body(body, MAX_SQL_BYTES).await?;
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("SQL must be UTF-8"))?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let text = if is_json {
        #[derive(Deserialize)]
        struct Body {
            query: String,
        }
        serde_json::from_str::<Body>(text)
            .map_err(|e| ApiError::bad_request(format!("expected {{\"query\": \"…\"}}: {e}")))?
            .query
    } else {
        text.to_owned()
    };
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("empty SQL query"));
    }
    let output = state.engine.sql(&tenant, &text).await?;
    render(output, format)
}

fn render(output: QueryOutput, format: Format) -> Result<Response, ApiError> {
    let internal = |e: arrow::error::ArrowError| ApiError::new(ErrorCode::Internal, e.to_string());
    let truncated = if output.truncated { "true" } else { "false" };
    match format {
        Format::Json => {
            let columns: Vec<_> = output
                .schema
                .fields()
                .iter()
                .map(|f| json!({ "name": f.name(), "type": f.data_type().to_string() }))
                .collect();
            let rows = to_json_rows(&output.batches)?;
            Ok(Json(json!({
                "columns": columns,
                "rows": rows,
                "truncated": output.truncated,
                "stats": output.stats.to_json(),
            }))
            .into_response())
        }
        Format::Csv => {
            let mut buf = Vec::new();
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut buf);
            for batch in &output.batches {
                writer.write(batch).map_err(internal)?;
            }
            drop(writer);
            if output.batches.is_empty() {
                let names: Vec<_> = output
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                buf = format!("{}\n", names.join(",")).into_bytes();
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv"),
                    (
                        header::HeaderName::from_static("x-threadline-truncated"),
                        truncated,
                    ),
                ],
                buf,
            )
                .into_response())
        }
        Format::Arrow => {
            let mut buf = Vec::new();
            let mut writer = StreamWriter::try_new(&mut buf, &output.schema).map_err(internal)?;
            for batch in &output.batches {
                writer.write(batch).map_err(internal)?;
            }
            writer.finish().map_err(internal)?;
            drop(writer);
            Ok((
                [
                    (header::CONTENT_TYPE, ARROW_STREAM),
                    (
                        header::HeaderName::from_static("x-threadline-truncated"),
                        truncated,
                    ),
                ],
                buf,
            )
                .into_response())
        }
    }
}

/// `start` and `end`, defaulting to the hour before now.
pub fn time_range(start: Option<&str>, end: Option<&str>) -> Result<(i64, i64), ApiError> {
    super::params::resolve_range(start, end, now_ns(), HOUR_NS)
}

/// `GET /threadline/v1/query`: a LogQL log query, newest first by default. Lines are
/// grouped by stream; each carries its trace context, structured metadata and parsed
/// labels.
pub async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let text = params.required("query")?.to_owned();
    let query = parse_query("", move || logql::parse_log(&text)).await?;
    let (start, end) = time_range(params.get("start"), params.get("end"))?;
    let limit = params.count("limit", DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT)?;
    let direction = params.direction()?;
    let result = state
        .engine
        .logs(
            &tenant,
            &LogRequest {
                query,
                // The end is included.
                start,
                end: end.saturating_add(1),
                limit,
                direction,
                categorize: true,
            },
        )
        .await?;
    let streams: Vec<serde_json::Value> = result
        .streams
        .iter()
        .map(|stream| {
            let labels: serde_json::Map<_, _> = stream
                .labels
                .iter()
                .map(|(k, v, _)| (k.to_owned(), serde_json::Value::from(v)))
                .collect();
            let entries: Vec<_> = stream.entries.iter().map(entry_json).collect();
            json!({ "labels": labels, "entries": entries })
        })
        .collect();
    Ok(Json(json!({
        "streams": streams,
        "stats": result.stats.to_json(),
    }))
    .into_response())
}

fn entry_json(entry: &Entry) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    out.insert("timestamp".into(), format_time(entry.timestamp_ns).into());
    out.insert("timestamp_ns".into(), entry.timestamp_ns.to_string().into());
    out.insert("line".into(), entry.line.clone().into());
    let mut metadata = serde_json::Map::new();
    let mut parsed = serde_json::Map::new();
    for (name, value, origin) in entry.labels.iter() {
        match (origin, name) {
            (Origin::Metadata, "trace_id" | "span_id") => {
                out.insert(name.into(), value.into());
            }
            (Origin::Metadata, _) => {
                metadata.insert(name.into(), value.into());
            }
            _ => {
                parsed.insert(name.into(), value.into());
            }
        }
    }
    if !metadata.is_empty() {
        out.insert("structured_metadata".into(), metadata.into());
    }
    if !parsed.is_empty() {
        out.insert("parsed".into(), parsed.into());
    }
    serde_json::Value::Object(out)
}

#[derive(Debug, Deserialize)]
pub struct LabelParams {
    start: Option<String>,
    end: Option<String>,
    /// A selector narrowing the streams considered (`query` or `match`).
    query: Option<String>,
    #[serde(rename = "match")]
    matcher: Option<String>,
    signal: Option<String>,
}

/// The streams the parameters select, per signal.
fn selected_streams(
    state: &AppState,
    tenant: &Tenant,
    params: &LabelParams,
) -> Result<Vec<(Signal, HashSet<StreamId>)>, ApiError> {
    let signals = match params.signal.as_deref() {
        None => Signal::ALL.to_vec(),
        Some(s) => vec![s.parse::<Signal>().map_err(ApiError::bad_request)?],
    };
    let selector = match params.query.as_deref().or(params.matcher.as_deref()) {
        Some(text) => {
            Some(Selector::parse(text).map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
        None => None,
    };
    let range = match (&params.start, &params.end) {
        (None, None) => None,
        (start, end) => Some(time_range(start.as_deref(), end.as_deref())?),
    };
    let mut out = Vec::new();
    for signal in signals {
        let mut streams = state.db.streams_in_range(tenant, signal, range);
        if let Some(selector) = &selector {
            let catalog = state.db.read_catalog();
            let chosen = catalog
                .table(tenant, signal)
                .map(|t| t.labels.select(selector))
                .unwrap_or_default();
            streams.retain(|id| chosen.contains(id));
        }
        out.push((signal, streams));
    }
    Ok(out)
}

/// `GET /threadline/v1/labels`
pub async fn labels(
    State(state): State<AppState>,
    Query(params): Query<LabelParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let mut names = BTreeSet::new();
    for (signal, streams) in selected_streams(&state, &tenant, &params)? {
        let catalog = state.db.read_catalog();
        if let Some(table) = catalog.table(&tenant, signal) {
            names.extend(table.labels.names(Some(&streams)));
        }
    }
    Ok(Json(json!({ "labels": names })).into_response())
}

/// `GET /threadline/v1/label/{name}/values`
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(params): Query<LabelParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let mut values = BTreeSet::new();
    for (signal, streams) in selected_streams(&state, &tenant, &params)? {
        let catalog = state.db.read_catalog();
        if let Some(table) = catalog.table(&tenant, signal) {
            values.extend(table.labels.values(&name, Some(&streams)));
        }
    }
    Ok(Json(json!({ "label": name, "values": values })).into_response())
}

/// `GET /threadline/v1/series`: the label sets of the selected streams.
pub async fn series(
    State(state): State<AppState>,
    Query(params): Query<LabelParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let mut series = Vec::new();
    for (signal, streams) in selected_streams(&state, &tenant, &params)? {
        let catalog = state.db.read_catalog();
        let Some(table) = catalog.table(&tenant, signal) else {
            continue;
        };
        let mut sets: Vec<_> = streams
            .iter()
            .filter_map(|id| table.labels.labels(*id).map(|l| (*id, l)))
            .collect();
        sets.sort_by(|a, b| a.1.cmp(b.1));
        for (id, labels) in sets {
            let labels: BTreeMap<_, _> = labels.iter().collect();
            series.push(
                json!({ "signal": signal.as_str(), "stream_id": id.to_string(), "labels": labels }),
            );
        }
    }
    Ok(Json(json!({ "series": series })).into_response())
}

#[derive(Debug, Deserialize)]
pub struct TraceParams {
    format: Option<String>,
}

/// `GET /threadline/v1/traces/{trace_id}`: no time range needed. `format=json` (the
/// default) is the trace document; `otlp` and `parquet` export the trace bundle.
pub async fn trace(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    Query(params): Query<TraceParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let id = TraceId::from_hex(&trace_id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "status": "error", "error": format!("trace {id} not found") })),
        )
            .into_response()
    };
    let format = params.format.as_deref().unwrap_or("json");
    if matches!(format, "otlp" | "parquet") {
        let rows = state.engine.trace_bundle(&tenant, id).await?;
        if rows
            .iter()
            .all(|(_, b)| b.iter().all(|b| b.num_rows() == 0))
        {
            return Ok(not_found());
        }
        if format == "otlp" {
            return Ok(
                Json(bundle::otlp_json(&rows, &state.ingest.label_attributes)?).into_response(),
            );
        }
        let archive = bundle::parquet_tar(&rows, now_ns() / 1_000_000_000)?;
        let disposition = format!("attachment; filename=\"trace-{id}.tar\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "application/x-tar".to_owned()),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            archive,
        )
            .into_response());
    }
    if format != "json" {
        return Err(ApiError::bad_request(format!(
            "unknown format {format:?}: use json, otlp or parquet"
        )));
    }
    match state.engine.trace(&tenant, id).await? {
        Some(doc) => {
            let stats = doc.stats.to_json();
            let mut value = serde_json::to_value(&doc)
                .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
            value["stats"] = stats;
            Ok(Json(value).into_response())
        }
        None => Ok(not_found()),
    }
}

#[derive(Debug, Deserialize)]
pub struct BehindParams {
    logs: Option<String>,
    exemplars: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<String>,
}

/// Most log lines read to find the traces behind a log query.
const MAX_LINES_BEHIND: usize = 10_000;

/// `GET /threadline/v1/traces?logs=<LogQL>` or `?exemplars=<PromQL>`: the traces
/// behind a log query's lines or a metric query's exemplars, most recent first, each
/// with how often it appears.
pub async fn traces_behind(
    State(state): State<AppState>,
    Query(params): Query<BehindParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let (start, end) = time_range(params.start.as_deref(), params.end.as_deref())?;
    let limit = match params.limit.as_deref() {
        None => 20,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be a number from 1 to 1000"))?,
    };
    // trace ID -> (count, first, last)
    let mut found: std::collections::HashMap<String, (u64, i64, i64)> = Default::default();
    let mut note = |trace: &str, time: i64| {
        let entry = found.entry(trace.to_owned()).or_insert((0, time, time));
        entry.0 += 1;
        entry.1 = entry.1.min(time);
        entry.2 = entry.2.max(time);
    };
    match (params.logs, params.exemplars) {
        (Some(text), None) => {
            let query = parse_query("", move || logql::parse_log(&text)).await?;
            let request = LogRequest {
                query,
                start,
                end: end.saturating_add(1),
                limit: MAX_LINES_BEHIND,
                direction: Direction::Backward,
                categorize: true,
            };
            for stream in state.engine.logs(&tenant, &request).await?.streams {
                for entry in &stream.entries {
                    if let Some(trace) = entry.labels.get("trace_id") {
                        note(trace, entry.timestamp_ns);
                    }
                }
            }
        }
        (None, Some(text)) => {
            let selectors = parse_query("", move || crate::query::promql::selectors(&text)).await?;
            let result = state
                .engine
                .exemplars(&tenant, &selectors, start, end)
                .await?;
            for series in &result.series {
                for exemplar in &series.exemplars {
                    if let Some(trace) = exemplar.labels.get("trace_id") {
                        note(trace, exemplar.timestamp);
                    }
                }
            }
        }
        _ => {
            return Err(ApiError::bad_request(
                "give one of logs (a LogQL log query) or exemplars (a PromQL query)",
            ));
        }
    }
    let mut traces: Vec<_> = found.into_iter().collect();
    traces.sort_by(|a, b| b.1.2.cmp(&a.1.2).then(a.0.cmp(&b.0)));
    traces.truncate(limit);
    let traces: Vec<_> = traces
        .into_iter()
        .map(|(trace_id, (count, first, last))| {
            json!({
                "trace_id": trace_id,
                "count": count,
                "first_time": format_time(first),
                "last_time": format_time(last),
            })
        })
        .collect();
    Ok(Json(json!({ "traces": traces })).into_response())
}
