//! Loki's read API, as Grafana's Loki data source calls it: `query_range` and `query`
//! (LogQL log and metric queries), `labels`, `label/{name}/values`, `series`,
//! `index/stats`, `index/volume`, `index/volume_range` and `status/buildinfo`.
//!
//! Responses have Loki's shapes: `streams` with nanosecond string timestamps, `matrix`
//! and `vector` with float-second timestamps and string values, and a `stats` block.
//! With `X-Loki-Response-Encoding-Flags: categorize-labels` streams carry only their
//! stream labels and each line its structured metadata and parsed labels. Errors are
//! plain text with the status Loki uses.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::params::Params;
use super::prometheus::{float_text, seconds};
use super::query::{DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT};
use super::{ApiError, AppState, ErrorCode, labels_json, now_ns, parse_query, success, tenant};
use crate::logql::{self, Labels, Origin, Query};
use crate::model::{Selector, Signal, StreamId, Tenant};
use crate::query::log_metrics::MetricRequest;
use crate::query::logql::{LineCounts, LogRequest};
use crate::query::series::{MAX_STEPS, Series, Value as MetricValue};
use crate::query::table::ScanStats;
use crate::query::time::HOUR_NS;

/// The Loki API version these endpoints follow, reported by `status/buildinfo`.
pub const LOKI_API_VERSION: &str = "3.0.0";
/// Loki's default window for label and series lookups.
const METADATA_RANGE_NS: i64 = 6 * HOUR_NS;
const CATEGORIZE_HEADER: &str = "x-loki-response-encoding-flags";

/// An error as Loki writes one: plain text.
pub struct LokiError(ApiError);

impl From<ApiError> for LokiError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl From<crate::query::QueryError> for LokiError {
    fn from(e: crate::query::QueryError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for LokiError {
    /// Loki answers a query over its limits with 400, like any other bad query.
    fn into_response(self) -> Response {
        let mut error = self.0;
        if error.code == ErrorCode::LimitExceeded {
            error.code = ErrorCode::BadRequest;
        }
        error.into_text_response()
    }
}

type Result<T> = std::result::Result<T, LokiError>;

fn bad(message: impl Into<String>) -> LokiError {
    LokiError(ApiError::bad_request(message))
}

async fn parse(text: &str) -> Result<Query> {
    let text = text.to_owned();
    Ok(parse_query("parse error: ", move || logql::parse(&text)).await?)
}

fn categorize(headers: &HeaderMap) -> bool {
    headers
        .get_all(CATEGORIZE_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|f| f.trim() == "categorize-labels"))
}

/// `GET|POST /loki/api/v1/query_range`
pub async fn query_range(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response> {
    let started = Instant::now();
    let tenant = tenant(&headers)?;
    let query = parse(params.required("query")?).await?;
    let (start, end) = params.range(now_ns(), HOUR_NS)?;
    match query {
        Query::Log(expr) => {
            let request = LogRequest {
                query: expr,
                start,
                end,
                limit: params.count("limit", DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT)?,
                direction: params.direction()?,
                categorize: categorize(&headers),
            };
            let result = state.engine.logs(&tenant, &request).await?;
            let stats = stats(&result.counts, &result.stats, started);
            Ok(streams_response(&result.streams, request.categorize, stats))
        }
        Query::Metric(expr) => {
            let step = match params.duration("step")? {
                Some(step) => step,
                // Loki's default: about 250 points, at least one second apart.
                None => ((end - start) / 250 / 1_000_000_000).max(1) * 1_000_000_000,
            };
            let request = MetricRequest {
                expr,
                start,
                end,
                step,
            };
            let result = state.engine.log_metrics(&tenant, &request).await?;
            let stats = stats(&result.counts, &result.stats, started);
            let series = match result.value {
                MetricValue::Vector(series) => series,
                // A number over a range is one series without labels.
                MetricValue::Scalar(values) => vec![Series {
                    labels: Vec::new(),
                    points: values.into_iter().map(Some).collect(),
                }],
            };
            let matrix: Vec<Value> = series
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
                    json!({ "metric": labels_json(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))), "values": values })
                })
                .collect();
            Ok(data("matrix", Value::Array(matrix), Some(stats)))
        }
    }
}

