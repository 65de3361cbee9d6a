//! TraceQL search. Each spanset filter becomes one scan of `spans` over the time
//! range, its span-level conditions compiled to a SQL predicate that runs in the
//! scan. The spansets are then combined per trace (`&&`, `||`, `>`), and the most
//! recent matching traces are summarised — root span, start, duration — through the
//! trace-ID index. Trace-level conditions (`rootName`, `rootServiceName`,
//! `traceDuration`) and duration bounds are checked on those summaries.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::datatypes::{Int64Type, TimestampNanosecondType};
use datafusion::logical_expr::col;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use regex::Regex;

use super::logql::ts_literal;
use super::table::ScanStats;
use super::{QueryEngine, QueryError, Result, columns};
use crate::ingest::label_name_for_attribute;
use crate::model::matcher::compile;
use crate::model::{Signal, Tenant, TraceId};
use crate::traceql::{Comparison, Condition, Field, Literal, Scope, Search, Spanset};

/// Most matching spans one spanset filter reads (the most recent ones).
pub const MAX_MATCHED_SPANS: usize = 100_000;
/// Traces summarised per trace a search returns, and at most in all.
const MAX_SUMMARIES_PER_RESULT: usize = 10;
const MAX_SUMMARIES: usize = 2_000;

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub search: Search,
    pub start: i64,
    pub end: i64,
    pub limit: usize,
    pub spans_per_set: usize,
    /// Bounds on the trace's duration, in nanoseconds.
    pub min_duration: Option<i64>,
    pub max_duration: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct MatchedSpan {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub service: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
}

#[derive(Debug)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
    /// The matched spans, most recent first, at most `spans_per_set`.
    pub spans: Vec<MatchedSpan>,
    pub matched: usize,
}

pub struct SearchResult {
    pub traces: Vec<TraceSummary>,
    pub stats: Arc<ScanStats>,
}

type Matches = HashMap<String, Vec<MatchedSpan>>;

impl QueryEngine {
    pub async fn search_traces(
        &self,
        tenant: &Tenant,
        request: &SearchRequest,
        label_attributes: &[String],
    ) -> Result<SearchResult> {
        self.counted(tenant, self.run_search(tenant, request, label_attributes))
            .await
    }

    async fn run_search(
        &self,
        tenant: &Tenant,
        request: &SearchRequest,
        label_attributes: &[String],
    ) -> Result<SearchResult> {
        let stats = Arc::new(ScanStats::default());
        self.check_range(tenant, (request.start, request.end))?;
        let ctx = self.session(tenant, Arc::clone(&stats))?;
        let single_filter = matches!(request.search.spansets, Spanset::Filter(_));
        let trace_level = request
            .search
            .spansets
            .filters()
            .into_iter()
            .flatten()
            .any(Condition::is_trace_level);
        if trace_level && !single_filter {
            return Err(QueryError::Invalid(
                "rootName, rootServiceName and traceDuration are supported in a query of one spanset filter".into(),
            ));
        }
        let mut trace_conditions = Vec::new();
        let matches = self
            .spanset(
                &ctx,
                &request.search.spansets,
                request,
                label_attributes,
                &mut trace_conditions,
            )
            .await?;
        let mut candidates: Vec<(String, Vec<MatchedSpan>)> = matches
            .into_iter()
            .filter(|(_, spans)| {
                request
                    .search
                    .count
                    .is_none_or(|(op, n)| op.holds((spans.len() as f64).total_cmp(&n)))
            })
            .collect();
        // Newest traces first, by their earliest matched span until the summaries
        // give their starts.
        for (_, spans) in &mut candidates {
            spans.sort_by_key(|s| std::cmp::Reverse(s.start_ns));
        }
        let earliest = |spans: &[MatchedSpan]| spans.last().map_or(i64::MIN, |s| s.start_ns);
        candidates.sort_by(|a, b| earliest(&b.1).cmp(&earliest(&a.1)).then(a.0.cmp(&b.0)));
        let budget = request
            .limit
            .saturating_mul(MAX_SUMMARIES_PER_RESULT)
            .min(MAX_SUMMARIES);
        let mut summaries = futures::stream::iter(candidates.into_iter().take(budget))
            .map(|(trace_id, spans)| {
                let ctx = &ctx;
                async move { self.summary(ctx, trace_id, spans).await }
            })
            .buffered(8);
        let mut traces = Vec::new();
        while let Some(summary) = summaries.next().await {
            let mut summary = summary?;
            let in_bounds = request
                .min_duration
                .is_none_or(|d| summary.duration_ns >= d)
                && request
                    .max_duration
                    .is_none_or(|d| summary.duration_ns <= d);
            if !in_bounds || !trace_conditions.iter().all(|c| trace_holds(c, &summary)) {
                continue;
            }
            summary.spans.truncate(request.spans_per_set);
            traces.push(summary);
            if traces.len() == request.limit {
                break;
            }
        }
        traces.sort_by(|a, b| {
            b.start_ns
                .cmp(&a.start_ns)
                .then(a.trace_id.cmp(&b.trace_id))
        });
        Ok(SearchResult { traces, stats })
    }

