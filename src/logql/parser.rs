//! The LogQL parser: recursive descent over the query text, with PromQL's operator
//! precedence for metric arithmetic. The text's size, its nesting and its operator
//! count are bounded, so no query can exhaust the stack of the parser, the evaluator
//! or the drop of its tree.

use super::{
    BinaryExpr, BinaryOp, CompareOp, Extraction, Grouping, LabelFormat, LabelPredicate, LabelRef,
    LogExpr, MetricExpr, PathStep, Pattern, PatternPart, Query, RangeAggregation, RangeOp, Stage,
    Template, Unit, Unwrap, VectorAggregation, VectorOp, parse_bytes, parse_duration,
};
use crate::model::matcher::{Parser, compile};
use crate::model::{LineFilter, LineFilterOp, MatchOp, Matcher, ParseError};

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
        let rest = self.rest();
        let (op, len) = if rest.starts_with("==") {
            (BinaryOp::Cmp(CompareOp::Eq), 2)
        } else if rest.starts_with("!=") {
            (BinaryOp::Cmp(CompareOp::Ne), 2)
        } else if rest.starts_with(">=") {
            (BinaryOp::Cmp(CompareOp::Ge), 2)
        } else if rest.starts_with("<=") {
            (BinaryOp::Cmp(CompareOp::Le), 2)
        } else {
            match rest.chars().next()? {
                '>' => (BinaryOp::Cmp(CompareOp::Gt), 1),
                '<' => (BinaryOp::Cmp(CompareOp::Lt), 1),
                '+' => (BinaryOp::Add, 1),
                '-' => (BinaryOp::Sub, 1),
                '*' => (BinaryOp::Mul, 1),
                '/' => (BinaryOp::Div, 1),
                '%' => (BinaryOp::Mod, 1),
                '^' => (BinaryOp::Pow, 1),
                _ => {
                    return [
                        ("and", BinaryOp::And),
                        ("or", BinaryOp::Or),
                        ("unless", BinaryOp::Unless),
                    ]
                    .into_iter()
                    .find(|(w, _)| self.keyword(w))
                    .map(|(_, op)| op);
                }
            }
        };
        self.c.pos += len;
        Some(op)
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
            let rest = self.rest();
            let line_op = if rest.starts_with("|=") {
                Some(LineFilterOp::Contains)
            } else if rest.starts_with("!=") {
                Some(LineFilterOp::NotContains)
            } else if rest.starts_with("|~") {
                Some(LineFilterOp::Regex)
            } else if rest.starts_with("!~") {
                Some(LineFilterOp::NotRegex)
            } else {
                None
            };
            if stages.len() >= MAX_STAGES {
                return Err(self
                    .c
                    .error(&format!("the pipeline has more than {MAX_STAGES} stages")));
            }
            if let Some(op) = line_op {
                if unwrap.is_some() {
                    return Err(self.c.error("only label filters may follow unwrap"));
                }
                self.c.pos += 2;
                stages.push(Stage::LineFilter(self.line_filter(op)?));
                continue;
            }
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

    fn match_op(&mut self) -> Option<MatchOp> {
        let rest = self.rest();
        let (op, len) = if rest.starts_with("=~") {
            (MatchOp::Regex, 2)
        } else if rest.starts_with("!~") {
            (MatchOp::NotRegex, 2)
        } else if rest.starts_with("!=") {
            (MatchOp::NotEqual, 2)
        } else if rest.starts_with("==") {
            (MatchOp::Equal, 2)
        } else if rest.starts_with('=') {
            (MatchOp::Equal, 1)
        } else {
            return None;
        };
        self.c.pos += len;
        Some(op)
    }

    // ---- label filters ----

    fn label_predicate(&mut self) -> Result<LabelPredicate> {
        self.enter()?;
        let mut lhs = self.label_conjunction()?;
        while self.keyword("or") {
            let rhs = self.label_conjunction()?;
            lhs = LabelPredicate::Or(Box::new(lhs), Box::new(rhs));
        }
        self.leave();
        Ok(lhs)
    }

    fn label_conjunction(&mut self) -> Result<LabelPredicate> {
        let mut lhs = self.label_comparison()?;
        loop {
            self.c.skip_ws();
            if self.c.peek() == Some(',') {
                self.c.pos += 1;
            } else if !self.keyword("and") {
                return Ok(lhs);
            }
            self.operators += 1;
            if self.operators > MAX_STAGES {
                return Err(self.c.error(&format!(
                    "the label filter has more than {MAX_STAGES} terms"
                )));
            }
            let rhs = self.label_comparison()?;
            lhs = LabelPredicate::And(Box::new(lhs), Box::new(rhs));
        }
    }

    fn label_comparison(&mut self) -> Result<LabelPredicate> {
        self.c.skip_ws();
        if self.c.peek() == Some('(') {
            self.c.pos += 1;
            let inner = self.label_predicate()?;
            self.c.expect(')', "')'")?;
            return Ok(inner);
        }
        let name_at = self.c.pos;
        let label = self.c.ident().map_err(|_| {
            self.c
                .error("expected a pipeline stage (json, logfmt, regexp, pattern, line_format, label_format, drop, keep, decolorize) or a label filter such as status >= 500")
        })?;
        self.c.skip_ws();
        let op_at = self.c.pos;
        let rest = self.rest();
        let ordering = if rest.starts_with(">=") {
            Some((CompareOp::Ge, 2))
        } else if rest.starts_with("<=") {
            Some((CompareOp::Le, 2))
        } else if rest.starts_with('>') {
            Some((CompareOp::Gt, 1))
        } else if rest.starts_with('<') {
            Some((CompareOp::Lt, 1))
        } else {
            None
        };
        let (op, text_op) = match ordering {
            Some((op, len)) => {
                self.c.pos += len;
                (op, None)
            }
            None => match self.match_op() {
                Some(MatchOp::Equal) => (CompareOp::Eq, Some(MatchOp::Equal)),
                Some(MatchOp::NotEqual) => (CompareOp::Ne, Some(MatchOp::NotEqual)),
                Some(op) => (CompareOp::Eq, Some(op)),
                None => {
                    return Err(self.error_at(
                        op_at,
                        format!("expected a comparison after {label}: =, !=, =~, !~, >, >=, <, <="),
                    ));
                }
            },
        };
        self.c.skip_ws();
        if self.peek_word() == "ip" {
            return Err(self.c.error("ip() label filters are not supported"));
        }
        let value_at = self.c.pos;
        if matches!(self.c.peek(), Some('"' | '`')) {
            let value = self.c.string()?;
            let Some(match_op) = text_op else {
                return Err(self.error_at(
                    value_at,
                    format!(
                        "{} compares numbers, durations or sizes, not text",
                        op.as_str()
                    ),
                ));
            };
            return Matcher::new(&label, match_op, &value)
                .map(LabelPredicate::Text)
                .map_err(|e| self.error_at(name_at, e));
        }
        if matches!(text_op, Some(MatchOp::Regex | MatchOp::NotRegex)) {
            return Err(self.c.error("a regex filter needs a quoted pattern"));
        }
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | 'µ')))
            .unwrap_or(rest.len());
        let literal = &rest[..end];
        let (value, unit) = if let Ok(n) = literal.parse::<f64>() {
            (n, Unit::Number)
        } else if let Ok(ns) = parse_duration(literal) {
            (ns as f64 / 1e9, Unit::Duration)
        } else if let Ok(b) = parse_bytes(literal) {
            (b, Unit::Bytes)
        } else {
            return Err(self.error_at(
                value_at,
                format!("expected a quoted string, a number, a duration (1.5s) or a size (20KB) after {label}"),
            ));
        };
        self.c.pos += end;
        Ok(LabelPredicate::Compare {
            label,
            op,
            value,
            unit,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metric(text: &str) -> MetricExpr {
        match parse(text) {
            Ok(Query::Metric(m)) => m,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Err(e) => e.to_string(),
            Ok(q) => panic!("{text} parsed: {q:?}"),
        }
    }

    #[test]
    fn log_queries_with_every_stage() {
        let q = parse_log(
            r#"{app="api", env=~"prod|stage"} |= "GET" != `health` |~ "5\\d\\d" | json | logfmt --keep-empty
               | regexp "(?P<x>\\d+)" | pattern "<a> <_> <b>" | status >= 500 and duration > 1.5s or size < 2KB
               | level="error", msg=~".*timeout.*" | line_format "{{.msg}}" |= "x"
               | label_format dst=src, t="{{.a}}" | drop a, b="1" | keep c | decolorize"#,
        )
        .unwrap();
        assert_eq!(q.selector.matchers.len(), 2);
        assert_eq!(q.stages.len(), 15);
        assert_eq!(q.scan_filter_count(), 3);
        assert_eq!(q.scan_filters().count(), 3);
        let Stage::LabelFilter(LabelPredicate::Or(lhs, rhs)) = &q.stages[7] else {
            panic!("{:?}", q.stages[7])
        };
        assert!(matches!(**lhs, LabelPredicate::And(..)));
        assert!(matches!(
            **rhs,
            LabelPredicate::Compare {
                unit: Unit::Bytes,
                op: CompareOp::Lt,
                ..
            }
        ));
        assert!(parse_log("{}").unwrap().stages.is_empty());
        // Literals may start with any character.
        assert!(parse_log(r#"{a="b"} | pattern "é<x>ü <_>""#).is_ok());
    }

    #[test]
    fn json_paths() {
        let q = parse_log(r#"{a="b"} | json x="a.b[2]", y="c[\"d e\"]", z"#).unwrap();
        let Stage::Json(e) = &q.stages[0] else {
            panic!()
        };
        assert_eq!(
            e[0].path,
            [
                PathStep::Field("a".into()),
                PathStep::Field("b".into()),
                PathStep::Index(2)
            ]
        );
        assert_eq!(
            e[1].path,
            [PathStep::Field("c".into()), PathStep::Field("d e".into())]
        );
        assert_eq!(e[2].path, [PathStep::Field("z".into())]);
    }

    #[test]
    fn metric_queries() {
        let MetricExpr::Vector(v) =
            metric(r#"sum by (level) (count_over_time({app="api"} |= "x" [5m]))"#)
        else {
            panic!()
        };
        assert_eq!(v.op, VectorOp::Sum);
        assert_eq!(v.grouping.as_ref().unwrap().labels, ["level"]);
        let MetricExpr::Range(r) = &v.inner else {
            panic!()
        };
        assert_eq!(r.range_ns, 300_000_000_000);
        assert_eq!(r.log.stages.len(), 1);

        let MetricExpr::Vector(v) = metric(r#"topk(3, sum(rate({a="b"}[1m])) without (x))"#) else {
            panic!()
        };
        assert_eq!(v.param, Some(3.0));
        let MetricExpr::Vector(inner) = &v.inner else {
            panic!()
        };
        assert!(inner.grouping.as_ref().unwrap().without);

        let MetricExpr::Range(r) = metric(
            r#"quantile_over_time(0.99, {a="b"} | logfmt | unwrap duration(took) | __error__="" [1m] offset 5m) by (path)"#,
        ) else {
            panic!()
        };
        assert_eq!(r.param, Some(0.99));
        assert_eq!(r.offset_ns, 300_000_000_000);
        let unwrap = r.unwrap.as_ref().unwrap();
        assert_eq!(
            (unwrap.label.as_str(), unwrap.unit),
            ("took", Unit::Duration)
        );
        assert_eq!(unwrap.filters.len(), 1);
        // The range may also follow the selector.
        let MetricExpr::Range(r) = metric(r#"bytes_rate({a="b"}[30s] |= "x")"#) else {
            panic!()
        };
        assert_eq!((r.range_ns, r.log.stages.len()), (30_000_000_000, 1));
    }

    #[test]
    fn arithmetic_precedence() {
        let MetricExpr::Binary(b) = metric("1 + 2 * 3 ^ 2 ^ 2") else {
            panic!()
        };
        assert_eq!(b.op, BinaryOp::Add);
        let MetricExpr::Binary(mul) = &b.rhs else {
            panic!()
        };
        assert_eq!(mul.op, BinaryOp::Mul);
        let MetricExpr::Binary(pow) = &mul.rhs else {
            panic!()
        };
        // Right-associative: 3 ^ (2 ^ 2).
        assert!(matches!(pow.rhs, MetricExpr::Binary(_)));
        let MetricExpr::Binary(b) = metric("vector(1)+vector(1)") else {
            panic!()
        };
        assert!(matches!(b.lhs, MetricExpr::VectorOf(v) if v == 1.0));
        let MetricExpr::Binary(b) =
            metric(r#"sum(rate({a="b"}[1m])) > bool 10 or count_over_time({a="c"}[1m])"#)
        else {
            panic!()
        };
        assert_eq!(b.op, BinaryOp::Or);
        let MetricExpr::Binary(cmp) = &b.lhs else {
            panic!()
        };
        assert!(cmp.return_bool);
        assert!(matches!(metric("-2"), MetricExpr::Number(n) if n == -2.0));
    }

    #[test]
    fn unsupported_constructs_are_named() {
        for (query, expected) in [
            (
                r#"absent_over_time({a="b"}[1m])"#,
                "absent_over_time is not supported",
            ),
            (
                r#"label_replace(rate({a="b"}[1m]), "x", "$1", "y", "(.*)")"#,
                "label_replace",
            ),
            (r#"{a="b"} | unpack"#, "unpack stage is not supported"),
            (r#"{a="b"} |> "<_> x""#, "pattern line filters"),
            (r#"{a="b"} |= "x" or "y""#, "`or` between line filter texts"),
            (r#"{a="b"} | ip = ip("1.2.3.4")"#, "ip()"),
            (
                r#"sum(rate({a="b"}[1m])) / on(x) sum(rate({a="b"}[1m]))"#,
                "on(…)",
            ),
            (r#"{a="b"} | unwrap x"#, "unwrap belongs"),
            (r#"sum_over_time({a="b"}[1m])"#, "needs a value"),
            (
                r#"count_over_time({a="b"} | unwrap x [1m])"#,
                "takes no unwrap",
            ),
            (
                r#"count_over_time({a="b"}[1m]) by (x)"#,
                "takes no by/without",
            ),
            (r#"rate({a="b"})"#, "expected a range"),
            (r#"{a="b"} | json | line_format "{{ if .x }}""#, "\"if\""),
            (r#"{a="b"} | status > "x""#, "not text"),
            (r#"{a="b"} | regexp "(\\d+)""#, "named group"),
            (r#"{a="b"} | pattern "<a><b>""#, "two captures"),
            (r#"foo({a="b"}[1m])"#, "unknown function"),
            (r#"{a="b"} extra"#, "unexpected text after the pipeline"),
        ] {
            let err = error(query);
            assert!(err.contains(expected), "{query}: {err}");
        }
    }

    #[test]
    fn size_nesting_and_operators_are_bounded() {
        let deep = format!(
            "{}1{}",
            "(".repeat(MAX_NESTING + 1),
            ")".repeat(MAX_NESTING + 1)
        );
        assert!(error(&deep).contains("nests deeper"));
        let chain = format!("1{}", " + 1".repeat(MAX_STAGES + 1));
        assert!(error(&chain).contains("binary operators"));
        let stages = format!("{{a=\"b\"}}{}", " | x=\"1\"".repeat(MAX_STAGES + 1));
        assert!(error(&stages).contains("stages"));
        let long = format!("{{a=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES));
        assert!(error(&long).contains("bytes"));
        let minus = format!("{}1", "-".repeat(MAX_NESTING + 1));
        assert!(error(&minus).contains("nests deeper"));
    }

    /// The deepest and longest queries the bounds accept parse and drop on a stack
    /// smaller than a server thread's.
    #[test]
    fn accepted_extremes_fit_a_small_stack() {
        let queries = [
            format!(
                "{}1{}",
                "(".repeat(MAX_NESTING - 1),
                ")".repeat(MAX_NESTING - 1)
            ),
            format!("1{}", " + 1".repeat(MAX_STAGES)),
            format!(
                "{{a=\"b\"}} | {}",
                vec!["x=\"1\""; MAX_STAGES].join(" and ")
            ),
            format!("{}1", "-".repeat(MAX_NESTING - 2)),
        ];
        let results = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || queries.map(|q| parse(&q).map(|_| ()).map_err(|e| e.to_string())))
            .unwrap()
            .join()
            .unwrap();
        for r in results {
            assert_eq!(r, Ok(()));
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,60}") {
            let _ = parse(&text);
        }

        #[test]
        fn parser_never_panics_on_query_like_text(
            parts in prop::collection::vec(prop_oneof![
                Just("{a=\"b\"}"), Just("|="), Just("| json"), Just("| logfmt"), Just("|"),
                Just("["), Just("]"), Just("5m"), Just("("), Just(")"), Just("sum"),
                Just("by"), Just("rate"), Just("count_over_time"), Just("unwrap"),
                Just("x"), Just(">"), Just("500"), Just("\"s\""), Just(","), Just("+"),
                Just("offset"), Just("topk"), Just("3"), Just("and"), Just("or"),
                Just("line_format"), Just("\"{{.x}}\""), Just("quantile_over_time"),
                Just("0.5"), Just("pattern"), Just("\"<a> <b>\""), Just("=~"), Just("1.5s"),
                Just("\"é<a>ü\""), Just("\"<é>\""),
            ], 0..24)
        ) {
            let _ = parse(&parts.join(" "));
        }
    }
}
