//! Profile push: Threadline's own endpoint and Pyroscope's two ingest APIs.
//!
//! - `POST /threadline/v1/profiles?service_name=api&env=prod`: a pprof body (gzipped
//!   or not); every query parameter is a label. 204 when durable.
//! - `POST /ingest?name=app.cpu{env=prod}&from=&until=&format=pprof`: Pyroscope's
//!   ingest API (pprof raw or as a multipart form, or folded stacks). 200 when durable.
//! - `POST /push.v1.PusherService/Push`: Pyroscope's push API (Connect, protobuf).
//!   200 with an empty `PushResponse` when durable.
//!
//! A request is stored whole or not at all: one bad profile fails it with 400.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::{
    ApiError, AppState, ErrorCode, content_type, now_ns, read_decoded_body, store, tenant,
};
use crate::ingest::profiles::{ProfileRows, Received};
use crate::ingest::pyroscope::{
    decode_push, multipart_boundary, parse_app_name, parse_folded, parse_multipart,
};
use crate::ingest::{ContentEncoding, Rejected};
use crate::profile::{Profile, pprof, to_delta};
use crate::query::time::parse_time;

/// `POST /threadline/v1/profiles`
pub async fn push(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let tenant = tenant(&headers)?;
    let labels: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let limit = state.max_body_bytes;
    let data = read_decoded_body(&headers, body, limit, ContentEncoding::Identity).await?;
    let mut rows = ProfileRows::default();
    let now = now_ns();
    add_pprof(&mut rows, labels, data.clone(), None, None, (now, 0), limit)?;
    store(
        &state,
        &tenant,
        rows.finish(),
        &Rejected::default(),
        data.len(),
    )
    .await?;
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
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let name = parse_app_name(param("name")).map_err(ApiError::bad_request)?;
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        match params.get(name) {
            None => Ok(None),
            Some(v) => parse_time(v)
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("{name}: {e}"))),
        }
    };
    let now = now_ns();
    let from = time("from")?.unwrap_or(now);
    let until = time("until")?.unwrap_or(from);
    let defaults = (from, until.saturating_sub(from).max(0));
    let limit = state.max_body_bytes;
    let data = read_decoded_body(&headers, body, limit, ContentEncoding::Identity).await?;
    let mut rows = ProfileRows::default();
    let format = param("format");
    if let Some(boundary) = content_type(&headers).and_then(multipart_boundary) {
        let parts = parse_multipart(&data, boundary).map_err(ApiError::bad_request)?;
        let part = |name: &str| {
            parts
                .iter()
                .find(|p| p.name == name)
                .map(|p| data.slice_ref(p.data))
        };
        let profile = part("profile")
            .ok_or_else(|| ApiError::bad_request("the multipart form has no \"profile\" part"))?;
        add_pprof(
            &mut rows,
            name.labels,
            profile,
            part("prev_profile"),
            None,
            defaults,
            limit,
        )?;
    } else {
        match format {
            "pprof" => add_pprof(
                &mut rows,
                name.labels,
                data.clone(),
                None,
                None,
                defaults,
                limit,
            )?,
            "" | "folded" => {
                let text = std::str::from_utf8(&data)
                    .map_err(|_| ApiError::bad_request("folded stacks must be UTF-8 text"))?;
                let rate = match params.get("sampleRate") {
                    None => 100,
                    Some(v) => v.trim().parse::<u32>().map_err(|_| {
                        ApiError::bad_request(format!("sampleRate={v:?} is not a positive integer"))
                    })?,
                };
                let profile =
                    parse_folded(text, param("units"), rate).map_err(ApiError::bad_request)?;
                let original = pprof::encode(&profile);
                let original = prost::Message::encode_to_vec(&original);
                add_profile(&mut rows, name.labels, &profile, &original, None, defaults)?;
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
    }
    store(
        &state,
        &tenant,
        rows.finish(),
        &Rejected::default(),
        data.len(),
    )
    .await?;
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
    let limit = state.max_body_bytes;
    let data = read_decoded_body(&headers, body, limit, ContentEncoding::Identity).await?;
    let request = decode_push(&data).map_err(ApiError::bad_request)?;
    let mut rows = ProfileRows::default();
    let now = now_ns();
    for series in request.series {
        let labels: Vec<(String, String)> = series
            .labels
            .into_iter()
            .map(|l| (l.name, l.value))
            .collect();
        for sample in series.samples {
            let id = (!sample.id.is_empty()).then_some(sample.id.as_str());
            add_pprof(
                &mut rows,
                labels.clone(),
                Bytes::from(sample.raw_profile),
                None,
                id,
                (now, 0),
                limit,
            )?;
        }
    }
    store(
        &state,
        &tenant,
        rows.finish(),
        &Rejected::default(),
        data.len(),
    )
    .await?;
    Ok(([("content-type", "application/proto")], Bytes::new()).into_response())
}

/// Decodes one pprof (gzipped or not), turns cumulative values into growth since
/// `previous` when one came with it, and adds its rows.
fn add_pprof(
    rows: &mut ProfileRows,
    labels: Vec<(String, String)>,
    raw: Bytes,
    previous: Option<Bytes>,
    id: Option<&str>,
    defaults: (i64, i64),
    limit: usize,
) -> Result<(), ApiError> {
    let bad = |e: pprof::PprofError| ApiError::bad_request(e.to_string());
    let original = pprof::inflate(raw, limit).map_err(bad)?;
    let mut profile = pprof::decode(&original).map_err(bad)?;
    if let Some(previous) = previous {
        let mut before = pprof::decode(&pprof::inflate(previous, limit).map_err(bad)?)
            .map_err(|e| ApiError::bad_request(format!("prev_profile: {e}")))?;
        let totals = to_delta(&mut before, None);
        to_delta(&mut profile, Some(&totals));
    }
    add_profile(rows, labels, &profile, &original, id, defaults)
}

fn add_profile(
    rows: &mut ProfileRows,
    labels: Vec<(String, String)>,
    profile: &Profile,
    original: &[u8],
    id: Option<&str>,
    (default_time, default_duration): (i64, i64),
) -> Result<(), ApiError> {
    rows.add(Received {
        labels,
        profile,
        original,
        default_time,
        default_duration,
        id,
    })
    .map_err(|e| match e {
        crate::ingest::profiles::ProfileRowError::TooManyFrames => {
            ApiError::new(ErrorCode::PayloadTooLarge, e.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    })
}
