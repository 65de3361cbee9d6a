//! PromQL, parsed by `promql-parser` within bounds on size and shape. `eval` runs the
//! part of the language Grafana's panels over exemplar-carrying metrics use;
//! `selectors` finds the series selectors inside an expression for the exemplar API:
//! Grafana sends a panel's whole query (`histogram_quantile(0.9, sum by (le)
//! (rate(http_request_duration_seconds_bucket{job="api"}[5m])))`) to
//! `/api/v1/query_exemplars`, and Prometheus answers with the exemplars of every
//! series any selector in it names, as Threadline does.

mod eval;

pub use eval::{LOOKBACK_NS, PromResult};

use promql_parser::label::{MatchOp as PromOp, Matcher as PromMatcher};
use promql_parser::parser::{self, Expr, VectorSelector};

use crate::model::schema::METRIC_NAME_LABEL;
use crate::model::{MatchOp, Matcher, Selector};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// The parser checks and frees its tree recursively, and its checks take time
/// quadratic in the depth, so a query's shape is bounded before it is parsed: its
/// nesting of parentheses, brackets and braces, its operators (`a + a + …` and
/// `- - - a` are as deep as they are long) and its regex matchers (each compiled).
pub const MAX_NESTING: usize = 64;
pub const MAX_OPERATORS: usize = 256;
pub const MAX_REGEX_MATCHERS: usize = 64;

/// Parses a query within the bounds on its size and shape.
pub fn parse(query: &str) -> Result<Expr, String> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "query is {} bytes; at most {MAX_QUERY_BYTES} are accepted",
            query.len()
        ));
    }
    check_shape(query)?;
    parser::parse(query).map_err(|e| format!("invalid PromQL: {e}"))
}

/// The selectors in `query`, in the order they appear; an expression without one
/// (`1 + 1`) gives none.
pub fn selectors(query: &str) -> Result<Vec<Selector>, String> {
    let expr = parse(query)?;
    let mut found = Vec::new();
    collect(&expr, &mut found)?;
    let mut distinct: Vec<Selector> = Vec::with_capacity(found.len());
    for selector in found {
        if !distinct.contains(&selector) {
            distinct.push(selector);
        }
    }
    Ok(distinct)
}

/// Walks the tree with a worklist, not recursion: a long operator chain is deep.
fn collect(root: &Expr, found: &mut Vec<Selector>) -> Result<(), String> {
    let mut pending = vec![root];
    while let Some(expr) = pending.pop() {
        match expr {
            Expr::VectorSelector(vs) => found.extend(convert(vs)?),
            Expr::MatrixSelector(ms) => found.extend(convert(&ms.vs)?),
            Expr::Aggregate(a) => {
                pending.push(&a.expr);
                pending.extend(a.param.as_deref());
            }
            Expr::Unary(u) => pending.push(&u.expr),
            Expr::Binary(b) => {
                pending.push(&b.rhs);
                pending.push(&b.lhs);
            }
            Expr::Paren(p) => pending.push(&p.expr),
            Expr::Subquery(s) => pending.push(&s.expr),
            Expr::Call(call) => pending.extend(call.args.args.iter().rev().map(|a| &**a)),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
        }
    }
    Ok(())
}

/// One selector per `or` alternative (`{a="1" or b="2"}`), each with the metric name.
pub(crate) fn convert(vs: &VectorSelector) -> Result<Vec<Selector>, String> {
    // With `or`, the parser moves every matcher into the alternatives.
    let matchers = &vs.matchers;
    let groups: Vec<&[PromMatcher]> = if matchers.or_matchers.is_empty() {
        vec![&matchers.matchers]
    } else {
        matchers.or_matchers.iter().map(Vec::as_slice).collect()
    };
    groups
        .into_iter()
        .map(|group| {
            let mut selector = Selector {
                matchers: Vec::with_capacity(group.len() + 1),
            };
            if let Some(name) = &vs.name {
                selector
                    .matchers
                    .push(Matcher::new(METRIC_NAME_LABEL, MatchOp::Equal, name)?);
            }
            for m in group {
                let op = match m.op {
                    PromOp::Equal => MatchOp::Equal,
                    PromOp::NotEqual => MatchOp::NotEqual,
                    PromOp::Re(_) => MatchOp::Regex,
                    PromOp::NotRe(_) => MatchOp::NotRegex,
                };
                selector.matchers.push(Matcher::new(&m.name, op, &m.value)?);
            }
            Ok(selector)
        })
        .collect()
}

