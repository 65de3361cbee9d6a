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
    /// Limits on what a query may use.
    LimitExceeded,
    /// Temporarily unable (WAL or object store trouble, no query slot): retrying may
    /// work.
    Unavailable,
    /// A query ran out of time.
    Timeout,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::LimitExceeded => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Unavailable | ErrorCode::Timeout => StatusCode::SERVICE_UNAVAILABLE,
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
            ErrorCode::LimitExceeded => "execution",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Internal => "internal",
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl From<db::Error> for ApiError {
    fn from(e: db::Error) -> Self {
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
        let mut response = body(status, &self.message);
        if matches!(self.code, ErrorCode::Unavailable | ErrorCode::Timeout) {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("5"));
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