    fn spanset<'a>(
        &'a self,
        ctx: &'a SessionContext,
        spanset: &'a Spanset,
        request: &'a SearchRequest,
        label_attributes: &'a [String],
        trace_conditions: &'a mut Vec<Condition>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Matches>> + Send + 'a>> {
        Box::pin(async move {
            Ok(match spanset {
                Spanset::Filter(condition) => {
                    let (predicates, trace_level) = match condition {
                        Some(condition) => compile_filter(condition, label_attributes)?,
                        None => Default::default(),
                    };
                    trace_conditions.extend(trace_level);
                    self.matching_spans(ctx, &predicates, request).await?
                }
                Spanset::And(a, b) | Spanset::Or(a, b) => {
                    let both = matches!(spanset, Spanset::And(..));
                    let mut left = self
                        .spanset(ctx, a, request, label_attributes, trace_conditions)
                        .await?;
                    let right = self
                        .spanset(ctx, b, request, label_attributes, trace_conditions)
                        .await?;
                    if both {
                        left.retain(|trace, _| right.contains_key(trace));
                    }
                    for (trace, spans) in right {
                        if both && !left.contains_key(&trace) {
                            continue;
                        }
                        let have = left.entry(trace).or_default();
                        let known: HashSet<String> =
                            have.iter().map(|s| s.span_id.clone()).collect();
                        have.extend(spans.into_iter().filter(|s| !known.contains(&s.span_id)));
                    }
                    left
                }
                Spanset::Child(a, b) => {
                    let parents = self
                        .spanset(ctx, a, request, label_attributes, trace_conditions)
                        .await?;
                    let children = self
                        .spanset(ctx, b, request, label_attributes, trace_conditions)
                        .await?;
                    children
                        .into_iter()
                        .filter_map(|(trace, spans)| {
                            let ids: HashSet<&str> = parents
                                .get(&trace)?
                                .iter()
                                .map(|s| s.span_id.as_str())
                                .collect();
                            let kept: Vec<MatchedSpan> = spans
                                .into_iter()
                                .filter(|s| {
                                    s.parent_span_id.as_deref().is_some_and(|p| ids.contains(p))
                                })
                                .collect();
                            (!kept.is_empty()).then_some((trace, kept))
                        })
                        .collect()
                }
            })
        })
    }

    /// The most recent spans in the range matching every predicate, by trace.
    async fn matching_spans(
        &self,
        ctx: &SessionContext,
        predicates: &[String],
        request: &SearchRequest,
    ) -> Result<Matches> {
        let mut df = ctx.table(Signal::Spans.as_str()).await?.filter(
            col("start_time").between(ts_literal(request.start), ts_literal(request.end)),
        )?;
        for predicate in predicates {
            let expr = df.parse_sql_expr(predicate)?;
            df = df.filter(expr)?;
        }
        let df = df
            .select_columns(&[
                "trace_id",
                "span_id",
                "parent_span_id",
                "name",
                "service_name",
                "start_time",
                "duration_ns",
            ])?
            .sort(vec![col("start_time").sort(false, false)])?
            .limit(0, Some(MAX_MATCHED_SPANS))?;
        let (_, batches) = self.collect(df).await?;
        let mut out: Matches = HashMap::new();
        for batch in &batches {
            let traces = columns::string(batch, "trace_id")?;
            let spans = columns::string(batch, "span_id")?;
            let parents = columns::string(batch, "parent_span_id")?;
            let names = columns::string(batch, "name")?;
            let services = columns::string(batch, "service_name")?;
            let starts = columns::primitive::<TimestampNanosecondType>(batch, "start_time")?;
            let durations = columns::primitive::<Int64Type>(batch, "duration_ns")?;
            for row in 0..batch.num_rows() {
                out.entry(traces.value(row).to_owned())
                    .or_default()
                    .push(MatchedSpan {
                        span_id: spans.value(row).to_owned(),
                        parent_span_id: columns::optional(parents, row).filter(|p| !p.is_empty()),
                        name: names.value(row).to_owned(),
                        service: columns::optional(services, row),
                        start_ns: starts.value(row),
                        duration_ns: durations.value(row),
                    });
            }
        }
        Ok(out)
    }

