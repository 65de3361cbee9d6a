use proptest::prelude::*;

use super::*;

const OPENMETRICS: &str = r#"# TYPE http_request_duration_seconds histogram
# UNIT http_request_duration_seconds seconds
# HELP http_request_duration_seconds Time spent serving a request.
http_request_duration_seconds_bucket{le="0.1",path="/api"} 3 # {trace_id="0af7651916cd43dd8448eb211c80319c"} 0.067 1520879607.789
http_request_duration_seconds_bucket{le="+Inf",path="/api"} 5
http_request_duration_seconds_count{path="/api"} 5
http_request_duration_seconds_sum{path="/api"} 1.25
http_request_duration_seconds_created{path="/api"} 1520430000.123
# TYPE jobs counter
jobs_total{queue="a\"b\\c\nd"} 7 1520879607.5
jobs_created{queue="a\"b\\c\nd"} 1520430000
# TYPE temperature gauge
temperature NaN
temperature{room="x"} -Inf
# EOF
"#;

#[test]
fn openmetrics_with_exemplars_units_and_created() {
    let exposition = parse(OPENMETRICS, Format::OpenMetrics).unwrap();
    assert_eq!(exposition.samples.len(), 7);
    let bucket = &exposition.samples[0];
    assert_eq!(bucket.name, "http_request_duration_seconds_bucket");
    assert_eq!(bucket.created, Some(1_520_430_000_123_000_000));
    let family = &exposition.families[bucket.family];
    assert_eq!(family.metric_type, Some("histogram"));
    assert_eq!(family.unit, Some("seconds"));
    let exemplar = bucket.exemplar.as_ref().unwrap();
    assert_eq!(exemplar.labels[0].0, "trace_id");
    assert_eq!(exemplar.value, 0.067);
    assert_eq!(exemplar.timestamp, Some(1_520_879_607_789_000_000));
    let jobs = &exposition.samples[4];
    assert_eq!(jobs.labels[0].1, "a\"b\\c\nd");
    assert_eq!(jobs.timestamp, Some(1_520_879_607_500_000_000));
    assert_eq!(jobs.created, Some(1_520_430_000_000_000_000));
    assert!(exposition.samples[5].value.is_nan());
    assert_eq!(exposition.samples[6].value, f64::NEG_INFINITY);
}

#[test]
fn classic_text_format() {
    let text = "# HELP up Whether up.\n# TYPE up gauge\nup{job=\"a\"} 1 1700000000000\n\nrequests_total 3\nrequests_created 1.7e9\n";
    let exposition = parse(text, Format::Text).unwrap();
    assert_eq!(exposition.samples.len(), 3);
    assert_eq!(
        exposition.samples[0].timestamp,
        Some(1_700_000_000_000_000_000)
    );
    // In the text format `_created` is a series like any other.
    assert_eq!(exposition.samples[2].name, "requests_created");
    assert_eq!(
        exposition.families[exposition.samples[1].family].metric_type,
        None
    );
}

#[test]
fn errors_name_the_line() {
    let cases = [
        ("up 1\nup{job=\"a\" 1\n", Format::Text, 2),
        ("up one\n", Format::Text, 1),
        ("# TYPE up sometimes\n", Format::Text, 1),
        ("up 1 # {a=\"b\"} 1\n", Format::Text, 1),
        ("up 1\n", Format::OpenMetrics, 1),
        ("up 1\n# EOF\nup 2\n", Format::OpenMetrics, 3),
        ("up{a=\"1\",a=\"2\"} 1\n", Format::Text, 1),
        ("up{a=\"\\x\"} 1\n# EOF\n", Format::OpenMetrics, 1),
        ("up 1 soon\n", Format::Text, 1),
    ];
    for (text, format, line) in cases {
        let err = parse(text, format).unwrap_err();
        assert_eq!(err.line, line, "{text:?}: {err}");
    }
}

#[test]
fn text_format_keeps_unknown_escapes_like_prometheus() {
    let exposition = parse("up{path=\"C:\\temp\\x\"} 1\n", Format::Text).unwrap();
    assert_eq!(exposition.samples[0].labels[0].1, "C:\\temp\\x");
}

#[test]
fn created_is_matched_per_series_among_many() {
    let mut text = String::from("# TYPE jobs counter\n");
    for i in 0..2000 {
        text.push_str(&format!(
            "jobs_total{{q=\"{i}\"}} {i}\njobs_created{{q=\"{i}\"}} {i}.5\n"
        ));
    }
    text.push_str("# EOF\n");
    let exposition = parse(&text, Format::OpenMetrics).unwrap();
    assert_eq!(exposition.samples.len(), 2000);
    assert_eq!(exposition.samples[7].created, Some(7_500_000_000));
}

#[test]
fn content_type_picks_the_format() {
    assert_eq!(
        Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Format::OpenMetrics
    );
    assert_eq!(
        Format::from_content_type("text/plain; version=0.0.4"),
        Format::Text
    );
}

fn label_value() -> impl Strategy<Value = String> {
    "[a-z\"\\\\\n é]{0,8}"
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

proptest! {
    /// What a client library writes, the parser reads back exactly.
    #[test]
    fn rendered_samples_parse_back(
        samples in prop::collection::vec(
            ("[a-z_][a-z0-9_]{0,10}", prop::collection::btree_map("[a-z_][a-z0-9_]{0,6}", label_value(), 0..4), -1e12f64..1e12, prop::option::of(0i64..4_000_000_000_000)),
            1..20,
        )
    ) {
        let mut text = String::new();
        for (name, labels, value, ms) in &samples {
            text.push_str(name);
            if !labels.is_empty() {
                let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
                text.push_str(&format!("{{{}}}", body.join(",")));
            }
            text.push_str(&format!(" {value}"));
            if let Some(ms) = ms {
                text.push_str(&format!(" {ms}"));
            }
            text.push('\n');
        }
        let parsed = parse(&text, Format::Text).unwrap();
        prop_assert_eq!(parsed.samples.len(), samples.len());
        for (sample, (name, labels, value, ms)) in parsed.samples.iter().zip(&samples) {
            prop_assert_eq!(sample.name, name.as_str());
            prop_assert_eq!(sample.value, *value);
            prop_assert_eq!(sample.timestamp, ms.map(|ms| ms * 1_000_000));
            let got: Vec<(String, String)> = sample.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            let want: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn arbitrary_input_never_panics(text in "\\PC{0,80}") {
        let _ = parse(&text, Format::Text);
        let _ = parse(&text, Format::OpenMetrics);
    }

    #[test]
    fn structured_noise_never_panics(text in "[a-z_{}=\",# \\\\\n0-9.+EOFTYPE]{0,120}") {
        let _ = parse(&text, Format::Text);
        let _ = parse(&text, Format::OpenMetrics);
    }
}
