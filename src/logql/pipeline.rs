//! Running a pipeline over one line: filters, parsers, label filters and formatting, as
//! Loki does.
//!
//! A line's labels are its stream's labels, its structured metadata (the record's
//! attributes and trace context) and whatever parsers extract. A parser never
//! overwrites a stream or metadata label: an extracted `level` next to a stream's
//! `level` becomes `level_extracted`. Labels with empty values do not exist. A line a
//! parser cannot read, or a label a numeric filter cannot read, keeps going with an
//! `__error__` label (`JSONParserErr`, `LogfmtParserErr`, `LabelFilterErr`,
//! `SampleExtractionErr`) and `__error_details__`, which `| __error__=""` filters on.

use std::borrow::Cow;

use serde_json::Value;

use super::template::Context;
use super::{
    Extraction, LabelFormat, LabelPredicate, PathStep, Pattern, PatternPart, Stage, Unit,
    parse_bytes, parse_duration,
};
use crate::model::LineFilterOp;

pub const ERROR_LABEL: &str = "__error__";
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

/// Where a label came from; Loki's `categorize-labels` responses report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Stream,
    Metadata,
    Parsed,
}

/// A line's labels, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String, Origin)>);

impl Labels {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.position(name).ok().map(|i| self.0[i].1.as_str())
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _, _)| n.as_str().cmp(name))
    }

    /// Sets a label; an empty value removes it.
    pub fn insert(&mut self, name: &str, value: &str, origin: Origin) {
        match (self.position(name), value.is_empty()) {
            (Ok(i), true) => {
                self.0.remove(i);
            }
            (Ok(i), false) => {
                self.0[i].1 = value.to_owned();
                self.0[i].2 = origin;
            }
            (Err(_), true) => {}
            (Err(i), false) => self
                .0
                .insert(i, (name.to_owned(), value.to_owned(), origin)),
        }
    }

    /// Adds a label a parser extracted, under `<name>_extracted` when a stream or
    /// metadata label already has the name.
    pub fn insert_parsed(&mut self, name: &str, value: &str) {
        match self.position(name) {
            Ok(i) if self.0[i].2 != Origin::Parsed => {
                self.insert(&format!("{name}_extracted"), value, Origin::Parsed)
            }
            _ => self.insert(name, value, Origin::Parsed),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.position(name).ok().map(|i| self.0.remove(i).1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.0.retain(|(n, v, _)| keep(n, v));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, Origin)> {
        self.0.iter().map(|(n, v, o)| (n.as_str(), v.as_str(), *o))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn set_error(&mut self, kind: &str, details: &str) {
        if self.get(ERROR_LABEL).is_none() {
            self.insert(ERROR_LABEL, kind, Origin::Parsed);
            self.insert(ERROR_DETAILS_LABEL, details, Origin::Parsed);
        }
    }

    /// The pipeline error on the line, if any.
    pub fn error(&self) -> Option<(&str, &str)> {
        self.get(ERROR_LABEL)
            .map(|kind| (kind, self.get(ERROR_DETAILS_LABEL).unwrap_or("")))
    }
}

impl FromIterator<(String, String, Origin)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String, Origin)>>(iter: I) -> Self {
        let mut labels = Labels::default();
        for (name, value, origin) in iter {
            labels.insert(&name, &value, origin);
        }
        labels
    }
}

/// The stages of a log query after those that ran in the scan.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    stages: &'a [Stage],
}

