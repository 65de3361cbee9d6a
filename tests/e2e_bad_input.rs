//! The bad-input catalogue: hostile or broken requests against every ingest and query
//! API, one table of cases, each answered with the status and a message that tells the
//! client what to fix — never a 500, a panic or a hang — and nothing acknowledged before
//! them lost. Beside the table: decompression bombs in flight at once (memory stays
//! flat) and a client that stalls in the middle of its body (cut off with a 408).
//!
//! Timestamps: Threadline keeps history, so any time a nanosecond `i64` can hold (the
//! years 1677 to 2262) is accepted, as Loki with `reject_old_samples = false` and
//! Prometheus's backfilling do; a time past that range is refused record by record.

mod bad_input;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bad_input::*;
use bytes::Bytes;
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Twice the default body limit: every bomb inflates past it.
const BOMB_BYTES: usize = 64 << 20;
/// How fast a bomb must be refused.
const BOMB_ANSWER: Duration = Duration::from_secs(1);
/// How long any other case may take (a debug build plans 10,000-term SQL slowly).
const ANY_ANSWER: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------
// The data every bad request must leave alone

const BASELINE_SQL: &str = "SELECT
    (SELECT count(*) FROM logs WHERE service_name = 'baseline_otlp') AS otlp_logs,
    (SELECT count(*) FROM spans WHERE service_name = 'baseline_otlp') AS otlp_spans,
    (SELECT count(*) FROM samples WHERE metric = 'baseline_gauge') AS otlp_samples,
    (SELECT count(*) FROM logs WHERE service_name = 'baseline_loki') AS loki_logs,
    (SELECT count(*) FROM samples WHERE metric = 'baseline_total') AS remote_write_samples,
    (SELECT count(*) FROM profiles WHERE service_name = 'baseline_pprof') AS profiles";

fn baseline_expected() -> Value {
    json!({
        "otlp_logs": 3, "otlp_spans": 2, "otlp_samples": 2, "loki_logs": 4,
        "remote_write_samples": 5, "profiles": 1,
    })
}

/// Where the COPY case tries to write.
const COPY_TARGET: &str = "/tmp/threadline_e2e_bad_input_copy.csv";

