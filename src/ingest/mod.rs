//! Decoding and validation of pushed telemetry into Arrow batches, one file per
//! protocol. Pure: no I/O, no clocks except where a protocol says "now".

pub mod body;
pub mod exposition;
pub mod loki;
pub mod metrics;
pub mod otlp;
pub mod otlp_metrics;
pub mod profiles;
pub mod protowire;
pub mod pyroscope;
pub mod remote_write;

use regex::Regex;

pub use body::{BodyError, ContentEncoding, decompress};

/// What an accepted request becomes: the rows of one signal, and what was refused.
#[derive(Debug)]
pub struct Decoded {
    pub batch: arrow::array::RecordBatch,
    pub rejected: Rejected,
}

/// Records refused one by one (reported as OTLP `partial_success`); the rest are kept.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rejected {
    pub count: usize,
    /// The first few distinct reasons, enough to act on without flooding the client.
    pub reasons: Vec<String>,
}

impl Rejected {
    const MAX_REASONS: usize = 5;

    pub fn add(&mut self, reason: String) {
        self.count += 1;
        if self.reasons.len() < Self::MAX_REASONS && !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    pub fn message(&self, total: usize, what: &str) -> String {
        format!(
            "rejected {} of {total} {what}: {}",
            self.count,
            self.reasons.join("; ")
        )
    }
}

/// The wall clock in nanoseconds, for protocols that stamp rows with "now".
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default()
}

/// How pushed records are mapped onto streams. Built once from the config.
#[derive(Debug, Clone)]
pub struct IngestRules {
    /// OTLP resource attributes promoted to labels; the label name is the attribute
    /// name with every character outside `[a-zA-Z0-9_]` replaced by `_`.
    pub label_attributes: Vec<String>,
    /// Finds a trace ID in a log body when the record has none. Capture group 1 must
    /// be the 32 hex digits.
    pub trace_id_pattern: Option<Regex>,
    /// Longest log body accepted, in bytes.
    pub max_line_bytes: usize,
}

pub const DEFAULT_LABEL_ATTRIBUTES: &[&str] = &[
    "service.name",
    "service.namespace",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
    "host.name",
];

pub const DEFAULT_TRACE_ID_PATTERN: &str =
    r#"(?i)\btrace[_-]?id["']?\s*[:=]\s*["']?([0-9a-f]{32})\b"#;

pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;

impl Default for IngestRules {
    fn default() -> Self {
        Self {
            label_attributes: DEFAULT_LABEL_ATTRIBUTES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            trace_id_pattern: Regex::new(DEFAULT_TRACE_ID_PATTERN).ok(),
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

impl IngestRules {
    /// The trace ID a log line names in its text, by the configured pattern.
    pub fn trace_id_in(&self, line: &str) -> Option<crate::model::TraceId> {
        let pattern = self.trace_id_pattern.as_ref()?;
        let captures = pattern.captures(line)?;
        crate::model::TraceId::from_hex(captures.get(1)?.as_str()).ok()
    }
}

/// Label or metadata names that carry a trace or span ID, in the spellings clients use.
const TRACE_ID_NAMES: &[&str] = &["trace_id", "traceID", "traceId", "TraceID"];
const SPAN_ID_NAMES: &[&str] = &["span_id", "spanID", "spanId", "SpanID"];

/// A trace and span ID found among name/value pairs (exemplar labels, Loki structured
/// metadata), and the pairs that are neither. A value that is not a valid ID stays a
/// plain pair.
pub fn split_ids(
    pairs: &[(String, String)],
) -> (
    Option<crate::model::TraceId>,
    Option<crate::model::SpanId>,
    Vec<(String, String)>,
) {
    let mut trace_id = None;
    let mut span_id = None;
    let mut rest = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        if trace_id.is_none()
            && TRACE_ID_NAMES.contains(&name.as_str())
            && let Ok(id) = crate::model::TraceId::from_hex(value)
        {
            trace_id = Some(id);
        } else if span_id.is_none()
            && SPAN_ID_NAMES.contains(&name.as_str())
            && let Ok(id) = crate::model::SpanId::from_hex(value)
        {
            span_id = Some(id);
        } else {
            rest.push((name.clone(), value.clone()));
        }
    }
    (trace_id, span_id, rest)
}

/// `service.name` → `service_name`.
pub fn label_name_for_attribute(attribute: &str) -> String {
    attribute
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
