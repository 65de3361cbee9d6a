//! The Prometheus text exposition format (0.0.4) and OpenMetrics 1.0: what `/metrics`
//! endpoints serve.
//!
//! A small hand-written parser, because none of the maintained crates keeps exemplars.
//! It borrows from the input and allocates only for escaped label values. Differences
//! between the two formats that matter here:
//!
//! - timestamps are integer milliseconds in 0.0.4 and (fractional) seconds in
//!   OpenMetrics;
//! - only OpenMetrics has exemplars (`… # {trace_id="…"} 0.67 1520879607.789`),
//!   `# UNIT`, and the closing `# EOF`, which it requires;
//! - an OpenMetrics `_created` sample of a counter, histogram or summary is the start
//!   time of the family's series with the same labels, not a series of its own.
//!
//! Any syntax error fails the whole exposition, with its line number, as Prometheus
//! fails the scrape.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::model::labels::valid_metric_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    Text,
    /// `application/openmetrics-text; version=1.0.0`
    OpenMetrics,
}

impl Format {
    /// What a scrape asks for: OpenMetrics first, then the classic text format.
    pub const ACCEPT: &'static str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    /// The format a response's `Content-Type` names; anything else is read as text.
    pub fn from_content_type(content_type: &str) -> Self {
        if content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/openmetrics-text")
        {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

pub type Labels<'a> = Vec<(&'a str, Cow<'a, str>)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    pub labels: Labels<'a>,
    pub value: f64,
    /// Nanoseconds since the epoch.
    pub timestamp: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub name: &'a str,
    pub labels: Labels<'a>,
    pub value: f64,
    /// Nanoseconds since the epoch.
    pub timestamp: Option<i64>,
    /// Nanoseconds since the epoch, from the series' `_created` sample.
    pub created: Option<i64>,
    pub exemplar: Option<Exemplar<'a>>,
    /// Index into `Exposition::families`.
    pub family: usize,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Family<'a> {
    pub name: &'a str,
    /// As the exposition states it: `counter`, `gauge`, `histogram`, `summary`, …;
    /// `None` for untyped / unknown.
    pub metric_type: Option<&'a str>,
    pub unit: Option<&'a str>,
    pub help: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition<'a> {
    pub families: Vec<Family<'a>>,
    pub samples: Vec<Sample<'a>>,
}

/// Suffixes a sample name may add to its family's name.
const SUFFIXES: &[&str] = &[
    "_total", "_bucket", "_count", "_sum", "_created", "_gcount", "_gsum", "_info",
];

pub fn parse(text: &str, format: Format) -> Result<Exposition<'_>, ParseError> {
    let mut out = Exposition::default();
    let mut families: HashMap<&str, usize> = HashMap::new();
    let mut current: Option<usize> = None;
    let mut created: Vec<(usize, Labels<'_>, i64)> = Vec::new();
    let mut saw_eof = false;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let fail = |message: String| ParseError {
            line: number,
            message,
        };
        if saw_eof {
            if line.is_empty() {
                continue;
            }
            return Err(fail("text after # EOF".into()));
        }
        if line.is_empty() {
            if format == Format::OpenMetrics {
                return Err(fail("empty line (not allowed in OpenMetrics)".into()));
            }
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim_start();
            if format == Format::OpenMetrics && comment == "EOF" {
                saw_eof = true;
                continue;
            }
            let mut words = comment.splitn(3, ' ');
            let keyword = words.next().unwrap_or_default();
            if !matches!(keyword, "TYPE" | "HELP" | "UNIT") {
                continue; // a plain comment
            }
            let name = words
                .next()
                .filter(|n| valid_metric_name(n))
                .ok_or_else(|| fail(format!("# {keyword} needs a valid metric name")))?;
            let rest = words.next().unwrap_or_default();
            let family = *families.entry(name).or_insert_with(|| {
                out.families.push(Family {
                    name,
                    ..Default::default()
                });
                out.families.len() - 1
            });
            current = Some(family);
            let entry = &mut out.families[family];
            match keyword {
                "TYPE" => {
                    let metric_type = rest.trim();
                    if !matches!(
                        metric_type,
                        "counter"
                            | "gauge"
                            | "histogram"
                            | "gaugehistogram"
                            | "summary"
                            | "info"
                            | "stateset"
                            | "unknown"
                            | "untyped"
                    ) {
                        return Err(fail(format!("unknown metric type {metric_type:?}")));
                    }
                    entry.metric_type =
                        (!matches!(metric_type, "unknown" | "untyped")).then_some(metric_type);
                }
                "UNIT" => entry.unit = Some(rest.trim()).filter(|u| !u.is_empty()),
                _ => entry.help = Some(unescape(rest, Escapes::Help).map_err(fail)?),
            }
            continue;
        }
        let sample = parse_sample(line, format).map_err(fail)?;
        let family = match current.filter(|f| belongs(sample.name, out.families[*f].name)) {
            Some(family) => family,
            None => {
                let family = *families.entry(sample.name).or_insert_with(|| {
                    out.families.push(Family {
                        name: sample.name,
                        ..Default::default()
                    });
                    out.families.len() - 1
                });
                current = Some(family);
                family
            }
        };
        let f = &out.families[family];
        let is_created = format == Format::OpenMetrics
            && matches!(
                f.metric_type,
                Some("counter" | "histogram" | "gaugehistogram" | "summary")
            )
            && sample.name.strip_suffix("_created") == Some(f.name);
        if is_created {
            let Some(ns) = seconds_to_nanos(sample.value) else {
                return Err(fail(format!(
                    "_created value {} is not a time",
                    sample.value
                )));
            };
            created.push((family, sample.labels, ns));
            continue;
        }
        out.samples.push(Sample { family, ..sample });
    }
    if format == Format::OpenMetrics && !saw_eof {
        return Err(ParseError {
            line: text.lines().count(),
            message: "OpenMetrics exposition does not end with # EOF".into(),
        });
    }
    if !created.is_empty() {
        let families: std::collections::HashSet<usize> = created.iter().map(|c| c.0).collect();
        let starts: HashMap<(usize, Vec<(String, String)>), i64> = created
            .iter()
            .map(|(family, labels, ns)| ((*family, series_key(labels)), *ns))
            .collect();
        for sample in out.samples.iter_mut() {
            if families.contains(&sample.family)
                && let Some(ns) = starts.get(&(sample.family, series_key(&sample.labels)))
            {
                sample.created = Some(*ns);
            }
        }
    }
    Ok(out)
}

/// Whether `sample` is a sample of the family `family` (`family` or `family_<suffix>`).
fn belongs(sample: &str, family: &str) -> bool {
    sample == family
        || sample
            .strip_prefix(family)
            .is_some_and(|suffix| SUFFIXES.contains(&suffix))
}

/// A series' labels without `le` and `quantile`, sorted: a `_created` sample names the
/// series, not one bucket or quantile.
fn series_key(labels: &Labels<'_>) -> Vec<(String, String)> {
    let mut key: Vec<_> = labels
        .iter()
        .filter(|(n, _)| *n != "le" && *n != "quantile")
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    key.sort();
    key
}

fn parse_sample(line: &str, format: Format) -> Result<Sample<'_>, String> {
    let mut cursor = Cursor {
        text: line,
        pos: 0,
        format,
    };
    let name = cursor.name();
    if name.is_empty() || !valid_metric_name(name) {
        return Err(format!("expected a metric name at the start of {line:?}"));
    }
    let labels = if cursor.peek() == Some(b'{') {
        cursor.labels()?
    } else {
        Vec::new()
    };
    cursor.expect_space("after the metric name and labels")?;
    let value = parse_float(cursor.token())?;
    let mut timestamp = None;
    let mut exemplar = None;
    cursor.skip_spaces();
    if cursor.peek().is_some_and(|c| c != b'#') {
        timestamp = Some(parse_timestamp(cursor.token(), format)?);
        cursor.skip_spaces();
    }
    if cursor.peek() == Some(b'#') {
        if format == Format::Text {
            return Err("exemplars are only allowed in OpenMetrics".into());
        }
        cursor.pos += 1;
        cursor.expect_space("after # before an exemplar")?;
        if cursor.peek() != Some(b'{') {
            return Err("expected '{' to start the exemplar's labels".into());
        }
        let labels = cursor.labels()?;
        cursor.expect_space("after the exemplar's labels")?;
        let value = parse_float(cursor.token())?;
        cursor.skip_spaces();
        let timestamp = match cursor.peek() {
            Some(_) => Some(parse_timestamp(cursor.token(), Format::OpenMetrics)?),
            None => None,
        };
        exemplar = Some(Exemplar {
            labels,
            value,
            timestamp,
        });
    }
    cursor.skip_spaces();
    if cursor.pos < line.len() {
        return Err(format!(
            "unexpected text {:?} at column {}",
            &line[cursor.pos..],
            cursor.pos + 1
        ));
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp,
        created: None,
        exemplar,
        family: 0,
    })
}