    /// A trace's root, start and duration, read through the trace-ID index.
    async fn summary(
        &self,
        ctx: &SessionContext,
        trace_id: String,
        spans: Vec<MatchedSpan>,
    ) -> Result<TraceSummary> {
        let id = TraceId::from_hex(&trace_id)
            .map_err(|e| QueryError::Execution(format!("stored trace ID: {e}")))?;
        let batches = self.trace_rows(ctx, Signal::Spans, &id.to_hex()).await?;
        let (mut start, mut end) = (i64::MAX, i64::MIN);
        let (mut root_service, mut root_name) = (None, None);
        for batch in &batches {
            let starts = columns::primitive::<TimestampNanosecondType>(batch, "start_time")?;
            let ends = columns::primitive::<TimestampNanosecondType>(batch, "end_time")?;
            let parents = columns::string(batch, "parent_span_id")?;
            let names = columns::string(batch, "name")?;
            let services = columns::string(batch, "service_name")?;
            for row in 0..batch.num_rows() {
                start = start.min(starts.value(row));
                end = end.max(ends.value(row));
                let is_root = columns::optional(parents, row).is_none_or(|p| p.is_empty());
                if is_root && root_name.is_none() {
                    root_name = Some(names.value(row).to_owned());
                    root_service = columns::optional(services, row);
                }
            }
        }
        if start > end {
            start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
            end = spans
                .iter()
                .map(|s| s.start_ns + s.duration_ns)
                .max()
                .unwrap_or(start);
        }
        Ok(TraceSummary {
            trace_id,
            root_service,
            root_name,
            start_ns: start,
            duration_ns: end - start,
            matched: spans.len(),
            spans,
        })
    }
}

/// Compiles a spanset filter's condition: a SQL predicate over `spans` for each of
/// its span-level conjuncts, and the trace-level conjuncts, which are checked on
/// trace summaries. `label_attributes` are the resource attributes stored as labels.
pub fn compile_filter(
    condition: &Condition,
    label_attributes: &[String],
) -> Result<(Vec<String>, Vec<Condition>)> {
    let (mut span_level, mut trace_level) = (Vec::new(), Vec::new());
    split(condition, &mut span_level, &mut trace_level)?;
    let predicates = span_level
        .iter()
        .map(|c| sql(c, label_attributes))
        .collect::<Result<_>>()?;
    Ok((predicates, trace_level))
}

