//! The TraceQL parser: recursive descent, bounded in size and nesting.

use super::{Comparison, Condition, Field, KINDS, Literal, STATUSES, Scope, Search, Spanset};
use crate::logql::parse_duration;
use crate::model::ParseError;
use crate::model::matcher::{Parser, compile};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
const MAX_NESTING: usize = 64;
const MAX_TERMS: usize = 256;

pub fn parse(text: &str) -> std::result::Result<Search, ParseError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(ParseError {
            column: 1,
            message: format!(
                "query is {} bytes; at most {MAX_QUERY_BYTES} are accepted",
                text.len()
            ),
        });
    }
    let mut p = TraceqlParser {
        c: Parser::new(text),
        depth: 0,
        terms: 0,
    };
    p.c.skip_ws();
    if p.c.at_end() {
        return Ok(Search {
            spansets: Spanset::Filter(None),
            count: None,
        });
    }
    let spansets = p.spanset_expr()?;
    let mut count = None;
    p.c.skip_ws();
    while p.c.peek() == Some('|') {
        p.c.pos += 1;
        p.c.skip_ws();
        let at = p.c.pos;
        let word = p.word();
        match word.as_str() {
            "count" => {
                p.c.expect('(', "'(' after count")?;
                p.c.expect(')', "')'")?;
                p.c.skip_ws();
                let op = p
                    .comparison()
                    .ok_or_else(|| p.c.error("expected a comparison after count()"))?;
                p.c.skip_ws();
                let value = match p.literal()? {
                    Literal::Number(n) => n,
                    _ => return Err(p.c.error("count() compares with a number")),
                };
                count = Some((op, value));
            }
            "" => return Err(p.c.error("expected a pipeline stage after |")),
            other => {
                return Err(ParseError {
                    column: p.c.column_of(at),
                    message: format!(
                        "the pipeline stage {other}() is not supported; only count() is"
                    ),
                });
            }
        }
        p.c.skip_ws();
    }
    if p.c.rest_starts_with("with") {
        return Err(p.c.error("query hints (with …) are not supported"));
    }
    if !p.c.at_end() {
        return Err(p.c.error("unexpected text after the query"));
    }
    Ok(Search { spansets, count })
}

struct TraceqlParser<'a> {
    c: Parser<'a>,
    depth: usize,
    terms: usize,
}

type Result<T> = std::result::Result<T, ParseError>;

impl Parser<'_> {
    fn rest_starts_with(&self, s: &str) -> bool {
        self.text[self.pos..].starts_with(s)
    }
}