/// `GET|POST /loki/api/v1/query`: metric queries at one instant.
pub async fn query(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response> {
    let started = Instant::now();
    let tenant = tenant(&headers)?;
    let query = parse(params.required("query")?).await?;
    let time = params.time("time", now_ns())?;
    let Query::Metric(expr) = query else {
        return Err(bad(
            "log queries are not supported as an instant query type; use query_range",
        ));
    };
    let request = MetricRequest {
        expr,
        start: time,
        end: time,
        step: 1,
    };
    let result = state.engine.log_metrics(&tenant, &request).await?;
    let stats = stats(&result.counts, &result.stats, started);
    Ok(match result.value {
        MetricValue::Scalar(values) => data(
            "scalar",
            json!([seconds(time), float_text(values[0])]),
            Some(stats),
        ),
        MetricValue::Vector(series) => {
            let vector: Vec<Value> = series
                .iter()
                .filter_map(|s| {
                    s.points[0].map(|v| {
                        json!({ "metric": labels_json(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()))), "value": [seconds(time), float_text(v)] })
                    })
                })
                .collect();
            data("vector", Value::Array(vector), Some(stats))
        }
    })
}

fn data(result_type: &str, result: Value, stats: Option<Value>) -> Response {
    let mut data = json!({ "resultType": result_type, "result": result });
    if let Some(stats) = stats {
        data["stats"] = stats;
    }
    axum::Json(json!({ "status": "success", "data": data })).into_response()
}

fn streams_response(
    streams: &[crate::query::logql::LogStream],
    categorize: bool,
    stats: Value,
) -> Response {
    let result: Vec<Value> = streams
        .iter()
        .map(|stream| {
            let values: Vec<Value> = stream
                .entries
                .iter()
                .map(|e| {
                    let time = e.timestamp_ns.to_string();
                    if categorize {
                        json!([time, e.line, categorized(&e.labels)])
                    } else {
                        json!([time, e.line])
                    }
                })
                .collect();
            json!({ "stream": labels_json(stream.labels.iter().map(|(k, v, _)| (k, v))), "values": values })
        })
        .collect();
    let mut data = json!({ "resultType": "streams", "result": result, "stats": stats });
    if categorize {
        data["encodingFlags"] = json!(["categorize-labels"]);
    }
    axum::Json(json!({ "status": "success", "data": data })).into_response()
}

/// A line's own labels, split as Loki's `categorize-labels` splits them.
fn categorized(labels: &Labels) -> Value {
    let mut metadata = Map::new();
    let mut parsed = Map::new();
    for (name, value, origin) in labels.iter() {
        let target = if origin == Origin::Metadata {
            &mut metadata
        } else {
            &mut parsed
        };
        target.insert(name.to_owned(), Value::from(value));
    }
    let mut out = Map::new();
    if !metadata.is_empty() {
        out.insert("structuredMetadata".into(), Value::Object(metadata));
    }
    if !parsed.is_empty() {
        out.insert("parsed".into(), Value::Object(parsed));
    }
    Value::Object(out)
}

/// Loki's `stats` block, filled with what Threadline measured: lines and bytes that
/// reached the pipeline, lines returned, chunks read and skipped.
fn stats(counts: &LineCounts, scan: &ScanStats, started: Instant) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let elapsed = started.elapsed().as_secs_f64();
    let per_second = |n: u64| {
        if elapsed > 0.0 {
            (n as f64 / elapsed) as u64
        } else {
            0
        }
    };
    let selected = scan.chunks_selected.load(Relaxed);
    json!({
        "summary": {
            "bytesProcessedPerSecond": per_second(counts.bytes),
            "linesProcessedPerSecond": per_second(counts.lines),
            "totalBytesProcessed": counts.bytes,
            "totalLinesProcessed": counts.lines,
            "execTime": elapsed,
            "queueTime": 0,
            "subqueries": 0,
            "totalEntriesReturned": counts.returned,
            "splits": 0,
            "shards": 0,
            "totalPostFilterLines": counts.returned,
            "totalStructuredMetadataBytesProcessed": 0,
        },
        "querier": {
            "store": {
                "totalChunksRef": selected + scan.chunks_pruned.load(Relaxed),
                "totalChunksDownloaded": selected,
                "chunksDownloadTime": 0,
                "chunk": {
                    "compressedBytes": scan.chunk_bytes.load(Relaxed),
                    "decompressedBytes": counts.bytes,
                    "decompressedLines": counts.lines,
                    "headChunkBytes": 0,
                    "headChunkLines": scan.head_rows.load(Relaxed),
                    "postFilterLines": counts.returned,
                    "totalDuplicates": 0,
                },
            },
        },
        "ingester": {
            "totalReached": 0,
            "totalChunksMatched": 0,
            "totalBatches": 0,
            "totalLinesSent": 0,
        },
    })
}

