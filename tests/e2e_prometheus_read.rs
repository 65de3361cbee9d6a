//! Prometheus's read API end to end, checked against what Grafana's Prometheus data
//! source reads: its health check, instant and range PromQL queries over remote-write
//! data (rates, aggregations, histogram quantiles, arithmetic), labels, series,
//! metadata, buildinfo, rules and the exemplar probe.

mod common;

use common::*;
use prost::Message;
use serde_json::{Value, json};
use threadline::proto::prometheus as rw1;

const S: i64 = 1_000_000_000;

fn series(labels: &[(&str, &str)], samples: Vec<rw1::Sample>) -> rw1::TimeSeries {
    rw1::TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| rw1::Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples,
        ..Default::default()
    }
}

/// Ten minutes of 15 s samples from `t0`: request counters growing 1/s (code 200) and
/// 0.1/s (code 500), and a latency histogram with 10 observations per scrape, 2 at
/// most 0.1 s and 8 at most 0.5 s.
async fn seed(server: &TestServer, t0: i64) {
    let points = |per_scrape: f64| -> Vec<rw1::Sample> {
        (0..=40)
            .map(|i| rw1::Sample {
                value: per_scrape * i as f64,
                timestamp: (t0 + i * 15 * S) / 1_000_000,
            })
            .collect()
    };
    let request = rw1::WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("code", "200"),
                ],
                points(15.0),
            ),
            series(
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("code", "500"),
                ],
                points(1.5),
            ),
            series(
                &[
                    ("__name__", "latency_seconds_bucket"),
                    ("job", "api"),
                    ("le", "0.1"),
                ],
                points(2.0),
            ),
            series(
                &[
                    ("__name__", "latency_seconds_bucket"),
                    ("job", "api"),
                    ("le", "0.5"),
                ],
                points(8.0),
            ),
            series(
                &[
                    ("__name__", "latency_seconds_bucket"),
                    ("job", "api"),
                    ("le", "+Inf"),
                ],
                points(10.0),
            ),
        ],
        metadata: vec![rw1::MetricMetadata {
            r#type: rw1::metric_metadata::MetricType::Counter as i32,
            metric_family_name: "http_requests_total".into(),
            help: "Requests.".into(),
            unit: String::new(),
        }],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap();
    let response = server
        .http
        .post(format!("{}/api/v1/write", server.url))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

async fn start() -> (tempfile::TempDir, TestServer, i64) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t0 = (now_ns() / (60 * S) - 30) * 60 * S;
    seed(&server, t0).await;
    (dir, server, t0)
}

fn secs(t: i64) -> String {
    (t / S).to_string()
}

/// `(labels, values)` of a matrix, with values as numbers.
fn matrix(body: &Value) -> Vec<(Value, Vec<f64>)> {
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["data"]["resultType"], "matrix", "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let values = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    assert!(p[0].is_number(), "{p}");
                    p[1].as_str().unwrap().parse::<f64>().unwrap()
                })
                .collect();
            (s["metric"].clone(), values)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * b.abs().max(1.0)
}

#[tokio::test]
async fn grafana_health_check_and_probes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (status, body) = server
        .get("/api/v1/query", &[("query", "1+1"), ("time", "4")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "success", "data": {"resultType": "scalar", "result": [4.0, "2"]}})
    );
    let (_, body) = server.get("/api/v1/status/buildinfo", &[]).await;
    assert_eq!(body["status"], "success");
    assert!(body["data"]["version"].as_str().unwrap().starts_with('3'));
    assert!(
        body["data"].get("features").is_none(),
        "features mean Mimir to Grafana"
    );
    let (_, body) = server.get("/api/v1/rules", &[]).await;
    assert_eq!(body["data"]["groups"], json!([]));
    // Grafana probes exemplars with millisecond times.
    let now_ms = (now_ns() / 1_000_000).to_string();
    let (status, body) = server
        .get(
            "/api/v1/query_exemplars",
            &[
                ("query", "test"),
                ("start", "1700000000000"),
                ("end", &now_ms),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "success", "data": []}));
}