impl<'a> Pipeline<'a> {
    pub fn new(stages: &'a [Stage]) -> Self {
        Self { stages }
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Does any stage read the line? If not, a line's outcome follows from its labels
    /// alone and can be computed once per distinct label set.
    pub fn reads_line(&self) -> bool {
        self.stages.iter().any(|stage| match stage {
            Stage::LabelFilter(_) | Stage::Drop(_) | Stage::Keep(_) => false,
            Stage::LabelFormat(formats) => formats.iter().any(|f| match f {
                LabelFormat::Rename { .. } => false,
                LabelFormat::Template { template, .. } => template.reads_line(),
            }),
            _ => true,
        })
    }

    /// Can a stage drop lines? If not, a log query's limit can be applied in the scan.
    pub fn can_drop(&self) -> bool {
        self.stages
            .iter()
            .any(|s| matches!(s, Stage::LineFilter(_) | Stage::LabelFilter(_)))
    }

    /// Runs every stage; false when the line is filtered out.
    pub fn run(&self, line: &mut Cow<'_, str>, timestamp_ns: i64, labels: &mut Labels) -> bool {
        for stage in self.stages {
            match stage {
                Stage::LineFilter(filter) => {
                    let hit = match filter.op {
                        LineFilterOp::Contains | LineFilterOp::NotContains => {
                            line.contains(filter.pattern.as_str())
                        }
                        LineFilterOp::Regex | LineFilterOp::NotRegex => {
                            filter.regex().is_some_and(|re| re.is_match(line))
                        }
                    };
                    let wanted = matches!(filter.op, LineFilterOp::Contains | LineFilterOp::Regex);
                    if hit != wanted {
                        return false;
                    }
                }
                Stage::Json(extractions) => json(line, extractions, labels),
                Stage::Logfmt {
                    strict,
                    keep_empty,
                    extractions,
                } => logfmt(line, *strict, *keep_empty, extractions, labels),
                Stage::Regexp(re) => {
                    if let Some(captures) = re.captures(line) {
                        for name in re.capture_names().flatten() {
                            if let Some(m) = captures.name(name) {
                                labels.insert_parsed(name, m.as_str());
                            }
                        }
                    }
                }
                Stage::Pattern(pattern) => {
                    for (name, value) in pattern_captures(pattern, line) {
                        labels.insert_parsed(name, value);
                    }
                }
                Stage::LabelFilter(predicate) => match evaluate(predicate, labels) {
                    Truth::True => {}
                    Truth::False => return false,
                    Truth::Error(details) => labels.set_error("LabelFilterErr", &details),
                },
                Stage::LineFormat(template) => {
                    let formatted = template.render(labels, &Context { line, timestamp_ns });
                    *line = Cow::Owned(formatted);
                }
                Stage::LabelFormat(formats) => {
                    let context = Context { line, timestamp_ns };
                    let values: Vec<(&str, Option<String>, Option<&str>)> = formats
                        .iter()
                        .map(|f| match f {
                            LabelFormat::Rename { to, from } => (
                                to.as_str(),
                                labels.get(from).map(str::to_owned),
                                Some(from.as_str()),
                            ),
                            LabelFormat::Template { to, template } => {
                                (to.as_str(), Some(template.render(labels, &context)), None)
                            }
                        })
                        .collect();
                    for (to, value, renamed_from) in values {
                        if let Some(from) = renamed_from {
                            labels.remove(from);
                        }
                        labels.insert(to, value.as_deref().unwrap_or(""), Origin::Parsed);
                    }
                }
                Stage::Drop(refs) => labels.retain(|name, value| {
                    !refs.iter().any(|r| r.name() == name && r.applies(value))
                }),
                Stage::Keep(refs) => labels.retain(|name, value| {
                    refs.iter().any(|r| r.name() == name && r.applies(value))
                }),
                Stage::Decolorize => {
                    if line.contains('\u{1b}') {
                        *line = Cow::Owned(decolorize(line));
                    }
                }
            }
        }
        true
    }
}

/// Reads an unwrapped label as a sample value; on failure the line gets a
/// `SampleExtractionErr`.
pub fn unwrap_value(labels: &mut Labels, label: &str, unit: Unit) -> Option<f64> {
    let text = labels.get(label).unwrap_or("");
    match convert(text, unit) {
        Ok(v) => Some(v),
        Err(details) => {
            labels.set_error("SampleExtractionErr", &details);
            None
        }
    }
}

/// Applies filters that follow an unwrap.
pub fn post_filter(predicates: &[LabelPredicate], labels: &mut Labels) -> bool {
    for predicate in predicates {
        match evaluate(predicate, labels) {
            Truth::True => {}
            Truth::False => return false,
            Truth::Error(details) => labels.set_error("LabelFilterErr", &details),
        }
    }
    true
}

fn convert(text: &str, unit: Unit) -> Result<f64, String> {
    let text = text.trim();
    match unit {
        Unit::Number => text
            .parse::<f64>()
            .map_err(|_| format!("cannot read {text:?} as a number")),
        Unit::Duration => parse_duration(text).map(|ns| ns as f64 / 1e9),
        Unit::Bytes => parse_bytes(text),
    }
}

enum Truth {
    True,
    False,
    Error(String),
}

fn evaluate(predicate: &LabelPredicate, labels: &Labels) -> Truth {
    match predicate {
        LabelPredicate::And(a, b) => match (evaluate(a, labels), evaluate(b, labels)) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::Error(e), _) | (_, Truth::Error(e)) => Truth::Error(e),
            _ => Truth::True,
        },
        LabelPredicate::Or(a, b) => match (evaluate(a, labels), evaluate(b, labels)) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::Error(e), _) | (_, Truth::Error(e)) => Truth::Error(e),
            _ => Truth::False,
        },
        LabelPredicate::Text(matcher) => {
            if matcher.matches(labels.get(&matcher.name).unwrap_or("")) {
                Truth::True
            } else {
                Truth::False
            }
        }
        LabelPredicate::Compare {
            label,
            op,
            value,
            unit,
        } => match labels.get(label) {
            None => Truth::False,
            Some(text) => match convert(text, *unit) {
                Ok(v) if op.holds(v, *value) => Truth::True,
                Ok(_) => Truth::False,
                Err(e) => Truth::Error(e),
            },
        },
    }
}

