//! Pyroscope's query API over the Connect protocol, as Grafana's Pyroscope data source
//! calls it: `POST /querier.v1.QuerierService/<Method>` with a binary protobuf body
//! (`application/proto`, what Grafana sends) or protobuf JSON (`application/json`,
//! for curl), answered in the same encoding. Methods: `ProfileTypes`, `LabelNames`,
//! `LabelValues`, `Series`, `SelectMergeStacktraces`, `SelectMergeSpanProfile` and
//! `SelectSeries`. Times are milliseconds. Errors are Connect's JSON
//! `{"code", "message"}` with its HTTP statuses.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;
use serde_json::{Value, json};

use super::{ApiError, AppState, ErrorCode, content_type, read_body, tenant};
use crate::model::{Selector, Signal, SpanId, Tenant};
use crate::profile::ProfileType;
use crate::profile::merge::FlameGraph;
use crate::proto::querier::v1 as pb;
use crate::query::profiles::{ProfileQuery, Scope};

/// Largest request body: the requests are a few fields.
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// An error in Connect's unary form.
pub struct ConnectError(ApiError);

impl<E: Into<ApiError>> From<E> for ConnectError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        if self.0.code == ErrorCode::UnsupportedMediaType {
            // Connect answers a content type it cannot read with a bare 415.
            return (StatusCode::UNSUPPORTED_MEDIA_TYPE, self.0.message).into_response();
        }
        let (status, code) = match self.0.code {
            ErrorCode::BadRequest | ErrorCode::UnsupportedMediaType => {
                (StatusCode::BAD_REQUEST, "invalid_argument")
            }
            ErrorCode::Timeout => (StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded"),
            ErrorCode::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "deadline_exceeded"),
            ErrorCode::PayloadTooLarge | ErrorCode::LimitExceeded | ErrorCode::RateLimited => {
                (StatusCode::TOO_MANY_REQUESTS, "resource_exhausted")
            }
            ErrorCode::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ErrorCode::Forbidden => (StatusCode::FORBIDDEN, "permission_denied"),
            ErrorCode::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorCode::MethodNotAllowed => (StatusCode::NOT_IMPLEMENTED, "unimplemented"),
            ErrorCode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ErrorCode::Conflict => (StatusCode::CONFLICT, "aborted"),
            ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), message = %self.0.message, "request failed");
        }
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({ "code": code, "message": self.0.message }).to_string(),
        )
            .into_response()
    }
}

type Result<T> = std::result::Result<T, ConnectError>;

fn bad(message: impl Into<String>) -> ConnectError {
    ConnectError(ApiError::bad_request(message))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Codec {
    Proto,
    Json,
}

/// A request body in either encoding. JSON is read field by field, accepting proto
/// and camelCase names and 64-bit integers as numbers or strings.
async fn request(headers: &HeaderMap, body: Body) -> Result<(Codec, Request)> {
    let codec = match content_type(headers).map(|c| c.split(';').next().unwrap_or("").trim()) {
        Some("application/proto" | "application/protobuf" | "application/x-protobuf") => {
            Codec::Proto
        }
        Some("application/json") | None => Codec::Json,
        Some(other) => {
            return Err(ConnectError(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "unsupported content type {other:?}: send application/proto or application/json"
                ),
            )));
        }
    };
    let bytes = read_body(body, MAX_REQUEST_BYTES).await?;
    Ok((
        codec,
        match codec {
            Codec::Proto => Request::Proto(bytes),
            Codec::Json => Request::Json(if bytes.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("invalid JSON request: {e}")))?
            }),
        },
    ))
}

enum Request {
    Proto(bytes::Bytes),
    Json(Value),
}

impl Request {
    fn decode<T: Message + Default>(
        &self,
        from_json: impl FnOnce(&Json) -> Result<T>,
    ) -> Result<T> {
        match self {
            Request::Proto(bytes) => {
                T::decode(bytes.as_ref()).map_err(|e| bad(format!("invalid protobuf request: {e}")))
            }
            Request::Json(value) => from_json(&Json(value)),
        }
    }
}

/// Field access on a protobuf-JSON object.
struct Json<'a>(&'a Value);

