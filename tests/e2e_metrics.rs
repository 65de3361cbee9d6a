//! Metrics end to end: Prometheus remote write 1.0 and 2.0, OTLP metrics, the exemplar
//! API and the trace document's exemplars, over HTTP against a real server.

mod common;

use common::*;
use prost::Message;
use serde_json::{Value, json};
use threadline::proto::io::prometheus::write::v2 as rw2;
use threadline::proto::prometheus as rw1;

const FIXTURE_TRACE: &str = "5b8efff798038103d269b633813fc60c";

fn snappy(data: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(data).unwrap()
}

async fn remote_write(server: &TestServer, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    server
        .http
        .post(format!("{}/api/v1/write", server.url))
        .header("content-type", content_type)
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn label(name: &str, value: &str) -> rw1::Label {
    rw1::Label {
        name: name.into(),
        value: value.into(),
    }
}

#[tokio::test]
async fn prometheus_remote_write_capture_is_stored_with_its_exemplars() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let capture = std::fs::read("tests/fixtures/rw1.pb").unwrap();
    let request = rw1::WriteRequest::decode(&capture[..]).unwrap();
    let sent: usize = request.timeseries.iter().map(|t| t.samples.len()).sum();

    let response = remote_write(&server, "application/x-protobuf", snappy(&capture)).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());

    let rows = server.rows("SELECT count(*) AS n FROM samples").await;
    assert_eq!(rows[0]["n"], sent);
    let rows = server
        .rows("SELECT metric, trace_id, labels['instance'] AS instance FROM exemplars")
        .await;
    assert!(
        rows.iter()
            .any(|r| r["trace_id"] == FIXTURE_TRACE && r["metric"] == "demo_requests_total"),
        "{rows:?}"
    );

    // Prometheus's exemplar API, by selector with the metric name in front.
    let (status, body) = server
        .get(
            "/api/v1/query_exemplars",
            &[("query", "demo_requests_total{instance=\"127.0.0.1:9101\"}")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    let series = &body["data"][0];
    assert_eq!(series["seriesLabels"]["__name__"], "demo_requests_total");
    let exemplar = &series["exemplars"][0];
    assert_eq!(exemplar["labels"]["trace_id"], FIXTURE_TRACE);
    assert!(exemplar["value"].is_string(), "{exemplar}");
    assert!(exemplar["timestamp"].as_f64().unwrap() > 1.6e9);

    // POST form, as Grafana sends it, with a time range that excludes everything.
    let response = server
        .http
        .post(format!("{}/api/v1/query_exemplars", server.url))
        .form(&[
            ("query", "{__name__=\"demo_requests_total\"}"),
            ("start", "1"),
            ("end", "2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await["data"], json!([]));

    // A panel's whole PromQL expression, as Grafana sends it: the exemplars of the
    // series its selectors name.
    let (status, body) = server
        .get(
            "/api/v1/query_exemplars",
            &[(
                "query",
                "sum by (job) (rate(demo_requests_total{instance=~\"127.*\"}[5m])) / 2",
            )],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["exemplars"][0]["labels"]["trace_id"],
        FIXTURE_TRACE
    );
    let (status, body) = server
        .get("/api/v1/query_exemplars", &[("query", "rate(demo[5m]")])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("invalid PromQL"),
        "{body}"
    );

    // Reverse lookup and the trace document, with no time range.
    let (status, body) = server
        .get(
            &format!("/threadline/v1/traces/{FIXTURE_TRACE}/exemplars"),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"][0]["seriesLabels"]["__name__"],
        "demo_requests_total"
    );
    let (status, doc) = server
        .get(&format!("/threadline/v1/traces/{FIXTURE_TRACE}"), &[])
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["exemplar_count"], 1);
    assert_eq!(doc["timeline"][0]["signal"], "exemplar");
    assert_eq!(
        doc["timeline"][0]["labels"]["__name__"],
        "demo_requests_total"
    );

    // The raw points of a series by label matchers, and the same after a flush.
    let query = [
        ("query", "{__name__=\"demo_requests_total\"}"),
        ("start", "0"),
    ];
    let (status, before) = server.get("/threadline/v1/samples", &query).await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["data"]["resultType"], "matrix");
    assert!(
        !before["data"]["result"][0]["values"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    server.flush().await;
    let (_, after) = server.get("/threadline/v1/samples", &query).await;
    assert_eq!(before["data"], after["data"]);
}

#[tokio::test]
async fn remote_write_errors_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(threadline::config::RawConfig {
        max_body_bytes: Some(64 * 1024),
        ..settings(dir.path())
    })
    .await;
    let t = now_ns() / 1_000_000;
    let good = rw1::WriteRequest {
        timeseries: vec![rw1::TimeSeries {
            labels: vec![label("__name__", "jobs_total"), label("job", "batch")],
            samples: vec![rw1::Sample {
                value: 1.0,
                timestamp: t,
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec();

    // Not snappy: 400, never retried.
    let response = remote_write(&server, "application/x-protobuf", good.clone()).await;
    assert_eq!(response.status(), 400);
    // A snappy header claiming 4 GiB: refused before allocating.
    let response = remote_write(
        &server,
        "application/x-protobuf",
        vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0],
    )
    .await;
    assert_eq!(response.status(), 413);
    // Valid snappy, invalid protobuf.
    let response = remote_write(&server, "application/x-protobuf", snappy(b"\x0a\xff")).await;
    assert_eq!(response.status(), 400);
    let body = json_body(response).await;
    assert!(
        body["error"].as_str().unwrap().contains("protobuf"),
        "{body}"
    );
    // Wrong content type and an unknown proto.
    let response = remote_write(&server, "application/json", snappy(&good)).await;
    assert_eq!(response.status(), 415);
    let response = remote_write(
        &server,
        "application/x-protobuf;proto=io.prometheus.write.v9.Request",
        snappy(&good),
    )
    .await;
    assert_eq!(response.status(), 415);
    assert_eq!(
        server.rows("SELECT count(*) AS n FROM samples").await[0]["n"],
        0
    );

    // One series without a name: the valid one is written, the answer is 400.
    let mixed = rw1::WriteRequest {
        timeseries: vec![
            rw1::TimeSeries {
                labels: vec![label("job", "nameless")],
                samples: vec![rw1::Sample {
                    value: 1.0,
                    timestamp: t,
                }],
                ..Default::default()
            },
            rw1::TimeSeries {
                labels: vec![label("__name__", "jobs_total"), label("job", "batch")],
                samples: vec![rw1::Sample {
                    value: 2.0,
                    timestamp: t,
                }],
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let response = remote_write(
        &server,
        "application/x-protobuf",
        snappy(&mixed.encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), 400);
    let body = json_body(response).await;
    assert!(
        body["error"].as_str().unwrap().contains("metric name"),
        "{body}"
    );
    assert_eq!(
        server.rows("SELECT count(*) AS n FROM samples").await[0]["n"],
        1
    );
}

#[tokio::test]
async fn remote_write_2_interns_symbols_and_reports_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns() / 1_000_000;
    let symbols = [
        "",
        "__name__",
        "http_request_duration_seconds",
        "job",
        "api",
        "trace_id",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "seconds",
        "http_requests_total",
    ];
    let request = rw2::Request {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        timeseries: vec![
            rw2::TimeSeries {
                labels_refs: vec![1, 8, 3, 4],
                samples: vec![rw2::Sample {
                    value: 10.0,
                    timestamp: t,
                }],
                exemplars: vec![rw2::Exemplar {
                    labels_refs: vec![5, 6],
                    value: 1.0,
                    timestamp: t,
                }],
                metadata: Some(rw2::Metadata {
                    r#type: rw2::metadata::MetricType::Counter as i32,
                    help_ref: 0,
                    unit_ref: 0,
                }),
                created_timestamp: t - 60_000,
                histograms: Vec::new(),
            },
            // A native histogram: schema 0, buckets (0.5,1] ×2 and (1,2] ×1.
            rw2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                histograms: vec![rw1::Histogram {
                    count: Some(rw1::histogram::Count::CountInt(3)),
                    sum: 2.5,
                    schema: 0,
                    positive_spans: vec![rw1::BucketSpan {
                        offset: 0,
                        length: 2,
                    }],
                    positive_deltas: vec![2, -1],
                    timestamp: t,
                    ..Default::default()
                }],
                metadata: Some(rw2::Metadata {
                    r#type: rw2::metadata::MetricType::Histogram as i32,
                    help_ref: 0,
                    unit_ref: 7,
                }),
                ..Default::default()
            },
        ],
    };
    let response = remote_write(
        &server,
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        snappy(&request.encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), 204);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("x-prometheus-remote-write-samples-written"), "1");
    assert_eq!(header("x-prometheus-remote-write-histograms-written"), "1");
    assert_eq!(header("x-prometheus-remote-write-exemplars-written"), "1");

    let rows = server
        .rows("SELECT metric_type, start_timestamp IS NOT NULL AS started FROM samples WHERE metric = 'http_requests_total'")
        .await;
    assert_eq!(
        rows,
        vec![json!({"metric_type": "counter", "started": true})]
    );
    let rows = server
        .rows(
            "SELECT labels['le'] AS le, value, unit FROM samples \
             WHERE metric = 'http_request_duration_seconds_bucket' ORDER BY value, le DESC",
        )
        .await;
    let buckets: Vec<(String, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["le"].as_str().unwrap().to_owned(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        buckets,
        vec![
            ("0".to_owned(), 0.0),
            ("1".to_owned(), 2.0),
            ("2".to_owned(), 3.0),
            ("+Inf".to_owned(), 3.0)
        ]
    );
    assert_eq!(rows[0]["unit"], "seconds");

    // A label reference past the symbol table is a 400.
    let bad = rw2::Request {
        symbols: vec!["".into()],
        timeseries: vec![rw2::TimeSeries {
            labels_refs: vec![1, 2],
            ..Default::default()
        }],
    };
    let response = remote_write(
        &server,
        "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        snappy(&bad.encode_to_vec()),
    )
    .await;
    assert_eq!(response.status(), 400);
}

fn otlp_metrics(trace: &str, t: i64) -> Value {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "checkout"}},
            {"key": "service.instance.id", "value": {"stringValue": "pod-7"}}
        ]},
        "scopeMetrics": [{"metrics": [
            {"name": "http.server.request.duration", "unit": "s", "histogram": {
                "aggregationTemporality": 2,
                "dataPoints": [{
                    "timeUnixNano": t.to_string(),
                    "attributes": [{"key": "http.route", "value": {"stringValue": "/pay"}}],
                    "count": "2", "sum": 2.7,
                    "bucketCounts": ["1", "0", "1"], "explicitBounds": [0.5, 1.0],
                    "exemplars": [{"timeUnixNano": t.to_string(), "asDouble": 2.5,
                                   "traceId": trace, "spanId": "00f067aa0ba902b7"}]
                }]
            }}
        ]}]
    }]})
}

