//! The LogQL parser: recursive descent over the query text, with PromQL's operator
//! precedence for metric arithmetic. The text's size, its nesting and its operator
//! count are bounded, so no query can exhaust the stack of the parser, the evaluator
//! or the drop of its tree.

use super::{
    BinaryExpr, BinaryOp, CompareOp, Extraction, Grouping, LabelFormat, LabelRef, LogExpr,
    MetricExpr, PathStep, Pattern, PatternPart, Query, RangeAggregation, RangeOp, Stage, Template,
    Unit, Unwrap, VectorAggregation, VectorOp, parse_duration,
};
use crate::model::matcher::{Parser, compile};
use crate::model::{LineFilter, LineFilterOp, Matcher, ParseError};

mod label_filter;
#[cfg(test)]
mod tests;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Deepest nesting of parentheses and aggregations.
pub const MAX_NESTING: usize = 64;
/// Most pipeline stages in one log query, and most binary operators in one query.
pub const MAX_STAGES: usize = 256;

/// Parses a log or metric query.
pub fn parse(text: &str) -> std::result::Result<Query, ParseError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(ParseError {
            column: 1,
            message: format!(
                "query is {} bytes; at most {MAX_QUERY_BYTES} are accepted",
                text.len()
            ),
        });
    }
    let mut p = LogqlParser {
        c: Parser::new(text),
        depth: 0,
        operators: 0,
    };
    p.c.skip_ws();
    let query = if p.c.peek() == Some('{') {
        Query::Log(p.log_expr(false)?.0)
    } else {
        Query::Metric(p.metric(0)?)
    };
    p.c.skip_ws();
    if !p.c.at_end() {
        return Err(p.c.error(if matches!(query, Query::Log(_)) {
            "unexpected text after the pipeline; stages start with |, line filters with |=, !=, |~ or !~"
        } else {
            "unexpected text after the expression"
        }));
    }
    Ok(query)
}

/// Parses a query that must return log lines.
pub fn parse_log(text: &str) -> std::result::Result<LogExpr, ParseError> {
    match parse(text)? {
        Query::Log(expr) => Ok(expr),
        Query::Metric(_) => Err(ParseError {
            column: 1,
            message: "expected a log query such as {app=\"api\"} |= \"error\", not a metric query"
                .into(),
        }),
    }
}

struct LogqlParser<'a> {
    c: Parser<'a>,
    depth: usize,
    operators: usize,
}

