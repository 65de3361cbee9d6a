//! Label matchers and line filters: the selector `{name="value", other=~"re"}` that
//! every label-matcher query starts with, and the line filters (`|= "text"`,
//! `!= "text"`, `|~ "re"`, `!~ "re"`) LogQL runs in the scan. `logql` parses the rest.
//!
//! Matching follows Prometheus and Loki: regex matchers are anchored at both ends, and a
//! missing label matches as the empty string. Line-filter regexes are not anchored.
//! Every regex is compiled with a size limit so a hostile pattern cannot blow up memory.

use std::fmt;

use regex::Regex;

use super::labels::{LabelSet, validate_name};

/// Longest pattern accepted in a matcher or line filter, in bytes.
pub const MAX_PATTERN_LEN: usize = 4096;
/// Compiled-program budget for one regex (the regex crate's `size_limit`).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error at column {column}: {message}")]
pub struct ParseError {
    /// 1-based character position in the query text.
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Matcher {
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, String> {
        validate_name(name).map_err(|e| e.to_string())?;
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(compile(&format!("^(?:{value})$"), value)?),
            _ => None,
        };
        Ok(Self {
            name: name.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Does this matcher accept the given value (empty when the label is absent)?
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            (_, None) => false,
        }
    }

    /// True when the matcher accepts the empty value, i.e. also streams without the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }
}

pub(crate) fn compile(pattern: &str, original: &str) -> Result<Regex, String> {
    if original.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "regex too long: {} > {MAX_PATTERN_LEN} bytes",
            original.len()
        ));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("regex too complex: compiled form exceeds {limit} bytes")
            }
            other => format!("invalid regex: {other}"),
        })
}

/// A set of matchers that all must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selector {
    pub matchers: Vec<Matcher>,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut parser = Parser::new(text);
        let selector = parser.selector()?;
        parser.skip_ws();
        if !parser.at_end() {
            return Err(parser.error("unexpected text after selector"));
        }
        Ok(selector)
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.name).unwrap_or("")))
    }

    /// A selector made only of `=` matchers with distinct names reads as a label set.
    pub fn as_label_set(&self) -> Option<LabelSet> {
        if self.matchers.iter().any(|m| m.op != MatchOp::Equal) {
            return None;
        }
        let pairs = self
            .matchers
            .iter()
            .map(|m| (m.name.clone(), m.value.clone()))
            .collect();
        LabelSet::new(pairs).ok()
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.matchers.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}{}", m.name, m.op.as_str())?;
            write_quoted(f, &m.value)?;
        }
        f.write_str("}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFilterOp {
    Contains,
    NotContains,
    Regex,
    NotRegex,
}

impl LineFilterOp {
    pub fn as_str(self) -> &'static str {
        match self {
            LineFilterOp::Contains => "|=",
            LineFilterOp::NotContains => "!=",
            LineFilterOp::Regex => "|~",
            LineFilterOp::NotRegex => "!~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LineFilter {
    pub op: LineFilterOp,
    pub pattern: String,
    regex: Option<Regex>,
}

impl PartialEq for LineFilter {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op && self.pattern == other.pattern
    }
}

impl LineFilter {
    pub fn new(op: LineFilterOp, pattern: &str) -> Result<Self, String> {
        let regex = match op {
            LineFilterOp::Regex | LineFilterOp::NotRegex => Some(compile(pattern, pattern)?),
            _ => {
                if pattern.len() > MAX_PATTERN_LEN {
                    return Err(format!(
                        "filter text too long: {} > {MAX_PATTERN_LEN} bytes",
                        pattern.len()
                    ));
                }
                None
            }
        };
        Ok(Self {
            op,
            pattern: pattern.to_owned(),
            regex,
        })
    }

    pub fn regex(&self) -> Option<&Regex> {
        self.regex.as_ref()
    }
}

