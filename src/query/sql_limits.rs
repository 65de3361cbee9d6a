//! Bounds on the shape of a SQL text, checked on its tokens before DataFusion parses
//! and plans it. Pure: no I/O.
//!
//! DataFusion clones, drops and evaluates expressions and plans recursively, so a long
//! chain of operators (`a OR b OR …`, `1 + 1 + …`, `x::t::t…`, `… UNION ALL …`), which
//! the parser turns into a tree as deep as the chain is long, overflows a worker's
//! stack at a few thousand links and takes the whole process down; and planning time
//! grows much faster than the number of tables joined (128 take seconds, 256 more
//! than the query timeout). Nesting by parentheses, function calls and subqueries is
//! already bounded by the parser's recursion limit. Counting tokens needs no
//! recursion and builds no tree, whatever the text.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::model::Signal;

/// Operators one statement may hold: binary and postfix operators, casts, subscripts,
/// and set operations. A chain this long plans in milliseconds, far from any stack
/// limit.
pub const MAX_OPERATORS: usize = 512;
/// Tables and views one statement may read (each `FROM`, `JOIN` or comma-joined name).
pub const MAX_TABLE_REFERENCES: usize = 32;

/// Keywords that join two operands (or follow one) and so lengthen a chain.
const OPERATOR_KEYWORDS: &[Keyword] = &[
    Keyword::AND,
    Keyword::OR,
    Keyword::XOR,
    Keyword::IS,
    Keyword::LIKE,
    Keyword::ILIKE,
    Keyword::SIMILAR,
    Keyword::REGEXP,
    Keyword::RLIKE,
    Keyword::BETWEEN,
    Keyword::IN,
    Keyword::OVERLAPS,
    Keyword::COLLATE,
    Keyword::AT,
    Keyword::DIV,
    Keyword::UNION,
    Keyword::INTERSECT,
    Keyword::EXCEPT,
    Keyword::MINUS,
    Keyword::JOIN,
];

/// Refuses a text with more operators or table references than the limits allow. A
/// text that does not tokenize passes: the parser reports its error.
pub fn check(text: &str, views: &[&str]) -> Result<(), String> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize() else {
        return Ok(());
    };
    let tokens: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect();
    let mut operators = 0usize;
    let mut tables = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| tokens[p]);
        let qualifies = matches!(tokens.get(i + 1), Some(Token::Period));
        match token {
            Token::Word(word) if OPERATOR_KEYWORDS.contains(&word.keyword) => operators += 1,
            Token::Word(word)
                if is_table(&word.value, views) && follows_from(previous) && !qualifies =>
            {
                tables += 1
            }
            Token::Word(_) | Token::LParen | Token::RParen | Token::Comma | Token::Period => {}
            other if is_operator_symbol(other) => operators += 1,
            _ => {}
        }
    }
    if operators > MAX_OPERATORS {
        return Err(format!(
            "the statement has {operators} operators; at most {MAX_OPERATORS} are accepted: write long lists of alternatives as IN (…)"
        ));
    }
    if tables > MAX_TABLE_REFERENCES {
        return Err(format!(
            "the statement reads tables {tables} times; at most {MAX_TABLE_REFERENCES} joins, unions and subqueries over tables are accepted"
        ));
    }
    Ok(())
}

fn is_table(name: &str, views: &[&str]) -> bool {
    Signal::ALL
        .iter()
        .map(|s| s.as_str())
        .chain(views.iter().copied())
        .any(|table| table.eq_ignore_ascii_case(name))
}

/// True after `FROM`, `JOIN` or a comma: where a table name stands in a `FROM` list.
fn follows_from(previous: Option<&Token>) -> bool {
    match previous {
        Some(Token::Word(word)) => matches!(word.keyword, Keyword::FROM | Keyword::JOIN),
        Some(Token::Comma) => true,
        _ => false,
    }
}

/// Operator tokens are made of punctuation only; literals, names and placeholders are
/// not, and parentheses, commas and periods build lists, not chains.
fn is_operator_symbol(token: &Token) -> bool {
    let text = token.to_string();
    !text.is_empty() && text.chars().all(|c| "+-*/%|&^<>=!~#@:?[".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `operators + 1` ones joined by `sep`.
    fn chain(operators: usize, sep: &str) -> String {
        vec!["1"; operators + 1].join(sep)
    }

    #[test]
    fn long_chains_are_refused() {
        for sep in [" + ", " OR ", " AND ", " || ", " = "] {
            let text = format!("SELECT {}", chain(MAX_OPERATORS + 1, sep));
            let error = check(&text, &[]).unwrap_err();
            assert!(error.contains("513 operators"), "{sep}: {error}");
            assert!(check(&format!("SELECT {}", chain(MAX_OPERATORS, sep)), &[]).is_ok());
        }
        let casts = format!("SELECT 1{}", "::bigint".repeat(MAX_OPERATORS + 1));
        assert!(check(&casts, &[]).is_err());
        let unions = vec!["SELECT 1"; MAX_OPERATORS + 2].join(" UNION ALL ");
        assert!(check(&unions, &[]).is_err());
    }

    #[test]
    fn lists_literals_and_names_are_not_operators() {
        let list = format!("SELECT * FROM logs WHERE body IN ({})", chain(9_999, ", "));
        assert!(check(&list, &[]).is_ok());
        let literal = format!("SELECT '{}' AS a, \"or\" FROM logs", "+ OR ".repeat(1_000));
        assert!(check(&literal, &[]).is_ok());
    }

    #[test]
    fn table_references_are_counted_where_tables_stand() {
        let joins = (1..=MAX_TABLE_REFERENCES)
            .map(|i| format!("JOIN spans s{i} ON s{i}.trace_id = l.trace_id"))
            .collect::<Vec<_>>()
            .join(" ");
        let text = format!("SELECT count(*) FROM logs l {joins}");
        let error = check(&text, &[]).unwrap_err();
        assert!(error.contains("33 times"), "{error}");
        let commas = vec!["traces"; MAX_TABLE_REFERENCES + 1].join(", ");
        assert!(check(&format!("SELECT 1 FROM {commas}"), &["traces"]).is_err());
        // Column names qualified by their table are not reads.
        let columns = vec!["logs.body"; 100].join(", ");
        assert!(check(&format!("SELECT {columns} FROM logs"), &[]).is_ok());
    }

    #[test]
    fn text_that_does_not_tokenize_is_left_to_the_parser() {
        assert!(check("SELECT 'unterminated", &[]).is_ok());
    }
}
