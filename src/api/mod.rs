//! The HTTP API: one axum router for every endpoint. Ingest endpoints sit at the paths
//! their protocols define (OTLP `/v1/*`, Prometheus `/api/v1/write`, Loki
//! `/loki/api/v1/push`); Threadline's own API lives under `/threadline/v1/` so it never
//! collides with a compatible path.

pub mod auth;
mod bundle;
mod compaction;
mod error;
mod loki;
mod loki_query;
mod otlp;
mod params;
mod profile_query;
mod profiles;
mod prometheus;
mod pyroscope_query;
mod query;
mod tempo;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use bytes::Bytes;
use http_body_util::BodyExt;

pub use auth::AuthConfig;
pub use error::{ApiError, ErrorCode};

use crate::db::Db;
use crate::ingest::Rejected;
use crate::ingest::metrics::{MAX_ROWS_PER_REQUEST, MetricRows};
pub use crate::ingest::now_ns;
use crate::ingest::{BodyError, ContentEncoding, IngestRules, decompress};
use crate::limits::{LimitError, Limiter, Limits, streams_of, within_label_limits};
use crate::metrics::Metrics;
use crate::model::{Signal, Tenant};
use crate::query::QueryEngine;
use crate::scrape::Scraper;

pub const TENANT_HEADER: &str = "x-scope-orgid";

/// Everything handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: Arc<Db>,
    pub engine: Arc<QueryEngine>,
    pub ingest: Arc<IngestRules>,
    pub limiter: Arc<Limiter>,
    pub auth: Arc<AuthConfig>,
    pub scraper: Arc<Scraper>,
}

impl AppState {
    /// A tenant's ingest limits.
    pub fn limits(&self, tenant: &Tenant) -> &Limits {
        self.limiter.limits(tenant)
    }

