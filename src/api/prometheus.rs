//! Prometheus-compatible endpoints: remote write (1.0 and 2.0), and the read API
//! Grafana's Prometheus data source calls — instant and range PromQL queries,
//! exemplars, labels, series, metadata and build information.
//!
//! Remote write answers 204. Bad input is 400, which senders never retry; 413 and 415
//! for bodies too large or of the wrong type; 503 with `Retry-After` only when the
//! write could not be made durable, the one case where a retry can succeed. When some
//! series are invalid (no metric name, bad labels) the valid ones are written and the
//! answer is 400 naming what was refused: the sender drops a 400 batch, so keeping
//! the valid part loses the least. 2.0 responses carry the
//! `X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written` counts.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::params::Params;
use super::{
    ApiError, AppState, ErrorCode, content_type, labels_json, metric_batches, now_ns, parse_query,
    read_decoded_body, store, success, tenant,
};
use crate::ingest::ContentEncoding;
use crate::ingest::remote_write::{self, Counts, Version};
use crate::model::{LabelSet, Selector, TraceId};
use crate::query::exemplars::SeriesExemplars;
use crate::query::promql;
use crate::query::series::Value as SeriesValue;
use crate::query::time::{format_time, parse_time};

pub async fn remote_write(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let version = Version::from_content_type(content_type(&headers)).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "unsupported content type {:?}: send application/x-protobuf (remote write 1.0) or application/x-protobuf;proto=io.prometheus.write.v2.Request",
                content_type(&headers).unwrap_or_default()
            ),
        )
    })?;
    // 2.0 senders read what was written from the headers, on errors too.
    let mut written = Counts::default();
    let mut response = match write(&state, &headers, body, version, &mut written).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    if version == Version::V2 {
        written_headers(response.headers_mut(), written);
    }
    Ok(response)
}

async fn write(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    version: Version,
    written: &mut Counts,
) -> Result<Response, ApiError> {
    let tenant = tenant(headers)?;
    let data = read_decoded_body(
        headers,
        body,
        state.limits(&tenant).max_body_bytes,
        ContentEncoding::Snappy,
    )
    .await?;
    let decoded = match version {
        Version::V1 => remote_write::decode_v1(&data),
        Version::V2 => remote_write::decode_v2(&data),
    };
    let (rows, counts) = decoded.map_err(|e| ApiError::bad_request(e.to_string()))?;
    let (batches, mut rejected) = metric_batches(rows)?;
    store(state, &tenant, batches, &mut rejected, data.len()).await?;
    *written = counts;
    if rejected.count > 0 {
        return Err(ApiError::bad_request(format!(
            "wrote {} samples, {} histograms and {} exemplars; refused {}: {}",
            counts.samples,
            counts.histograms,
            counts.exemplars,
            rejected.count,
            rejected.reasons.join("; ")
        )));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn written_headers(headers: &mut HeaderMap, counts: Counts) {
    for (name, value) in [
        ("x-prometheus-remote-write-samples-written", counts.samples),
        (
            "x-prometheus-remote-write-histograms-written",
            counts.histograms,
        ),
        (
            "x-prometheus-remote-write-exemplars-written",
            counts.exemplars,
        ),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
}

fn query_param(params: &HashMap<String, String>) -> Result<&str, ApiError> {
    params
        .get("query")
        .map(String::as_str)
        .ok_or_else(|| ApiError::bad_request("missing parameter: query"))
}

/// The `query` parameter, a series selector.
fn selector_param(params: &HashMap<String, String>) -> Result<Selector, ApiError> {
    Selector::parse(query_param(params)?).map_err(|e| {
        ApiError::bad_request(format!(
            "query must be a series selector such as metric{{job=\"api\"}}: {e}"
        ))
    })
}

/// `GET|POST /api/v1/query_exemplars?query=<PromQL>&start=&end=`: the exemplars of
/// every series a selector in the expression names.
pub async fn query_exemplars(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    // Read by `Params`, so that a stalled form body times out as every body does.
    let params = params.into_map();
    let tenant = tenant(&headers)?;
    let query = query_param(&params)?.to_owned();
    let selectors = parse_query("", move || promql::selectors(&query)).await?;
    let time = |name: &str, default: i64| match params.get(name).filter(|v| !v.is_empty()) {
        Some(text) => parse_time(text).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))),
        None => Ok(default),
    };
    let start = time("start", i64::MIN)?;
    let end = time("end", i64::MAX)?;
    if end < start {
        return Err(ApiError::bad_request(
            "end timestamp must not be before start time",
        ));
    }
    let result = state
        .engine
        .exemplars(&tenant, &selectors, start, end)
        .await?;
    Ok(success(exemplar_data(&result.series)))
}

