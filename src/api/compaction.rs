//! `POST /threadline/v1/compact`: a compaction and retention pass now, its progress
//! streamed as JSON lines; `GET /threadline/v1/retention`: what the tenant keeps of
//! each signal, and until when.
//!
//! A pass covers every tenant (it is the same pass the server runs in the background)
//! and runs to its end even if the client goes away; while one runs, another is
//! refused with 409.

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, ErrorCode, tenant};
use crate::compact::Progress;
use crate::ingest::now_ns;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactParams {
    /// Also compact windows that have not ended yet (by default only hours that
    /// ended before now).
    #[serde(default)]
    all: bool,
}

pub async fn compact(
    State(state): State<AppState>,
    Query(params): Query<CompactParams>,
) -> Result<Response, ApiError> {
    if state.db.compacting() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "a compaction pass is already running; try again when it has ended",
        ));
    }
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
    let db = state.db;
    tokio::spawn(async move {
        let now = now_ns();
        let settled_before = if params.all {
            i64::MAX
        } else {
            db.settled_before(now)
        };
        let events = sender.clone();
        let send = move |progress: Progress| {
            if let Ok(line) = serde_json::to_string(&progress) {
                let _ = events.send(line + "\n");
            }
        };
        let last = match db.compact(settled_before, now, &send).await {
            Ok(report) => {
                let mut done = serde_json::to_value(&report).unwrap_or_default();
                done["event"] = "done".into();
                done
            }
            Err(e) => json!({ "event": "error", "error": e.to_string() }),
        };
        let _ = sender.send(last.to_string() + "\n");
    });
    let lines = futures::stream::unfold(receiver, |mut receiver| async move {
        let line = receiver.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(line), receiver))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

pub async fn retention(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = tenant(&headers)?;
    let now = now_ns();
    let rfc3339 = |ns: i64| chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339();
    let signals: Vec<_> = state
        .db
        .retention_status(&tenant, now)
        .into_iter()
        .map(|s| {
            json!({
                "signal": s.signal.as_str(),
                "period_seconds": s.period.map(|p| p.as_secs()),
                "deletes_before": s.cutoff.map(rfc3339),
                "oldest": s.oldest.map(rfc3339),
                "chunks": s.chunks,
                "bytes": s.bytes,
                "rows": s.rows,
            })
        })
        .collect();
    Ok(Json(json!({ "tenant": tenant.as_str(), "signals": signals })).into_response())
}
