//! Parser tests: every stage and metric form, the refused constructs, the bounds,
//! and property tests that no text makes the parser panic.

use super::*;
use crate::logql::LabelPredicate;
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

/// `or` in a label filter once went uncounted: a 1,000-term chain parsed into a tree
/// 1,000 levels deep.
#[test]
fn label_filter_or_chains_are_bounded() {
    for joiner in [" or ", " and "] {
        let chain = format!(
            "{{a=\"b\"}} | {}",
            vec!["x=\"1\""; MAX_STAGES + 2].join(joiner)
        );
        assert!(error(&chain).contains("more than 256 terms"), "{joiner}");
    }
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
