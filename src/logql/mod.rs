//! LogQL, Loki's query language, as far as Threadline runs it: the syntax tree, its
//! parser, and the per-line pipeline. Executing a query over the store lives in
//! `query::logql` (log queries) and `query::log_metrics` (metric queries).
//!
//! A log query is a selector and a pipeline:
//!
//! ```text
//! {service_name="api"} |= "timeout" | json | status >= 500 | line_format "{{.msg}}"
//! ```
//!
//! A metric query wraps log queries in range aggregations (`rate({…}[5m])`), vector
//! aggregations (`sum by (level) (…)`, `topk(5, …)`) and arithmetic. Constructs Loki
//! has and Threadline does not are refused by name when parsed.

mod parser;
mod pipeline;
mod template;
mod units;

use std::fmt;

use regex::Regex;

pub use parser::{MAX_NESTING, MAX_QUERY_BYTES, MAX_STAGES, parse, parse_log};
pub use pipeline::{ERROR_LABEL, Labels, Origin, Pipeline, post_filter, sanitize, unwrap_value};
pub use template::Template;
pub use units::{parse_bytes, parse_duration};

use crate::model::{LineFilter, Matcher, Selector};

/// A parsed query: one that returns log lines or one that returns numbers.
#[derive(Debug, Clone)]
pub enum Query {
    Log(LogExpr),
    Metric(MetricExpr),
}

/// A selector and the stages each of its lines goes through, in order.
#[derive(Debug, Clone)]
pub struct LogExpr {
    pub selector: Selector,
    pub stages: Vec<Stage>,
}

impl LogExpr {
    /// How many leading stages are line filters over the stored line: they run in the
    /// scan (only `line_format` and `decolorize` change the line, so line filters
    /// before those see what is stored; label stages between them do not matter).
    pub fn scan_filter_count(&self) -> usize {
        self.stages
            .iter()
            .position(|s| !matches!(s, Stage::LineFilter(_)))
            .unwrap_or(self.stages.len())
    }

    /// The line filters that run in the scan.
    pub fn scan_filters(&self) -> impl Iterator<Item = &LineFilter> {
        self.stages[..self.scan_filter_count()]
            .iter()
            .filter_map(|s| match s {
                Stage::LineFilter(f) => Some(f),
                _ => None,
            })
    }

    /// The stages left after the scan's filters.
    pub fn remaining_stages(&self) -> &[Stage] {
        &self.stages[self.scan_filter_count()..]
    }
}

#[derive(Debug, Clone)]
pub enum Stage {
    LineFilter(LineFilter),
    /// `| json` (every field, flattened) or `| json a="x.y", b`.
    Json(Vec<Extraction>),
    /// `| logfmt`, optionally `--strict` (a malformed pair is an error, not skipped),
    /// `--keep-empty` (keys without a value are kept) and named extractions.
    Logfmt {
        strict: bool,
        keep_empty: bool,
        extractions: Vec<Extraction>,
    },
    /// `| regexp "(?P<name>…)"`: each named group becomes a label.
    Regexp(Regex),
    /// `| pattern "<ip> - <_> \"<method> …"`.
    Pattern(Pattern),
    LabelFilter(LabelPredicate),
    LineFormat(Template),
    LabelFormat(Vec<LabelFormat>),
    Drop(Vec<LabelRef>),
    Keep(Vec<LabelRef>),
    /// Strips ANSI colour escapes from the line.
    Decolorize,
}

/// A label to extract and the path (JSON) or key (logfmt) it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Extraction {
    pub label: String,
    pub path: Vec<PathStep>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathStep {
    Field(String),
    Index(usize),
}

/// A `pattern` expression: literals and captures in order (`<_>` captures nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub text: String,
    pub parts: Vec<PatternPart>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PatternPart {
    Literal(String),
    Capture(Option<String>),
}

