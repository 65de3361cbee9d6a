//! The template language of `line_format` and `label_format`: Go `text/template` as far
//! as log formatting needs it. A template is literal text and actions `{{ … }}`; an
//! action is a value (`.label`, `__line__`, `__timestamp__` or a quoted string) piped
//! through functions (`{{ .msg | ToUpper }}`, `{{ trunc 10 .msg }}`). A missing label
//! prints as the empty string, as in Loki. Control actions (`if`, `range`, …) and
//! other functions are refused when the template is parsed.

use std::fmt;

use super::Labels;

#[derive(Clone, PartialEq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.text)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action {
        value: Value,
        functions: Vec<Function>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Label(String),
    Line,
    Timestamp,
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Function {
    Upper,
    Lower,
    Title,
    TrimSpace,
    Trim(String),
    TrimPrefix(String),
    TrimSuffix(String),
    Replace(String, String),
    Default(String),
    Truncate(usize),
}

/// What a template reads besides labels.
pub struct Context<'a> {
    pub line: &'a str,
    pub timestamp_ns: i64,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find("{{") {
                None => {
                    parts.push(Part::Text(rest.to_owned()));
                    break;
                }
                Some(at) => {
                    if at > 0 {
                        parts.push(Part::Text(rest[..at].to_owned()));
                    }
                    let after = &rest[at + 2..];
                    let close = after
                        .find("}}")
                        .ok_or_else(|| format!("template {text:?}: '{{{{' without '}}}}'"))?;
                    parts.push(action(after[..close].trim_matches(['-', ' ']).trim())?);
                    rest = &after[close + 2..];
                }
            }
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Does the template read the line (so its result differs line by line)?
    pub fn reads_line(&self) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                p,
                Part::Action {
                    value: Value::Line | Value::Timestamp,
                    ..
                }
            )
        })
    }

    pub fn render(&self, labels: &Labels, context: &Context<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Action { value, functions } => {
                    let mut current = match value {
                        Value::Label(name) => labels.get(name).unwrap_or("").to_owned(),
                        Value::Line => context.line.to_owned(),
                        Value::Timestamp => crate::query::time::format_time(context.timestamp_ns),
                        Value::Text(text) => text.clone(),
                    };
                    for function in functions {
                        current = function.apply(current);
                    }
                    out.push_str(&current);
                }
            }
        }
        out
    }
}

fn action(body: &str) -> Result<Part, String> {
    let mut stages = split_pipes(body).into_iter();
    let first = stages.next().unwrap_or_default();
    let head = words(&first)?;
    let (value, mut functions) = match head.as_slice() {
        [] => return Err("empty template action {{ }}".into()),
        [single] => (value(single)?, Vec::new()),
        // `{{ ToUpper .msg }}`: a function applied to its last argument.
        [name, args @ ..] => {
            let (last, leading) = args.split_last().unwrap_or((name, &[]));
            (value(last)?, vec![function(name, leading)?])
        }
    };
    for stage in stages {
        let stage = words(&stage)?;
        let Some((name, args)) = stage.split_first() else {
            return Err("empty stage in a template pipeline".into());
        };
        functions.push(function(name, args)?);
    }
    Ok(Part::Action { value, functions })
}

