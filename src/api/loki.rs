//! Loki push: `POST /loki/api/v1/push`, snappy protobuf or JSON, optionally gzipped.
//!
//! Loki clients differ in their headers: a protobuf body is snappy-compressed whether
//! or not `Content-Encoding: snappy` says so, and a missing `Content-Type` means
//! protobuf, as in Loki. 204 on success. Entries that cannot be stored (bad labels, a
//! line over the limit, a bad timestamp) are refused one by one: the rest are written
//! and the answer is 400 naming what was refused, since shippers drop a 400 batch.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{
    ApiError, AppState, ErrorCode, body_error, content_type, now_ns, read_decoded_body, store,
    tenant,
};
use crate::ingest::loki;
use crate::ingest::otlp::Encoding;
use crate::ingest::{ContentEncoding, decompress};
use crate::model::Signal;

pub async fn push(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let encoding = match content_type(&headers) {
        None | Some("") => Encoding::Protobuf,
        Some(value) => Encoding::from_content_type(value).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "unsupported content type {value:?}: send application/x-protobuf (snappy) or application/json"
                ),
            )
        })?,
    };
    let tenant = tenant(&headers)?;
    let limit = state.limits(&tenant).max_body_bytes;
    let data = read_decoded_body(&headers, body, limit, ContentEncoding::Identity).await?;
    let streams = match encoding {
        Encoding::Json => loki::decode_json(&data),
        Encoding::Protobuf => {
            let snappy_header = headers
                .get(axum::http::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("snappy"));
            let raw = if snappy_header {
                data.clone()
            } else {
                decompress(data.clone(), ContentEncoding::Snappy, limit).map_err(body_error)?
            };
            loki::decode_protobuf(&raw)
        }
    }
    .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let total = loki::entry_count(&streams);
    let decoded = loki::push_to_batch(&streams, &state.rules(&tenant), now_ns());
    let mut rejected = decoded.rejected;
    let batches = vec![(Signal::Logs, decoded.batch)];
    store(&state, &tenant, batches, &mut rejected, data.len()).await?;
    if rejected.count > 0 {
        return Err(ApiError::bad_request(
            rejected.message(total, "log entries"),
        ));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
