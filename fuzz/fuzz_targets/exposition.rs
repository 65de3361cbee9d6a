//! A scrape's exposition, as the scraper reads it: the first byte says what the
//! target's `Content-Type` would (odd: OpenMetrics, even: the 0.0.4 text format), the
//! rest is the body, which must be UTF-8.
//!
//! The text parses or fails with its line number. What parses names a family for
//! every sample that the sample belongs to, and prints back (each sample on its line,
//! labels escaped) as text that parses to the same samples — timestamps within the
//! microsecond OpenMetrics rounds to. The samples become rows with the target's labels,
//! one row per sample and per exemplar, or the scrape fails as a whole; the rows keep
//! the store's invariants.

#![no_main]

use std::fmt::Write;

use libfuzzer_sys::fuzz_target;
use threadline::ingest::exposition::{Exemplar, Format, Labels, ParseError, Sample, parse};
use threadline::scrape::rows::exposition_rows;
use threadline_fuzz::NOW_NS;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let format = if mode & 1 == 1 {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let exposition = match parse(text, format) {
        Ok(exposition) => exposition,
        Err(ParseError { line, .. }) => {
            assert!(line <= text.lines().count().max(1), "error on line {line}");
            return;
        }
    };
    for sample in &exposition.samples {
        let family = exposition
            .families
            .get(sample.family)
            .unwrap_or_else(|| panic!("sample {} has no family", sample.name));
        assert!(
            sample.name.starts_with(family.name),
            "sample {} in family {}",
            sample.name,
            family.name
        );
    }

    let printed = print(&exposition.samples, format);
    let again = parse(&printed, format)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e}"));
    assert_eq!(again.samples.len(), exposition.samples.len(), "{printed:?}");
    for (a, b) in exposition.samples.iter().zip(&again.samples) {
        assert_eq!((a.name, &a.labels), (b.name, &b.labels), "{printed:?}");
        assert!(same_value(a.value, b.value), "{printed:?}");
        assert!(same_time(a.timestamp, b.timestamp), "{printed:?}");
        match (&a.exemplar, &b.exemplar) {
            (None, None) => {}
            (Some(x), Some(y)) => {
                assert_eq!(x.labels, y.labels, "{printed:?}");
                assert!(same_value(x.value, y.value), "{printed:?}");
                assert!(same_time(x.timestamp, y.timestamp), "{printed:?}");
            }
            _ => panic!("exemplar lost or gained in {printed:?}"),
        }
    }

    let target = [
        ("job".to_owned(), "node".to_owned()),
        ("instance".to_owned(), "localhost:9100".to_owned()),
    ];
    let Ok(rows) = exposition_rows(&exposition, &target, NOW_NS) else {
        return;
    };
    let exemplars = exposition
        .samples
        .iter()
        .filter(|s| s.exemplar.is_some())
        .count();
    assert_eq!(rows.sample_count(), exposition.samples.len(), "sample rows");
    assert_eq!(rows.exemplar_count(), exemplars, "exemplar rows");
    let (samples, exemplar_rows) = (rows.sample_count(), rows.exemplar_count());
    let (batches, rejected) = rows.finish();
    assert_eq!(rejected.count, 0);
    threadline_fuzz::metric_batches(&batches, samples, exemplar_rows);
});

/// The samples alone, one per line, in `format`; `_created` samples the parser folded
/// into their series are not samples and are not printed.
fn print(samples: &[Sample<'_>], format: Format) -> String {
    let mut out = String::new();
    for sample in samples {
        out.push_str(sample.name);
        labels(&mut out, &sample.labels);
        let _ = write!(out, " {}", value(sample.value));
        if let Some(ns) = sample.timestamp {
            out.push(' ');
            time(&mut out, ns, format);
        }
        if let Some(Exemplar {
            labels: exemplar_labels,
            value: exemplar_value,
            timestamp,
        }) = &sample.exemplar
        {
            out.push_str(" # ");
            labels(&mut out, exemplar_labels);
            let _ = write!(out, " {}", value(*exemplar_value));
            if let Some(ns) = timestamp {
                out.push(' ');
                time(&mut out, *ns, Format::OpenMetrics);
            }
        }
        out.push('\n');
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn labels(out: &mut String, labels: &Labels<'_>) {
    if labels.is_empty() {
        // An exemplar's braces are required; a sample's may be empty.
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

/// Integer milliseconds (text) or exact decimal seconds (OpenMetrics).
fn time(out: &mut String, ns: i64, format: Format) {
    match format {
        Format::Text => {
            let _ = write!(out, "{}", ns / 1_000_000);
        }
        Format::OpenMetrics => {
            let sign = if ns < 0 { "-" } else { "" };
            let abs = ns.unsigned_abs();
            let _ = write!(
                out,
                "{sign}{}.{:09}",
                abs / 1_000_000_000,
                abs % 1_000_000_000
            );
        }
    }
}

fn same_value(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// OpenMetrics times are read as f64 seconds and rounded to the microsecond, so the
/// second reading may land a microsecond or two off at the far ends of the range.
fn same_time(a: Option<i64>, b: Option<i64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.abs_diff(b) <= 3_000,
        (a, b) => a == b,
    }
}
