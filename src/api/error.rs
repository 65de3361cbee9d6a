//! API errors: a small code that maps to an HTTP status in one place, and a message the
//! client can act on. Internal details are logged, never returned.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::{error, warn};

use crate::db;
use crate::query::QueryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// No or wrong credentials.
    Unauthorized,
    /// Credentials that do not allow what was asked.
    Forbidden,
    /// Limits on what a query may use.
    LimitExceeded,
    /// A tenant's ingest limits (rate, active streams): retrying later may work.
    RateLimited,
    /// Temporarily unable (WAL or object store trouble, no query slot): retrying may
    /// work.
    Unavailable,
    /// A query ran out of time.
    Timeout,
    /// The client stopped sending its request body.
    RequestTimeout,
    /// The same work is already under way.
    Conflict,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::LimitExceeded => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Unavailable | ErrorCode::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Prometheus's name for the kind of error.
    pub fn error_type(self) -> &'static str {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::PayloadTooLarge
            | ErrorCode::UnsupportedMediaType => "bad_data",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "not_acceptable",
            ErrorCode::Unauthorized | ErrorCode::Forbidden => "unauthorized",
            ErrorCode::RateLimited => "too_many_requests",
            ErrorCode::LimitExceeded => "execution",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout | ErrorCode::RequestTimeout => "timeout",
            ErrorCode::Conflict | ErrorCode::Internal => "internal",
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds the client should wait before retrying (`Retry-After`); for
    /// `Unavailable` and `Timeout` 5 unless said otherwise.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Asks the client to wait `seconds` before retrying.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The `Retry-After` header this error sends, if any.
    pub fn retry_after_header(&self) -> Option<HeaderValue> {
        let seconds = match (self.retry_after, self.code) {
            (Some(seconds), _) => seconds,
            (None, ErrorCode::Unavailable | ErrorCode::Timeout) => 5,
            (None, _) => return None,
        };
        Some(HeaderValue::from(seconds))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl From<db::Error> for ApiError {
    fn from(e: db::Error) -> Self {
        if let db::Error::Wal(crate::wal::Error::Full { used, limit }) = e {
            // Expected while the object store is down: the server log says so once per
            // refused push, as a warning.
            warn!(
                wal_bytes = used,
                limit, "push refused: the wal is at its disk bound"
            );
            return ApiError::new(
                ErrorCode::Unavailable,
                "the write-ahead log is full (wal.max_disk_bytes) until buffered rows reach the object store; nothing was stored, retry later",
            );
        }
        error!(error = %e, "write failed");
        match e {
            db::Error::Wal(crate::wal::Error::Write(_) | crate::wal::Error::Closed) => {
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the write could not be made durable and was not acknowledged; retry later",
                )
            }
            _ => ApiError::new(
                ErrorCode::Internal,
                "the write failed and was not acknowledged; see the server log",
            ),
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(message) => ApiError::bad_request(message),
            QueryError::ResourcesExhausted(_) => {
                ApiError::new(ErrorCode::LimitExceeded, e.to_string())
            }
            QueryError::Timeout(_) => ApiError::new(ErrorCode::Timeout, e.to_string()),
            QueryError::Busy(_) => ApiError::new(ErrorCode::Unavailable, e.to_string()),
            QueryError::Execution(_) => {
                error!(error = %e, "query failed");
                ApiError::new(
                    ErrorCode::Internal,
                    "query execution failed; see the server log",
                )
            }
        }
    }
}

impl ApiError {
    /// The error as Loki writes errors: the message alone, as plain text.
    pub fn into_text_response(self) -> Response {
        self.respond(|status, message| {
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{message}\n"),
            )
                .into_response()
        })
    }

    fn respond(self, body: impl FnOnce(StatusCode, &str) -> Response) -> Response {
        let status = self.code.status();
        if status.is_server_error() {
            warn!(status = status.as_u16(), message = %self.message, "request failed");
        }
        let retry_after = self.retry_after_header();
        let mut response = body(status, &self.message);
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// JSON errors carry Prometheus's `errorType` so that its clients read them too.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error_type = self.code.error_type();
        self.respond(|status, message| {
            (
                status,
                Json(serde_json::json!({
                    "status": "error",
                    "errorType": error_type,
                    "error": message,
                })),
            )
                .into_response()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal;

    /// Neither a failed WAL write (a full disk) nor a WAL at its disk bound is ever
    /// answered with a 2xx: both are 503 with `Retry-After`, the status on which
    /// remote-write, Loki and OTLP senders retry.
    #[test]
    fn unwritten_pushes_are_503_with_retry_after() {
        let full_disk = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let errors = [
            db::Error::Wal(wal::Error::Write(std::sync::Arc::new(full_disk))),
            db::Error::Wal(wal::Error::Full {
                used: 10,
                limit: 10,
            }),
        ];
        for error in errors {
            let response = ApiError::from(error).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().contains_key(header::RETRY_AFTER));
        }
    }
}