type Result<T> = std::result::Result<T, ParseError>;

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl LogqlParser<'_> {
    fn rest(&self) -> &str {
        &self.c.text[self.c.pos..]
    }

    fn error_at(&self, pos: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            column: self.c.column_of(pos),
            message: message.into(),
        }
    }

    /// Consumes `word` when it is the next whole word.
    fn keyword(&mut self, word: &str) -> bool {
        self.c.skip_ws();
        let rest = self.rest();
        if rest.starts_with(word) && !rest[word.len()..].starts_with(is_ident_char) {
            self.c.pos += word.len();
            true
        } else {
            false
        }
    }

    fn peek_word(&self) -> &str {
        let rest = self.rest();
        let end = rest.find(|c| !is_ident_char(c)).unwrap_or(rest.len());
        &rest[..end]
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self.c.error(&format!(
                "query nests deeper than {MAX_NESTING} levels; simplify it"
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- metric expressions ----

    fn metric(&mut self, min_precedence: u8) -> Result<MetricExpr> {
        self.enter()?;
        let mut lhs = self.unary()?;
        loop {
            self.c.skip_ws();
            let before = self.c.pos;
            let Some(op) = self.binary_op() else { break };
            if op.precedence() < min_precedence {
                self.c.pos = before;
                break;
            }
            self.operators += 1;
            if self.operators > MAX_STAGES {
                return Err(self.c.error(&format!(
                    "query has more than {MAX_STAGES} binary operators"
                )));
            }
            let return_bool = matches!(op, BinaryOp::Cmp(_)) && self.keyword("bool");
            for modifier in ["on", "ignoring", "group_left", "group_right"] {
                let at = self.c.pos;
                if self.keyword(modifier) {
                    return Err(self.error_at(
                        at,
                        format!("vector matching with {modifier}(…) is not supported; series match when all their labels are equal"),
                    ));
                }
            }
            // `^` binds right to left; the others left to right.
            let next = if op == BinaryOp::Pow {
                op.precedence()
            } else {
                op.precedence() + 1
            };
            let rhs = self.metric(next)?;
            lhs = MetricExpr::Binary(Box::new(BinaryExpr {
                op,
                return_bool,
                lhs,
                rhs,
            }));
        }
        self.leave();
        Ok(lhs)
    }

    fn binary_op(&mut self) -> Option<BinaryOp> {
        let symbol = self.c.take_token(&[
            ("==", BinaryOp::Cmp(CompareOp::Eq)),
            ("!=", BinaryOp::Cmp(CompareOp::Ne)),
            (">=", BinaryOp::Cmp(CompareOp::Ge)),
            ("<=", BinaryOp::Cmp(CompareOp::Le)),
            (">", BinaryOp::Cmp(CompareOp::Gt)),
            ("<", BinaryOp::Cmp(CompareOp::Lt)),
            ("+", BinaryOp::Add),
            ("-", BinaryOp::Sub),
            ("*", BinaryOp::Mul),
            ("/", BinaryOp::Div),
            ("%", BinaryOp::Mod),
            ("^", BinaryOp::Pow),
        ]);
        symbol.or_else(|| {
            [
                ("and", BinaryOp::And),
                ("or", BinaryOp::Or),
                ("unless", BinaryOp::Unless),
            ]
            .into_iter()
            .find(|(w, _)| self.keyword(w))
            .map(|(_, op)| op)
        })
    }

    fn unary(&mut self) -> Result<MetricExpr> {
        self.c.skip_ws();
        match self.c.peek() {
            Some('-') => {
                self.c.pos += 1;
                self.enter()?;
                let inner = self.unary()?;
                self.leave();
                Ok(match inner {
                    MetricExpr::Number(n) => MetricExpr::Number(-n),
                    other => MetricExpr::Binary(Box::new(BinaryExpr {
                        op: BinaryOp::Mul,
                        return_bool: false,
                        lhs: MetricExpr::Number(-1.0),
                        rhs: other,
                    })),
                })
            }
            Some('+') => {
                self.c.pos += 1;
                self.enter()?;
                let inner = self.unary();
                self.leave();
                inner
            }
            Some('(') => {
                self.c.pos += 1;
                let inner = self.metric(0)?;
                self.c.expect(')', "')'")?;
                Ok(inner)
            }
            Some('{') => Err(self.c.error(
                "a log query cannot be used in a metric expression; wrap it in a range aggregation such as count_over_time({…}[5m])",
            )),
            Some(c) if c.is_ascii_digit() || c == '.' => self.number().map(MetricExpr::Number),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.call(),
            _ => Err(self.c.error("expected a number, an aggregation or a function")),
        }
    }

    fn number(&mut self) -> Result<f64> {
        self.c.skip_ws();
        let start = self.c.pos;
        let rest = self.rest();
        let mut end = 0;
        let bytes = rest.as_bytes();
        while end < bytes.len() {
            let b = bytes[end];
            let exponent_sign =
                (b == b'+' || b == b'-') && end > 0 && matches!(bytes[end - 1], b'e' | b'E');
            if b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || exponent_sign {
                end += 1;
            } else {
                break;
            }
        }
        let text = &rest[..end];
        let value = text
            .parse::<f64>()
            .map_err(|_| self.error_at(start, format!("invalid number {text:?}")))?;
        self.c.pos += end;
        Ok(value)
    }

    fn call(&mut self) -> Result<MetricExpr> {
        let at = self.c.pos;
        let name = self.peek_word().to_owned();
        self.c.pos += name.len();
        if name == "vector" {
            self.c.expect('(', "'(' after vector")?;
            let value = self.number()?;
            self.c.expect(')', "')'")?;
            return Ok(MetricExpr::VectorOf(value));
        }
        if let Some(op) = RangeOp::ALL.into_iter().find(|op| op.as_str() == name) {
            return self.range_aggregation(op, at);
        }
        if let Some(op) = VectorOp::ALL.into_iter().find(|op| op.as_str() == name) {
            return self.vector_aggregation(op);
        }
        let known = [
            "absent_over_time",
            "label_replace",
            "sort",
            "sort_desc",
            "sgn",
            "approx_topk",
        ];
        Err(self.error_at(
            at,
            if known.contains(&name.as_str()) {
                format!("{name} is not supported")
            } else {
                format!("unknown function {name:?}")
            },
        ))
    }

    fn grouping(&mut self) -> Result<Option<Grouping>> {
        let without = if self.keyword("by") {
            false
        } else if self.keyword("without") {
            true
        } else {
            return Ok(None);
        };
        self.c.expect('(', "'(' after by/without")?;
        let mut labels = Vec::new();
        loop {
            self.c.skip_ws();
            if self.c.peek() == Some(')') {
                self.c.pos += 1;
                break;
            }
            labels.push(self.c.ident()?);
            self.c.skip_ws();
            match self.c.peek() {
                Some(',') => self.c.pos += 1,
                Some(')') => {}
                _ => return Err(self.c.error("expected ',' or ')' in the label list")),
            }
        }
        Ok(Some(Grouping { without, labels }))
    }

    fn vector_aggregation(&mut self, op: VectorOp) -> Result<MetricExpr> {
        self.enter()?;
        let before = self.grouping()?;
        self.c.expect('(', &format!("'(' after {}", op.as_str()))?;
        let param = if matches!(op, VectorOp::Topk | VectorOp::Bottomk) {
            let at = self.c.pos;
            let k = self.number()?;
            if k < 1.0 || k.fract() != 0.0 {
                return Err(
                    self.error_at(at, format!("{} needs a whole number k ≥ 1", op.as_str()))
                );
            }
            self.c.expect(',', "',' after k")?;
            Some(k)
        } else {
            None
        };
        let inner = self.metric(0)?;
        self.c.expect(')', "')'")?;
        let grouping = match before {
            Some(g) => Some(g),
            None => self.grouping()?,
        };
        self.leave();
        Ok(MetricExpr::Vector(Box::new(VectorAggregation {
            op,
            grouping,
            param,
            inner,
        })))
    }

    fn range_aggregation(&mut self, op: RangeOp, at: usize) -> Result<MetricExpr> {
        self.enter()?;
        self.c.expect('(', &format!("'(' after {}", op.as_str()))?;
        let param = if op == RangeOp::QuantileOverTime {
            let q = self.number()?;
            self.c.expect(',', "',' after the quantile")?;
            Some(q)
        } else {
            None
        };
        self.c.skip_ws();
        let mut range_ns = None;
        let (log, unwrap) = if self.c.peek() == Some('(') {
            self.c.pos += 1;
            self.c.skip_ws();
            let inner = self.log_expr(true)?;
            self.c.expect(')', "')' after the log query")?;
            inner
        } else {
            if self.c.peek() != Some('{') {
                return Err(self.c.error(&format!(
                    "{} takes a log query and a range, such as {}({{app=\"api\"}}[5m])",
                    op.as_str(),
                    op.as_str()
                )));
            }
            let selector = self.c.selector()?;
            self.c.skip_ws();
            if self.c.peek() == Some('[') {
                range_ns = Some(self.range()?);
            }
            let (stages, unwrap) = self.stages(true)?;
            (LogExpr { selector, stages }, unwrap)
        };
        let range_ns = match range_ns {
            Some(r) => r,
            None => {
                self.c.skip_ws();
                if self.c.peek() != Some('[') {
                    return Err(self.c.error("expected a range such as [5m]"));
                }
                self.range()?
            }
        };
        let offset_ns = if self.keyword("offset") {
            self.c.skip_ws();
            self.duration_literal()?
        } else {
            0
        };
        self.c.expect(')', "')'")?;
        let grouping = self.grouping()?;
        self.leave();
        match (&unwrap, op.needs_unwrap()) {
            (None, true) => {
                return Err(self.error_at(
                    at,
                    format!("{} needs a value: add | unwrap <label>", op.as_str()),
                ));
            }
            (Some(_), false) if op != RangeOp::Rate => {
                return Err(self.error_at(
                    at,
                    format!("{} counts lines or bytes and takes no unwrap", op.as_str()),
                ));
            }
            _ => {}
        }
        if grouping.is_some() && unwrap.is_none() {
            return Err(self.error_at(
                at,
                format!(
                    "{} takes no by/without; group with an aggregation such as sum by (…) ({}(…))",
                    op.as_str(),
                    op.as_str()
                ),
            ));
        }
        if let Some(q) = param
            && !(0.0..=1.0).contains(&q)
        {
            return Err(self.error_at(at, "the quantile must be between 0 and 1"));
        }
        Ok(MetricExpr::Range(Box::new(RangeAggregation {
            op,
            log,
            unwrap,
            range_ns,
            offset_ns,
            param,
            grouping,
        })))
    }

    fn range(&mut self) -> Result<i64> {
        self.c.expect('[', "'['")?;
        self.c.skip_ws();
        let ns = self.duration_literal()?;
        self.c.expect(']', "']' after the range")?;
        if ns <= 0 {
            return Err(self.c.error("the range must be positive"));
        }
        Ok(ns)
    }

    fn duration_literal(&mut self) -> Result<i64> {
        let start = self.c.pos;
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == 'µ'))
            .unwrap_or(rest.len());
        let text = &rest[..end];
        let ns = parse_duration(text).map_err(|e| self.error_at(start, e))?;
        self.c.pos += end;
        Ok(ns)
    }

    // ---- log expressions ----

    fn log_expr(&mut self, allow_unwrap: bool) -> Result<(LogExpr, Option<Unwrap>)> {
        let selector = self.c.selector()?;
        let (stages, unwrap) = self.stages(allow_unwrap)?;
        Ok((LogExpr { selector, stages }, unwrap))
    }

    fn stages(&mut self, allow_unwrap: bool) -> Result<(Vec<Stage>, Option<Unwrap>)> {
        let mut stages = Vec::new();
        let mut unwrap: Option<Unwrap> = None;
        loop {
            self.c.skip_ws();
            let at = self.c.pos;
            if stages.len() >= MAX_STAGES {
                return Err(self
                    .c
                    .error(&format!("the pipeline has more than {MAX_STAGES} stages")));
            }
            let line_op = self.c.take_token(&[
                ("|=", LineFilterOp::Contains),
                ("!=", LineFilterOp::NotContains),
                ("|~", LineFilterOp::Regex),
                ("!~", LineFilterOp::NotRegex),
            ]);
            if let Some(op) = line_op {
                if unwrap.is_some() {
                    return Err(self.error_at(at, "only label filters may follow unwrap"));
                }
                stages.push(Stage::LineFilter(self.line_filter(op)?));
                continue;
            }
            let rest = self.rest();
            if rest.starts_with("|>") || rest.starts_with("!>") {
                return Err(self
                    .c
                    .error("pattern line filters (|> and !>) are not supported; use |= or |~"));
            }
            if !rest.starts_with('|') {
                break;
            }
            self.c.pos += 1;
            self.c.skip_ws();
            let word = self.peek_word().to_owned();
            if word == "unwrap" {
                if !allow_unwrap {
                    return Err(self.c.error(
                        "unwrap belongs in a range aggregation such as sum_over_time({…} | unwrap x [5m])",
                    ));
                }
                if unwrap.is_some() {
                    return Err(self.c.error("a query unwraps one label"));
                }
                self.c.pos += word.len();
                unwrap = Some(self.unwrap()?);
                continue;
            }
            if let Some(u) = unwrap.as_mut() {
                let predicate = self.label_predicate()?;
                u.filters.push(predicate);
                continue;
            }
            let stage = match word.as_str() {
                "json" => {
                    self.c.pos += word.len();
                    Stage::Json(self.extractions(true)?)
                }
                "logfmt" => {
                    self.c.pos += word.len();
                    let (mut strict, mut keep_empty) = (false, false);
                    loop {
                        self.c.skip_ws();
                        if self.rest().starts_with("--strict") {
                            self.c.pos += "--strict".len();
                            strict = true;
                        } else if self.rest().starts_with("--keep-empty") {
                            self.c.pos += "--keep-empty".len();
                            keep_empty = true;
                        } else {
                            break;
                        }
                    }
                    Stage::Logfmt {
                        strict,
                        keep_empty,
                        extractions: self.extractions(false)?,
                    }
                }
                "regexp" => {
                    self.c.pos += word.len();
                    self.c.skip_ws();
                    let pattern_at = self.c.pos;
                    let pattern = self.c.string()?;
                    let re =
                        compile(&pattern, &pattern).map_err(|e| self.error_at(pattern_at, e))?;
                    if re.capture_names().flatten().next().is_none() {
                        return Err(self.error_at(
                            pattern_at,
                            "regexp needs at least one named group such as (?P<name>…)",
                        ));
                    }
                    Stage::Regexp(re)
                }
                "pattern" => {
                    self.c.pos += word.len();
                    self.c.skip_ws();
                    let pattern_at = self.c.pos;
                    let text = self.c.string()?;
                    Stage::Pattern(parse_pattern(&text).map_err(|e| self.error_at(pattern_at, e))?)
                }
                "line_format" => {
                    self.c.pos += word.len();
                    self.c.skip_ws();
                    let template_at = self.c.pos;
                    let text = self.c.string()?;
                    Stage::LineFormat(
                        Template::parse(&text).map_err(|e| self.error_at(template_at, e))?,
                    )
                }
                "label_format" => {
                    self.c.pos += word.len();
                    Stage::LabelFormat(self.label_formats()?)
                }
                "drop" => {
                    self.c.pos += word.len();
                    Stage::Drop(self.label_refs()?)
                }
                "keep" => {
                    self.c.pos += word.len();
                    Stage::Keep(self.label_refs()?)
                }
                "decolorize" => {
                    self.c.pos += word.len();
                    Stage::Decolorize
                }
                "unpack" | "distinct" => {
                    return Err(self.error_at(at, format!("the {word} stage is not supported")));
                }
                "" => return Err(self.c.error("expected a pipeline stage after |")),
                _ => Stage::LabelFilter(self.label_predicate()?),
            };
            stages.push(stage);
        }
        Ok((stages, unwrap))
    }

    fn line_filter(&mut self, op: LineFilterOp) -> Result<LineFilter> {
        self.c.skip_ws();
        if self.peek_word() == "ip" {
            return Err(self.c.error("ip() line filters are not supported"));
        }
        let at = self.c.pos;
        let pattern = self.c.string()?;
        let filter = LineFilter::new(op, &pattern).map_err(|e| self.error_at(at, e))?;
        let before = self.c.pos;
        if self.keyword("or") {
            self.c.skip_ws();
            if matches!(self.c.peek(), Some('"' | '`')) {
                return Err(self.error_at(
                    before,
                    "`or` between line filter texts is not supported; use |~ \"a|b\"",
                ));
            }
            self.c.pos = before;
        }
        Ok(filter)
    }

    fn unwrap(&mut self) -> Result<Unwrap> {
        self.c.skip_ws();
        let word = self.peek_word().to_owned();
        let unit = match word.as_str() {
            "duration" | "duration_seconds" => Some(Unit::Duration),
            "bytes" => Some(Unit::Bytes),
            _ => None,
        };
        let label = match unit {
            Some(unit) if self.rest()[word.len()..].trim_start().starts_with('(') => {
                self.c.pos += word.len();
                self.c.expect('(', "'('")?;
                self.c.skip_ws();
                let label = self.c.ident()?;
                self.c.expect(')', "')'")?;
                return Ok(Unwrap {
                    label,
                    unit,
                    filters: Vec::new(),
                });
            }
            _ => self.c.ident()?,
        };
        Ok(Unwrap {
            label,
            unit: Unit::Number,
            filters: Vec::new(),
        })
    }

    /// `a="path", b`: labels to extract (JSON paths when `json`).
    fn extractions(&mut self, json: bool) -> Result<Vec<Extraction>> {
        let mut out = Vec::new();
        loop {
            self.c.skip_ws();
            if !self
                .c
                .peek()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            {
                return Ok(out);
            }
            let label = self.c.ident()?;
            self.c.skip_ws();
            let path = if self.c.peek() == Some('=') {
                self.c.pos += 1;
                self.c.skip_ws();
                let at = self.c.pos;
                let text = self.c.string()?;
                if json {
                    parse_json_path(&text).map_err(|e| self.error_at(at, e))?
                } else {
                    vec![PathStep::Field(text)]
                }
            } else {
                vec![PathStep::Field(label.clone())]
            };
            out.push(Extraction { label, path });
            self.c.skip_ws();
            if self.c.peek() == Some(',') {
                self.c.pos += 1;
            } else {
                return Ok(out);
            }
        }
    }

    fn label_formats(&mut self) -> Result<Vec<LabelFormat>> {
        let mut out = Vec::new();
        loop {
            self.c.skip_ws();
            let to = self.c.ident()?;
            self.c.expect('=', "'=' in label_format")?;
            self.c.skip_ws();
            let at = self.c.pos;
            out.push(match self.c.peek() {
                Some('"' | '`') => {
                    let text = self.c.string()?;
                    LabelFormat::Template {
                        to,
                        template: Template::parse(&text).map_err(|e| self.error_at(at, e))?,
                    }
                }
                _ => LabelFormat::Rename {
                    to,
                    from: self.c.ident()?,
                },
            });
            self.c.skip_ws();
            if self.c.peek() == Some(',') {
                self.c.pos += 1;
            } else {
                return Ok(out);
            }
        }
    }

    fn label_refs(&mut self) -> Result<Vec<LabelRef>> {
        let mut out = Vec::new();
        loop {
            self.c.skip_ws();
            let name = self.c.ident()?;
            self.c.skip_ws();
            let op = self.match_op();
            out.push(match op {
                None => LabelRef::Name(name),
                Some(op) => {
                    self.c.skip_ws();
                    let at = self.c.pos;
                    let value = self.c.string()?;
                    LabelRef::Matching(
                        Matcher::new(&name, op, &value).map_err(|e| self.error_at(at, e))?,
                    )
                }
            });
            self.c.skip_ws();
            if self.c.peek() == Some(',') {
                self.c.pos += 1;
            } else {
                return Ok(out);
            }
        }
    }
}