fn parse_float(token: &str) -> Result<f64, String> {
    if token.is_empty() {
        return Err("expected a value".into());
    }
    token
        .parse::<f64>()
        .map_err(|_| format!("invalid value {token:?}"))
}

fn parse_timestamp(token: &str, format: Format) -> Result<i64, String> {
    match format {
        Format::Text => token
            .parse::<i64>()
            .ok()
            .and_then(|ms| ms.checked_mul(1_000_000))
            .ok_or_else(|| format!("invalid timestamp {token:?}: integer milliseconds expected")),
        Format::OpenMetrics => token
            .parse::<f64>()
            .ok()
            .and_then(seconds_to_nanos)
            .ok_or_else(|| format!("invalid timestamp {token:?}: seconds expected")),
    }
}

/// Rounded to the microsecond: an f64 holds today's epoch seconds to about 0.2 µs, so
/// finer digits would be noise (`1520430000.123` must not become `…122999808` ns).
fn seconds_to_nanos(seconds: f64) -> Option<i64> {
    (seconds.is_finite() && seconds.abs() < 9.2e9).then(|| (seconds * 1e6).round() as i64 * 1_000)
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    format: Format,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn expect_space(&mut self, what: &str) -> Result<(), String> {
        if !matches!(self.peek(), Some(b' ' | b'\t')) {
            return Err(format!("expected a space {what}"));
        }
        self.skip_spaces();
        Ok(())
    }

    fn name(&mut self) -> &'a str {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// Up to the next space or the end.
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c != b' ' && c != b'\t') {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// `{name="value",…}` with an optional trailing comma.
    fn labels(&mut self) -> Result<Labels<'a>, String> {
        self.pos += 1; // '{'
        let mut labels = Vec::new();
        loop {
            self.skip_spaces();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(labels);
            }
            let name = self.name();
            if name.is_empty()
                || name.contains(':')
                || name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(format!("expected a label name at column {}", self.pos + 1));
            }
            self.skip_spaces();
            if self.peek() != Some(b'=') {
                return Err(format!("expected '=' after label {name:?}"));
            }
            self.pos += 1;
            self.skip_spaces();
            if self.peek() != Some(b'"') {
                return Err(format!("expected '\"' to open the value of label {name:?}"));
            }
            self.pos += 1;
            let start = self.pos;
            let bytes = self.text.as_bytes();
            let mut escaped = false;
            loop {
                match bytes.get(self.pos) {
                    None => return Err(format!("unterminated value of label {name:?}")),
                    Some(b'\\') => {
                        escaped = true;
                        self.pos += 2;
                    }
                    Some(b'"') => break,
                    Some(_) => self.pos += 1,
                }
            }
            let raw = self
                .text
                .get(start..self.pos)
                .ok_or_else(|| format!("unterminated value of label {name:?}"))?;
            self.pos += 1; // closing quote
            let value = if escaped {
                unescape(raw, Escapes::LabelValue(self.format))?
            } else {
                Cow::Borrowed(raw)
            };
            if labels.iter().any(|(n, _)| *n == name) {
                return Err(format!("duplicate label {name:?}"));
            }
            labels.push((name, value));
            self.skip_spaces();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' after label {name:?}")),
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escapes {
    /// `\\`, `\"` and `\n`. OpenMetrics allows no others; the text format keeps any
    /// other escape as written, as Prometheus does.
    LabelValue(Format),
    /// `\\` and `\n`; other backslashes are literal.
    Help,
}

fn unescape(raw: &str, escapes: Escapes) -> Result<Cow<'_, str>, String> {
    if !raw.contains('\\') {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match (chars.next(), escapes) {
            (Some('\\'), _) => out.push('\\'),
            (Some('n'), _) => out.push('\n'),
            (Some('"'), Escapes::LabelValue(_)) => out.push('"'),
            (Some(other), Escapes::LabelValue(Format::OpenMetrics)) => {
                return Err(format!("invalid escape \\{other} in a label value"));
            }
            (Some(other), _) => {
                out.push('\\');
                out.push(other);
            }
            (None, Escapes::Help) => out.push('\\'),
            (None, Escapes::LabelValue(_)) => {
                return Err("a label value ends in a lone backslash".into());
            }
        }
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests;