#[tokio::test]
async fn promql_queries() {
    let (_dir, server, t0) = start().await;
    server.flush().await;
    let at = t0 + 300 * S;

    let (status, body) = server
        .get(
            "/api/v1/query",
            &[
                ("query", r#"http_requests_total{code="200"}"#),
                ("time", &secs(at)),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = &body["data"]["result"][0];
    assert_eq!(
        result["metric"],
        json!({"__name__": "http_requests_total", "code": "200", "job": "api"})
    );
    assert_eq!(result["value"], json!([(at / S) as f64, "300"]));

    let range = |q: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server
                .get(
                    "/api/v1/query_range",
                    &[
                        ("query", q),
                        ("start", &secs(t0 + 120 * S)),
                        ("end", &secs(at)),
                        ("step", "60s"),
                    ],
                )
                .await;
            assert_eq!(status, 200, "{q}: {body}");
            matrix(&body)
        }
    };
    let rates = range("sum by (code) (rate(http_requests_total[1m]))").await;
    assert_eq!(rates.len(), 2);
    assert_eq!(rates[0].0, json!({"code": "200"}));
    assert_eq!(rates[1].0, json!({"code": "500"}));
    assert_eq!(rates[0].1.len(), 4);
    assert!(rates[0].1.iter().all(|v| close(*v, 1.0)), "{rates:?}");
    assert!(rates[1].1.iter().all(|v| close(*v, 0.1)), "{rates:?}");

    let p50 =
        range("histogram_quantile(0.5, sum by (le) (rate(latency_seconds_bucket[1m])))").await;
    assert_eq!(p50[0].0, json!({}));
    assert!(p50[0].1.iter().all(|v| close(*v, 0.3)), "{p50:?}");

    let ratio = range(
        r#"sum(rate(http_requests_total{code="500"}[1m])) / sum(rate(http_requests_total[1m])) * 100"#,
    )
    .await;
    assert!(
        ratio[0].1.iter().all(|v| close(*v, 10.0 / 1.1)),
        "{ratio:?}"
    );
    // Arithmetic drops the metric name; a comparison filters.
    let scaled = range(r#"rate(http_requests_total{code="500"}[1m]) * 60"#).await;
    assert_eq!(scaled[0].0, json!({"code": "500", "job": "api"}));
    let big = range("http_requests_total > 200").await;
    assert_eq!(
        big,
        [(
            json!({"__name__": "http_requests_total", "code": "200", "job": "api"}),
            vec![240.0, 300.0]
        )]
    );
    // Set operators match series by their labels other than the name.
    let gated = range("rate(http_requests_total[1m]) and http_requests_total > 200").await;
    assert_eq!(gated.len(), 1, "{gated:?}");
    assert_eq!(gated[0].0, json!({"code": "200", "job": "api"}));
    assert_eq!(gated[0].1.len(), 2);
    let (status, body) = server
        .get(
            "/api/v1/query",
            &[
                ("query", "http_requests_total / on_missing_metric_total"),
                ("time", &secs(at)),
            ],
        )
        .await;
    assert_eq!((status, body["data"]["result"].clone()), (200, json!([])));
    let increase = range(r#"increase(http_requests_total{code="200"}[2m])"#).await;
    assert!(
        increase[0].1.iter().all(|v| close(*v, 120.0)),
        "{increase:?}"
    );
    let top = range("topk(1, rate(http_requests_total[1m]))").await;
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].0["code"], "200");

    // POST form, Grafana's default.
    let response = server
        .http
        .post(format!("{}/api/v1/query_range", server.url))
        .form(&[
            ("query", "count(http_requests_total)"),
            ("start", &secs(at)),
            ("end", &secs(at)),
            ("step", "15"),
        ])
        .send()
        .await
        .unwrap();
    let body = json_body(response).await;
    assert_eq!(matrix(&body), [(json!({}), vec![2.0])]);

    // Errors carry Prometheus's errorType.
    for (query, expected) in [
        ("sum(", "invalid parameter \"query\""),
        ("http_requests_total[5m]", "range selector"),
        (
            "label_replace(up, \"a\", \"b\", \"c\", \"d\")",
            "label_replace",
        ),
        ("a / on(job) b", "on(…)"),
    ] {
        let (status, body) = server
            .get("/api/v1/query", &[("query", query), ("time", &secs(at))])
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], "bad_data");
        assert!(
            body["error"].as_str().unwrap().contains(expected),
            "{query}: {body}"
        );
    }
    let (status, body) = server
        .get(
            "/api/v1/query_range",
            &[
                ("query", "up"),
                ("start", &secs(at - 86_400 * S)),
                ("end", &secs(at)),
                ("step", "1"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("maximum resolution"),
        "{body}"
    );
    let (status, _) = server
        .get("/api/v1/query_range", &[("query", "up"), ("start", "0")])
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn labels_series_and_metadata() {
    let (_dir, server, t0) = start().await;
    let range = [("start", secs(t0)), ("end", secs(t0 + 600 * S))];
    let range: Vec<(&str, &str)> = range.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let (_, body) = server.get("/api/v1/labels", &range).await;
    assert_eq!(body["data"], json!(["__name__", "code", "job", "le"]));
    let (_, body) = server.get("/api/v1/label/__name__/values", &range).await;
    assert_eq!(
        body["data"],
        json!(["http_requests_total", "latency_seconds_bucket"])
    );
    let mut matched = range.clone();
    matched.push(("match[]", r#"{__name__="http_requests_total"}"#));
    let (_, body) = server.get("/api/v1/label/code/values", &matched).await;
    assert_eq!(body["data"], json!(["200", "500"]));
    let (_, body) = server.get("/api/v1/labels", &matched).await;
    assert_eq!(body["data"], json!(["__name__", "code", "job"]));
    let mut limited = matched.clone();
    limited.push(("limit", "2"));
    let (_, body) = server.get("/api/v1/labels", &limited).await;
    assert_eq!(body["data"], json!(["__name__", "code"]));

    let mut series = range.clone();
    series.push(("match[]", r#"http_requests_total{code="500"}"#));
    series.push(("match[]", r#"latency_seconds_bucket{le="+Inf"}"#));
    let (status, body) = server.get("/api/v1/series", &series).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!([
            {"__name__": "http_requests_total", "code": "500", "job": "api"},
            {"__name__": "latency_seconds_bucket", "job": "api", "le": "+Inf"},
        ])
    );
    let (status, body) = server.get("/api/v1/series", &range).await;
    assert_eq!(
        (status, body["errorType"].as_str()),
        (400, Some("bad_data"))
    );

    let (status, body) = server.get("/api/v1/metadata", &range).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["http_requests_total"],
        json!([{"type": "counter", "help": "", "unit": ""}])
    );
    assert!(body["data"]["latency_seconds_bucket"].is_array());
}