    /// The ingest rules with the tenant's own line limit.
    pub fn rules(&self, tenant: &Tenant) -> Cow<'_, IngestRules> {
        let max_line_bytes = self.limits(tenant).max_line_bytes;
        if max_line_bytes == self.ingest.max_line_bytes {
            Cow::Borrowed(&self.ingest)
        } else {
            Cow::Owned(IngestRules {
                max_line_bytes,
                ..IngestRules::clone(&self.ingest)
            })
        }
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/logs", post(otlp::logs))
        .route("/v1/traces", post(otlp::traces))
        .route("/v1/metrics", post(otlp::metrics))
        .route("/api/v1/write", post(prometheus::remote_write))
        .route(
            "/api/v1/query_exemplars",
            get(prometheus::query_exemplars).post(prometheus::query_exemplars),
        )
        .route("/api/v1/targets", get(prometheus::targets))
        .route(
            "/api/v1/query",
            get(prometheus::query).post(prometheus::query),
        )
        .route(
            "/api/v1/query_range",
            get(prometheus::query_range).post(prometheus::query_range),
        )
        .route(
            "/api/v1/labels",
            get(prometheus::labels).post(prometheus::labels),
        )
        .route("/api/v1/label/{name}/values", get(prometheus::label_values))
        .route(
            "/api/v1/series",
            get(prometheus::series).post(prometheus::series),
        )
        .route("/api/v1/metadata", get(prometheus::metadata))
        .route("/api/v1/status/buildinfo", get(prometheus::buildinfo))
        .route("/api/v1/rules", get(prometheus::rules))
        .route("/loki/api/v1/push", post(loki::push))
        .route(
            "/loki/api/v1/query_range",
            get(loki_query::query_range).post(loki_query::query_range),
        )
        .route(
            "/loki/api/v1/query",
            get(loki_query::query).post(loki_query::query),
        )
        .route("/loki/api/v1/labels", get(loki_query::labels))
        .route(
            "/loki/api/v1/label/{name}/values",
            get(loki_query::label_values),
        )
        .route(
            "/loki/api/v1/series",
            get(loki_query::series).post(loki_query::series),
        )
        .route("/loki/api/v1/index/stats", get(loki_query::index_stats))
        .route("/loki/api/v1/index/volume", get(loki_query::volume))
        .route(
            "/loki/api/v1/index/volume_range",
            get(loki_query::volume_range),
        )
        .route("/loki/api/v1/status/buildinfo", get(loki_query::buildinfo))
        .route("/api/traces/{trace_id}", get(tempo::trace_v1))
        .route("/api/v2/traces/{trace_id}", get(tempo::trace_v2))
        .route("/api/search", get(tempo::search))
        .route("/api/search/tags", get(tempo::tags_v1))
        .route("/api/v2/search/tags", get(tempo::tags_v2))
        .route("/api/search/tag/{tag}/values", get(tempo::tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tempo::tag_values_v2))
        .route("/api/echo", get(tempo::echo))
        .route("/api/status/buildinfo", get(tempo::buildinfo))
        .route("/ingest", post(profiles::pyroscope_ingest))
        .route(
            "/push.v1.PusherService/Push",
            post(profiles::pyroscope_push),
        )
        .route(
            "/querier.v1.QuerierService/ProfileTypes",
            post(pyroscope_query::profile_types),
        )
        .route(
            "/querier.v1.QuerierService/LabelNames",
            post(pyroscope_query::label_names),
        )
        .route(
            "/querier.v1.QuerierService/LabelValues",
            post(pyroscope_query::label_values),
        )
        .route(
            "/querier.v1.QuerierService/Series",
            post(pyroscope_query::series),
        )
        .route(
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            post(pyroscope_query::select_merge_stacktraces),
        )
        .route(
            "/querier.v1.QuerierService/SelectMergeSpanProfile",
            post(pyroscope_query::select_merge_span_profile),
        )
        .route(
            "/querier.v1.QuerierService/SelectSeries",
            post(pyroscope_query::select_series),
        )
        .route("/threadline/v1/profiles", post(profiles::push))
        .route("/threadline/v1/profiles/merge", get(profile_query::merge))
        .route("/threadline/v1/profiles/traces", get(profile_query::traces))
        .route("/threadline/v1/sql", post(query::sql))
        .route("/threadline/v1/compact", post(compaction::compact))
        .route("/threadline/v1/retention", get(compaction::retention))
        .route("/threadline/v1/query", get(query::logs))
        .route("/threadline/v1/labels", get(query::labels))
        .route(
            "/threadline/v1/label/{name}/values",
            get(query::label_values),
        )
        .route("/threadline/v1/series", get(query::series))
        .route(
            "/threadline/v1/samples",
            get(prometheus::samples).post(prometheus::samples),
        )
        .route("/threadline/v1/traces", get(query::traces_behind))
        .route("/threadline/v1/traces/{trace_id}", get(query::trace))
        .route(
            "/threadline/v1/traces/{trace_id}/exemplars",
            get(prometheus::trace_exemplars),
        )
        .route("/metrics", get(metrics))
        .route("/ready", get(|| async { "ready\n" }))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|uri: axum::http::Uri| async move {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no such endpoint: {}", uri.path()),
            )
        })
        .method_not_allowed_fallback(
            |method: axum::http::Method, uri: axum::http::Uri| async move {
                ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    format!("{method} is not allowed on {}", uri.path()),
                )
            },
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state.auth),
            auth::authenticate,
        ))
        .layer(axum::middleware::map_response(close_after_refusal))
        .with_state(state)
}

/// Refusals that may leave the request body unread (sent before or while reading it)
/// close the connection and say so: the server cannot reuse a connection holding the
/// rest of a body, and a client that did not know would send its next request into a
/// closing connection.
async fn close_after_refusal(mut response: axum::response::Response) -> axum::response::Response {
    if matches!(
        response.status().as_u16(),
        401 | 403 | 408 | 413 | 415 | 429
    ) {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

async fn metrics(State(state): State<AppState>) -> ([(&'static str, &'static str); 1], String) {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.db.metrics().render(),
    )
}

/// The request's tenant: `X-Scope-OrgID`, or `default` without it. Behind `app`'s
/// authentication layer the header holds the tenant it decided (see `auth`).
pub fn tenant(headers: &HeaderMap) -> Result<Tenant, ApiError> {
    match headers.get(TENANT_HEADER) {
        None => Ok(Tenant::default_tenant()),
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request("X-Scope-OrgID must be ASCII"))?;
            Tenant::new(text.trim()).map_err(|e| ApiError::bad_request(e.to_string()))
        }
    }
}