impl TraceqlParser<'_> {
    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self
                .c
                .error(&format!("query nests deeper than {MAX_NESTING} levels")));
        }
        Ok(())
    }

    fn term(&mut self) -> Result<()> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(self
                .c
                .error(&format!("query has more than {MAX_TERMS} terms")));
        }
        Ok(())
    }

    fn word(&mut self) -> String {
        let rest = &self.c.text[self.c.pos..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.c.pos += end;
        rest[..end].to_owned()
    }

    /// Spansets joined by `||` (loosest), `&&`, then `>`.
    fn spanset_expr(&mut self) -> Result<Spanset> {
        self.enter()?;
        let mut lhs = self.spanset_and()?;
        loop {
            self.c.skip_ws();
            if !self.c.rest_starts_with("||") {
                break;
            }
            self.c.pos += 2;
            self.term()?;
            let rhs = self.spanset_and()?;
            lhs = Spanset::Or(Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn spanset_and(&mut self) -> Result<Spanset> {
        let mut lhs = self.spanset_structural()?;
        loop {
            self.c.skip_ws();
            if !self.c.rest_starts_with("&&") {
                return Ok(lhs);
            }
            self.c.pos += 2;
            self.term()?;
            let rhs = self.spanset_structural()?;
            lhs = Spanset::And(Box::new(lhs), Box::new(rhs));
        }
    }

    fn spanset_structural(&mut self) -> Result<Spanset> {
        let mut lhs = self.spanset_primary()?;
        loop {
            self.c.skip_ws();
            let rest = &self.c.text[self.c.pos..];
            for op in [">>", "<<", "&>", "&<", "&~", "!>", "!<", "!~"] {
                if rest.starts_with(op) {
                    return Err(self.c.error(&format!(
                        "the spanset operator {op} is not supported; use > (child), && or ||"
                    )));
                }
            }
            if rest.starts_with('<') || rest.starts_with('~') {
                return Err(self.c.error(
                    "the spanset operators < and ~ are not supported; use > (child), && or ||",
                ));
            }
            if !rest.starts_with('>') {
                return Ok(lhs);
            }
            self.c.pos += 1;
            self.term()?;
            let rhs = self.spanset_primary()?;
            lhs = Spanset::Child(Box::new(lhs), Box::new(rhs));
        }
    }

    fn spanset_primary(&mut self) -> Result<Spanset> {
        self.c.skip_ws();
        match self.c.peek() {
            Some('(') => {
                self.c.pos += 1;
                let inner = self.spanset_expr()?;
                self.c.expect(')', "')'")?;
                Ok(inner)
            }
            Some('{') => {
                self.c.pos += 1;
                self.c.skip_ws();
                if self.c.peek() == Some('}') {
                    self.c.pos += 1;
                    return Ok(Spanset::Filter(None));
                }
                let condition = self.condition()?;
                self.c.expect('}', "'}' to close the spanset filter")?;
                Ok(Spanset::Filter(Some(condition)))
            }
            _ => Err(self
                .c
                .error("expected a spanset filter such as { name = \"GET /\" }")),
        }
    }

    fn condition(&mut self) -> Result<Condition> {
        self.enter()?;
        let mut lhs = self.condition_and()?;
        loop {
            self.c.skip_ws();
            if !self.c.rest_starts_with("||") {
                break;
            }
            self.c.pos += 2;
            self.term()?;
            let rhs = self.condition_and()?;
            lhs = Condition::Or(Box::new(lhs), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(lhs)
    }

    fn condition_and(&mut self) -> Result<Condition> {
        let mut lhs = self.comparison_term()?;
        loop {
            self.c.skip_ws();
            if !self.c.rest_starts_with("&&") {
                return Ok(lhs);
            }
            self.c.pos += 2;
            self.term()?;
            let rhs = self.comparison_term()?;
            lhs = Condition::And(Box::new(lhs), Box::new(rhs));
        }
    }

    fn comparison_term(&mut self) -> Result<Condition> {
        self.c.skip_ws();
        if self.c.peek() == Some('(') {
            self.c.pos += 1;
            let inner = self.condition()?;
            self.c.expect(')', "')'")?;
            return Ok(inner);
        }
        let field = self.field()?;
        self.c.skip_ws();
        let op = self.comparison().ok_or_else(|| {
            self.c
                .error("expected a comparison: =, !=, >, >=, <, <=, =~ or !~")
        })?;
        self.c.skip_ws();
        let value_at = self.c.pos;
        let value = self.literal()?;
        let column = |pos| self.c.column_of(pos);
        let invalid = |pos: usize, message: String| ParseError {
            column: column(pos),
            message,
        };
        match (&field, &value) {
            (Field::Status, Literal::Enum(v)) if STATUSES.contains(&v.as_str()) => {}
            (Field::Status, _) => {
                return Err(invalid(value_at, "status is error, ok or unset".into()));
            }
            (Field::Kind, Literal::Enum(v)) if KINDS.contains(&v.as_str()) => {}
            (Field::Kind, _) => {
                return Err(invalid(
                    value_at,
                    format!("kind is one of {}", KINDS.join(", ")),
                ));
            }
            (_, Literal::Enum(v)) => {
                return Err(invalid(
                    value_at,
                    format!("unknown value {v}; quote strings"),
                ));
            }
            (Field::Duration | Field::TraceDuration, Literal::Duration(_) | Literal::Number(_)) => {
            }
            (Field::Duration | Field::TraceDuration, _) => {
                return Err(invalid(
                    value_at,
                    "durations compare with values such as 100ms".into(),
                ));
            }
            _ => {}
        }
        if matches!(op, Comparison::Regex | Comparison::NotRegex) {
            let Literal::String(pattern) = &value else {
                return Err(invalid(value_at, "a regex needs a quoted pattern".into()));
            };
            compile(&format!("^(?:{pattern})$"), pattern).map_err(|e| invalid(value_at, e))?;
        }
        if value == Literal::Nil && !matches!(op, Comparison::Eq | Comparison::Ne) {
            return Err(invalid(value_at, "nil compares with = or != only".into()));
        }
        Ok(Condition::Compare { field, op, value })
    }

    fn comparison(&mut self) -> Option<Comparison> {
        self.c.take_token(&[
            ("=~", Comparison::Regex),
            ("!~", Comparison::NotRegex),
            ("!=", Comparison::Ne),
            (">=", Comparison::Ge),
            ("<=", Comparison::Le),
            ("=", Comparison::Eq),
            (">", Comparison::Gt),
            ("<", Comparison::Lt),
        ])
    }

    fn field(&mut self) -> Result<Field> {
        let at = self.c.pos;
        let scope = if self.c.peek() == Some('.') {
            self.c.pos += 1;
            Some(Scope::Any)
        } else {
            let rest = &self.c.text[self.c.pos..];
            if rest.starts_with("span.") {
                self.c.pos += 5;
                Some(Scope::Span)
            } else if rest.starts_with("resource.") {
                self.c.pos += 9;
                Some(Scope::Resource)
            } else {
                None
            }
        };
        if let Some(scope) = scope {
            let name = self.attribute_name()?;
            return Ok(Field::Attribute { scope, name });
        }
        let word = self.word();
        if self.c.peek() == Some(':') || self.c.peek() == Some('.') {
            return Err(ParseError {
                column: self.c.column_of(at),
                message: format!(
                    "the scope {word} is not supported; use span., resource., . or an intrinsic"
                ),
            });
        }
        Ok(match word.as_str() {
            "name" => Field::Name,
            "status" => Field::Status,
            "kind" => Field::Kind,
            "duration" => Field::Duration,
            "statusMessage" => Field::StatusMessage,
            "rootName" => Field::RootName,
            "rootServiceName" => Field::RootServiceName,
            "traceDuration" => Field::TraceDuration,
            "" => {
                return Err(self
                    .c
                    .error("expected a field such as name, duration or span.http.method"));
            }
            other => {
                return Err(ParseError {
                    column: self.c.column_of(at),
                    message: format!(
                        "unknown intrinsic {other}; attributes are written span.{other}, resource.{other} or .{other}"
                    ),
                });
            }
        })
    }

    /// An attribute name: dotted words, or a quoted string.
    fn attribute_name(&mut self) -> Result<String> {
        if self.c.peek() == Some('"') {
            return self.c.string();
        }
        let rest = &self.c.text[self.c.pos..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':')))
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(self.c.error("expected an attribute name"));
        }
        let name = rest[..end].to_owned();
        self.c.pos += end;
        Ok(name)
    }

    fn literal(&mut self) -> Result<Literal> {
        match self.c.peek() {
            Some('"' | '`') => return self.c.string().map(Literal::String),
            Some('\'') => {
                let rest = &self.c.text[self.c.pos + 1..];
                let end = rest
                    .find('\'')
                    .ok_or_else(|| self.c.error("unterminated string"))?;
                let text = rest[..end].to_owned();
                self.c.pos += end + 2;
                return Ok(Literal::String(text));
            }
            _ => {}
        }
        let rest = &self.c.text[self.c.pos..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '+' | '_' | 'µ')))
            .unwrap_or(rest.len());
        let token = &rest[..end];
        let value = match token {
            "" => return Err(self.c.error("expected a value")),
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            "nil" => Literal::Nil,
            t if t.starts_with(|c: char| c.is_ascii_alphabetic()) => Literal::Enum(t.to_owned()),
            t => match t.parse::<f64>() {
                Ok(n) if n.is_finite() => Literal::Number(n),
                Ok(_) => return Err(self.c.error(&format!("number {t} is out of range"))),
                Err(_) => Literal::Duration(parse_duration(t).map_err(|e| self.c.error(&e))?),
            },
        };
        self.c.pos += end;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grafana_search_queries() {
        let q = parse(
            r#"{resource.service.name="frontend" && name="GET /api" && status=error && duration>100ms && span.http.status_code=500}"#,
        )
        .unwrap();
        let Spanset::Filter(Some(condition)) = &q.spansets else {
            panic!("{q:?}")
        };
        assert!(!condition.is_trace_level());
        assert!(matches!(
            parse("{}").unwrap().spansets,
            Spanset::Filter(None)
        ));
        assert!(matches!(parse("").unwrap().spansets, Spanset::Filter(None)));
        let q = parse(r#"{ .service.name =~ "a|b" || kind = server }"#).unwrap();
        let Spanset::Filter(Some(Condition::Or(a, _))) = &q.spansets else {
            panic!()
        };
        assert!(matches!(
            **a,
            Condition::Compare {
                field: Field::Attribute {
                    scope: Scope::Any,
                    ..
                },
                op: Comparison::Regex,
                ..
            }
        ));
    }

    #[test]
    fn spanset_operators_and_count() {
        let q = parse(
            r#"{ name = "a" } > { status = error } && { rootServiceName = "x" } | count() > 2"#,
        )
        .unwrap();
        assert!(matches!(q.spansets, Spanset::And(..)));
        assert_eq!(q.count, Some((Comparison::Gt, 2.0)));
        assert_eq!(q.spansets.filters().len(), 3);
        let q = parse(r#"({a="1"} || {b="2"}) && {}"#);
        assert!(q.is_err(), "bare names need a scope");
        let q = parse(r#"({.a="1"} || {.b="2"}) && {}"#).unwrap();
        assert!(matches!(q.spansets, Spanset::And(..)));
    }

    #[test]
    fn literals() {
        let value = |q: &str| match parse(q).unwrap().spansets {
            Spanset::Filter(Some(Condition::Compare { value, .. })) => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("{duration > 1.5s}"), Literal::Duration(1_500_000_000));
        assert_eq!(value("{span.x = 3}"), Literal::Number(3.0));
        assert_eq!(value("{span.x != nil}"), Literal::Nil);
        assert_eq!(value("{span.x = true}"), Literal::Bool(true));
        assert_eq!(
            value("{span.x = 'single'}"),
            Literal::String("single".into())
        );
        assert_eq!(
            value(r#"{span."with space" = "v"}"#),
            Literal::String("v".into())
        );
    }

    #[test]
    fn unsupported_and_wrong_queries_say_why() {
        for (query, expected) in [
            (r#"{ a = "1" }"#, "unknown intrinsic a"),
            (r#"{ span:name = "1" }"#, "scope span is not supported"),
            ("{ status = failed }", "status is error, ok or unset"),
            ("{ kind = server2 }", "kind is one of"),
            ("{ duration > \"x\" }", "durations compare"),
            ("{} >> {}", ">> is not supported"),
            ("{} ~ {}", "not supported"),
            ("{} | select(span.x)", "select() is not supported"),
            ("{} | avg(duration) > 1s", "avg() is not supported"),
            (r#"{ span.x =~ "(" }"#, "invalid regex"),
            ("{ span.x > nil }", "nil compares"),
            ("{ span.x > 1e999 }", "number 1e999 is out of range"),
            ("{ span.x > -inf }", "number -inf is out of range"),
            ("{ name = \"a\" ", "'}'"),
            ("{} with (most_recent=true)", "hints"),
        ] {
            let err = parse(query).unwrap_err().to_string();
            assert!(err.contains(expected), "{query}: {err}");
        }
        let deep = format!("{}{{}}{}", "(".repeat(100), ")".repeat(100));
        assert!(
            parse(&deep)
                .unwrap_err()
                .to_string()
                .contains("nests deeper")
        );
        let wide = vec!["{}"; MAX_TERMS + 2].join(" && ");
        assert!(parse(&wide).unwrap_err().to_string().contains("terms"));
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,60}") {
            let _ = parse(&text);
        }

        #[test]
        fn parser_never_panics_on_query_like_text(
            parts in prop::collection::vec(prop_oneof![
                Just("{"), Just("}"), Just("("), Just(")"), Just("&&"), Just("||"), Just(">"),
                Just("name"), Just("="), Just("\"x\""), Just("status"), Just("error"),
                Just("duration"), Just("1s"), Just("span.a"), Just("resource.b"), Just(".c"),
                Just("|"), Just("count()"), Just("3"), Just("=~"), Just("nil"), Just("kind"),
            ], 0..20)
        ) {
            let _ = parse(&parts.join(" "));
        }
    }
}
