//! Profile queries over HTTP.
//!
//! - `GET /threadline/v1/profiles/merge?profile_type=…&query={…}&start=&end=` merges
//!   the samples of one profile type. Narrow it to a trace (`trace_id`), to spans of
//!   that trace (`trace_id` and `span_id`, comma-separated), or to the spans a SQL
//!   predicate over `spans` matches (`span_filter=name = 'checkout' AND duration_ns >
//!   2000000000`). `format`: `json` (a flame graph, the default), `folded`, or `pprof`
//!   (gzipped, for `go tool pprof`).
//! - `GET /threadline/v1/profiles/traces?function=…&profile_type=…` lists the traces
//!   whose samples of that type ran a function, most value first.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::query::time_range;
use super::{ApiError, AppState, tenant};
use crate::model::{Selector, SpanId, TraceId};
use crate::profile::{ProfileType, pprof};
use crate::query::profiles::{ProfileQuery, Scope};

const DEFAULT_TRACE_LIMIT: usize = 20;
const MAX_TRACE_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct MergeParams {
    profile_type: Option<String>,
    query: Option<String>,
    start: Option<String>,
    end: Option<String>,
    trace_id: Option<String>,
    span_id: Option<String>,
    span_filter: Option<String>,
    format: Option<String>,
}

fn bad(e: impl ToString) -> ApiError {
    ApiError::bad_request(e.to_string())
}

fn profile_type(text: Option<&str>) -> Result<ProfileType, ApiError> {
    text.ok_or_else(|| {
        bad("missing query parameter: profile_type (e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds)")
    })?
    .parse()
    .map_err(bad)
}

fn selector(text: Option<&str>) -> Result<Selector, ApiError> {
    match text.map(str::trim) {
        None | Some("") => Ok(Selector::default()),
        Some(text) => Selector::parse(text).map_err(bad),
    }
}

/// `GET /threadline/v1/profiles/merge`
pub async fn merge(
    State(state): State<AppState>,
    Query(params): Query<MergeParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let format = params.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "folded" | "pprof") {
        return Err(bad(format!(
            "unknown format {format:?}: use json (flame graph), folded or pprof"
        )));
    }
    let trace_id = params
        .trace_id
        .as_deref()
        .map(TraceId::from_hex)
        .transpose()
        .map_err(|e| bad(format!("trace_id: {e}")))?;
    let explicit_range = params.start.is_some() || params.end.is_some();
    let range = time_range(params.start.as_deref(), params.end.as_deref())?;
    let scope = match (&params.span_filter, &params.span_id, trace_id) {
        (Some(_), Some(_), _) => {
            return Err(bad("give span_id or span_filter, not both"));
        }
        (Some(predicate), None, _) => Scope::SpanPredicate(predicate.clone()),
        (None, Some(spans), Some(trace_id)) => {
            let ids = spans
                .split(',')
                .map(|s| SpanId::from_hex(s.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("span_id: {e}")))?;
            Scope::Spans(trace_id, ids)
        }
        (None, Some(_), None) => {
            return Err(bad("span_id needs the span's trace_id"));
        }
        (None, None, Some(trace_id)) => Scope::Trace(trace_id),
        (None, None, None) => Scope::All,
    };
    let traced = matches!(scope, Scope::Trace(_) | Scope::Spans(..));
    let query = ProfileQuery {
        profile_type: profile_type(params.profile_type.as_deref())?,
        selector: selector(params.query.as_deref())?,
        range: (explicit_range || !traced).then_some(range),
        scope,
    };
    let result = state
        .engine
        .merge_profile(&tenant, &query, format == "pprof")
        .await?;
    let merged = result.merged;
    Ok(match format {
        "pprof" => (
            [
                ("content-type", "application/octet-stream"),
                (
                    "content-disposition",
                    "attachment; filename=\"profile.pb.gz\"",
                ),
            ],
            pprof::encode_gzip(&merged.to_profile()),
        )
            .into_response(),
        "folded" => (
            [("content-type", "text/plain; charset=utf-8")],
            merged.folded(),
        )
            .into_response(),
        _ => Json(json!({
            "profile_type": merged.profile_type.to_string(),
            "unit": merged.profile_type.sample.unit,
            "samples": result.samples,
            "flamegraph": merged.flame_graph(None),
            "stats": result.stats.to_json(),
        }))
        .into_response(),
    })
}

#[derive(Debug, Deserialize)]
pub struct TraceParams {
    function: Option<String>,
    profile_type: Option<String>,
    query: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<usize>,
}

/// `GET /threadline/v1/profiles/traces`
pub async fn traces(
    State(state): State<AppState>,
    Query(params): Query<TraceParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let function = params
        .function
        .as_deref()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| bad("missing query parameter: function"))?;
    let profile_type = profile_type(params.profile_type.as_deref())?;
    let limit = params.limit.unwrap_or(DEFAULT_TRACE_LIMIT);
    if limit == 0 || limit > MAX_TRACE_LIMIT {
        return Err(bad(format!("limit must be 1 to {MAX_TRACE_LIMIT}")));
    }
    let range = time_range(params.start.as_deref(), params.end.as_deref())?;
    let traces = state
        .engine
        .function_traces(
            &tenant,
            function,
            &profile_type,
            &selector(params.query.as_deref())?,
            range,
            limit,
        )
        .await?;
    Ok(Json(json!({ "function": function, "traces": traces })).into_response())
}