/// A label filter: a tree of comparisons joined by `and` / `or`.
#[derive(Debug, Clone)]
pub enum LabelPredicate {
    And(Box<LabelPredicate>, Box<LabelPredicate>),
    Or(Box<LabelPredicate>, Box<LabelPredicate>),
    /// `name="v"`, `name!="v"`, `name=~"re"`, `name!~"re"`.
    Text(Matcher),
    /// `name >= 500`, with the label read as a number, a duration (seconds) or a size
    /// (bytes) depending on how the literal was written.
    Compare {
        label: String,
        op: CompareOp,
        value: f64,
        unit: Unit,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a >= b,
            CompareOp::Lt => a < b,
            CompareOp::Le => a <= b,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
        }
    }
}

/// How a label's text is read as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Number,
    /// A duration such as `1.5s` or `250ms`, in seconds.
    Duration,
    /// A size such as `20KB` or `1MiB`, in bytes.
    Bytes,
}

#[derive(Debug, Clone)]
pub enum LabelFormat {
    /// `dst=src`: renames a label.
    Rename { to: String, from: String },
    /// `dst="{{.a}}-{{.b}}"`: sets a label from a template.
    Template { to: String, template: Template },
}

/// A label named in `drop` or `keep`, with or without a value matcher.
#[derive(Debug, Clone)]
pub enum LabelRef {
    Name(String),
    Matching(Matcher),
}

impl LabelRef {
    pub fn name(&self) -> &str {
        match self {
            LabelRef::Name(n) => n,
            LabelRef::Matching(m) => &m.name,
        }
    }

    pub fn applies(&self, value: &str) -> bool {
        match self {
            LabelRef::Name(_) => true,
            LabelRef::Matching(m) => m.matches(value),
        }
    }
}

/// A query that returns series of numbers.
#[derive(Debug, Clone)]
pub enum MetricExpr {
    Range(Box<RangeAggregation>),
    Vector(Box<VectorAggregation>),
    Binary(Box<BinaryExpr>),
    /// A number: a scalar.
    Number(f64),
    /// `vector(1)`: a series without labels.
    VectorOf(f64),
}

impl MetricExpr {
    /// The range aggregations of a metric query, left to right.
    pub fn ranges(&self) -> Vec<&RangeAggregation> {
        let mut out = Vec::new();
        let mut pending = vec![self];
        while let Some(expr) = pending.pop() {
            match expr {
                MetricExpr::Range(r) => out.push(r.as_ref()),
                MetricExpr::Vector(v) => pending.push(&v.inner),
                MetricExpr::Binary(b) => pending.extend([&b.rhs, &b.lhs]),
                MetricExpr::Number(_) | MetricExpr::VectorOf(_) => {}
            }
        }
        out
    }

    /// The log queries a metric query reads.
    pub fn log_exprs(&self) -> Vec<&LogExpr> {
        self.ranges().into_iter().map(|r| &r.log).collect()
    }

    /// The widest span of time before an evaluation instant any of its range
    /// aggregations reads (range plus offset).
    pub fn lookback_ns(&self) -> i64 {
        self.ranges()
            .into_iter()
            .map(|r| r.range_ns.saturating_add(r.offset_ns))
            .fold(0, i64::max)
    }
}

