//! Profile push: Threadline's own endpoint and Pyroscope's two ingest APIs.
//!
//! - `POST /threadline/v1/profiles?service_name=api&env=prod`: a pprof body (gzipped
//!   or not); every query parameter is a label. 204 when durable.
//! - `POST /ingest?name=app.cpu{env=prod}&from=&until=&format=pprof`: Pyroscope's
//!   ingest API (pprof raw or as a multipart form, or folded stacks). 200 when durable.
//! - `POST /push.v1.PusherService/Push`: Pyroscope's push API (Connect, protobuf).
//!   200 with an empty `PushResponse` when durable.
//!
//! A request is stored whole or not at all: one bad profile fails it with 400. The
//! profiles of one request together inflate to at most the body limit. Decoding runs
//! on the blocking pool, off the async workers.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{
    ApiError, AppState, ErrorCode, content_type, now_ns, read_decoded_body, store, tenant,
};
use crate::ingest::profiles::{ProfileRowError, ProfileRows, Received};
use crate::ingest::pyroscope::{
    decode_push, multipart_boundary, parse_app_name, parse_folded, parse_multipart,
};
use crate::ingest::{ContentEncoding, Rejected};
use crate::model::{Signal, Tenant};
use crate::profile::{Profile, pprof, to_delta};
use crate::query::time::parse_time;

/// One profile of a request, before decoding.
struct Pending {
    labels: Vec<(String, String)>,
    body: PendingBody,
    id: Option<String>,
    /// Time and duration when the profile does not say.
    defaults: (i64, i64),
}

enum PendingBody {
    Pprof { raw: Bytes, previous: Option<Bytes> },
    Folded(Profile),
}

