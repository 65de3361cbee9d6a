//! Who is asking: the one place a request's tenant is decided.
//!
//! - With bearer tokens configured, every request but the health and metrics endpoints
//!   must carry one (`Authorization: Bearer <token>`, or Basic auth with the token as
//!   password, as Prometheus and log shippers can send); the tenant is the token's. An
//!   `X-Scope-OrgID` naming another tenant is refused, never obeyed.
//! - Without tokens, the tenant is `X-Scope-OrgID`, validated; a request without it
//!   belongs to `default`, unless the config requires the header.
//!
//! The decided tenant is written back into `X-Scope-OrgID`, which handlers read (as
//! Cortex-style gateways inject the org ID), so no handler can see another.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{ApiError, ErrorCode, TENANT_HEADER};
use crate::model::Tenant;

/// Endpoints that answer without credentials: probes and the server's own metrics.
const OPEN_PATHS: &[&str] = &["/healthz", "/ready", "/metrics"];

#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Token → tenant. Empty: no authentication.
    pub tokens: HashMap<String, Tenant>,
    /// Refuse requests without `X-Scope-OrgID` instead of using `default`.
    pub require_tenant: bool,
}

/// Shortest token accepted in the config: guessing must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

impl AuthConfig {
    /// The tenant a presented token belongs to. Every configured token is compared in
    /// full, in time that depends only on the presented token's length, so timing
    /// tells an attacker nothing about any stored token.
    fn tenant_of(&self, presented: &[u8]) -> Option<&Tenant> {
        let mut found = None;
        for (token, tenant) in &self.tokens {
            if constant_time_eq(presented, token.as_bytes()) {
                found = Some(tenant);
            }
        }
        found
    }
}

/// Whether `a == b`, in time that depends on `a.len()` only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i).copied().unwrap_or(!x);
        diff |= x ^ y;
    }
    diff == 0
}

/// The credentials of a request: a bearer token, or the password of Basic auth.
fn presented_token(request: &Request) -> Option<Vec<u8>> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let colon = decoded.iter().position(|b| *b == b':')?;
        Some(decoded[colon + 1..].to_vec())
    } else {
        None
    }
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(ErrorCode::Unauthorized, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"threadline\""),
    );
    response
}

/// Axum middleware: decides the tenant, or answers 400, 401 or 403.
pub async fn authenticate(
    State(auth): State<std::sync::Arc<AuthConfig>>,
    mut request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let claimed = match request.headers().get(TENANT_HEADER) {
        None => None,
        Some(value) => match value.to_str().map(|v| Tenant::new(v.trim())) {
            Ok(Ok(tenant)) => Some(tenant),
            Ok(Err(e)) => {
                return ApiError::bad_request(format!("invalid X-Scope-OrgID: {e}"))
                    .into_response();
            }
            Err(_) => {
                return ApiError::bad_request(
                    "invalid X-Scope-OrgID: tenant id may contain only ASCII letters, digits, '-' and '_'",
                )
                .into_response();
            }
        },
    };
    let tenant = if auth.tokens.is_empty() {
        match claimed {
            Some(tenant) => tenant,
            None if auth.require_tenant => {
                return unauthorized(
                    "no tenant: this server requires the X-Scope-OrgID header on every request",
                );
            }
            None => Tenant::default_tenant(),
        }
    } else {
        let Some(token) = presented_token(&request) else {
            return unauthorized(
                "authentication required: send Authorization: Bearer <token> (or Basic auth with the token as password)",
            );
        };
        let Some(owner) = auth.tenant_of(&token) else {
            return unauthorized("invalid token");
        };
        if let Some(claimed) = claimed
            && claimed != *owner
        {
            return ApiError::new(
                ErrorCode::Forbidden,
                format!("this token belongs to tenant {owner}, not {claimed}"),
            )
            .into_response();
        }
        owner.clone()
    };
    match HeaderValue::from_str(tenant.as_str()) {
        Ok(value) => {
            request.headers_mut().insert(TENANT_HEADER, value);
            next.run(request).await
        }
        // A validated tenant ID is always a valid header value.
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokem"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
        // A byte of the presented token beyond the stored one never matches by chance.
        assert!(!constant_time_eq(&[0xff], &[]));
    }

    #[test]
    fn tokens_map_to_their_tenant() {
        let auth = AuthConfig {
            tokens: [
                ("a".repeat(20), Tenant::new("team-a").unwrap()),
                ("b".repeat(20), Tenant::new("team-b").unwrap()),
            ]
            .into(),
            require_tenant: false,
        };
        assert_eq!(
            auth.tenant_of("b".repeat(20).as_bytes()).unwrap().as_str(),
            "team-b"
        );
        assert!(auth.tenant_of("b".repeat(19).as_bytes()).is_none());
        assert!(auth.tenant_of(b"").is_none());
    }
}
