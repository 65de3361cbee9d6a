//! TraceQL: whatever the parser accepts compiles to span predicates that DataFusion
//! plans over the `spans` schema, so no input breaks out of its quoting or reaches
//! the scan with a literal its column cannot take.

#![no_main]

use std::sync::LazyLock;

use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;
use libfuzzer_sys::fuzz_target;
use threadline::model::Signal;
use threadline::model::schema::schema;
use threadline::query::traceql::compile_filter;

static SPANS: LazyLock<DFSchema> = LazyLock::new(|| {
    DFSchema::try_from(schema(Signal::Spans).as_ref().clone()).expect("spans schema")
});
static CONTEXT: LazyLock<SessionContext> = LazyLock::new(SessionContext::new);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(search) = threadline::traceql::parse(text) else {
        return;
    };
    let label_attributes = ["k8s.namespace.name".to_owned()];
    for condition in search.spansets.filters().into_iter().flatten() {
        let Ok((predicates, _)) = compile_filter(condition, &label_attributes) else {
            continue;
        };
        for predicate in predicates {
            let expr = CONTEXT
                .parse_sql_expr(&predicate, &SPANS)
                .unwrap_or_else(|e| panic!("{text:?} gave {predicate:?}: {e}"));
            if let Err(e) = CONTEXT.create_physical_expr(expr, &SPANS) {
                panic!("{text:?} gave {predicate:?}, which does not plan: {e}");
            }
        }
    }
});