fn query_pairs(query: Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `POST /threadline/v1/profiles`
pub async fn push(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant(&headers)?;
    let data = read_decoded_body(
        &headers,
        body,
        state.limits(&tenant).max_body_bytes,
        ContentEncoding::Identity,
    )
    .await?;
    let pending = vec![Pending {
        labels: query_pairs(query),
        body: PendingBody::Pprof {
            raw: data.clone(),
            previous: None,
        },
        id: None,
        defaults: (now_ns(), 0),
    }];
    store_profiles(&state, &tenant, pending, data.len()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /ingest`
pub async fn pyroscope_ingest(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant(&headers)?;
    let params: HashMap<String, String> = query_pairs(query).into_iter().collect();
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let name = parse_app_name(param("name")).map_err(ApiError::bad_request)?;
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|v| parse_time(v).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))))
            .transpose()
    };
    let from = time("from")?.unwrap_or_else(now_ns);
    let until = time("until")?.unwrap_or(from);
    let defaults = (from, until.saturating_sub(from).max(0));
    let data = read_decoded_body(
        &headers,
        body,
        state.limits(&tenant).max_body_bytes,
        ContentEncoding::Identity,
    )
    .await?;
    let body =
        if let Some(boundary) = content_type(&headers).and_then(multipart_boundary) {
            let parts = parse_multipart(&data, boundary).map_err(ApiError::bad_request)?;
            let part = |name: &str| {
                parts
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| data.slice_ref(p.data))
            };
            let raw = part("profile").ok_or_else(|| {
                ApiError::bad_request("the multipart form has no \"profile\" part")
            })?;
            PendingBody::Pprof {
                raw,
                previous: part("prev_profile"),
            }
        } else {
            match param("format") {
                "pprof" => PendingBody::Pprof {
                    raw: data.clone(),
                    previous: None,
                },
                "" | "folded" => {
                    let text = std::str::from_utf8(&data)
                        .map_err(|_| ApiError::bad_request("folded stacks must be UTF-8 text"))?;
                    let rate =
                        match params.get("sampleRate") {
                            None => 100,
                            Some(v) => v.trim().parse::<u32>().ok().filter(|&r| r > 0).ok_or_else(
                                || {
                                    ApiError::bad_request(format!(
                                        "sampleRate={v:?} is not a positive integer"
                                    ))
                                },
                            )?,
                        };
                    PendingBody::Folded(
                        parse_folded(text, param("units"), rate).map_err(ApiError::bad_request)?,
                    )
                }
                other => {
                    return Err(ApiError::new(
                        ErrorCode::UnsupportedMediaType,
                        format!(
                            "format {other:?} is not supported: send format=pprof or folded stacks"
                        ),
                    ));
                }
            }
        };
    let pending = vec![Pending {
        labels: name.labels,
        body,
        id: None,
        defaults,
    }];
    store_profiles(&state, &tenant, pending, data.len()).await?;
    Ok(StatusCode::OK)
}

/// `POST /push.v1.PusherService/Push`
pub async fn pyroscope_push(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    match content_type(&headers).map(|c| c.split(';').next().unwrap_or_default().trim()) {
        None | Some("application/proto") | Some("application/x-protobuf") => {}
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("unsupported content type {other:?}: send application/proto"),
            ));
        }
    }
    let data = read_decoded_body(
        &headers,
        body,
        state.limits(&tenant).max_body_bytes,
        ContentEncoding::Identity,
    )
    .await?;
    let request = decode_push(&data).map_err(ApiError::bad_request)?;
    let now = now_ns();
    let mut pending = Vec::new();
    for series in request.series {
        let labels: Vec<(String, String)> = series
            .labels
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect();
        for sample in series.samples {
            pending.push(Pending {
                labels: labels.clone(),
                body: PendingBody::Pprof {
                    raw: Bytes::from(sample.raw_profile),
                    previous: None,
                },
                id: (!sample.id.is_empty()).then_some(sample.id),
                defaults: (now, 0),
            });
        }
    }
    store_profiles(&state, &tenant, pending, data.len()).await?;
    Ok(([("content-type", "application/proto")], Bytes::new()).into_response())
}

/// Decodes a request's profiles on the blocking pool and stores their rows.
async fn store_profiles(
    state: &AppState,
    tenant: &Tenant,
    pending: Vec<Pending>,
    body_bytes: usize,
) -> Result<(), ApiError> {
    let limit = state.limits(tenant).max_body_bytes;
    let batches = tokio::task::spawn_blocking(move || decode_all(pending, limit))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("decoding failed: {e}")))??;
    let mut rejected = Rejected::default();
    store(state, tenant, batches, &mut rejected, body_bytes).await?;
    if rejected.count > 0 {
        return Err(ApiError::bad_request(format!(
            "refused {} profile rows: {}",
            rejected.count,
            rejected.reasons.join("; ")
        )));
    }
    Ok(())
}

fn decode_all(pending: Vec<Pending>, limit: usize) -> Result<Vec<(Signal, RecordBatch)>, ApiError> {
    let bad = |e: pprof::PprofError| ApiError::bad_request(e.to_string());
    // What every profile of the request may inflate to, together.
    let mut left = limit;
    let mut inflate = |raw: Bytes| -> Result<Bytes, ApiError> {
        let inflated = pprof::inflate(raw, left).map_err(|e| match e {
            pprof::PprofError::TooLarge(_) => ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("{e} (the request's profiles together may inflate to {limit} bytes)"),
            ),
            other => ApiError::bad_request(other.to_string()),
        })?;
        left -= inflated.len();
        Ok(inflated)
    };
    let mut rows = ProfileRows::default();
    for p in pending {
        let (profile, original) = match p.body {
            PendingBody::Pprof { raw, previous } => {
                let original = inflate(raw)?;
                let mut profile = pprof::decode(&original).map_err(bad)?;
                if let Some(previous) = previous {
                    let mut before = pprof::decode(&inflate(previous)?)
                        .map_err(|e| ApiError::bad_request(format!("prev_profile: {e}")))?;
                    let totals = to_delta(&mut before, None);
                    to_delta(&mut profile, Some(&totals));
                }
                (profile, original)
            }
            PendingBody::Folded(profile) => {
                let original = prost::Message::encode_to_vec(&pprof::encode(&profile));
                (profile, Bytes::from(original))
            }
        };
        rows.add(Received {
            labels: p.labels,
            profile: &profile,
            original: &original,
            default_time: p.defaults.0,
            default_duration: p.defaults.1,
            id: p.id.as_deref(),
        })
        .map_err(|e| match e {
            ProfileRowError::TooLarge => ApiError::new(ErrorCode::PayloadTooLarge, e.to_string()),
            ProfileRowError::Labels(_) => ApiError::bad_request(e.to_string()),
        })?;
    }
    Ok(rows.finish())
}