/// `GET /threadline/v1/traces/{id}/exemplars`: the exemplars naming a trace, in the
/// same shape as `query_exemplars`.
pub async fn trace_exemplars(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let id = TraceId::from_hex(&trace_id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let result = state.engine.trace_exemplars(&tenant, id).await?;
    Ok(success(exemplar_data(&result.series)))
}

/// `GET /threadline/v1/samples?query=<selector>&start=&end=&limit=`: the raw points
/// of the matching series, as a Prometheus `matrix`.
pub async fn samples(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let params = params.into_map();
    let tenant = tenant(&headers)?;
    let selector = selector_param(&params)?;
    let range = super::query::time_range(
        params.get("start").map(String::as_str),
        params.get("end").map(String::as_str),
    )?;
    let limit = match params.get("limit") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::bad_request("limit must be a positive integer"))?,
        None => DEFAULT_SAMPLE_LIMIT,
    };
    let result = state
        .engine
        .samples(&tenant, &selector, range, limit)
        .await?;
    let series: Vec<Value> = result
        .series
        .iter()
        .map(|s| {
            json!({
                "metric": labels_json(s.series.iter()),
                "values": s.points.iter().map(|(t, v)| json!([seconds(*t), float_text(*v)])).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "status": "success",
        "data": { "resultType": "matrix", "result": series },
        "truncated": result.truncated,
    }))
    .into_response())
}

const DEFAULT_SAMPLE_LIMIT: usize = 100_000;