/// Reads a body, undoes its `Content-Encoding` (or `default_encoding` when the header is
/// absent), and bounds both the bytes received and the bytes they inflate to.
pub async fn read_decoded_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    default_encoding: ContentEncoding,
) -> Result<Bytes, ApiError> {
    let header = headers
        .get(axum::http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let encoding = match header {
        None => default_encoding,
        Some(value) => ContentEncoding::parse(Some(value))
            .map_err(|e| ApiError::new(ErrorCode::UnsupportedMediaType, e.to_string()))?,
    };
    let raw = read_body(body, limit).await?;
    decompress(raw, encoding, limit).map_err(body_error)
}

pub fn body_error(e: BodyError) -> ApiError {
    match e {
        BodyError::TooLarge { .. } => ApiError::new(ErrorCode::PayloadTooLarge, e.to_string()),
        BodyError::UnsupportedEncoding(_) => {
            ApiError::new(ErrorCode::UnsupportedMediaType, e.to_string())
        }
        BodyError::BadGzip(_) | BodyError::BadSnappy(_) => ApiError::bad_request(e.to_string()),
    }
}

/// Writes a decoded request: refuses the rows of streams whose labels exceed the
/// tenant's limits (adding them to `rejected`), admits the request under the
/// tenant's rate and stream limits, counts the records refused, waits until the rows
/// are durable, then counts its body bytes.
pub async fn store(
    state: &AppState,
    tenant: &Tenant,
    batches: Vec<(Signal, RecordBatch)>,
    rejected: &mut Rejected,
    body_bytes: usize,
) -> Result<(), ApiError> {
    let metrics = state.db.metrics();
    let limits = state.limits(tenant);
    let batches = within_label_limits(limits, batches, rejected)
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("cannot filter rows: {e}")))?;
    let streams = if limits.max_active_streams > 0 {
        streams_of(&batches)
    } else {
        HashSet::new()
    };
    if let Err(e) = state
        .limiter
        .admit(tenant, body_bytes as u64, &streams, Instant::now())
    {
        Metrics::add(&metrics.limited_requests_total, 1);
        tracing::warn!(%tenant, bytes = body_bytes, error = %e, "push refused by a tenant limit");
        return Err(limit_error(e));
    }
    Metrics::add(&metrics.rejected_records_total, rejected.count as u64);
    state.db.write_all(tenant, batches).await?;
    Metrics::add(&metrics.ingested_bytes_total, body_bytes as u64);
    Ok(())
}

/// 429 with `Retry-After` for limits that clear with time, 413 for a request no wait
/// can admit.
fn limit_error(e: LimitError) -> ApiError {
    match e.retry_after() {
        Some(wait) => {
            ApiError::new(ErrorCode::RateLimited, e.to_string()).retry_after(wait.as_secs())
        }
        None => ApiError::new(ErrorCode::PayloadTooLarge, e.to_string()),
    }
}

/// A metric request's batches, or 413 when it expanded past the row limit.
pub fn metric_batches(
    rows: MetricRows,
) -> Result<(Vec<(Signal, RecordBatch)>, Rejected), ApiError> {
    if rows.overflowed() {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request expands to more than {MAX_ROWS_PER_REQUEST} samples and exemplars (histogram buckets count one each); send smaller batches"
            ),
        ));
    }
    Ok(rows.finish())
}

/// Parses a query off the async workers (parsing compiles its regexes); a parse error
/// is a 400 with `context` before the parser's message.
pub async fn parse_query<T, E>(
    context: &'static str,
    parse: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::task::spawn_blocking(parse)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("query parsing failed: {e}")))?
        .map_err(|e| ApiError::bad_request(format!("{context}{e}")))
}

/// `{"status": "success", "data": …}`, the envelope of the Prometheus and Loki APIs.
pub fn success(data: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    axum::Json(serde_json::json!({ "status": "success", "data": data })).into_response()
}

/// Label pairs as a JSON object.
pub fn labels_json<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> serde_json::Value {
    serde_json::Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
            .collect(),
    )
}

pub fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// How long a request body may deliver nothing before the request is answered 408 and
/// its connection closed, so that a stalled (or slow-loris) client cannot hold a
/// connection and its buffer forever.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a body of at most `limit` bytes, counting as it streams (chunked bodies have
/// no Content-Length to trust), and giving up when it stalls for `BODY_IDLE_TIMEOUT`.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut body = http_body_util::Limited::new(body, limit);
    let mut chunks: Vec<Bytes> = Vec::new();
    loop {
        let Ok(frame) = tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await else {
            return Err(ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body stalled: nothing arrived for {}s; send the whole body without pausing",
                    BODY_IDLE_TIMEOUT.as_secs()
                ),
            ));
        };
        match frame {
            None => break,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    chunks.push(data);
                }
            }
            Some(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("request body exceeds the limit of {limit} bytes"),
                ));
            }
            Some(Err(e)) => {
                return Err(ApiError::bad_request(format!(
                    "cannot read request body: {e}"
                )));
            }
        }
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    })
}