/// Refuses queries past the shape bounds, looking only at text outside strings and
/// `#` comments.
fn check_shape(query: &str) -> Result<(), String> {
    let (mut depth, mut operators, mut regexes) = (0usize, 0usize, 0usize);
    let mut previous = ' ';
    let mut quote = None;
    let mut escaped = false;
    let mut comment = false;
    let mut word = String::new();
    for c in query.chars() {
        if comment {
            comment = c != '\n';
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if matches!(word.as_str(), "and" | "or" | "unless" | "atan2") {
                operators += 1;
            }
            word.clear();
        }
        match c {
            '#' => comment = true,
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '^' => operators += 1,
            '~' if matches!(previous, '=' | '!') => regexes += 1,
            _ => {}
        }
        previous = c;
        if depth > MAX_NESTING {
            return Err(format!(
                "query nests deeper than {MAX_NESTING} levels; simplify it"
            ));
        }
    }
    if operators > MAX_OPERATORS {
        return Err(format!(
            "query has {operators} operators; at most {MAX_OPERATORS} are accepted"
        ));
    }
    if regexes > MAX_REGEX_MATCHERS {
        return Err(format!(
            "query has {regexes} regex matchers; at most {MAX_REGEX_MATCHERS} are accepted"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(query: &str) -> Vec<String> {
        selectors(query)
            .unwrap()
            .iter()
            .map(|s| {
                s.matchers
                    .iter()
                    .map(|m| format!("{}{}{:?}", m.name, m.op.as_str(), m.value))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    #[test]
    fn selectors_are_found_wherever_they_are() {
        assert_eq!(
            texts(
                r#"histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{job="api", code=~"5.."}[5m])))"#
            ),
            [r#"__name__="http_request_duration_seconds_bucket",job="api",code=~"5..""#]
        );
        assert_eq!(
            texts(r#"sum(rate(a_total[1m])) / on() group_left count(b{x!="1"} offset 5m)"#),
            [r#"__name__="a_total""#, r#"__name__="b",x!="1""#]
        );
        assert_eq!(
            texts(r#"max_over_time(up{job!~"dev.*"}[1h:5m])"#),
            [r#"__name__="up",job!~"dev.*""#]
        );
        assert_eq!(texts(r#"{__name__="m"}"#), [r#"__name__="m""#]);
        assert!(texts("1 + 2").is_empty());
    }

    /// The longest operator chains the bounds let through are parsed, walked and
    /// freed on a stack half the size of a server thread's.
    #[test]
    fn the_deepest_accepted_chains_fit_on_a_small_stack() {
        let chains = [
            format!("m{}", " + m".repeat(MAX_OPERATORS)),
            format!("{}m", "-".repeat(MAX_OPERATORS)),
            format!("m{}", " or m".repeat(MAX_OPERATORS)),
            format!("{}m{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING)),
        ];
        let found = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || chains.map(|c| selectors(&c).map(|s| s.len())))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(found, [Ok(1), Ok(1), Ok(1), Ok(1)]);
    }

    #[test]
    fn shape_bounds_cannot_be_hidden() {
        let over = format!("m{}", " + m".repeat(MAX_OPERATORS + 1));
        assert!(selectors(&over).unwrap_err().contains("operators"));
        let over = format!("{}m", "-".repeat(MAX_OPERATORS + 1));
        assert!(selectors(&over).unwrap_err().contains("operators"));
        // A quote in a comment opens no string.
        let hidden = format!("# \"\n{}m{}", "(".repeat(100), ")".repeat(100));
        assert!(selectors(&hidden).unwrap_err().contains("nests deeper"));
        let regexes = format!(
            "m{{{}}}",
            vec!["a=~\"x\""; MAX_REGEX_MATCHERS + 1].join(",")
        );
        assert!(selectors(&regexes).unwrap_err().contains("regex matchers"));
        // Operators inside strings do not count.
        let quoted = format!("m{{a=\"{}\"}}", "+".repeat(MAX_OPERATORS + 1));
        assert_eq!(selectors(&quoted).unwrap().len(), 1);
    }

    #[test]
    fn or_alternatives_are_separate_selectors() {
        assert_eq!(
            texts(r#"m{a="1" or b="2"}"#),
            [r#"__name__="m",a="1""#, r#"__name__="m",b="2""#]
        );
        assert_eq!(
            texts(r#"{a="1",b="2" or c="3",d="4"}"#),
            [r#"a="1",b="2""#, r#"c="3",d="4""#]
        );
        // The same selector twice is read once.
        assert_eq!(texts("m / m").len(), 1);
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        assert!(selectors("sum(").unwrap_err().contains("invalid PromQL"));
        let deep = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(selectors(&deep).unwrap_err().contains("nests deeper"));
        // Brackets inside strings do not count.
        let quoted = format!("m{{a=\"{}\"}}", "(".repeat(100));
        assert_eq!(selectors(&quoted).unwrap().len(), 1);
        assert!(
            selectors(&"m+".repeat(10_000))
                .unwrap_err()
                .contains("bytes")
        );
        assert!(selectors(r#"m{a=~"("}"#).is_err());
    }
}