impl Json<'_> {
    fn field(&self, names: &[&str]) -> Option<&Value> {
        names
            .iter()
            .find_map(|n| self.0.get(*n))
            .filter(|v| !v.is_null())
    }

    fn string(&self, names: &[&str]) -> Result<String> {
        match self.field(names) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(bad(format!("{} must be a string, not {other}", names[0]))),
        }
    }

    fn strings(&self, names: &[&str]) -> Result<Vec<String>> {
        match self.field(names) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad(format!("{} must hold strings", names[0])))
                })
                .collect(),
            Some(other) => Err(bad(format!("{} must be a list, not {other}", names[0]))),
        }
    }

    fn int(&self, names: &[&str]) -> Result<Option<i64>> {
        match self.field(names) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad(format!("{} must be a whole number", names[0]))),
            Some(Value::String(s)) => s
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("{} must be a whole number", names[0]))),
            Some(other) => Err(bad(format!("{} must be a number, not {other}", names[0]))),
        }
    }

    fn float(&self, names: &[&str]) -> Result<f64> {
        match self.field(names) {
            None => Ok(0.0),
            Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(0.0)),
            Some(Value::String(s)) => s
                .parse()
                .map_err(|_| bad(format!("{} must be a number", names[0]))),
            Some(other) => Err(bad(format!("{} must be a number, not {other}", names[0]))),
        }
    }
}

fn respond<T: Message>(codec: Codec, message: &T, json: impl FnOnce() -> Value) -> Response {
    match codec {
        Codec::Proto => (
            [(header::CONTENT_TYPE, "application/proto")],
            message.encode_to_vec(),
        )
            .into_response(),
        Codec::Json => axum::Json(json()).into_response(),
    }
}

/// Milliseconds to a nanosecond range.
fn range(start_ms: i64, end_ms: i64) -> Result<(i64, i64)> {
    let (start, end) = (
        start_ms.saturating_mul(1_000_000),
        end_ms.saturating_mul(1_000_000),
    );
    if start > end {
        return Err(bad("start must not be after end"));
    }
    Ok((start, end))
}

/// A label selector; empty and `{}` select everything.
fn selector(text: &str) -> Result<Selector> {
    match text.trim() {
        "" => Ok(Selector::default()),
        text => Selector::parse(text).map_err(|e| bad(format!("invalid label selector: {e}"))),
    }
}

fn profile_type(text: &str) -> Result<ProfileType> {
    text.parse().map_err(|e: String| bad(e))
}

/// The label sets of the profile streams with samples in the range that any of the
/// matchers selects (all streams without one).
fn streams(
    state: &AppState,
    tenant: &Tenant,
    matchers: &[String],
    range: (i64, i64),
) -> Result<Vec<crate::model::LabelSet>> {
    let selectors = matchers
        .iter()
        .map(|m| selector(m))
        .collect::<Result<Vec<_>>>()?;
    let ids = state
        .db
        .streams_matching(tenant, Signal::ProfileSamples, &selectors, range);
    let catalog = state.db.read_catalog();
    let Some(table) = catalog.table(tenant, Signal::ProfileSamples) else {
        return Ok(Vec::new());
    };
    let mut sets: Vec<_> = ids
        .iter()
        .filter_map(|id| table.labels.labels(*id).cloned())
        .collect();
    sets.sort();
    Ok(sets)
}

/// `ProfileTypes`: the profile types with samples in the range.
pub async fn profile_types(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let (codec, request) = request(&headers, body).await?;
    let req: pb::ProfileTypesRequest = request.decode(|j| {
        Ok(pb::ProfileTypesRequest {
            start: j.int(&["start"])?.unwrap_or(0),
            end: j.int(&["end"])?.unwrap_or(0),
        })
    })?;
    let types = state
        .engine
        .profile_types(&tenant, range(req.start, req.end)?)
        .await?;
    let profile_types: Vec<pb::ProfileType> = types
        .iter()
        .filter_map(|id| id.parse::<ProfileType>().ok())
        .map(|t| pb::ProfileType {
            id: t.to_string(),
            name: t.name.clone(),
            sample_type: t.sample.kind.clone(),
            sample_unit: t.sample.unit.clone(),
            period_type: t.period.kind.clone(),
            period_unit: t.period.unit.clone(),
        })
        .collect();
    let response = pb::ProfileTypesResponse { profile_types };
    Ok(respond(codec, &response, || {
        json!({ "profileTypes": response.profile_types.iter().map(|t| json!({
            "ID": t.id,
            "name": t.name,
            "sampleType": t.sample_type,
            "sampleUnit": t.sample_unit,
            "periodType": t.period_type,
            "periodUnit": t.period_unit,
        })).collect::<Vec<_>>() })
    }))
}

/// `LabelNames`
pub async fn label_names(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let (codec, request) = request(&headers, body).await?;
    let req: pb::LabelNamesRequest = request.decode(|j| {
        Ok(pb::LabelNamesRequest {
            matchers: j.strings(&["matchers"])?,
            start: j.int(&["start"])?.unwrap_or(0),
            end: j.int(&["end"])?.unwrap_or(0),
        })
    })?;
    let sets = streams(&state, &tenant, &req.matchers, range(req.start, req.end)?)?;
    let names: BTreeSet<String> = sets
        .iter()
        .flat_map(|s| s.iter().map(|(k, _)| k.to_owned()))
        .collect();
    let response = pb::LabelNamesResponse {
        names: names.into_iter().collect(),
    };
    Ok(respond(
        codec,
        &response,
        || json!({ "names": response.names }),
    ))
}

