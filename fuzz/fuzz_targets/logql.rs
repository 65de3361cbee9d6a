//! LogQL: the query on the first line of the input is parsed; when it parses, every
//! line after it runs through each of its pipelines, unwraps included.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use threadline::logql::{
    self, LogExpr, Origin, Pipeline, Query, Unwrap, post_filter, unwrap_value,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (query, lines) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(query) = logql::parse(query) else {
        return;
    };
    match &query {
        Query::Log(log) => run(log, None, lines),
        Query::Metric(metric) => {
            for range in metric.ranges() {
                run(&range.log, range.unwrap.as_ref(), lines);
            }
        }
    }
});

fn run(log: &LogExpr, unwrap: Option<&Unwrap>, lines: &str) {
    let pipeline = Pipeline::new(&log.stages);
    for (i, body) in lines.split('\n').enumerate() {
        let mut labels = logql::Labels::default();
        for matcher in &log.selector.matchers {
            labels.insert(&matcher.name, &matcher.value, Origin::Stream);
        }
        labels.insert(
            "trace_id",
            "5b8efff798038103d269b633813fc60c",
            Origin::Metadata,
        );
        let mut line = Cow::Borrowed(body);
        if !pipeline.run(&mut line, i as i64 * 1_000_000_000, &mut labels) {
            continue;
        }
        if let Some(unwrap) = unwrap {
            let _ = unwrap_value(&mut labels, &unwrap.label, unwrap.unit);
            let _ = post_filter(&unwrap.filters, &mut labels);
        }
    }
}