fn selector(text: &str) -> Result<Selector> {
    Selector::parse(text).map_err(|e| bad(format!("parse error: {e}")))
}

/// The log streams a selector names with rows in `range`; all of them without one.
fn streams(
    state: &AppState,
    tenant: &Tenant,
    selector: Option<&Selector>,
    range: (i64, i64),
) -> HashSet<StreamId> {
    let selectors: Vec<Selector> = selector.into_iter().cloned().collect();
    state
        .db
        .streams_matching(tenant, Signal::Logs, &selectors, range)
}

fn optional_selector(params: &Params) -> Result<Option<Selector>> {
    params.get("query").map(selector).transpose()
}

/// `GET /loki/api/v1/labels`
pub async fn labels(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let range = params.range(now_ns(), METADATA_RANGE_NS)?;
    let selector = optional_selector(&params)?;
    let ids = streams(&state, &tenant, selector.as_ref(), range);
    let catalog = state.db.read_catalog();
    let names: BTreeSet<String> = catalog
        .table(&tenant, Signal::Logs)
        .map(|t| t.labels.names(Some(&ids)))
        .unwrap_or_default();
    Ok(success(json!(names)))
}

/// `GET /loki/api/v1/label/{name}/values`
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let range = params.range(now_ns(), METADATA_RANGE_NS)?;
    let selector = optional_selector(&params)?;
    let ids = streams(&state, &tenant, selector.as_ref(), range);
    let catalog = state.db.read_catalog();
    let values: BTreeSet<String> = catalog
        .table(&tenant, Signal::Logs)
        .map(|t| t.labels.values(&name, Some(&ids)))
        .unwrap_or_default();
    Ok(success(json!(values)))
}

/// `GET|POST /loki/api/v1/series?match[]=…`: the label sets of the matching streams.
pub async fn series(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let range = params.range(now_ns(), METADATA_RANGE_NS)?;
    let matchers = params.all("match[]");
    let matchers = if matchers.is_empty() {
        params.all("match")
    } else {
        matchers
    };
    if matchers.is_empty() {
        return Err(bad("missing parameter: match[] (a stream selector)"));
    }
    let mut ids = HashSet::new();
    for text in matchers {
        ids.extend(streams(&state, &tenant, Some(&selector(text)?), range));
    }
    let catalog = state.db.read_catalog();
    let mut sets: Vec<BTreeMap<&str, &str>> = catalog
        .table(&tenant, Signal::Logs)
        .map(|t| {
            ids.iter()
                .filter_map(|id| t.labels.labels(*id))
                .map(|l| l.iter().collect())
                .collect()
        })
        .unwrap_or_default();
    sets.sort();
    Ok(success(json!(sets)))
}

/// `GET /loki/api/v1/index/stats?query=<selector>`: what a query over the selector
/// and range would read, from the indexes alone — streams, chunks, lines and stored
/// bytes — before it runs. `{}` asks about every stream.
pub async fn index_stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let range = params.range(now_ns(), HOUR_NS)?;
    let selector = log_selector(params.required("query")?).await?;
    let ids = streams(&state, &tenant, Some(&selector), range);
    let volumes = state
        .db
        .stream_volumes(&tenant, Signal::Logs, Some(&ids), range);
    let (entries, bytes) = volumes
        .streams
        .values()
        .fold((0u64, 0u64), |(e, b), (re, rb)| (e + re, b + rb));
    Ok(axum::Json(json!({
        "streams": volumes.streams.len(),
        "chunks": volumes.chunks,
        "entries": entries,
        "bytes": bytes,
    }))
    .into_response())
}

/// The selector of a log query (stats accept a whole query, as Grafana sends it).
async fn log_selector(text: &str) -> Result<Selector> {
    match parse(text).await? {
        Query::Log(expr) => Ok(expr.selector),
        Query::Metric(m) => match m.log_exprs().first() {
            Some(expr) => Ok(expr.selector.clone()),
            None => Err(bad("the query names no streams")),
        },
    }
}