/// Writes a double-quoted string with the escapes the parser reads back.
pub(crate) fn write_quoted(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in value.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

pub(crate) struct Parser<'a> {
    pub(crate) text: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    pub(crate) fn column_of(&self, byte_pos: usize) -> usize {
        self.text[..byte_pos.min(self.text.len())].chars().count() + 1
    }

    pub(crate) fn error(&self, message: &str) -> ParseError {
        ParseError {
            column: self.column_of(self.pos),
            message: message.to_owned(),
        }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    pub(crate) fn next_char(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub(crate) fn skip_ws(&mut self) {
        while let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
            self.pos += c.len_utf8();
        }
    }

    /// Consumes the first of `tokens` the text continues with (list a token before
    /// any token that is a prefix of it).
    pub(crate) fn take_token<T: Copy>(&mut self, tokens: &[(&str, T)]) -> Option<T> {
        let rest = &self.text[self.pos..];
        let (token, value) = tokens.iter().find(|(t, _)| rest.starts_with(t))?;
        self.pos += token.len();
        Some(*value)
    }

    pub(crate) fn expect(&mut self, want: char, what: &str) -> Result<(), ParseError> {
        self.skip_ws();
        if self.peek() == Some(want) {
            self.pos += want.len_utf8();
            Ok(())
        } else {
            Err(self.error(&format!("expected {what}")))
        }
    }

    /// `{matchers}`, optionally preceded by a metric name as in Prometheus
    /// (`http_requests_total{job="api"}`, or the name alone), which reads as
    /// `__name__="…"`.
    pub(crate) fn selector(&mut self) -> Result<Selector, ParseError> {
        self.skip_ws();
        let mut matchers = Vec::new();
        if matches!(self.peek(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':') {
            let start = self.pos;
            while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_' || c == ':')
            {
                self.pos += 1;
            }
            let name = &self.text[start..self.pos];
            let matcher =
                Matcher::new("__name__", MatchOp::Equal, name).map_err(|message| ParseError {
                    column: self.column_of(start),
                    message,
                })?;
            matchers.push(matcher);
            self.skip_ws();
            if self.peek() != Some('{') {
                return Ok(Selector { matchers });
            }
        }
        self.expect('{', "'{' to start a selector")?;
        loop {
            self.skip_ws();
            if self.peek() == Some('}') {
                self.pos += 1;
                return Ok(Selector { matchers });
            }
            let name_at = self.pos;
            let name = self.ident()?;
            self.skip_ws();
            let op_at = self.pos;
            let op = match (self.next_char(), self.peek()) {
                (Some('='), Some('~')) => {
                    self.pos += 1;
                    MatchOp::Regex
                }
                (Some('='), _) => MatchOp::Equal,
                (Some('!'), Some('=')) => {
                    self.pos += 1;
                    MatchOp::NotEqual
                }
                (Some('!'), Some('~')) => {
                    self.pos += 1;
                    MatchOp::NotRegex
                }
                _ => {
                    self.pos = op_at;
                    return Err(self.error("expected one of =, !=, =~, !~"));
                }
            };
            self.skip_ws();
            let value_at = self.pos;
            let value = self.string()?;
            let matcher = Matcher::new(&name, op, &value).map_err(|message| ParseError {
                column: self.column_of(if op == MatchOp::Equal || op == MatchOp::NotEqual {
                    name_at
                } else {
                    value_at
                }),
                message,
            })?;
            matchers.push(matcher);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    pub(crate) fn ident(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.error("expected a label name"));
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    /// A double-quoted string with escapes, or a backquoted raw string.
    pub(crate) fn string(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some('`') => {
                self.pos += 1;
                let start = self.pos;
                match self.text[start..].find('`') {
                    Some(len) => {
                        self.pos = start + len + 1;
                        Ok(self.text[start..start + len].to_owned())
                    }
                    None => Err(self.error("unterminated raw string")),
                }
            }
            Some('"') => {
                let open = self.pos;
                self.pos += 1;
                let mut out = String::new();
                loop {
                    let Some(c) = self.next_char() else {
                        self.pos = open;
                        return Err(self.error("unterminated string"));
                    };
                    match c {
                        '"' => return Ok(out),
                        '\\' => out.push(self.escape()?),
                        c => out.push(c),
                    }
                }
            }
            _ => Err(self.error("expected a quoted string")),
        }
    }

    fn escape(&mut self) -> Result<char, ParseError> {
        let at = self.pos;
        let escaped = match self.next_char() {
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('\\') => '\\',
            Some('"') => '"',
            Some('`') => '`',
            Some('u') => {
                let rest = &self.text[self.pos..];
                let code = rest
                    .strip_prefix('{')
                    .and_then(|r| r.split_once('}'))
                    .filter(|(hex, _)| (1..=6).contains(&hex.len()))
                    .and_then(|(hex, _)| u32::from_str_radix(hex, 16).ok().map(|v| (v, hex.len())));
                match code.and_then(|(v, len)| char::from_u32(v).map(|c| (c, len))) {
                    Some((c, len)) => {
                        self.pos += len + 2;
                        c
                    }
                    None => {
                        self.pos = at;
                        return Err(self.error("invalid \\u{…} escape"));
                    }
                }
            }
            _ => {
                self.pos = at;
                return Err(self.error("unknown escape; use \\\\, \\\", \\n, \\r, \\t or \\u{hex}"));
            }
        };
        Ok(escaped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = MatchOp> {
        prop_oneof![
            Just(MatchOp::Equal),
            Just(MatchOp::NotEqual),
            Just(MatchOp::Regex),
            Just(MatchOp::NotRegex)
        ]
    }

    /// Values that are valid both as literal text and as a regex.
    pub fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 _\"\\n\\t-]{0,12}",
            "[a-z]{1,5}\\|[a-z]{1,5}",
            "\\PC{0,8}"
        ]
        .prop_filter("valid regex", |v| Regex::new(v).is_ok())
    }

    pub fn selector() -> impl Strategy<Value = Selector> {
        prop::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,8}", op(), value()), 0..5).prop_map(|ms| {
            Selector {
                matchers: ms
                    .into_iter()
                    .map(|(n, o, v)| Matcher::new(&n, o, &v).unwrap())
                    .collect(),
            }
        })
    }

    proptest! {
        #[test]
        fn parse_display_round_trip(s in selector()) {
            let text = s.to_string();
            let parsed = Selector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(parsed, s);
        }

        #[test]
        fn parser_never_panics(text in "\\PC{0,40}") {
            let _ = Selector::parse(&text);
        }
    }

    #[test]
    fn parses_the_documented_forms() {
        let s = Selector::parse(r#"{service_name="checkout", severity=~"warn|error"}"#).unwrap();
        assert_eq!(s.matchers.len(), 2);
        let m = &s.matchers[1];
        assert!(m.matches("warn") && m.matches("error") && !m.matches("warning"));
        assert_eq!(
            Selector::parse("{a=`raw\\d`}").unwrap().matchers[0].value,
            "raw\\d"
        );
    }

    #[test]
    fn metric_name_prefix_reads_as_name_matcher() {
        let s = Selector::parse(r#"http_requests_total{job="api"}"#).unwrap();
        assert_eq!(
            s.to_string(),
            r#"{__name__="http_requests_total", job="api"}"#
        );
        let s = Selector::parse("ns:up").unwrap();
        assert_eq!(s.to_string(), r#"{__name__="ns:up"}"#);
        assert!(Selector::parse("up job").is_err());
    }

    /// Skipping whitespace once stepped one byte into a multibyte space and panicked.
    #[test]
    fn unicode_whitespace_is_skipped_whole() {
        assert!(Selector::parse("\u{2000}{a=\"b\"}\u{3000}").is_ok());
        assert!(Selector::parse(" \u{2000}").is_err());
    }

    #[test]
    fn errors_say_where() {
        let err = Selector::parse(r#"{service_name="a" x"#).unwrap_err();
        assert_eq!(err.column, 19, "{err}");
        let err = Selector::parse(r#"{a=~"("}"#).unwrap_err();
        assert!(err.message.starts_with("invalid regex"), "{err}");
        let err = Selector::parse(r#"{a="unterminated}"#).unwrap_err();
        assert_eq!(err.column, 4, "{err}");
    }

    #[test]
    fn regex_size_is_bounded() {
        let huge = format!("{{a=~\"{}\"}}", "(a{1000}){1000}");
        let err = Selector::parse(&huge).unwrap_err();
        assert!(err.message.contains("too complex"), "{err}");
        let long = "x".repeat(MAX_PATTERN_LEN + 1);
        assert!(
            LineFilter::new(LineFilterOp::Contains, &long)
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn missing_label_matches_as_empty() {
        let set = LabelSet::new(vec![("a".into(), "1".into())]).unwrap();
        assert!(Selector::parse(r#"{b=""}"#).unwrap().matches(&set));
        assert!(!Selector::parse(r#"{b!=""}"#).unwrap().matches(&set));
        assert!(Selector::parse(r#"{b!~"x.+"}"#).unwrap().matches(&set));
    }
}