/// `a.b[0]["c d"]`.
fn parse_json_path(text: &str) -> std::result::Result<Vec<PathStep>, String> {
    let invalid =
        || format!("invalid JSON path {text:?}: use forms such as a.b, a[0] or a[\"b c\"]");
    let mut steps = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']').ok_or_else(invalid)?;
            let inner = after[..close].trim();
            if let Some(key) = inner
                .strip_prefix('"')
                .and_then(|k| k.strip_suffix('"'))
                .or_else(|| inner.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
            {
                steps.push(PathStep::Field(key.to_owned()));
            } else {
                steps.push(PathStep::Index(inner.parse().map_err(|_| invalid())?));
            }
            rest = &after[close + 1..];
        } else {
            let rest_of = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_of.find(['.', '[']).unwrap_or(rest_of.len());
            if end == 0 {
                return Err(invalid());
            }
            steps.push(PathStep::Field(rest_of[..end].to_owned()));
            rest = &rest_of[end..];
        }
    }
    if steps.is_empty() {
        return Err(invalid());
    }
    Ok(steps)
}

/// `<ip> - <_> "<method> <path>"`: literals and captures; two captures must be
/// separated by a literal, and at least one capture is named.
fn parse_pattern(text: &str) -> std::result::Result<Pattern, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let capture = rest.strip_prefix('<').and_then(|after| {
            let end = after.find('>')?;
            let name = &after[..end];
            (!name.is_empty() && name.chars().all(is_ident_char))
                .then_some((name, &after[end + 1..]))
        });
        match capture {
            Some((name, after)) => {
                if matches!(parts.last(), Some(PatternPart::Capture(_))) {
                    return Err(format!(
                        "pattern {text:?} has two captures with nothing between them"
                    ));
                }
                parts.push(PatternPart::Capture((name != "_").then(|| name.to_owned())));
                rest = after;
            }
            None => {
                // The literal runs to the next '<' after its first character.
                let first = rest.chars().next().map_or(0, char::len_utf8);
                let next = rest[first..].find('<').map_or(rest.len(), |i| i + first);
                match parts.last_mut() {
                    Some(PatternPart::Literal(l)) => l.push_str(&rest[..next]),
                    _ => parts.push(PatternPart::Literal(rest[..next].to_owned())),
                }
                rest = &rest[next..];
            }
        }
    }
    if !parts
        .iter()
        .any(|p| matches!(p, PatternPart::Capture(Some(_))))
    {
        return Err(format!(
            "pattern {text:?} captures nothing; name a field as <name>"
        ));
    }
    Ok(Pattern {
        text: text.to_owned(),
        parts,
    })
}