/// A label name made of what Loki allows: letters, digits and `_`.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn json(line: &str, extractions: &[Extraction], labels: &mut Labels) {
    let value: Value = match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return labels.set_error("JSONParserErr", "the line is not a JSON object"),
        Err(e) => return labels.set_error("JSONParserErr", &e.to_string()),
    };
    if extractions.is_empty() {
        let mut prefix = String::new();
        flatten(&value, &mut prefix, labels);
        return;
    }
    for extraction in extractions {
        let mut at = &value;
        let mut found = true;
        for step in &extraction.path {
            let next = match step {
                PathStep::Field(name) => at.get(name),
                PathStep::Index(i) => at.get(*i),
            };
            match next {
                Some(v) => at = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if found {
            labels.insert_parsed(&extraction.label, &json_text(at));
        }
    }
}

/// Every scalar field of an object, nested names joined by `_` (arrays are skipped,
/// as Loki does).
fn flatten(value: &Value, prefix: &mut String, labels: &mut Labels) {
    let Value::Object(map) = value else { return };
    for (key, v) in map {
        let before = prefix.len();
        if !prefix.is_empty() {
            prefix.push('_');
        }
        prefix.push_str(&sanitize(key));
        match v {
            Value::Object(_) => flatten(v, prefix, labels),
            Value::Array(_) => {}
            other => labels.insert_parsed(prefix, &json_text(other)),
        }
        prefix.truncate(before);
    }
}

fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn logfmt(
    line: &str,
    strict: bool,
    keep_empty: bool,
    extractions: &[Extraction],
    labels: &mut Labels,
) {
    let pairs = match logfmt_pairs(line, strict) {
        Ok(p) => p,
        Err(e) => return labels.set_error("LogfmtParserErr", &e),
    };
    if extractions.is_empty() {
        for (key, value) in pairs {
            if let Some(value) = value {
                labels.insert_parsed(&sanitize(&key), &value);
            } else if keep_empty {
                labels.insert_parsed(&sanitize(&key), "");
            }
        }
        return;
    }
    for extraction in extractions {
        let key = match extraction.path.as_slice() {
            [PathStep::Field(k)] => k.as_str(),
            _ => continue,
        };
        if let Some((_, Some(value))) = pairs.iter().rev().find(|(k, _)| k == key) {
            labels.insert_parsed(&extraction.label, value);
        }
    }
}

/// `key=value key2="quoted \"value\"" flag`: pairs in order; a key without `=` has no
/// value. A malformed pair is an error when `strict`, and skipped otherwise.
fn logfmt_pairs(line: &str, strict: bool) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let Some(&(start, _)) = chars.peek() else {
            return Ok(out);
        };
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            if c == '"' {
                if strict {
                    return Err(format!("unexpected '\"' at byte {i}"));
                }
                // Skip the malformed token.
                while chars.next_if(|(_, c)| !c.is_whitespace()).is_some() {}
                end = start;
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let key = &line[start..end];
        if key.is_empty() {
            if strict {
                return Err(format!("'=' without a key at byte {start}"));
            }
            while chars.next_if(|(_, c)| !c.is_whitespace()).is_some() {}
            continue;
        }
        if chars.peek().is_none_or(|(_, c)| *c != '=') {
            out.push((key.to_owned(), None));
            continue;
        }
        chars.next();
        let value = if chars.peek().is_some_and(|(_, c)| *c == '"') {
            let (open, _) = chars.next().unwrap_or((0, '"'));
            let mut value = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some('r') => value.push('\r'),
                        Some(c) => value.push(c),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
            if !closed && strict {
                return Err(format!("unterminated quoted value at byte {open}"));
            }
            value
        } else {
            let mut value = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value
        };
        out.push((key.to_owned(), Some(value)));
    }
}