const BASELINE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// Pushes the baseline over every ingest API; each push must be acknowledged.
async fn push_baseline(server: &TestServer) {
    let t = now_ns() - 60_000_000_000;
    let records: Vec<(i64, &str, String, &str)> = (0..3)
        .map(|i| (t + i, "info", format!("baseline otlp {i}"), ""))
        .collect();
    let records: Vec<(i64, &str, &str, &str)> = records
        .iter()
        .map(|(t, s, b, id)| (*t, *s, b.as_str(), *id))
        .collect();
    server
        .push_json("/v1/logs", &logs_json("baseline_otlp", &records))
        .await;
    server
        .push_json(
            "/v1/traces",
            &spans_json(
                "baseline_otlp",
                &[
                    (
                        BASELINE_TRACE,
                        "b7ad6b7169203331",
                        "",
                        "GET /",
                        t,
                        1_000_000,
                        false,
                    ),
                    (
                        BASELINE_TRACE,
                        "b7ad6b7169203332",
                        "b7ad6b7169203331",
                        "db",
                        t,
                        500,
                        true,
                    ),
                ],
            ),
        )
        .await;
    let points: Vec<Value> = (0..2)
        .map(|i| json!({"timeUnixNano": (t + i).to_string(), "asDouble": 1.5}))
        .collect();
    server
        .push_json(
            "/v1/metrics",
            &json!({"resourceMetrics": [{
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "baseline_otlp"}}]},
                "scopeMetrics": [{"metrics": [{"name": "baseline_gauge", "gauge": {"dataPoints": points}}]}]
            }]}),
        )
        .await;
    let values: Vec<Value> = (0..4)
        .map(|i| json!([(t + i).to_string(), format!("baseline loki {i}")]))
        .collect();
    let response = server
        .post(
            "/loki/api/v1/push",
            "application/json",
            json!({"streams": [{"stream": {"service_name": "baseline_loki"}, "values": values}]})
                .to_string(),
        )
        .await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let series = threadline::proto::prometheus::TimeSeries {
        labels: [("__name__", "baseline_total"), ("job", "baseline")]
            .iter()
            .map(|(n, v)| threadline::proto::prometheus::Label {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
        samples: (0..5)
            .map(|i| threadline::proto::prometheus::Sample {
                value: i as f64,
                timestamp: t / 1_000_000 + i,
            })
            .collect(),
        ..Default::default()
    };
    let request = threadline::proto::prometheus::WriteRequest {
        timeseries: vec![series],
        ..Default::default()
    };
    let response = server
        .post(
            "/api/v1/write",
            "application/x-protobuf",
            snappy(&prost::Message::encode_to_vec(&request)),
        )
        .await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let response = server
        .post(
            "/threadline/v1/profiles?service_name=baseline_pprof",
            "application/octet-stream",
            go_heap_profile(),
        )
        .await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
}

async fn baseline(server: &TestServer) -> Value {
    let rows = server.rows(BASELINE_SQL).await;
    rows.first().cloned().unwrap_or(Value::Null)
}

// ---------------------------------------------------------------------------------
// The table

enum Request {
    Post {
        path: String,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    },
    Get {
        path: &'static str,
        params: Vec<(&'static str, String)>,
    },
}

struct Case {
    name: &'static str,
    request: Request,
    status: u16,
    /// A fragment of the answer: what tells the client what to fix.
    says: String,
    within: Duration,
}

impl Case {
    fn expect(mut self, status: u16, says: impl Into<String>) -> Self {
        self.status = status;
        self.says = says.into();
        self
    }

    fn within(mut self, limit: Duration) -> Self {
        self.within = limit;
        self
    }

    fn is_ingest(&self) -> bool {
        match &self.request {
            Request::Post { path, .. } => INGEST_PATHS.iter().any(|p| path.starts_with(p)),
            Request::Get { .. } => false,
        }
    }
}

const INGEST_PATHS: &[&str] = &[
    "/v1/",
    "/loki/api/v1/push",
    "/api/v1/write",
    "/threadline/v1/profiles?",
    "/ingest",
    "/push.v1.PusherService/Push",
];

fn post(name: &'static str, path: &str, content_type: &str, body: impl Into<Bytes>) -> Case {
    Case {
        name,
        request: Request::Post {
            path: path.to_owned(),
            headers: vec![("content-type", content_type.to_owned())],
            body: body.into(),
        },
        status: 0,
        says: String::new(),
        within: ANY_ANSWER,
    }
}

fn post_encoded(
    name: &'static str,
    path: &str,
    content_type: &str,
    encoding: &str,
    body: impl Into<Bytes>,
) -> Case {
    let mut case = post(name, path, content_type, body);
    if let Request::Post { headers, .. } = &mut case.request {
        headers.push(("content-encoding", encoding.to_owned()));
    }
    case
}

fn post_bare(name: &'static str, path: &str, body: impl Into<Bytes>) -> Case {
    let mut case = post(name, path, "", body);
    if let Request::Post { headers, .. } = &mut case.request {
        headers.clear();
    }
    case
}

fn form(name: &'static str, path: &str, pairs: &[(&str, &str)]) -> Case {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    post(name, path, "application/x-www-form-urlencoded", body)
}

fn get(name: &'static str, path: &'static str, params: &[(&'static str, &str)]) -> Case {
    Case {
        name,
        request: Request::Get {
            path,
            params: params.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        },
        status: 0,
        says: String::new(),
        within: ANY_ANSWER,
    }
}

fn sql(name: &'static str, text: impl Into<String>) -> Case {
    post(name, "/threadline/v1/sql", "application/sql", text.into())
}

/// `n` terms joined by `sep`.
fn chain(n: usize, sep: &str, term: impl Fn(usize) -> String) -> String {
    (0..n).map(term).collect::<Vec<_>>().join(sep)
}

fn ingest_cases() -> Vec<Case> {
    let gzip_bomb = gzip_zeros(BOMB_BYTES);
    let snappy_bomb = zeros_snappy(BOMB_BYTES);
    let now_s = now_ns() / 1_000_000_000;
    let now_ms = now_ns() / 1_000_000;
    let good_log = String::from_utf8(
        serde_json::to_vec(&logs_json("bad_input", &[(now_ns(), "info", "fine", "")])).unwrap(),
    )
    .unwrap();
    let good_loki = loki_protobuf(b"{service_name=\"bad_input\"}", now_s, b"fine");
    let good_write = remote_write_protobuf(
        &[(b"__name__", b"bad_input_total"), (b"job", b"bad")],
        now_ms,
    );
    let many_labels: serde_json::Map<String, Value> = (0..10_000)
        .map(|i| (format!("label_{i}"), json!("v")))
        .collect();
    let many_rw_labels: Vec<(Vec<u8>, Vec<u8>)> = (0..10_000)
        .map(|i| (format!("label_{i:05}").into_bytes(), b"v".to_vec()))
        .collect();
    let mut many_rw: Vec<(&[u8], &[u8])> = vec![(b"__name__", b"bad_input_total")];
    many_rw.extend(
        many_rw_labels
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice())),
    );
    let megabyte = "x".repeat(1 << 20);
    let many_attributes: Vec<Value> = (0..10_000)
        .map(|i| json!({"key": format!("attr.{i}"), "value": {"stringValue": "v"}}))
        .collect();
    let profile = go_heap_profile();

    vec![
        // OTLP/HTTP
        post_encoded("otlp logs: gzip bomb", "/v1/logs", "application/json", "gzip", gzip_bomb.clone())
            .expect(413, "after decompression").within(BOMB_ANSWER),
        post_encoded("otlp logs: gzip bomb whose trailer understates it", "/v1/logs", "application/x-protobuf", "gzip", lying_gzip(gzip_bomb.clone()))
            .expect(413, "after decompression").within(BOMB_ANSWER),
        post_encoded("otlp traces: zstd content encoding", "/v1/traces", "application/x-protobuf", "zstd", b"\x28\xb5\x2f\xfd".to_vec())
            .expect(415, "unsupported content encoding \"zstd\""),
        post_encoded("otlp metrics: corrupt gzip", "/v1/metrics", "application/json", "gzip", b"\x1f\x8b\x08\x00garbage".to_vec())
            .expect(400, "invalid gzip body"),
        post("otlp logs: unknown content type", "/v1/logs", "text/plain", good_log.clone())
            .expect(415, "send application/x-protobuf or application/json"),
        post_bare("otlp traces: no content type", "/v1/traces", good_log.clone())
            .expect(415, "unsupported content type"),
        post("otlp logs: empty JSON body", "/v1/logs", "application/json", "")
            .expect(400, "invalid OTLP JSON"),
        post("otlp logs: empty protobuf body is an empty export", "/v1/logs", "application/x-protobuf", "")
            .expect(200, ""),
        post("otlp logs: truncated protobuf", "/v1/logs", "application/x-protobuf", {
            let full = otlp_log_protobuf(b"cut short", &field(1, b"v"));
            full[..full.len() - 7].to_vec()
        })
            .expect(400, "invalid OTLP protobuf"),
        post("otlp metrics: truncated JSON", "/v1/metrics", "application/json", r#"{"resourceMetrics": [{"scopeMetrics": [{"metr"#)
            .expect(400, "invalid OTLP JSON"),
        post("otlp logs: attribute kvlist nested 5,000 deep", "/v1/logs", "application/x-protobuf", otlp_log_protobuf(b"deep", &nested_any_value(5_000, Nesting::KvList)))
            .expect(400, "recursion limit"),
        post("otlp logs: attribute array nested 100,000 deep", "/v1/logs", "application/x-protobuf", otlp_log_protobuf(b"deep", &nested_any_value(100_000, Nesting::Array)))
            .expect(400, "recursion limit"),
        post("otlp logs: attribute nested 20 deep is kept", "/v1/logs", "application/x-protobuf", otlp_log_protobuf(b"nested 20 deep", &nested_any_value(20, Nesting::KvList)))
            .expect(200, ""),
        post("otlp logs: JSON attribute nested 5,000 deep", "/v1/logs", "application/json", format!(
            r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{{"body":{{"stringValue":"deep"}},"attributes":[{{"key":"deep","value":{}}}]}}]}}]}}]}}"#,
            json_nested(5_000)
        ))
            .expect(400, "recursion limit exceeded"),
        post("otlp logs: invalid UTF-8 in a log body", "/v1/logs", "application/x-protobuf", otlp_log_protobuf(b"caf\xc3\x28 \xff", &field(1, b"v")))
            .expect(400, "UTF-8"),
        post("otlp logs: time past the nanosecond range", "/v1/logs", "application/json", json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
            {"timeUnixNano": u64::MAX.to_string(), "body": {"stringValue": "far"}}]}]}]}).to_string())
            .expect(200, "timestamp out of range"),
        post("otlp logs: service.name of 1 MB", "/v1/logs", "application/json", json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": megabyte}}]},
            "scopeLogs": [{"logRecords": [{"body": {"stringValue": "huge label"}}]}]}]}).to_string())
            .expect(200, "label value too long"),
        post("otlp traces: 10,000 attributes on one span are attributes, not labels", "/v1/traces", "application/json", json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "wide_span"}}]},
            "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "wide",
                "startTimeUnixNano": now_ns().to_string(), "endTimeUnixNano": now_ns().to_string(), "attributes": many_attributes}]}]}]}).to_string())
            .expect(200, "{}"),
        post("otlp logs: body past the limit", "/v1/logs", "application/json", vec![b' '; 33 << 20])
            .expect(413, "exceeds the limit"),
        // Loki push
        post_bare("loki: snappy bomb", "/loki/api/v1/push", snappy_bomb.clone())
            .expect(413, "after decompression").within(BOMB_ANSWER),
        post_encoded("loki: gzip bomb", "/loki/api/v1/push", "application/json", "gzip", gzip_bomb.clone())
            .expect(413, "after decompression").within(BOMB_ANSWER),
        post_encoded("loki: snappy length header declares 4 GiB", "/loki/api/v1/push", "application/x-protobuf", "snappy", snappy_declaring(u64::from(u32::MAX), &good_loki))
            .expect(413, "after decompression"),
        post_encoded("loki: snappy length header past what snappy allows", "/loki/api/v1/push", "application/x-protobuf", "snappy", snappy_declaring(1 << 40, &good_loki))
            .expect(400, "invalid snappy body"),
        post("loki: snappy length header declares 10 bytes", "/loki/api/v1/push", "application/x-protobuf", snappy_declaring(10, &good_loki))
            .expect(400, "invalid snappy body"),
        post("loki: 10,000 labels on one stream", "/loki/api/v1/push", "application/json", json!({"streams": [{"stream": many_labels, "values": [[now_ns().to_string(), "wide"]]}]}).to_string())
            .expect(400, "too many labels"),
        post("loki: a 1 MB label value", "/loki/api/v1/push", "application/json", json!({"streams": [{"stream": {"service_name": "bad_input", "big": megabyte}, "values": [[now_ns().to_string(), "big"]]}]}).to_string())
            .expect(400, "label value too long for \\\"big\\\": 1048576 > 2048 bytes"),
        post("loki: invalid UTF-8 in stream labels", "/loki/api/v1/push", "application/x-protobuf", snappy(&loki_protobuf(b"{service_name=\"caf\xc3\x28\"}", now_s, b"fine")))
            .expect(400, "UTF-8"),
        post("loki: invalid UTF-8 in a log line", "/loki/api/v1/push", "application/x-protobuf", snappy(&loki_protobuf(b"{service_name=\"bad_input\"}", now_s, b"bad \xff\xfe line")))
            .expect(400, "UTF-8"),
        post("loki: invalid UTF-8 in JSON", "/loki/api/v1/push", "application/json", [&br#"{"streams": [{"stream": {"service_name": "bad_input"}, "values": [["1", "bad "#[..], b"\xff\xfe", br#""]]}]}"#].concat())
            .expect(400, "invalid Loki push JSON"),
        post("loki: a line from 1900 is kept", "/loki/api/v1/push", "application/json", json!({"streams": [{"stream": {"service_name": "time_travel"}, "values": [["-2208988800000000000", "from 1900"]]}]}).to_string())
            .expect(204, ""),
        post("loki: a line from 2250 is kept", "/loki/api/v1/push", "application/json", json!({"streams": [{"stream": {"service_name": "time_travel"}, "values": [["8835984000000000000", "from 2250"]]}]}).to_string())
            .expect(204, ""),
        post("loki: a timestamp past the nanosecond range", "/loki/api/v1/push", "application/x-protobuf", snappy(&loki_protobuf(b"{service_name=\"bad_input\"}", i64::MAX / 10, b"far")))
            .expect(400, "is out of range"),
        post("loki: a timestamp that is not a number", "/loki/api/v1/push", "application/json", json!({"streams": [{"stream": {"service_name": "bad_input"}, "values": [["yesterday", "when"]]}]}).to_string())
            .expect(400, "is not an integer of nanoseconds"),
        post("loki: unknown content type", "/loki/api/v1/push", "text/plain", "line")
            .expect(415, "unsupported content type"),
        post_bare("loki: empty body", "/loki/api/v1/push", "")
            .expect(400, "invalid snappy body"),
        post("loki: truncated protobuf", "/loki/api/v1/push", "application/x-protobuf", snappy(&good_loki[..good_loki.len() - 3]))
            .expect(400, "invalid Loki push protobuf"),
        post("loki: truncated snappy", "/loki/api/v1/push", "application/x-protobuf", { let s = snappy(&good_loki); s[..s.len() / 2].to_vec() })
            .expect(400, "invalid snappy body"),
        post("loki: structured metadata nested 5,000 deep", "/loki/api/v1/push", "application/json", format!(
            r#"{{"streams": [{{"stream": {{"service_name": "bad_input"}}, "values": [["1", "deep", {}]]}}]}}"#,
            "{\"a\":".repeat(5_000) + "1" + &"}".repeat(5_000)
        ))
            .expect(400, "recursion limit exceeded"),
        // Prometheus remote write
        post("remote write: snappy bomb", "/api/v1/write", "application/x-protobuf", snappy_bomb.clone())
            .expect(413, "after decompression").within(BOMB_ANSWER),
        post_encoded("remote write: gzip bomb", "/api/v1/write", "application/x-protobuf", "gzip", gzip_bomb.clone())
            .expect(413, "after decompression").within(BOMB_ANSWER),
        post("remote write: length header declares 4 GiB", "/api/v1/write", "application/x-protobuf", snappy_declaring(u64::from(u32::MAX), &good_write))
            .expect(413, "after decompression"),
        post("remote write: length header declares 10 bytes", "/api/v1/write", "application/x-protobuf", snappy_declaring(10, &good_write))
            .expect(400, "invalid snappy body"),
        post("remote write: 10,000 labels on one series", "/api/v1/write", "application/x-protobuf", snappy(&remote_write_protobuf(&many_rw, now_ms)))
            .expect(400, "too many labels"),
        post("remote write: a 1 MB label value", "/api/v1/write", "application/x-protobuf", snappy(&remote_write_protobuf(&[(b"__name__", b"bad_input_total"), (b"big", megabyte.as_bytes())], now_ms)))
            .expect(400, "label value too long"),
        post("remote write: invalid UTF-8 in a label value", "/api/v1/write", "application/x-protobuf", snappy(&remote_write_protobuf(&[(b"__name__", b"bad_input_total"), (b"job", b"caf\xc3\x28")], now_ms)))
            .expect(400, "not UTF-8"),
        post("remote write: a timestamp past the nanosecond range", "/api/v1/write", "application/x-protobuf", snappy(&remote_write_protobuf(&[(b"__name__", b"bad_input_total")], i64::MAX)))
            .expect(400, "is out of range"),
        post("remote write: JSON", "/api/v1/write", "application/json", snappy(&good_write))
            .expect(415, "unsupported content type"),
        post_encoded("remote write: zstd", "/api/v1/write", "application/x-protobuf", "zstd", snappy(&good_write))
            .expect(415, "send identity, gzip or snappy"),
        post("remote write: empty body", "/api/v1/write", "application/x-protobuf", "")
            .expect(400, "invalid snappy body"),
        post("remote write: truncated protobuf", "/api/v1/write", "application/x-protobuf", snappy(&good_write[..good_write.len() - 4]))
            .expect(400, "protobuf"),
        // Profiles
        post("pprof: gzip bomb", "/threadline/v1/profiles?service_name=bad_input", "application/octet-stream", gzip_bomb.clone())
            .expect(413, "exceeds the size limit").within(BOMB_ANSWER),
        post("pprof: gzip bomb whose trailer understates it", "/threadline/v1/profiles?service_name=bad_input", "application/octet-stream", lying_gzip(gzip_bomb.clone()))
            .expect(413, "exceeds the size limit").within(BOMB_ANSWER),
        post("pprof: truncated gzip", "/threadline/v1/profiles?service_name=bad_input", "application/octet-stream", profile[..profile.len() / 2].to_vec())
            .expect(400, "not valid gzip"),
        post("pprof: not a profile", "/threadline/v1/profiles?service_name=bad_input", "application/octet-stream", "hello")
            .expect(400, "not a valid pprof protobuf"),
        post("pprof: a 32 KiB label value", &format!("/threadline/v1/profiles?service_name=bad_input&big={}", "x".repeat(32 << 10)), "application/octet-stream", profile.clone())
            .expect(400, "label value too long"),
        post("pyroscope push: unknown content type", "/push.v1.PusherService/Push", "text/plain", "x")
            .expect(415, "send application/proto"),
        post("pyroscope push: truncated protobuf", "/push.v1.PusherService/Push", "application/proto", field(1, &field(1, b"abc"))[..4].to_vec())
            .expect(400, "invalid push.v1.PushRequest"),
        post("pyroscope ingest: unknown format", "/ingest?name=app.cpu&format=jfr", "application/octet-stream", "x")
            .expect(415, "format \\\"jfr\\\" is not supported"),
        post("pyroscope ingest: folded stacks that are not UTF-8", "/ingest?name=app.cpu", "text/plain", b"main;f\xff 1\n".to_vec())
            .expect(400, "folded stacks must be UTF-8"),
        post("pyroscope ingest: a name that is not a selector", "/ingest?name=app.cpu{env=", "text/plain", "main 1\n")
            .expect(400, "opens labels with '{' but does not close them with '}'"),
    ]
}