/// Splits an action at `|` outside quotes.
fn split_pipes(body: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quote = None;
    for c in body.chars() {
        match (quote, c) {
            (None, '|') => {
                out.push(String::new());
                continue;
            }
            (None, '"' | '`') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        if let Some(current) = out.last_mut() {
            current.push(c);
        }
    }
    out
}

/// Space-separated words, keeping quoted strings (with their quotes) whole.
fn words(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '"' || c == '`' {
            word.push(c);
            chars.next();
            let mut closed = false;
            let mut escaped = false;
            for c in chars.by_ref() {
                word.push(c);
                if escaped {
                    escaped = false;
                } else if c == '\\' && word.starts_with('"') {
                    escaped = true;
                } else if c == word.chars().next().unwrap_or('"') {
                    closed = true;
                    break;
                }
            }
            if !closed {
                return Err(format!("unterminated string in template action: {text}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        out.push(word);
    }
    Ok(out)
}

fn value(word: &str) -> Result<Value, String> {
    if let Some(name) = word.strip_prefix('.') {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("template field {word:?} is not a label name"));
        }
        return Ok(Value::Label(name.to_owned()));
    }
    match word {
        "__line__" => Ok(Value::Line),
        "__timestamp__" => Ok(Value::Timestamp),
        w if w.starts_with('"') || w.starts_with('`') => Ok(Value::Text(unquote(w)?)),
        "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block" => Err(format!(
            "template action {word:?} is not supported; use fields and functions"
        )),
        other => Err(format!(
            "template value {other:?} is not supported: use .label, __line__, __timestamp__ or a quoted string"
        )),
    }
}

fn unquote(word: &str) -> Result<String, String> {
    if let Some(raw) = word.strip_prefix('`').and_then(|w| w.strip_suffix('`')) {
        return Ok(raw.to_owned());
    }
    serde_json::from_str::<String>(word).map_err(|_| format!("invalid string {word} in template"))
}

fn function(name: &str, args: &[String]) -> Result<Function, String> {
    let text = |i: usize| -> Result<String, String> {
        args.get(i)
            .ok_or_else(|| format!("template function {name} needs {} arguments", i + 1))
            .and_then(|w| unquote(w))
    };
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "template function {name} takes {n} arguments before its value, got {}",
                args.len()
            ))
        }
    };
    Ok(match name {
        "ToUpper" | "upper" => arity(0).map(|_| Function::Upper)?,
        "ToLower" | "lower" => arity(0).map(|_| Function::Lower)?,
        "Title" | "title" => arity(0).map(|_| Function::Title)?,
        "TrimSpace" | "trimSpace" => arity(0).map(|_| Function::TrimSpace)?,
        "Trim" | "trim" if args.is_empty() => Function::TrimSpace,
        "Trim" | "trim" => arity(1).and_then(|_| text(0)).map(Function::Trim)?,
        "TrimPrefix" | "trimPrefix" => arity(1).and_then(|_| text(0)).map(Function::TrimPrefix)?,
        "TrimSuffix" | "trimSuffix" => arity(1).and_then(|_| text(0)).map(Function::TrimSuffix)?,
        "Replace" | "replace" => {
            arity(2)?;
            Function::Replace(text(0)?, text(1)?)
        }
        "default" => arity(1).and_then(|_| text(0)).map(Function::Default)?,
        "trunc" => {
            arity(1)?;
            let n = args[0]
                .parse::<usize>()
                .map_err(|_| format!("trunc takes a count, not {}", args[0]))?;
            Function::Truncate(n)
        }
        other => {
            return Err(format!(
                "template function {other:?} is not supported; supported: ToUpper, ToLower, Title, TrimSpace, Trim, TrimPrefix, TrimSuffix, Replace, default, trunc"
            ));
        }
    })
}

impl Function {
    fn apply(&self, value: String) -> String {
        match self {
            Function::Upper => value.to_uppercase(),
            Function::Lower => value.to_lowercase(),
            Function::Title => {
                let mut out = String::with_capacity(value.len());
                let mut start = true;
                for c in value.chars() {
                    if start {
                        out.extend(c.to_uppercase());
                    } else {
                        out.push(c);
                    }
                    start = !c.is_alphanumeric();
                }
                out
            }
            Function::TrimSpace => value.trim().to_owned(),
            Function::Trim(set) => value.trim_matches(|c| set.contains(c)).to_owned(),
            Function::TrimPrefix(p) => value.strip_prefix(p.as_str()).unwrap_or(&value).to_owned(),
            Function::TrimSuffix(s) => value.strip_suffix(s.as_str()).unwrap_or(&value).to_owned(),
            Function::Replace(from, to) => value.replace(from.as_str(), to),
            Function::Default(d) => {
                if value.is_empty() {
                    d.clone()
                } else {
                    value
                }
            }
            Function::Truncate(n) => value.chars().take(*n).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, labels: &[(&str, &str)]) -> Result<String, String> {
        let mut set = Labels::default();
        for (k, v) in labels {
            set.insert(k, v, super::super::Origin::Stream);
        }
        let t = Template::parse(template)?;
        Ok(t.render(
            &set,
            &Context {
                line: "the line",
                timestamp_ns: 0,
            },
        ))
    }

    #[test]
    fn fields_functions_and_literals() {
        let labels = [("status", "500"), ("method", "get")];
        assert_eq!(
            render("{{.method}} {{ .status }}!", &labels).unwrap(),
            "get 500!"
        );
        assert_eq!(
            render("{{ .method | ToUpper }} {{ upper .method }}", &labels).unwrap(),
            "GET GET"
        );
        assert_eq!(render("{{ .missing }}|", &labels).unwrap(), "|");
        assert_eq!(
            render(r#"{{ .missing | default "none" }}"#, &labels).unwrap(),
            "none"
        );
        assert_eq!(render("{{__line__}}", &labels).unwrap(), "the line");
        assert_eq!(render("{{ trunc 3 __line__ }}", &labels).unwrap(), "the");
        assert_eq!(
            render(r#"{{ Replace "line" "row" __line__ }}"#, &labels).unwrap(),
            "the row"
        );
        assert_eq!(render("plain", &labels).unwrap(), "plain");
    }

    #[test]
    fn unsupported_actions_are_named() {
        let err = render("{{ if .a }}x{{ end }}", &[]).unwrap_err();
        assert!(err.contains("\"if\""), "{err}");
        let err = render("{{ .a | sha256 }}", &[]).unwrap_err();
        assert!(err.contains("sha256"), "{err}");
        assert!(render("{{ .a ", &[]).is_err());
    }
}