/// Matches a pattern against a line: a leading literal must start the line, each
/// capture runs to the next literal's first occurrence, and a final capture takes the
/// rest of the line. No captures when the line does not fit.
fn pattern_captures<'p, 'l>(pattern: &'p Pattern, line: &'l str) -> Vec<(&'p str, &'l str)> {
    let mut out = Vec::new();
    let mut rest = line;
    let mut parts = pattern.parts.iter().peekable();
    while let Some(part) = parts.next() {
        match part {
            PatternPart::Literal(text) => match rest.strip_prefix(text.as_str()) {
                Some(r) => rest = r,
                None => return Vec::new(),
            },
            PatternPart::Capture(name) => {
                let (value, after) = match parts.peek() {
                    Some(PatternPart::Literal(next)) => match rest.find(next.as_str()) {
                        Some(at) => (&rest[..at], &rest[at..]),
                        None => return Vec::new(),
                    },
                    _ => (rest, ""),
                };
                if let Some(name) = name {
                    out.push((name.as_str(), value));
                }
                rest = after;
            }
        }
    }
    out
}

fn decolorize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logql::{LogExpr, Query, parse};

    fn run(query: &str, line: &str, stream: &[(&str, &str)]) -> Option<(String, Vec<String>)> {
        let Query::Log(LogExpr { stages, .. }) = parse(query).unwrap() else {
            panic!("not a log query")
        };
        let mut labels: Labels = stream
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string(), Origin::Stream))
            .collect();
        let mut line = Cow::Borrowed(line);
        Pipeline::new(&stages)
            .run(&mut line, 0, &mut labels)
            .then(|| {
                (
                    line.into_owned(),
                    labels.iter().map(|(k, v, _)| format!("{k}={v}")).collect(),
                )
            })
    }

    #[test]
    fn json_flattens_and_extracts_paths() {
        let (_, labels) = run(
            r#"{a="1"} | json"#,
            r#"{"status":503,"req":{"method":"GET","path":"/x"},"tags":["a"],"a":"inner"}"#,
            &[("a", "1")],
        )
        .unwrap();
        assert_eq!(
            labels,
            [
                "a=1",
                "a_extracted=inner",
                "req_method=GET",
                "req_path=/x",
                "status=503"
            ]
        );
        let (_, labels) = run(
            r#"{a="1"} | json m="req.method", first="tags[0]", s="status""#,
            r#"{"status":503,"req":{"method":"GET"},"tags":["x","y"]}"#,
            &[("a", "1")],
        )
        .unwrap();
        assert_eq!(labels, ["a=1", "first=x", "m=GET", "s=503"]);
        let (_, labels) = run(r#"{a="1"} | json"#, "not json", &[("a", "1")]).unwrap();
        assert!(labels.contains(&"__error__=JSONParserErr".to_owned()));
        assert!(
            run(
                r#"{a="1"} | json | __error__="""#,
                "not json",
                &[("a", "1")]
            )
            .is_none()
        );
    }

    #[test]
    fn logfmt_and_numeric_filters() {
        let line = r#"level=error status=503 took=1.5s msg="upstream \"x\" failed" flag"#;
        let (_, labels) = run(
            r#"{a="1"} | logfmt | status >= 500 and took > 1s"#,
            line,
            &[("a", "1")],
        )
        .unwrap();
        assert!(
            labels.contains(&r#"msg=upstream "x" failed"#.to_owned()),
            "{labels:?}"
        );
        assert!(run(r#"{a="1"} | logfmt | status < 500"#, line, &[("a", "1")]).is_none());
        assert!(run(r#"{a="1"} | logfmt | took < 1s or level="info""#, line, &[]).is_none());
        assert!(
            run(
                r#"{a="1"} | logfmt | took < 1s or level="error""#,
                line,
                &[]
            )
            .is_some()
        );
        // A value that is not a number keeps the line, marked.
        let (_, labels) = run(r#"{a="1"} | logfmt | level > 3"#, line, &[]).unwrap();
        assert!(labels.contains(&"__error__=LabelFilterErr".to_owned()));
        // A missing label fails a numeric comparison.
        assert!(run(r#"{a="1"} | logfmt | absent > 3"#, line, &[]).is_none());
        let (_, labels) = run(r#"{a="1"} | logfmt --keep-empty"#, line, &[]).unwrap();
        assert!(!labels.iter().any(|l| l.starts_with("flag")), "{labels:?}");
        assert!(run(r#"{a="1"} | logfmt | size > 1KB"#, "size=2KiB", &[]).is_some());
    }

    #[test]
    fn regexp_pattern_and_formatting() {
        let line = r#"10.0.0.1 - - [01/Jan/2024] "GET /api HTTP/1.1" 200 512"#;
        let (_, labels) = run(
            r#"{a="1"} | pattern `<ip> - - [<_>] "<method> <path> <_>" <status> <size>`"#,
            line,
            &[],
        )
        .unwrap();
        assert_eq!(
            labels,
            [
                "ip=10.0.0.1",
                "method=GET",
                "path=/api",
                "size=512",
                "status=200"
            ]
        );
        let (out, labels) = run(
            r#"{a="1"} | regexp `"(?P<method>\w+) (?P<path>\S+)` | line_format "{{.method}} {{.path}}" | label_format verb=method | drop path"#,
            line,
            &[],
        )
        .unwrap();
        assert_eq!(out, "GET /api");
        assert_eq!(labels, ["verb=GET"]);
        let (_, labels) = run(
            r#"{a="1"} | logfmt | keep level, a"#,
            "level=info x=1",
            &[("a", "1"), ("b", "2")],
        )
        .unwrap();
        assert_eq!(labels, ["a=1", "level=info"]);
        // Filters after line_format see the new line.
        assert!(run(r#"{a="1"} | line_format "x" |= "GET""#, line, &[]).is_none());
        let (out, _) = run(r#"{a="1"} | decolorize"#, "\u{1b}[31mred\u{1b}[0m", &[]).unwrap();
        assert_eq!(out, "red");
    }
}