/// `LabelValues`
pub async fn label_values(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let (codec, request) = request(&headers, body).await?;
    let req: pb::LabelValuesRequest = request.decode(|j| {
        Ok(pb::LabelValuesRequest {
            name: j.string(&["name"])?,
            matchers: j.strings(&["matchers"])?,
            start: j.int(&["start"])?.unwrap_or(0),
            end: j.int(&["end"])?.unwrap_or(0),
        })
    })?;
    let sets = streams(&state, &tenant, &req.matchers, range(req.start, req.end)?)?;
    let values: BTreeSet<String> = sets
        .iter()
        .filter_map(|s| s.get(&req.name).map(str::to_owned))
        .collect();
    let response = pb::LabelValuesResponse {
        names: values.into_iter().collect(),
    };
    Ok(respond(
        codec,
        &response,
        || json!({ "names": response.names }),
    ))
}

fn pairs_json(labels: &[pb::LabelPair]) -> Value {
    Value::Array(
        labels
            .iter()
            .map(|l| json!({ "name": l.name, "value": l.value }))
            .collect(),
    )
}

/// `Series`: the label sets of the matching streams, limited to `labelNames` when
/// given.
pub async fn series(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let (codec, request) = request(&headers, body).await?;
    let req: pb::SeriesRequest = request.decode(|j| {
        Ok(pb::SeriesRequest {
            matchers: j.strings(&["matchers"])?,
            label_names: j.strings(&["labelNames", "label_names"])?,
            start: j.int(&["start"])?.unwrap_or(0),
            end: j.int(&["end"])?.unwrap_or(0),
        })
    })?;
    let sets = streams(&state, &tenant, &req.matchers, range(req.start, req.end)?)?;
    let mut seen = BTreeSet::new();
    let labels_set: Vec<pb::Labels> = sets
        .iter()
        .map(|set| {
            set.iter()
                .filter(|(k, _)| {
                    req.label_names.is_empty() || req.label_names.iter().any(|n| n == k)
                })
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect::<Vec<_>>()
        })
        .filter(|pairs| seen.insert(pairs.clone()))
        .map(|pairs| pb::Labels {
            labels: pairs
                .into_iter()
                .map(|(name, value)| pb::LabelPair { name, value })
                .collect(),
        })
        .collect();
    let response = pb::SeriesResponse { labels_set };
    Ok(respond(
        codec,
        &response,
        || json!({ "labelsSet": response.labels_set.iter().map(|l| json!({ "labels": pairs_json(&l.labels) })).collect::<Vec<_>>() }),
    ))
}

fn flame_graph(graph: FlameGraph) -> pb::FlameGraph {
    pb::FlameGraph {
        names: graph.names,
        levels: graph
            .levels
            .into_iter()
            .map(|values| pb::Level { values })
            .collect(),
        total: graph.total,
        max_self: graph.max_self,
    }
}

fn flame_graph_json(graph: &pb::FlameGraph) -> Value {
    let text = |v: &i64| Value::from(v.to_string());
    json!({ "flamegraph": {
        "names": graph.names,
        "levels": graph.levels.iter().map(|l| json!({ "values": l.values.iter().map(text).collect::<Vec<_>>() })).collect::<Vec<_>>(),
        "total": graph.total.to_string(),
        "maxSelf": graph.max_self.to_string(),
    }})
}

/// Answers with the merged flame graph of a query, folded to `max_nodes` nodes when
/// given, as Pyroscope does. Both merge responses are `flamegraph = 1` alone, so one
/// message encodes either.
async fn flame_graph_response(
    state: &AppState,
    tenant: &Tenant,
    codec: Codec,
    query: ProfileQuery,
    max_nodes: Option<i64>,
) -> Result<Response> {
    let result = state.engine.merge_profile(tenant, &query, false).await?;
    let max_nodes = max_nodes.filter(|n| *n > 0).map(|n| n as usize);
    let graph = flame_graph(result.merged.flame_graph(max_nodes));
    let json = flame_graph_json(&graph);
    let response = pb::SelectMergeStacktracesResponse {
        flamegraph: Some(graph),
    };
    Ok(respond(codec, &response, || json))
}

