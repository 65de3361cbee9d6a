//! OTLP/HTTP receivers for logs, traces and metrics, per the OTLP/HTTP spec: protobuf or JSON
//! (the response uses the request's encoding), optional gzip, 200 with
//! `partial_success` when some records were refused, and errors as a `google.rpc.Status`
//! body with 400, 413, 415 or 503.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prost::Message;

use super::{
    ApiError, AppState, ErrorCode, body_error, metric_batches, now_ns, read_body, store, tenant,
};
use crate::ingest::otlp::{self, Encoding};
use crate::ingest::otlp_metrics;
use crate::ingest::{ContentEncoding, Decoded, Rejected, decompress};
use crate::model::{Signal, Tenant};

/// `google.rpc.Status`, the error body OTLP/HTTP asks for.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

pub struct OtlpError(ApiError, Encoding);

impl IntoResponse for OtlpError {
    fn into_response(self) -> Response {
        let OtlpError(error, encoding) = self;
        let status = error.code.status();
        // gRPC codes: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL.
        let code = match error.code {
            ErrorCode::PayloadTooLarge | ErrorCode::LimitExceeded | ErrorCode::RateLimited => 8,
            ErrorCode::Unavailable => 14,
            ErrorCode::Unauthorized => 16,
            ErrorCode::Forbidden => 7,
            ErrorCode::Internal => 13,
            _ => 3,
        };
        let body = match encoding {
            Encoding::Protobuf => RpcStatus {
                code,
                message: error.message.clone(),
            }
            .encode_to_vec(),
            Encoding::Json => serde_json::json!({ "code": code, "message": error.message })
                .to_string()
                .into_bytes(),
        };
        let mut response = (
            status,
            [(header::CONTENT_TYPE, encoding.content_type())],
            body,
        )
            .into_response();
        if let Some(value) = error.retry_after_header() {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A request as far as every signal takes it: its tenant, encoding and decoded body.
struct Accepted {
    tenant: Tenant,
    encoding: Encoding,
    data: bytes::Bytes,
}

/// The steps every signal shares, up to a decoded body.
async fn accept(headers: &HeaderMap, body: Body, state: &AppState) -> Result<Accepted, OtlpError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        return Err(OtlpError(
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "unsupported content type {content_type:?}: send application/x-protobuf or application/json"
                ),
            ),
            Encoding::Json,
        ));
    };
    let fail = |e: ApiError| OtlpError(e, encoding);
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let content_encoding = ContentEncoding::parse(content_encoding).map_err(|e| {
        fail(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            e.to_string(),
        ))
    })?;
    let tenant = tenant(headers).map_err(fail)?;
    let limit = state.limits(&tenant).max_body_bytes;
    let raw = read_body(body, limit).await.map_err(fail)?;
    let data = decompress(raw, content_encoding, limit).map_err(|e| fail(body_error(e)))?;
    Ok(Accepted {
        tenant,
        encoding,
        data,
    })
}

/// Writes one signal's decoded rows, answering errors in the request's encoding.
async fn write(
    state: &AppState,
    accepted: &Accepted,
    signal: Signal,
    decoded: Decoded,
) -> Result<Rejected, OtlpError> {
    let batches = vec![(signal, decoded.batch)];
    let mut rejected = decoded.rejected;
    let body_bytes = accepted.data.len();
    store(state, &accepted.tenant, batches, &mut rejected, body_bytes)
        .await
        .map_err(|e| OtlpError(e, accepted.encoding))?;
    Ok(rejected)
}

fn ok(encoding: Encoding, body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

pub async fn logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let accepted = accept(&headers, body, &state).await?;
    let encoding = accepted.encoding;
    let request = otlp::decode_logs_request(&accepted.data, encoding)
        .map_err(|e| OtlpError(ApiError::bad_request(e.to_string()), encoding))?;
    let total = otlp::log_record_count(&request);
    let rules = state.rules(&accepted.tenant);
    let decoded = otlp::logs_to_batch(&request, &rules, now_ns());
    let rejected = write(&state, &accepted, Signal::Logs, decoded).await?;
    Ok(ok(
        encoding,
        otlp::logs_response(&rejected, total, encoding),
    ))
}

pub async fn traces(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let accepted = accept(&headers, body, &state).await?;
    let encoding = accepted.encoding;
    let request = otlp::decode_traces_request(&accepted.data, encoding)
        .map_err(|e| OtlpError(ApiError::bad_request(e.to_string()), encoding))?;
    let total = otlp::span_count(&request);
    let decoded = otlp::traces_to_batch(&request, &state.ingest);
    let rejected = write(&state, &accepted, Signal::Spans, decoded).await?;
    Ok(ok(
        encoding,
        otlp::traces_response(&rejected, total, encoding),
    ))
}

pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let Accepted {
        tenant,
        encoding,
        data,
    } = accept(&headers, body, &state).await?;
    let fail = |e: ApiError| OtlpError(e, encoding);
    let request = otlp_metrics::decode_metrics_request(&data, encoding)
        .map_err(|e| fail(ApiError::bad_request(e.to_string())))?;
    let total = otlp_metrics::data_point_count(&request);
    let rows = otlp_metrics::metrics_to_rows(&request, &state.ingest);
    let (batches, mut rejected) = metric_batches(rows).map_err(fail)?;
    store(&state, &tenant, batches, &mut rejected, data.len())
        .await
        .map_err(fail)?;
    Ok(ok(
        encoding,
        otlp_metrics::metrics_response(&rejected, total, encoding),
    ))
}