fn query_cases() -> Vec<Case> {
    let or_sql = chain(10_000, " OR ", |i| format!("body = 'baseline otlp {i}'"));
    let or_logql = format!(
        "{{service_name=\"baseline_loki\"}} | logfmt | {}",
        chain(10_000, " or ", |i| format!("n=\"{i}\""))
    );
    let short_or_logql = format!(
        "{{service_name=\"baseline_loki\"}} | logfmt | {}",
        chain(1_000, " or ", |i| format!("n=\"{i}\""))
    );
    let deep_logql = format!(
        "{}count_over_time({{service_name=\"baseline_loki\"}}[1m]){}",
        "sum(".repeat(1_000),
        ")".repeat(1_000)
    );
    let deep_promql = format!("{}baseline_total{}", "(".repeat(1_000), ")".repeat(1_000));
    let deep_traceql = format!("{}{{ }}{}", "(".repeat(1_000), ")".repeat(1_000));
    let big_regex = r#"{service_name=~"a{1000}{1000}"}"#;
    vec![
        // SQL: only reading this tenant's tables
        sql("sql: read_parquet of a local file", "SELECT * FROM read_parquet('/etc/passwd')")
            .expect(400, "read_parquet"),
        sql("sql: a file path as a table", "SELECT * FROM '/etc/passwd'")
            .expect(400, "not found"),
        sql("sql: COPY to a file", format!("COPY (SELECT 1 AS a) TO '{COPY_TARGET}' STORED AS CSV"))
            .expect(400, "DML not supported: COPY"),
        sql("sql: CREATE EXTERNAL TABLE", "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'")
            .expect(400, "not supported"),
        sql("sql: information_schema", "SELECT * FROM information_schema.tables")
            .expect(400, "the tables are logs, spans"),
        sql("sql: SET a session option", "SET datafusion.execution.batch_size = 1")
            .expect(400, "not supported"),
        sql("sql: INSERT", "INSERT INTO logs (body) VALUES ('forged')")
            .expect(400, "not supported"),
        sql("sql: DROP", "DROP TABLE logs")
            .expect(400, "not supported"),
        sql("sql: CREATE VIEW", "CREATE VIEW v AS SELECT 1")
            .expect(400, "not supported"),
        sql("sql: two statements", "SELECT 1; DROP TABLE logs")
            .expect(400, "single SQL statement"),
        sql("sql: another catalog's table", "SELECT * FROM other_tenant.public.logs")
            .expect(400, "not found"),
        sql("sql: empty", "  ").expect(400, "empty SQL query"),
        post("sql: invalid UTF-8 bytes", "/threadline/v1/sql", "application/sql", b"SELECT '\xff\xfe'".to_vec())
            .expect(400, "SQL must be UTF-8"),
        sql("sql: 2 MiB of text", format!("SELECT 1 /* {} */", "x".repeat(2 << 20)))
            .expect(413, "exceeds the limit"),
        sql("sql: a 5,000-term expression", format!("SELECT {} AS total", chain(5_000, " + ", |i| (i + 1).to_string())))
            .expect(400, "4999 operators; at most 512 are accepted"),
        sql("sql: a 10,000-term OR chain", format!("SELECT count(*) AS n FROM logs WHERE {or_sql}"))
            .expect(400, "write long lists of alternatives as IN"),
        sql("sql: the same 10,000 alternatives as IN", format!("SELECT count(*) AS n FROM logs WHERE body IN ({})", chain(10_000, ", ", |i| format!("'baseline otlp {i}'"))))
            .expect(200, r#""n":3"#),
        sql("sql: a 500-term expression", format!("SELECT {} AS total", chain(500, " + ", |i| (i + 1).to_string())))
            .expect(200, "125250"),
        sql("sql: 5,000 casts", format!("SELECT 1{} AS one", "::bigint".repeat(5_000)))
            .expect(400, "operators; at most 512"),
        sql("sql: 5,000 unions", chain(5_000, " UNION ALL ", |_| "SELECT 1 AS one".into()))
            .expect(400, "operators; at most 512"),
        sql("sql: 200 joins", format!("SELECT count(*) FROM logs l0 {}", chain(200, " ", |i| format!("JOIN logs l{} ON l{}.body = l0.body", i + 1, i + 1))))
            .expect(400, "reads tables 201 times; at most 32"),
        sql("sql: 200 tables in one FROM", format!("SELECT count(*) FROM {}", chain(200, ", ", |i| format!("spans s{i}"))))
            .expect(400, "reads tables 200 times"),
        sql("sql: parentheses 10,000 deep", format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000)))
            .expect(400, "RecursionLimitExceeded"),
        sql("sql: a catastrophic-backtracking regex", "SELECT count(*) AS n FROM logs WHERE body ~ '^(a*)*b$'")
            .expect(200, r#""n":0"#),
        sql("sql: a regex too large to compile", "SELECT count(*) AS n FROM logs WHERE body ~ 'a{1000}{1000}'")
            .expect(400, "too large once compiled"),
        sql("sql: a regex that does not parse", "SELECT count(*) AS n FROM logs WHERE body ~ '('")
            .expect(400, "invalid regex"),
        // Label matchers and LogQL
        get("query: {a=~\"(a*)*b\"}", "/threadline/v1/query", &[("query", r#"{service_name=~"(a*)*b"}"#)])
            .expect(200, r#""streams":[]"#),
        get("query: a{1000}{1000}", "/threadline/v1/query", &[("query", big_regex)])
            .expect(400, "regex too complex"),
        get("loki: line filter (a*)*b", "/loki/api/v1/query_range", &[("query", r#"{service_name="baseline_loki"} |~ "(a*)*b""#)])
            .expect(200, "streams"),
        get("loki: a{1000}{1000}", "/loki/api/v1/query_range", &[("query", r#"{service_name="baseline_loki"} |~ "a{1000}{1000}""#)])
            .expect(400, "regex too complex"),
        get("loki labels: a{1000}{1000}", "/loki/api/v1/series", &[("match[]", big_regex)])
            .expect(400, "regex too complex"),
        form("loki: a 10,000-term OR chain", "/loki/api/v1/query_range", &[("query", &or_logql)])
            .expect(400, "at most 65536 are accepted"),
        form("loki: a 1,000-term OR chain", "/loki/api/v1/query_range", &[("query", &short_or_logql)])
            .expect(400, "the label filter has more than 256 terms"),
        form("loki: 1,000 nested aggregations", "/loki/api/v1/query_range", &[("query", &deep_logql)])
            .expect(400, "nests deeper than 64 levels"),
        form("loki: 100 KiB query", "/loki/api/v1/query", &[("query", &format!("{{a=\"{}\"}}", "x".repeat(100 << 10)))])
            .expect(400, "at most 65536 are accepted"),
        get("traces behind logs: a 1,000-term OR chain", "/threadline/v1/traces", &[("logs", &short_or_logql)])
            .expect(400, "more than 256 terms"),
        // PromQL
        get("promql: (a*)*b", "/api/v1/query", &[("query", r#"baseline_total{job=~"(a*)*b"}"#)])
            .expect(200, "success"),
        get("promql: a{1000}{1000}", "/api/v1/query", &[("query", r#"baseline_total{job=~"a{1000}{1000}"}"#)])
            .expect(400, "regex"),
        form("promql: 20 KiB query", "/api/v1/query_range", &[("query", &format!("baseline_total{{job=\"{}\"}}", "x".repeat(20 << 10))), ("step", "60")])
            .expect(400, "at most 16384 are accepted"),
        form("promql: a 10,000-term or", "/api/v1/query", &[("query", &chain(10_000, " or ", |_| "up".into()))])
            .expect(400, "at most 16384 are accepted"),
        get("promql: 1,000 nested parentheses", "/api/v1/query", &[("query", &deep_promql)])
            .expect(400, "nests deeper than 64 levels"),
        get("exemplars: 1,000 nested parentheses", "/api/v1/query_exemplars", &[("query", &deep_promql)])
            .expect(400, "nests deeper"),
        get("samples: a{1000}{1000}", "/threadline/v1/samples", &[("query", r#"baseline_total{job=~"a{1000}{1000}"}"#)])
            .expect(400, "regex too complex"),
        // TraceQL
        get("traceql: 20 KiB query", "/api/search", &[("q", &format!("{{ name = \"{}\" }}", "x".repeat(20 << 10)))])
            .expect(400, "at most 16384 are accepted"),
        get("traceql: a{1000}{1000}", "/api/search", &[("q", r#"{ span.a =~ "a{1000}{1000}" }"#)])
            .expect(400, "regex too complex"),
        get("traceql: 1,000 nested parentheses", "/api/search", &[("q", &deep_traceql)])
            .expect(400, "nests deeper than 64 levels"),
        // Profiles
        get("profile merge: a span filter with a second statement", "/threadline/v1/profiles/merge", &[
            ("profile_type", "memory:inuse_space:bytes:space:bytes"),
            ("span_filter", "1 = 1; DROP TABLE spans"),
        ])
            .expect(400, "span predicate"),
        get("profile merge: a span filter reading a file", "/threadline/v1/profiles/merge", &[
            ("profile_type", "memory:inuse_space:bytes:space:bytes"),
            ("span_filter", "name IN (SELECT * FROM read_parquet('/etc/passwd'))"),
        ])
            .expect(400, "span predicate"),
        post("pyroscope query: a{1000}{1000}", "/querier.v1.QuerierService/SelectMergeStacktraces", "application/json", json!({
            "profile_typeID": "memory:inuse_space:bytes:space:bytes", "label_selector": big_regex,
            "start": 0, "end": now_ns() / 1_000_000,
        }).to_string())
            .expect(400, "regex too complex"),
        post("pyroscope query: JSON nested 5,000 deep", "/querier.v1.QuerierService/ProfileTypes", "application/json", "[".repeat(5_000) + &"]".repeat(5_000))
            .expect(400, "recursion limit exceeded"),
    ]
}

/// Sends one case; the status, the answer's text and how long it took, or why there
/// was no answer.
async fn send(server: &TestServer, case: &Case) -> Result<(u16, String, Duration), String> {
    let started = Instant::now();
    let request = match &case.request {
        Request::Post {
            path,
            headers,
            body,
        } => {
            let mut request = server.http.post(format!("{}{path}", server.url));
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            request.body(body.clone())
        }
        Request::Get { path, params } => server
            .http
            .get(format!("{}{path}", server.url))
            .query(params),
    };
    let response = request
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| format!("no answer: {:?}", e.without_url()))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("answer cut off: {:?}", e.without_url()))?;
    Ok((
        status,
        String::from_utf8_lossy(&body).into_owned(),
        started.elapsed(),
    ))
}

fn excerpt(text: &str) -> String {
    text.chars().take(300).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_request_gets_a_status_and_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path()).await;
    push_baseline(&server).await;
    assert_eq!(baseline(&server).await, baseline_expected());

    let mut cases = ingest_cases();
    cases.extend(query_cases());
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        // Names the case when one aborts the process (a stack overflow does).
        eprintln!("case: {}", case.name);
        match send(&server, case).await {
            Err(e) => failures.push(format!("{}: {e}", case.name)),
            Ok((status, text, took)) => {
                if status != case.status || !text.contains(&case.says) {
                    failures.push(format!(
                        "{}: expected {} saying {:?}, got {status}: {}",
                        case.name,
                        case.status,
                        case.says,
                        excerpt(&text)
                    ));
                }
                if took > case.within {
                    failures.push(format!(
                        "{}: answered in {took:?}, more than {:?}",
                        case.name, case.within
                    ));
                }
            }
        }
        if case.is_ingest() {
            let check = sql("baseline", BASELINE_SQL);
            match send(&server, &check).await {
                Ok((200, text, _)) => {
                    let rows: Value = serde_json::from_str(&text).unwrap_or_default();
                    if rows["rows"][0] != baseline_expected() {
                        failures.push(format!("{}: the baseline changed to {text}", case.name));
                    }
                }
                Ok((status, text, _)) => failures.push(format!(
                    "{}: the baseline query failed with {status}: {}",
                    case.name,
                    excerpt(&text)
                )),
                Err(e) => failures.push(format!("{}: the baseline query failed: {e}", case.name)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    assert!(
        !std::path::Path::new(COPY_TARGET).exists(),
        "COPY wrote {COPY_TARGET}"
    );

    // What was accepted is stored as sent: the far-past and far-future lines, and the
    // attribute nested 20 deep.
    let rows = server
        .rows("SELECT body, CAST(timestamp AS BIGINT) AS t FROM logs WHERE service_name = 'time_travel' ORDER BY timestamp")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"body": "from 1900", "t": -2_208_988_800_000_000_000i64}),
            json!({"body": "from 2250", "t": 8_835_984_000_000_000_000i64}),
        ]
    );
    let rows = server
        .rows("SELECT attributes['deep'] AS deep FROM logs WHERE body = 'nested 20 deep'")
        .await;
    let deep = rows[0]["deep"].as_str().unwrap_or_default().to_owned();
    assert_eq!(deep.matches("\"k\"").count(), 20, "{deep}");

    // Every query surface still answers over what the bad requests left.
    for statement in [
        "SELECT count(*) FROM traces",
        "SELECT count(*) FROM log_streams",
        "SELECT count(*) FROM span_metrics",
        "SELECT min(timestamp), max(timestamp) FROM logs",
    ] {
        let (status, body) = server.sql(statement).await;
        assert_eq!(status, 200, "{statement}: {body}");
    }
    for (path, key, query) in [
        (
            "/loki/api/v1/query_range",
            "query",
            r#"{service_name="time_travel"}"#,
        ),
        ("/loki/api/v1/labels", "query", "{}"),
        ("/api/search", "q", "{}"),
        ("/api/v1/query", "query", "baseline_total"),
    ] {
        let (status, body) = server.get(path, &[(key, query)]).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    // And the baseline survives a flush to chunks and a restart.
    server.flush().await;
    assert_eq!(baseline(&server).await, baseline_expected());
    server = server.restart().await;
    assert_eq!(baseline(&server).await, baseline_expected());
}

// ---------------------------------------------------------------------------------
// Bombs in flight at once

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap()
}

/// 50 bombs sent at once over every API that inflates: each refused with 413, and the
/// process (server and client share it) grows by less than 128 MiB meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn fifty_bombs_in_flight_leave_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    push_baseline(&server).await;

    let gzip_bomb = Bytes::from(gzip_zeros(BOMB_BYTES));
    let lying = Bytes::from(lying_gzip(gzip_bomb.to_vec()));
    // A snappy stream declaring 1 GiB; its first 64 KiB is all a bomb needs to send.
    let snappy_bomb = Bytes::from({
        let mut s = snappy_declaring(1 << 30, &vec![0u8; 4 << 20]);
        s.truncate(64 << 10);
        s
    });
    let kinds: [(&str, &str, Option<&str>, Bytes); 5] = [
        (
            "/v1/logs",
            "application/x-protobuf",
            Some("gzip"),
            gzip_bomb.clone(),
        ),
        (
            "/v1/traces",
            "application/json",
            Some("gzip"),
            lying.clone(),
        ),
        (
            "/api/v1/write",
            "application/x-protobuf",
            None,
            snappy_bomb.clone(),
        ),
        (
            "/loki/api/v1/push",
            "application/x-protobuf",
            Some("snappy"),
            snappy_bomb,
        ),
        (
            "/threadline/v1/profiles?service_name=bomb",
            "application/octet-stream",
            None,
            lying,
        ),
    ];

    let before = rss_bytes();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let started = Instant::now();
    let requests = (0..50).map(|i| {
        let (path, content_type, encoding, body) = kinds[i % kinds.len()].clone();
        let http = server.http.clone();
        let url = format!("{}{path}", server.url);
        async move {
            let mut request = http.post(url).header("content-type", content_type);
            if let Some(encoding) = encoding {
                request = request.header("content-encoding", encoding);
            }
            let sent = Instant::now();
            let response = request.body(body).send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (path, status, text, sent.elapsed())
        }
    });
    let answers = futures::future::join_all(requests).await;
    let total = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();

    for (path, status, text, took) in &answers {
        assert_eq!(*status, 413, "{path}: {text}");
        assert!(
            text.contains("limit"),
            "{path}: the answer does not name the limit: {text}"
        );
        assert!(*took < BOMB_ANSWER * 5, "{path}: answered in {took:?}");
    }
    let grew = peak.load(Ordering::Relaxed).saturating_sub(before);
    assert!(
        grew < 128 << 20,
        "50 bombs grew the process by {} MiB",
        grew >> 20
    );
    eprintln!(
        "50 bombs: all 413 in {total:?}, the process grew by {} MiB at most",
        grew >> 20
    );
    assert_eq!(baseline(&server).await, baseline_expected());
}

// ---------------------------------------------------------------------------------
// A client that stalls

/// A client that sends its headers and a few bytes of body, then nothing: answered
/// 408 once the body has been idle for `BODY_IDLE_TIMEOUT`, and its connection closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_body_is_cut_off() {
    use threadline::api::BODY_IDLE_TIMEOUT;

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    push_baseline(&server).await;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let stall = |path: &'static str, content_type: &'static str| {
        let addr = addr.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\ncontent-length: 100000\r\n\r\n{{\"resourceLogs\": ["
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let started = Instant::now();
            let mut answer = Vec::new();
            let read = tokio::time::timeout(
                BODY_IDLE_TIMEOUT + Duration::from_secs(10),
                stream.read_to_end(&mut answer),
            )
            .await;
            assert!(
                read.is_ok(),
                "{path}: the connection was still open after {:?}",
                started.elapsed()
            );
            let answer = String::from_utf8_lossy(&answer).into_owned();
            (path, answer, started.elapsed())
        }
    };
    let form = "application/x-www-form-urlencoded";
    let answers = futures::future::join_all([
        stall("/v1/logs", "application/json"),
        stall("/loki/api/v1/push", "application/json"),
        stall("/api/v1/write", "application/x-protobuf"),
        stall("/threadline/v1/sql", "application/sql"),
        stall("/loki/api/v1/query_range", form),
        stall("/api/v1/query_exemplars", form),
        stall("/threadline/v1/samples", form),
    ])
    .await;
    for (path, answer, took) in answers {
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{path}: {}",
            excerpt(&answer)
        );
        assert!(answer.contains("stalled"), "{path}: {}", excerpt(&answer));
        assert!(took >= BODY_IDLE_TIMEOUT, "{path}: cut off after {took:?}");
    }
    // Others were served meanwhile, and nothing was lost.
    assert_eq!(baseline(&server).await, baseline_expected());
}