fn exemplar_data(series: &[SeriesExemplars]) -> Value {
    Value::Array(
        series
            .iter()
            .map(|s| {
                json!({
                    "seriesLabels": labels_json(s.series.iter()),
                    "exemplars": s.exemplars.iter().map(|e| json!({
                        "labels": e.labels,
                        "value": float_text(e.value),
                        "timestamp": seconds(e.timestamp),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// Sample values as Prometheus writes them in JSON: a string, `NaN` and `±Inf` spelled.
pub fn float_text(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

/// Prometheus API timestamps: seconds since the epoch with millisecond precision.
pub fn seconds(ns: i64) -> Value {
    let millis = ns.div_euclid(1_000_000);
    json!(millis as f64 / 1e3)
}

/// `GET /api/v1/targets`: every scrape target with its health and last error, in
/// Prometheus's shape.
pub async fn targets(State(state): State<AppState>) -> Response {
    let active: Vec<Value> = state
        .scraper
        .targets()
        .iter()
        .map(|target| {
            let status = target.status();
            let labels: serde_json::Map<String, Value> = target
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            json!({
                "discoveredLabels": labels,
                "labels": labels,
                "scrapePool": target.job,
                "scrapeUrl": target.url,
                "globalUrl": target.url,
                "lastError": status.last_error,
                "lastScrape": status.last_scrape.map(format_time).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
                "lastScrapeDuration": status.last_duration.as_secs_f64(),
                "lastSamplesScraped": status.samples,
                "health": status.health.as_str(),
                "scrapeInterval": humantime(target.interval),
                "scrapeTimeout": humantime(target.timeout),
                "tenant": target.tenant.as_str(),
            })
        })
        .collect();
    success(json!({ "activeTargets": active, "droppedTargets": [] }))
}

/// Durations the way Prometheus prints them in its API (`15s`, `1m30s`, `500ms`).
fn humantime(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The Prometheus API version these endpoints follow, reported by `status/buildinfo`.
pub const PROMETHEUS_API_VERSION: &str = "3.0.0";

async fn parse_promql(text: &str) -> Result<promql_parser::parser::Expr, ApiError> {
    let text = text.to_owned();
    parse_query("invalid parameter \"query\": ", move || {
        promql::parse(&text)
    })
    .await
}

/// `GET|POST /api/v1/query?query=&time=`
pub async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let expr = parse_promql(params.required("query")?).await?;
    let time = params.time("time", now_ns())?;
    let result = state.engine.promql(&tenant, &expr, (time, time), 1).await?;
    Ok(success(match result.value {
        SeriesValue::Scalar(values) => json!({
            "resultType": "scalar",
            "result": [seconds(time), float_text(values[0])],
        }),
        SeriesValue::Vector(series) => {
            let vector: Vec<Value> = series
                .iter()
                .filter_map(|s| {
                    s.points[0].map(|v| {
                        json!({ "metric": labels_json(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))), "value": [seconds(time), float_text(v)] })
                    })
                })
                .collect();
            json!({ "resultType": "vector", "result": vector })
        }
    }))
}

/// `GET|POST /api/v1/query_range?query=&start=&end=&step=`
pub async fn query_range(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let expr = parse_promql(params.required("query")?).await?;
    if params.get("start").is_none() || params.get("end").is_none() {
        return Err(ApiError::bad_request("start and end are required"));
    }
    let start = params.time("start", 0)?;
    let end = params.time("end", 0)?;
    if end < start {
        return Err(ApiError::bad_request(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = params.duration("step")?.ok_or_else(|| {
        ApiError::bad_request("step is required: a duration such as 15s or a number of seconds")
    })?;
    let result = state
        .engine
        .promql(&tenant, &expr, (start, end), step)
        .await?;
    let series = match result.value {
        SeriesValue::Vector(series) => series,
        SeriesValue::Scalar(values) => vec![crate::query::series::Series {
            labels: Vec::new(),
            points: values.into_iter().map(Some).collect(),
        }],
    };
    let mut matrix: Vec<(&Vec<(String, String)>, Value)> = series
        .iter()
        .map(|s| {
            let values: Vec<Value> = s
                .points
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    p.map(|v| json!([seconds(result.steps.time(i)), float_text(v)]))
                })
                .collect();
            (
                &s.labels,
                json!({ "metric": labels_json(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))), "values": values }),
            )
        })
        .collect();
    matrix.sort_by(|a, b| a.0.cmp(b.0));
    Ok(success(json!({
        "resultType": "matrix",
        "result": matrix.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    })))
}

/// The metric series the `match[]` selectors name with samples in the range (all of
/// them without a selector).
fn matched_series(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    required: bool,
) -> Result<
    (
        crate::model::Tenant,
        std::collections::HashSet<crate::model::StreamId>,
    ),
    ApiError,
> {
    let tenant = tenant(headers)?;
    let end = params.time("end", now_ns())?;
    let start = params.time("start", -crate::query::time::MAX_TIME_NS)?;
    let texts = params.all("match[]");
    if texts.is_empty() && required {
        return Err(ApiError::bad_request("no match[] parameter provided"));
    }
    let mut selectors = Vec::new();
    for text in texts {
        selectors.extend(
            promql::selectors(text).map_err(|e| {
                ApiError::bad_request(format!("invalid parameter \"match[]\": {e}"))
            })?,
        );
    }
    let ids = state.db.streams_matching(
        &tenant,
        crate::model::Signal::Samples,
        &selectors,
        (start, end),
    );
    Ok((tenant, ids))
}

/// The `limit` parameter of the metadata endpoints; as in Prometheus, 0 or none
/// means no limit.
fn result_limit(params: &Params) -> Result<usize, ApiError> {
    match params.get("limit") {
        None | Some("0") => Ok(usize::MAX),
        Some(_) => params.count("limit", usize::MAX, usize::MAX),
    }
}

/// `GET|POST /api/v1/labels`
pub async fn labels(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let (tenant, ids) = matched_series(&state, &headers, &params, false)?;
    let catalog = state.db.read_catalog();
    let names = catalog
        .table(&tenant, crate::model::Signal::Samples)
        .map(|t| t.labels.names(Some(&ids)))
        .unwrap_or_default();
    let limit = result_limit(&params)?;
    Ok(success(json!(
        names.into_iter().take(limit).collect::<Vec<_>>()
    )))
}

/// `GET /api/v1/label/{name}/values`
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let (tenant, ids) = matched_series(&state, &headers, &params, false)?;
    let catalog = state.db.read_catalog();
    let values = catalog
        .table(&tenant, crate::model::Signal::Samples)
        .map(|t| t.labels.values(&name, Some(&ids)))
        .unwrap_or_default();
    let limit = result_limit(&params)?;
    Ok(success(json!(
        values.into_iter().take(limit).collect::<Vec<_>>()
    )))
}

/// `GET|POST /api/v1/series?match[]=`
pub async fn series(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let (tenant, ids) = matched_series(&state, &headers, &params, true)?;
    let catalog = state.db.read_catalog();
    let mut sets: Vec<&LabelSet> = catalog
        .table(&tenant, crate::model::Signal::Samples)
        .map(|t| ids.iter().filter_map(|id| t.labels.labels(*id)).collect())
        .unwrap_or_default();
    sets.sort();
    let limit = result_limit(&params)?;
    Ok(success(Value::Array(
        sets.into_iter()
            .take(limit)
            .map(|l| labels_json(l.iter()))
            .collect(),
    )))
}

/// `GET /api/v1/metadata`: type and unit per metric name, from the samples of the
/// last hour (or `start`..`end`); help text is not stored.
pub async fn metadata(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let end = params.time("end", now_ns())?;
    let start = params.time("start", end.saturating_sub(3_600_000_000_000))?;
    let rows = state
        .engine
        .metric_metadata(&tenant, (start, end), params.get("metric"))
        .await?;
    let limit = result_limit(&params)?;
    let mut out = serde_json::Map::new();
    for (metric, kind, unit) in rows.into_iter().take(limit) {
        if let Some(list) = out
            .entry(metric)
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            list.push(json!({ "type": kind, "help": "", "unit": unit }));
        }
    }
    Ok(success(Value::Object(out)))
}

/// `GET /api/v1/status/buildinfo`
pub async fn buildinfo() -> Response {
    success(json!({
        "version": PROMETHEUS_API_VERSION,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "threadline": env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /api/v1/rules`: Threadline evaluates no rules.
pub async fn rules() -> Response {
    success(json!({ "groups": [] }))
}