/// `op([param,] log-range [| unwrap …] [range] [offset d]) [by|without (…)]`.
#[derive(Debug, Clone)]
pub struct RangeAggregation {
    pub op: RangeOp,
    pub log: LogExpr,
    pub unwrap: Option<Unwrap>,
    pub range_ns: i64,
    pub offset_ns: i64,
    /// φ of `quantile_over_time`.
    pub param: Option<f64>,
    pub grouping: Option<Grouping>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOp {
    CountOverTime,
    Rate,
    BytesOverTime,
    BytesRate,
    RateCounter,
    SumOverTime,
    AvgOverTime,
    MinOverTime,
    MaxOverTime,
    StddevOverTime,
    StdvarOverTime,
    QuantileOverTime,
    FirstOverTime,
    LastOverTime,
}

impl RangeOp {
    pub const ALL: [RangeOp; 14] = [
        RangeOp::CountOverTime,
        RangeOp::Rate,
        RangeOp::BytesOverTime,
        RangeOp::BytesRate,
        RangeOp::RateCounter,
        RangeOp::SumOverTime,
        RangeOp::AvgOverTime,
        RangeOp::MinOverTime,
        RangeOp::MaxOverTime,
        RangeOp::StddevOverTime,
        RangeOp::StdvarOverTime,
        RangeOp::QuantileOverTime,
        RangeOp::FirstOverTime,
        RangeOp::LastOverTime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RangeOp::CountOverTime => "count_over_time",
            RangeOp::Rate => "rate",
            RangeOp::BytesOverTime => "bytes_over_time",
            RangeOp::BytesRate => "bytes_rate",
            RangeOp::RateCounter => "rate_counter",
            RangeOp::SumOverTime => "sum_over_time",
            RangeOp::AvgOverTime => "avg_over_time",
            RangeOp::MinOverTime => "min_over_time",
            RangeOp::MaxOverTime => "max_over_time",
            RangeOp::StddevOverTime => "stddev_over_time",
            RangeOp::StdvarOverTime => "stdvar_over_time",
            RangeOp::QuantileOverTime => "quantile_over_time",
            RangeOp::FirstOverTime => "first_over_time",
            RangeOp::LastOverTime => "last_over_time",
        }
    }

    /// Does the operation read an unwrapped label's values (rather than counting lines
    /// or bytes)? `rate` works either way.
    pub fn needs_unwrap(self) -> bool {
        !matches!(
            self,
            RangeOp::CountOverTime | RangeOp::Rate | RangeOp::BytesOverTime | RangeOp::BytesRate
        )
    }
}

/// `| unwrap latency`, `| unwrap duration(took)`, `| unwrap bytes(size)`, followed by
/// label filters that see any conversion error.
#[derive(Debug, Clone)]
pub struct Unwrap {
    pub label: String,
    pub unit: Unit,
    pub filters: Vec<LabelPredicate>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    pub without: bool,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct VectorAggregation {
    pub op: VectorOp,
    pub grouping: Option<Grouping>,
    /// k of `topk` / `bottomk`.
    pub param: Option<f64>,
    pub inner: MetricExpr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
}

impl VectorOp {
    pub const ALL: [VectorOp; 9] = [
        VectorOp::Sum,
        VectorOp::Avg,
        VectorOp::Min,
        VectorOp::Max,
        VectorOp::Count,
        VectorOp::Stddev,
        VectorOp::Stdvar,
        VectorOp::Topk,
        VectorOp::Bottomk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VectorOp::Sum => "sum",
            VectorOp::Avg => "avg",
            VectorOp::Min => "min",
            VectorOp::Max => "max",
            VectorOp::Count => "count",
            VectorOp::Stddev => "stddev",
            VectorOp::Stdvar => "stdvar",
            VectorOp::Topk => "topk",
            VectorOp::Bottomk => "bottomk",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BinaryExpr {
    pub op: BinaryOp,
    /// `bool` on a comparison: 1 or 0 instead of filtering.
    pub return_bool: bool,
    pub lhs: MetricExpr,
    pub rhs: MetricExpr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Cmp(CompareOp),
    And,
    Or,
    Unless,
}

impl BinaryOp {
    /// Binding strength, PromQL's: `^` above `* / %` above `+ -` above comparisons
    /// above `and unless` above `or`.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And | BinaryOp::Unless => 2,
            BinaryOp::Cmp(_) => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 5,
            BinaryOp::Pow => 6,
        }
    }

    pub fn is_set_op(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }

    /// Applies an arithmetic or comparison operator; `None` when a comparison fails.
    pub fn apply(self, a: f64, b: f64) -> Option<f64> {
        Some(match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Mod => a % b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Cmp(op) => return op.holds(a, b).then_some(a),
            BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => return None,
        })
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::Number => "number",
            Unit::Duration => "duration",
            Unit::Bytes => "bytes",
        })
    }
}