/// Splits a filter's condition into its span-level and trace-level conjuncts.
fn split(
    condition: &Condition,
    span_level: &mut Vec<Condition>,
    trace_level: &mut Vec<Condition>,
) -> Result<()> {
    match condition {
        Condition::And(a, b) => {
            split(a, span_level, trace_level)?;
            split(b, span_level, trace_level)
        }
        Condition::Compare { field, .. } if field.is_trace_level() => {
            trace_level.push(condition.clone());
            Ok(())
        }
        Condition::Or(..) if condition.is_all_trace_level() => {
            trace_level.push(condition.clone());
            Ok(())
        }
        Condition::Or(..) if condition.is_trace_level() => Err(QueryError::Invalid(
            "rootName, rootServiceName and traceDuration can be joined with span conditions by && only".into(),
        )),
        _ => {
            span_level.push(condition.clone());
            Ok(())
        }
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A span-level condition as a SQL predicate over `spans`.
fn sql(condition: &Condition, label_attributes: &[String]) -> Result<String> {
    Ok(match condition {
        Condition::And(a, b) => format!(
            "({} AND {})",
            sql(a, label_attributes)?,
            sql(b, label_attributes)?
        ),
        Condition::Or(a, b) => format!(
            "({} OR {})",
            sql(a, label_attributes)?,
            sql(b, label_attributes)?
        ),
        Condition::Compare { field, op, value } => {
            let operand = match field {
                Field::Name => "name".to_owned(),
                Field::Status => "status_code".to_owned(),
                Field::Kind => "kind".to_owned(),
                Field::Duration => "duration_ns".to_owned(),
                Field::StatusMessage => "status_message".to_owned(),
                Field::Attribute { scope, name } => attribute(*scope, name, label_attributes),
                Field::RootName | Field::RootServiceName | Field::TraceDuration => {
                    return Err(QueryError::Invalid(
                        "trace-level intrinsics cannot be compared per span".into(),
                    ));
                }
            };
            let numeric = matches!(field, Field::Duration);
            match (op, value) {
                (Comparison::Eq, Literal::Nil) => format!("({operand} IS NULL)"),
                (Comparison::Ne, Literal::Nil) => format!("({operand} IS NOT NULL)"),
                (Comparison::Regex | Comparison::NotRegex, Literal::String(pattern)) => {
                    format!(
                        "({operand} {} {})",
                        op.sql(),
                        quote(&format!("^(?:{pattern})$"))
                    )
                }
                (_, Literal::String(text) | Literal::Enum(text)) => {
                    format!("({operand} {} {})", op.sql(), quote(text))
                }
                (_, Literal::Bool(b)) => format!("({operand} {} '{b}')", op.sql()),
                (_, Literal::Number(n)) if numeric => format!("({operand} {} {n})", op.sql()),
                (_, Literal::Duration(ns)) if numeric => format!("({operand} {} {ns})", op.sql()),
                (_, Literal::Number(n)) => {
                    format!("(TRY_CAST({operand} AS DOUBLE) {} {n})", op.sql())
                }
                (_, Literal::Duration(ns)) => {
                    format!("(TRY_CAST({operand} AS DOUBLE) {} {ns})", op.sql())
                }
                (_, Literal::Nil) => {
                    return Err(QueryError::Invalid("nil compares with = or != only".into()));
                }
            }
        }
    })
}

/// Where an attribute is stored: resource attributes that became labels are in
/// `labels` (`service.name` in its own column); everything else in `attributes`.
fn attribute(scope: Scope, name: &str, label_attributes: &[String]) -> String {
    let span = format!("attributes[{}]", quote(name));
    let label = (name == "service.name")
        .then(|| "service_name".to_owned())
        .or_else(|| {
            label_attributes
                .iter()
                .any(|a| a == name)
                .then(|| format!("labels[{}]", quote(&label_name_for_attribute(name))))
        });
    match (scope, label) {
        (Scope::Span, _) => span,
        (Scope::Resource | Scope::Any, Some(label)) => format!("coalesce({label}, {span})"),
        (Scope::Resource | Scope::Any, None) => span,
    }
}

/// Checks a trace-level condition against a summary.
fn trace_holds(condition: &Condition, summary: &TraceSummary) -> bool {
    match condition {
        Condition::And(a, b) => trace_holds(a, summary) && trace_holds(b, summary),
        Condition::Or(a, b) => trace_holds(a, summary) || trace_holds(b, summary),
        Condition::Compare { field, op, value } => {
            let text = match field {
                Field::RootName => summary.root_name.as_deref(),
                Field::RootServiceName => summary.root_service.as_deref(),
                Field::TraceDuration => {
                    let bound = match value {
                        Literal::Duration(ns) => *ns as f64,
                        Literal::Number(n) => *n,
                        _ => return false,
                    };
                    return op.holds((summary.duration_ns as f64).total_cmp(&bound));
                }
                _ => return true,
            };
            match (value, text) {
                (Literal::Nil, t) => (t.is_none()) == (*op == Comparison::Eq),
                (_, None) => false,
                (Literal::String(pattern), Some(t))
                    if matches!(op, Comparison::Regex | Comparison::NotRegex) =>
                {
                    let matched = anchored(pattern).is_some_and(|re| re.is_match(t));
                    matched == (*op == Comparison::Regex)
                }
                (Literal::String(s), Some(t)) => op.holds(t.cmp(s.as_str())),
                _ => false,
            }
        }
    }
}

fn anchored(pattern: &str) -> Option<Regex> {
    compile(&format!("^(?:{pattern})$"), pattern).ok()
}

#[cfg(test)]
mod tests {
    use datafusion::common::DFSchema;
    use proptest::prelude::*;

    use super::*;
    use crate::model::schema::schema;
    use crate::traceql::parse;

    fn predicate(query: &str) -> String {
        let Spanset::Filter(Some(c)) = parse(query).unwrap().spansets else {
            panic!()
        };
        sql(&c, &["service.name".into(), "k8s.namespace.name".into()]).unwrap()
    }

    #[test]
    fn conditions_compile_to_sql() {
        assert_eq!(
            predicate(r#"{ resource.service.name = "api" && span.http.status_code >= 500 }"#),
            "((coalesce(service_name, attributes['service.name']) = 'api') AND (TRY_CAST(attributes['http.status_code'] AS DOUBLE) >= 500))"
        );
        assert_eq!(
            predicate(r#"{ duration > 1.5s || status = error }"#),
            "((duration_ns > 1500000000) OR (status_code = 'error'))"
        );
        assert_eq!(
            predicate(r#"{ .k8s.namespace.name =~ "prod-.*" && name != "it's" }"#),
            "((coalesce(labels['k8s_namespace_name'], attributes['k8s.namespace.name']) ~ '^(?:prod-.*)$') AND (name <> 'it''s'))"
        );
        assert_eq!(
            predicate("{ span.x != nil }"),
            "(attributes['x'] IS NOT NULL)"
        );
    }

    #[test]
    fn trace_level_conditions_split_off() {
        let Spanset::Filter(Some(c)) =
            parse(r#"{ rootServiceName = "api" && name = "x" && traceDuration > 1s }"#)
                .unwrap()
                .spansets
        else {
            panic!()
        };
        let (mut span, mut trace) = (Vec::new(), Vec::new());
        split(&c, &mut span, &mut trace).unwrap();
        assert_eq!((span.len(), trace.len()), (1, 2));
        let summary = TraceSummary {
            trace_id: String::new(),
            root_service: Some("api".into()),
            root_name: Some("GET /".into()),
            start_ns: 0,
            duration_ns: 2_000_000_000,
            spans: Vec::new(),
            matched: 0,
        };
        assert!(trace.iter().all(|c| trace_holds(c, &summary)));
        let Spanset::Filter(Some(c)) = parse(r#"{ rootName =~ "POST.*" }"#).unwrap().spansets
        else {
            panic!()
        };
        assert!(!trace_holds(&c, &summary));
        let Spanset::Filter(Some(c)) = parse(r#"{ rootName = "a" || name = "b" }"#)
            .unwrap()
            .spansets
        else {
            panic!()
        };
        assert!(split(&c, &mut span, &mut trace).is_err());
        let Spanset::Filter(Some(c)) = parse(r#"{ rootName = "x" || rootServiceName = "api" }"#)
            .unwrap()
            .spansets
        else {
            panic!()
        };
        let (mut span, mut trace) = (Vec::new(), Vec::new());
        split(&c, &mut span, &mut trace).unwrap();
        assert_eq!((span.len(), trace.len()), (0, 1));
        assert!(trace_holds(&trace[0], &summary));
    }

    proptest! {
        /// Every condition the parser accepts compiles to predicates DataFusion plans
        /// over `spans`: quoting holds and every literal has a type the column takes.
        #[test]
        fn accepted_conditions_plan_over_spans(
            terms in prop::collection::vec((
                prop_oneof![
                    Just("name"), Just("status"), Just("kind"), Just("duration"),
                    Just("statusMessage"), Just("span.http.status_code"),
                    Just("resource.service.name"), Just(".k8s.namespace.name"),
                    Just("span.\"a b\""), Just("rootName"), Just("traceDuration"),
                ],
                prop_oneof![
                    Just("="), Just("!="), Just(">"), Just(">="), Just("<"), Just("<="),
                    Just("=~"), Just("!~"),
                ],
                prop_oneof![
                    Just("\"x\""), Just("\"it's\""), Just("'q'"), Just("`a\\b`"), Just("error"),
                    Just("server"), Just("3"), Just("-2.5"), Just("1e300"), Just("1.5s"),
                    Just("100ms"), Just("true"), Just("nil"), Just("\"[a-z]+\\\\d\""),
                ],
            ), 1..5),
            joins in prop::collection::vec(prop_oneof![Just("&&"), Just("||")], 4),
        ) {
            let mut text = String::from("{ ");
            for (i, (field, op, value)) in terms.iter().enumerate() {
                if i > 0 {
                    text.push_str(&format!(" {} ", joins[i - 1]));
                }
                text.push_str(&format!("{field} {op} {value}"));
            }
            text.push_str(" }");
            let Ok(search) = parse(&text) else { return Ok(()) };
            let spans = DFSchema::try_from(schema(Signal::Spans).as_ref().clone()).unwrap();
            let ctx = SessionContext::new();
            for condition in search.spansets.filters().into_iter().flatten() {
                let Ok((predicates, _)) = compile_filter(condition, &["k8s.namespace.name".into()])
                else {
                    continue;
                };
                for predicate in predicates {
                    let expr = ctx.parse_sql_expr(&predicate, &spans);
                    prop_assert!(expr.is_ok(), "{text} → {predicate}: {expr:?}");
                    let planned = ctx.create_physical_expr(expr.unwrap(), &spans);
                    prop_assert!(planned.is_ok(), "{text} → {predicate}: {:?}", planned.err());
                }
            }
        }
    }
}