#[tokio::test]
async fn otlp_metrics_become_prometheus_series_and_join_their_trace() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    server
        .push_json(
            "/v1/traces",
            &spans_json(
                "checkout",
                &[(
                    trace,
                    "00f067aa0ba902b7",
                    "",
                    "POST /pay",
                    t,
                    t + 2_500_000_000,
                    false,
                )],
            ),
        )
        .await;
    let answer = server
        .push_json("/v1/metrics", &otlp_metrics(trace, t))
        .await;
    assert_eq!(answer, json!({}));

    let rows = server
        .rows(
            "SELECT metric, labels['le'] AS le, value FROM samples \
             WHERE job = 'checkout' AND metric LIKE 'http_server_request_duration_seconds%' \
             ORDER BY metric, value",
        )
        .await;
    let names: Vec<&str> = rows.iter().map(|r| r["metric"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "http_server_request_duration_seconds_bucket",
            "http_server_request_duration_seconds_bucket",
            "http_server_request_duration_seconds_bucket",
            "http_server_request_duration_seconds_count",
            "http_server_request_duration_seconds_sum",
        ]
    );
    let (status, doc) = server
        .get(&format!("/threadline/v1/traces/{trace}"), &[])
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["span_count"], 1);
    assert_eq!(doc["exemplar_count"], 1);
    let exemplar = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["signal"] == "exemplar")
        .unwrap();
    // The exemplar sits on the bucket its value falls in.
    assert_eq!(exemplar["labels"]["le"], "+Inf");
    assert_eq!(exemplar["labels"]["http_route"], "/pay");
    assert_eq!(exemplar["span_id"], "00f067aa0ba902b7");

    // Protobuf and gzip, with a refused point reported as partial success.
    let mut bad = otlp_metrics(trace, t);
    bad["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["histogram"]["dataPoints"][0]["bucketCounts"] =
        json!(["1"]);
    let request = threadline::ingest::otlp_metrics::decode_metrics_request(
        bad.to_string().as_bytes(),
        threadline::ingest::otlp::Encoding::Json,
    )
    .unwrap();
    let response = server
        .http
        .post(format!("{}/v1/metrics", server.url))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzip(&request.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer =
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse::decode(
            response.bytes().await.unwrap(),
        )
        .unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("bucket counts"),
        "{}",
        partial.error_message
    );
}