/// `SelectMergeStacktraces`: the merged flame graph of a profile type.
pub async fn select_merge_stacktraces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let (codec, request) = request(&headers, body).await?;
    let req: pb::SelectMergeStacktracesRequest = request.decode(|j| {
        Ok(pb::SelectMergeStacktracesRequest {
            profile_type_id: j.string(&["profileTypeID", "profile_typeID"])?,
            label_selector: j.string(&["labelSelector", "label_selector"])?,
            start: j.int(&["start"])?.unwrap_or(0),
            end: j.int(&["end"])?.unwrap_or(0),
            max_nodes: j.int(&["maxNodes", "max_nodes"])?,
        })
    })?;
    let query = ProfileQuery {
        profile_type: profile_type(&req.profile_type_id)?,
        selector: selector(&req.label_selector)?,
        range: Some(range(req.start, req.end)?),
        scope: Scope::All,
    };
    flame_graph_response(&state, &tenant, codec, query, req.max_nodes).await
}

/// `SelectMergeSpanProfile`: the flame graph of the samples labelled with the given
/// span IDs (Grafana's trace-to-profiles).
pub async fn select_merge_span_profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let (codec, request) = request(&headers, body).await?;
    let req: pb::SelectMergeSpanProfileRequest = request.decode(|j| {
        Ok(pb::SelectMergeSpanProfileRequest {
            profile_type_id: j.string(&["profileTypeID", "profile_typeID"])?,
            label_selector: j.string(&["labelSelector", "label_selector"])?,
            span_selector: j.strings(&["spanSelector", "span_selector"])?,
            start: j.int(&["start"])?.unwrap_or(0),
            end: j.int(&["end"])?.unwrap_or(0),
            max_nodes: j.int(&["maxNodes", "max_nodes"])?,
        })
    })?;
    let spans = req
        .span_selector
        .iter()
        .map(|s| SpanId::from_hex(s).map_err(|e| bad(format!("span selector {s:?}: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    if spans.is_empty() {
        return Err(bad("spanSelector names no span"));
    }
    let query = ProfileQuery {
        profile_type: profile_type(&req.profile_type_id)?,
        selector: selector(&req.label_selector)?,
        range: Some(range(req.start, req.end)?),
        scope: Scope::SpanIds(spans),
    };
    flame_graph_response(&state, &tenant, codec, query, req.max_nodes).await
}

/// `SelectSeries`: the value of a profile type over time, per `groupBy` labels.
pub async fn select_series(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let (codec, request) = request(&headers, body).await?;
    let req: pb::SelectSeriesRequest = request.decode(|j| {
        let aggregation = match j.field(&["aggregation"]) {
            None => None,
            Some(Value::String(s)) if s.ends_with("AVERAGE") => Some(1),
            Some(Value::String(s)) if s.ends_with("SUM") => Some(0),
            Some(Value::Number(n)) => n.as_i64().map(|n| n as i32),
            Some(other) => return Err(bad(format!("unknown aggregation {other}"))),
        };
        Ok(pb::SelectSeriesRequest {
            profile_type_id: j.string(&["profileTypeID", "profile_typeID"])?,
            label_selector: j.string(&["labelSelector", "label_selector"])?,
            start: j.int(&["start"])?.unwrap_or(0),
            end: j.int(&["end"])?.unwrap_or(0),
            group_by: j.strings(&["groupBy", "group_by"])?,
            step: j.float(&["step"])?,
            aggregation,
            limit: j.int(&["limit"])?,
        })
    })?;
    if !(req.step.is_finite() && req.step > 0.0) {
        return Err(bad("step must be a positive number of seconds"));
    }
    let query = ProfileQuery {
        profile_type: profile_type(&req.profile_type_id)?,
        selector: selector(&req.label_selector)?,
        range: Some(range(req.start, req.end)?),
        scope: Scope::All,
    };
    let average = req.aggregation == Some(pb::TimeSeriesAggregationType::Average as i32);
    let step = (req.step * 1e9).round() as i64;
    let mut found = state
        .engine
        .profile_series(&tenant, &query, &req.group_by, step, average)
        .await?;
    if let Some(limit) = req.limit.filter(|l| *l > 0) {
        // The series with the largest totals.
        found.sort_by(|a, b| {
            let total = |s: &[(i64, f64)]| s.iter().map(|(_, v)| v).sum::<f64>();
            total(&b.1).total_cmp(&total(&a.1))
        });
        found.truncate(limit as usize);
    }
    let series: Vec<pb::Series> = found
        .into_iter()
        .map(|(labels, points)| pb::Series {
            labels: labels
                .into_iter()
                .map(|(name, value)| pb::LabelPair { name, value })
                .collect(),
            points: points
                .into_iter()
                .map(|(t, value)| pb::Point {
                    value,
                    timestamp: t / 1_000_000,
                })
                .collect(),
        })
        .collect();
    let response = pb::SelectSeriesResponse { series };
    Ok(respond(codec, &response, || {
        json!({ "series": response.series.iter().map(|s| json!({
            "labels": pairs_json(&s.labels),
            "points": s.points.iter().map(|p| json!({ "value": p.value, "timestamp": p.timestamp.to_string() })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>() })
    }))
}
