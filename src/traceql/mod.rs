//! TraceQL, Tempo's query language, as far as trace search needs it:
//!
//! ```text
//! { resource.service.name = "api" && span.http.status_code >= 500 && duration > 1s }
//! { name = "checkout" } > { status = error } | count() > 2
//! ```
//!
//! A spanset filter `{ … }` selects spans by intrinsics (`name`, `status`, `kind`,
//! `duration`, `statusMessage`, and the trace-level `rootName`, `rootServiceName`,
//! `traceDuration`) and attributes (`span.x`, `resource.x`, unscoped `.x`), joined by
//! `&&` and `||`. Spansets combine with `&&` (the trace has both), `||` (either) and
//! `>` (spans of the right whose parent is in the left). A pipeline may end in
//! `| count() <op> n`. Other constructs are refused by name.

mod parser;

pub use parser::{MAX_QUERY_BYTES, parse};

/// A parsed search: spansets and an optional count condition per trace.
#[derive(Debug, Clone)]
pub struct Search {
    pub spansets: Spanset,
    pub count: Option<(Comparison, f64)>,
}

#[derive(Debug, Clone)]
pub enum Spanset {
    /// `{ }` (every span) or `{ condition }`.
    Filter(Option<Condition>),
    /// Traces with spans matching both sides; their spans from both.
    And(Box<Spanset>, Box<Spanset>),
    Or(Box<Spanset>, Box<Spanset>),
    /// `a > b`: spans matching b whose parent matches a.
    Child(Box<Spanset>, Box<Spanset>),
}

impl Spanset {
    /// Every filter, left to right.
    pub fn filters(&self) -> Vec<&Option<Condition>> {
        match self {
            Spanset::Filter(c) => vec![c],
            Spanset::And(a, b) | Spanset::Or(a, b) | Spanset::Child(a, b) => {
                let mut out = a.filters();
                out.extend(b.filters());
                out
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum Condition {
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    Compare {
        field: Field,
        op: Comparison,
        value: Literal,
    },
}

impl Condition {
    /// True when every comparison in the condition reads a trace-level intrinsic.
    pub fn is_all_trace_level(&self) -> bool {
        match self {
            Condition::And(a, b) | Condition::Or(a, b) => {
                a.is_all_trace_level() && b.is_all_trace_level()
            }
            Condition::Compare { field, .. } => field.is_trace_level(),
        }
    }

    /// True when the condition reads a trace-level intrinsic.
    pub fn is_trace_level(&self) -> bool {
        match self {
            Condition::And(a, b) | Condition::Or(a, b) => a.is_trace_level() || b.is_trace_level(),
            Condition::Compare { field, .. } => field.is_trace_level(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    Status,
    Kind,
    Duration,
    StatusMessage,
    RootName,
    RootServiceName,
    TraceDuration,
    Attribute { scope: Scope, name: String },
}

impl Field {
    pub fn is_trace_level(&self) -> bool {
        matches!(
            self,
            Field::RootName | Field::RootServiceName | Field::TraceDuration
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Span,
    Resource,
    /// `.x`: a span or a resource attribute.
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Regex,
    NotRegex,
}

impl Comparison {
    pub fn sql(self) -> &'static str {
        match self {
            Comparison::Eq => "=",
            Comparison::Ne => "<>",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Regex => "~",
            Comparison::NotRegex => "!~",
        }
    }

    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Comparison::Eq => ordering == Equal,
            Comparison::Ne => ordering != Equal,
            Comparison::Gt => ordering == Greater,
            Comparison::Ge => ordering != Less,
            Comparison::Lt => ordering == Less,
            Comparison::Le => ordering != Greater,
            Comparison::Regex | Comparison::NotRegex => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    String(String),
    Number(f64),
    /// Nanoseconds.
    Duration(i64),
    /// `error`, `ok`, `unset` for status; `server`, `client`, … for kind.
    Enum(String),
    Bool(bool),
    Nil,
}

pub const STATUSES: [&str; 3] = ["error", "ok", "unset"];
pub const KINDS: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];
/// The intrinsics `/api/v2/search/tags` lists.
pub const INTRINSICS: [&str; 8] = [
    "duration",
    "kind",
    "name",
    "rootName",
    "rootServiceName",
    "status",
    "statusMessage",
    "traceDuration",
];
