//! Label filters (`| status >= 500 and took > 1s or level="error"`), and the label
//! match operators `drop` and `keep` share with them.

use super::{LogqlParser, Result};
use crate::logql::{CompareOp, LabelPredicate, MAX_STAGES, Unit, parse_bytes, parse_duration};
use crate::model::{MatchOp, Matcher};

impl LogqlParser<'_> {
    pub(super) fn match_op(&mut self) -> Option<MatchOp> {
        self.c.take_token(&[
            ("=~", MatchOp::Regex),
            ("!~", MatchOp::NotRegex),
            ("!=", MatchOp::NotEqual),
            ("==", MatchOp::Equal),
            ("=", MatchOp::Equal),
        ])
    }

    pub(super) fn label_predicate(&mut self) -> Result<LabelPredicate> {
        self.enter()?;
        let mut lhs = self.label_conjunction()?;
        while self.keyword("or") {
            self.count_term()?;
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
            self.count_term()?;
            let rhs = self.label_comparison()?;
            lhs = LabelPredicate::And(Box::new(lhs), Box::new(rhs));
        }
    }

    /// Counts one `and` or `or` against the query's operator budget, so a chain of
    /// either (a tree as deep as it is long) stays short.
    fn count_term(&mut self) -> Result<()> {
        self.operators += 1;
        if self.operators > MAX_STAGES {
            return Err(self.c.error(&format!(
                "the label filter has more than {MAX_STAGES} terms"
            )));
        }
        Ok(())
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
        let ordering = self.c.take_token(&[
            (">=", CompareOp::Ge),
            ("<=", CompareOp::Le),
            (">", CompareOp::Gt),
            ("<", CompareOp::Lt),
        ]);
        let (op, text_op) = match ordering {
            Some(op) => (op, None),
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
