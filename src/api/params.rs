//! Request parameters as the compatible read APIs take them: from the query string
//! and, on a POST, from a form body, with repeated keys (`match[]`) kept.

use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};

use super::{ApiError, read_body};
use crate::query::logql::Direction;
use crate::query::time::parse_time;

/// Largest form body read for parameters.
const MAX_FORM_BYTES: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let mut pairs: Vec<(String, String)> = request
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if request.method() == Method::POST && is_form {
            let body = read_body(request.into_body(), MAX_FORM_BYTES).await?;
            pairs.extend(url::form_urlencoded::parse(&body).into_owned());
        }
        Ok(Self(pairs))
    }
}

impl Params {
    /// The last non-empty value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Each name's last value, as a form decoded into a map keeps it.
    pub fn into_map(self) -> std::collections::HashMap<String, String> {
        self.0.into_iter().collect()
    }

    /// Every value given for `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_request(format!("missing parameter: {name}")))
    }

    /// A time parameter (RFC 3339 or a Unix epoch), or `default`.
    pub fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            Some(text) => {
                parse_time(text).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
            }
            None => Ok(default),
        }
    }

    /// `start` and `end`, defaulting to `default_ns` before now and now.
    pub fn range(&self, now: i64, default_ns: i64) -> Result<(i64, i64), ApiError> {
        resolve_range(self.get("start"), self.get("end"), now, default_ns)
    }

    /// A positive integer parameter, at most `max`, or `default`.
    pub fn count(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "{name} must be a whole number from 1 to {max}, not {text:?}"
                ))),
            },
        }
    }

    /// `direction`: `backward` (newest first, the default) or `forward`.
    pub fn direction(&self) -> Result<Direction, ApiError> {
        match self
            .get("direction")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("backward") => Ok(Direction::Backward),
            Some("forward") => Ok(Direction::Forward),
            Some(other) => Err(ApiError::bad_request(format!(
                "direction must be forward or backward, not {other:?}"
            ))),
        }
    }

    /// A duration parameter: Prometheus style (`30s`, `1m`, `60000ms`) or a number of
    /// seconds (`15`, `0.5`); in nanoseconds.
    pub fn duration(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let ns = match text.parse::<f64>() {
            Ok(seconds) if seconds.is_finite() && seconds.abs() < 1e10 => {
                (seconds * 1e9).round() as i64
            }
            _ => crate::logql::parse_duration(text)
                .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))?,
        };
        if ns <= 0 {
            return Err(ApiError::bad_request(format!("{name} must be positive")));
        }
        Ok(Some(ns))
    }
}

/// A time range from optional `start` and `end` texts: `end` defaults to `now`,
/// `start` to `default_ns` before `end`.
pub fn resolve_range(
    start: Option<&str>,
    end: Option<&str>,
    now: i64,
    default_ns: i64,
) -> Result<(i64, i64), ApiError> {
    let time = |name: &str, text: Option<&str>, default: i64| match text {
        Some(t) => parse_time(t).map_err(|e| ApiError::bad_request(format!("{name}: {e}"))),
        None => Ok(default),
    };
    let end = time("end", end, now)?;
    let start = time("start", start, end.saturating_sub(default_ns))?;
    if start > end {
        return Err(ApiError::bad_request(
            "start must not be after end (end defaults to now)",
        ));
    }
    Ok((start, end))
}

impl From<Vec<(String, String)>> for Params {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Self(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn values_durations_and_counts() {
        let p = params(&[
            ("match[]", "{a=\"1\"}"),
            ("match[]", "{b=\"2\"}"),
            ("step", "60000ms"),
            ("limit", "0"),
            ("empty", ""),
        ]);
        assert_eq!(p.all("match[]").len(), 2);
        assert_eq!(p.duration("step").unwrap(), Some(60_000_000_000));
        assert_eq!(
            params(&[("step", "0.5")]).duration("step").unwrap(),
            Some(500_000_000)
        );
        assert!(params(&[("step", "0")]).duration("step").is_err());
        assert!(p.count("limit", 100, 5000).is_err());
        assert_eq!(p.count("missing", 100, 5000).unwrap(), 100);
        assert_eq!(p.get("empty"), None);
        assert!(p.required("query").is_err());
    }
}