/// `GET /loki/api/v1/index/volume`: stored bytes per label combination.
pub async fn volume(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let range = params.range(now_ns(), HOUR_NS)?;
    let request = VolumeRequest::new(&params).await?;
    let result: Vec<Value> = request
        .groups(&state, &tenant, range)
        .into_iter()
        .map(|(labels, bytes)| {
            json!({ "metric": labels, "value": [seconds(range.1), bytes.to_string()] })
        })
        .collect();
    Ok(success(json!({ "resultType": "vector", "result": result })))
}

/// `GET /loki/api/v1/index/volume_range`: the same per step.
pub async fn volume_range(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let (start, end) = params.range(now_ns(), HOUR_NS)?;
    let span = end as i128 - start as i128;
    let step = params
        .duration("step")?
        .unwrap_or(((span / 250) as i64).max(1_000_000_000));
    let count = span / step as i128 + 1;
    if count > MAX_STEPS as i128 {
        return Err(bad(format!(
            "exceeded maximum resolution of {MAX_STEPS} points; increase step"
        )));
    }
    let request = VolumeRequest::new(&params).await?;
    let mut series: BTreeMap<String, (Map<String, Value>, Vec<Value>)> = BTreeMap::new();
    for i in 0..count as i64 {
        let t = start + i * step;
        let window = (t.saturating_sub(step).saturating_add(1), t);
        for (labels, bytes) in request.groups(&state, &tenant, window) {
            let key = Value::Object(labels.clone()).to_string();
            series
                .entry(key)
                .or_insert_with(|| (labels, Vec::new()))
                .1
                .push(json!([seconds(t), bytes.to_string()]));
        }
    }
    let result: Vec<Value> = series
        .into_values()
        .map(|(metric, values)| json!({ "metric": metric, "values": values }))
        .collect();
    Ok(success(json!({ "resultType": "matrix", "result": result })))
}

/// A volume query's parameters, read once.
struct VolumeRequest {
    selector: Selector,
    limit: usize,
    by_labels: bool,
    targets: Vec<String>,
}

impl VolumeRequest {
    async fn new(params: &Params) -> Result<Self> {
        let selector = log_selector(params.required("query")?).await?;
        let by_labels = match params.get("aggregateBy") {
            None | Some("series") => false,
            Some("labels") => true,
            Some(other) => {
                return Err(bad(format!(
                    "aggregateBy must be series or labels, not {other:?}"
                )));
            }
        };
        let targets = match params.get("targetLabels") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            None => selector.matchers.iter().map(|m| m.name.clone()).collect(),
        };
        Ok(Self {
            limit: params.count("limit", 100, 10_000)?,
            selector,
            by_labels,
            targets,
        })
    }

    /// Stored bytes per group in `range`, largest first, at most `limit` groups.
    /// Groups are the values of `targetLabels` (default: the labels the selector
    /// names); with `aggregateBy=labels`, one group per label name.
    fn groups(
        &self,
        state: &AppState,
        tenant: &Tenant,
        range: (i64, i64),
    ) -> Vec<(Map<String, Value>, u64)> {
        let ids = streams(state, tenant, Some(&self.selector), range);
        let volumes = state
            .db
            .stream_volumes(tenant, Signal::Logs, Some(&ids), range);
        let catalog = state.db.read_catalog();
        let Some(table) = catalog.table(tenant, Signal::Logs) else {
            return Vec::new();
        };
        let mut groups: BTreeMap<Vec<(String, String)>, u64> = BTreeMap::new();
        for (id, (_, bytes)) in &volumes.streams {
            let Some(labels) = table.labels.labels(*id) else {
                continue;
            };
            let targeted = |name: &str| self.targets.iter().any(|t| t == name);
            if self.by_labels {
                for (name, _) in labels.iter() {
                    if self.targets.is_empty() || targeted(name) {
                        *groups
                            .entry(vec![(name.to_owned(), String::new())])
                            .or_default() += bytes;
                    }
                }
            } else {
                let key: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(name, _)| targeted(name))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                *groups.entry(key).or_default() += bytes;
            }
        }
        let mut sorted: Vec<_> = groups.into_iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        sorted.truncate(self.limit);
        sorted
            .into_iter()
            .map(|(labels, bytes)| {
                let object = labels
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect();
                (object, bytes)
            })
            .collect()
    }
}

/// `GET /loki/api/v1/status/buildinfo`
pub async fn buildinfo() -> Response {
    axum::Json(json!({
        "version": LOKI_API_VERSION,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
        "threadline": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}
