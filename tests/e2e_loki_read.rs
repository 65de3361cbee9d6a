//! Loki's read API end to end, checked against the fields and types Grafana's Loki data
//! source reads: query_range and query (streams, matrix, vector, stats, categorized
//! labels), labels, label values, series, index stats and volume, and the errors.

mod common;

use common::*;
use serde_json::{Value, json};

const S: i64 = 1_000_000_000;
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn api_line(i: i64) -> String {
    if i % 2 == 0 {
        "level=info status=200 took=10ms path=/a".into()
    } else {
        "level=error status=503 took=1.5s path=/b".into()
    }
}

/// Twelve logfmt lines from `api` 10 s apart from `t0` (odd ones errors, the fourth
/// with a trace ID in its metadata) and four JSON lines from `web`.
async fn seed(server: &TestServer, t0: i64) {
    let api: Vec<Value> = (0..12)
        .map(|i| {
            let time = (t0 + i * 10 * S).to_string();
            if i == 3 {
                json!([time, api_line(i), { "trace_id": TRACE }])
            } else {
                json!([time, api_line(i)])
            }
        })
        .collect();
    let web: Vec<Value> = (0..4)
        .map(|i| {
            json!([
                (t0 + 5 * S + i * 10 * S).to_string(),
                format!(
                    r#"{{"level":"warn","req":{{"method":"GET","path":"/x"}},"ms":{}}}"#,
                    i * 100
                )
            ])
        })
        .collect();
    let push = json!({ "streams": [
        { "stream": { "app": "api", "env": "prod" }, "values": api },
        { "stream": { "app": "web", "env": "prod" }, "values": web },
    ]});
    let response = server
        .post("/loki/api/v1/push", "application/json", push.to_string())
        .await;
    assert_eq!(response.status(), 204);
}

async fn start() -> (tempfile::TempDir, TestServer, i64) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let minute = 60 * S;
    let t0 = (now_ns() / minute - 30) * minute;
    seed(&server, t0).await;
    (dir, server, t0)
}

fn lines(body: &Value) -> Vec<String> {
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|v| v[1].as_str().unwrap().to_owned())
        .collect()
}

/// `(metric, [(seconds since t0, value)])` of a matrix, sorted by labels.
fn matrix(body: &Value, t0: i64) -> Vec<(Value, Vec<(i64, String)>)> {
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["data"]["resultType"], "matrix", "{body}");
    let mut out: Vec<_> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let points = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let seconds = p[0].as_f64().expect("matrix times are numbers");
                    let value = p[1].as_str().expect("matrix values are strings");
                    ((seconds as i64) - t0 / S, value.to_owned())
                })
                .collect();
            (s["metric"].clone(), points)
        })
        .collect();
    out.sort_by_key(|(m, _)| m.to_string());
    out
}

fn p(points: &[(i64, &str)]) -> Vec<(i64, String)> {
    points.iter().map(|(t, v)| (*t, v.to_string())).collect()
}

/// Grafana's "Save & test" runs this exact instant query.
#[tokio::test]
async fn grafana_health_check() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let (status, body) = server
        .get(
            "/loki/api/v1/query",
            &[
                ("direction", "backward"),
                ("query", "vector(1)+vector(1)"),
                ("time", "4000000000"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "vector");
    assert_eq!(body["data"]["result"][0]["metric"], json!({}));
    assert_eq!(
        body["data"]["result"][0]["value"],
        json!([4000000000.0, "2"])
    );
    assert!(body["data"]["stats"]["summary"]["execTime"].is_f64());
    let (_, body) = server.get("/loki/api/v1/query", &[("query", "1+1")]).await;
    assert_eq!(body["data"]["resultType"], "scalar");
    assert_eq!(body["data"]["result"][1], "2");
    let (status, body) = server.get("/loki/api/v1/status/buildinfo", &[]).await;
    assert_eq!(status, 200);
    assert!(body["version"].as_str().unwrap().starts_with('3'));
}

#[tokio::test]
async fn log_queries_in_loki_shape() {
    let (_dir, server, t0) = start().await;
    server.flush().await;
    let range = |q: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let server = &server;
        async move {
            let start = t0.to_string();
            let end = (t0 + 10 * 60 * S).to_string();
            let mut query = vec![
                ("query", q),
                ("start", start.as_str()),
                ("end", end.as_str()),
                ("step", "60000ms"),
            ];
            query.extend_from_slice(extra);
            server.get("/loki/api/v1/query_range", &query).await
        }
    };

    let (status, body) = range(r#"{app="api"}"#, &[("limit", "3")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "streams");
    // Newest first; entry times are nanosecond strings.
    assert_eq!(lines(&body), [api_line(11), api_line(10), api_line(9)]);
    let streams = body["data"]["result"].as_array().unwrap();
    assert_eq!(
        streams[0]["values"][0][0],
        (t0 + 110 * S).to_string(),
        "{body}"
    );
    assert!(body["data"]["stats"]["summary"]["totalLinesProcessed"].is_u64());
    assert!(body["data"].get("encodingFlags").is_none());

    // Parsers, label filters and formatting; parsed labels become stream labels.
    let (_, body) = range(
        r#"{app="api"} |= "status" | logfmt | status >= 500 and took > 1s | line_format "{{.path}} {{.took | ToUpper}}""#,
        &[("direction", "forward"), ("limit", "2")],
    )
    .await;
    assert_eq!(lines(&body), ["/b 1.5S", "/b 1.5S"]);
    let stream = &body["data"]["result"][0]["stream"];
    assert_eq!(stream["status"], "503", "{body}");
    assert_eq!(stream["app"], "api");
    let (_, body) = range(
        r#"{app="web"} | json | req_method="GET" and ms >= 200 | keep app, ms"#,
        &[("direction", "forward")],
    )
    .await;
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{body}");
    assert_eq!(result[0]["stream"], json!({"app": "web", "ms": "200"}));
    // Newest first through a pipeline that drops lines: read window by window from the
    // end of the range.
    let (_, body) = range(r#"{app="api"} | logfmt | level="error""#, &[("limit", "2")]).await;
    assert_eq!(lines(&body), [api_line(11), api_line(9)]);
    let stream = &body["data"]["result"][0];
    assert_eq!(stream["values"][0][0], (t0 + 110 * S).to_string());
    assert_eq!(stream["values"][1][0], (t0 + 90 * S).to_string());
    let (_, body) = range(r#"{app="web"} | json | __error__!="""#, &[]).await;
    assert!(lines(&body).is_empty());
    let (_, body) = range(r#"{app="api"} | logfmt --strict | __error__!="""#, &[]).await;
    assert!(lines(&body).is_empty());

    // Categorized labels: stream labels only, then metadata and parsed labels per line.
    let response = server
        .http
        .get(format!("{}/loki/api/v1/query_range", server.url))
        .header("X-Loki-Response-Encoding-Flags", "categorize-labels")
        .query(&[
            ("query", r#"{app="api"} | logfmt | status="503""#),
            ("start", &t0.to_string()),
            ("end", &(t0 + 600 * S).to_string()),
            ("direction", "forward"),
            ("limit", "2"),
        ])
        .send()
        .await
        .unwrap();
    let body = json_body(response).await;
    assert_eq!(body["data"]["encodingFlags"], json!(["categorize-labels"]));
    let stream = &body["data"]["result"][0];
    assert_eq!(
        stream["stream"],
        json!({"app": "api", "env": "prod", "service_name": "api"})
    );
    let first = &stream["values"][0];
    assert_eq!(first.as_array().unwrap().len(), 3);
    assert_eq!(
        first[2],
        json!({"parsed": {"level": "error", "path": "/b", "status": "503", "took": "1.5s"}})
    );
    assert_eq!(
        stream["values"][1][2]["structuredMetadata"],
        json!({"trace_id": TRACE})
    );

    // A global grep: no selector, still planned through the indexes.
    let (_, body) = range(r#"{} |= "ms\":300""#, &[]).await;
    assert_eq!(lines(&body).len(), 1);

    // POST form, as Grafana may send it.
    let response = server
        .http
        .post(format!("{}/loki/api/v1/query_range", server.url))
        .form(&[
            ("query", r#"{app="web"}"#),
            ("start", &t0.to_string()),
            ("end", &(t0 + 600 * S).to_string()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(lines(&json_body(response).await).len(), 4);
}

#[tokio::test]
async fn metric_queries() {
    let (_dir, server, t0) = start().await;
    let query_range = |q: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server
                .get(
                    "/loki/api/v1/query_range",
                    &[
                        ("query", q),
                        ("start", &t0.to_string()),
                        ("end", &(t0 + 120 * S).to_string()),
                        ("step", "60"),
                    ],
                )
                .await;
            assert_eq!(status, 200, "{q}: {body}");
            matrix(&body, t0)
        }
    };
    // Windows are (t - 1m, t]: 1 line at t0, 6 by t0+60s, 5 by t0+120s. As in Loki,
    // structured metadata is part of a line's labels: the line with a trace ID is a
    // series of its own.
    let counts = query_range(r#"count_over_time({app="api"}[1m])"#).await;
    let stream = json!({"app": "api", "env": "prod", "service_name": "api"});
    let mut traced = stream.clone();
    traced["trace_id"] = json!(TRACE);
    assert_eq!(
        counts,
        [
            (traced, p(&[(60, "1")])),
            (stream, p(&[(0, "1"), (60, "5"), (120, "5")])),
        ]
    );
    let total = query_range(r#"sum(count_over_time({app="api"}[1m]))"#).await;
    assert_eq!(total, [(json!({}), p(&[(0, "1"), (60, "6"), (120, "5")]))]);
    // Grafana's log volume query.
    let volume = query_range(
        r#"sum by (level, detected_level) (count_over_time({env="prod"} | drop __error__[1m]))"#,
    )
    .await;
    assert_eq!(
        volume,
        [(json!({}), p(&[(0, "1"), (60, "10"), (120, "5")]))]
    );
    let by_level =
        query_range(r#"sum by (level) (count_over_time({app="api"} | logfmt [1m]))"#).await;
    assert_eq!(
        by_level,
        [
            (json!({"level": "error"}), p(&[(60, "3"), (120, "3")])),
            (
                json!({"level": "info"}),
                p(&[(0, "1"), (60, "3"), (120, "2")])
            ),
        ]
    );
    let rate = query_range(r#"sum(rate({app="api"} |= "error" [1m]))"#).await;
    assert_eq!(rate, [(json!({}), p(&[(60, "0.05"), (120, "0.05")]))]);
    let bytes = query_range(r#"sum(bytes_over_time({app="api"}[1m]))"#).await;
    let expected = |range: std::ops::Range<i64>| range.map(|i| api_line(i).len()).sum::<usize>();
    assert_eq!(
        bytes[0].1,
        p(&[
            (0, &expected(0..1).to_string()),
            (60, &expected(1..7).to_string()),
            (120, &expected(7..12).to_string()),
        ])
    );
    let quantiles = query_range(
        r#"quantile_over_time(0.5, {app="api"} | logfmt | unwrap duration(took) | __error__="" [1m]) by (path)"#,
    )
    .await;
    assert_eq!(
        quantiles,
        [
            (
                json!({"path": "/a"}),
                p(&[(0, "0.01"), (60, "0.01"), (120, "0.01")])
            ),
            (json!({"path": "/b"}), p(&[(60, "1.5"), (120, "1.5")])),
        ]
    );
    let ratio = query_range(
        r#"sum(count_over_time({app="api"} |= "error" [1m])) / sum(count_over_time({app="api"}[1m])) * 100"#,
    )
    .await;
    assert_eq!(ratio, [(json!({}), p(&[(60, "50"), (120, "60")]))]);
    let over = query_range(r#"sum(count_over_time({app="api"}[1m])) > 5"#).await;
    assert_eq!(over, [(json!({}), p(&[(60, "6")]))]);

    // Instant queries give a vector; topk keeps the largest series.
    let (status, body) = server
        .get(
            "/loki/api/v1/query",
            &[
                (
                    "query",
                    r#"topk(1, sum by (path) (count_over_time({app="api"} | logfmt [1m])))"#,
                ),
                ("time", &(t0 + 120 * S).to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0]["metric"], json!({"path": "/b"}));
    assert_eq!(result[0]["value"][1], "3");
    assert_eq!(
        result[0]["value"][0].as_f64().unwrap() as i64,
        (t0 + 120 * S) / S
    );

    // Lines a parser could not read fail a metric query until the query says what to do.
    let (status, body) = server
        .get(
            "/loki/api/v1/query_range",
            &[
                (
                    "query",
                    r#"sum(count_over_time({app="web"} | logfmt | json [1m]))"#,
                ),
                ("start", &t0.to_string()),
                ("end", &(t0 + 120 * S).to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server
        .get(
            "/loki/api/v1/query_range",
            &[
                ("query", r#"sum(count_over_time({app="api"} | json [1m]))"#),
                ("start", &t0.to_string()),
                ("end", &(t0 + 120 * S).to_string()),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("JSONParserErr"), "{body}");
}

#[tokio::test]
async fn labels_series_and_index() {
    let (_dir, server, t0) = start().await;
    server.flush().await;
    let start = t0.to_string();
    let end = (t0 + 600 * S).to_string();
    let range = [("start", start.as_str()), ("end", end.as_str())];

    let (status, body) = server.get("/loki/api/v1/labels", &range).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "success", "data": ["app", "env", "service_name"]})
    );
    let (_, body) = server.get("/loki/api/v1/label/app/values", &range).await;
    assert_eq!(body["data"], json!(["api", "web"]));
    let mut narrowed = range.to_vec();
    narrowed.push(("query", r#"{app="web"}"#));
    let (_, body) = server.get("/loki/api/v1/label/app/values", &narrowed).await;
    assert_eq!(body["data"], json!(["web"]));
    // Outside the range there is nothing.
    let (_, body) = server
        .get("/loki/api/v1/labels", &[("start", "1000"), ("end", "2000")])
        .await;
    assert_eq!(body["data"], json!([]));

    let mut series = range.to_vec();
    series.push(("match[]", r#"{app="api"}"#));
    series.push(("match[]", r#"{app="web"}"#));
    let (_, body) = server.get("/loki/api/v1/series", &series).await;
    assert_eq!(
        body["data"],
        json!([
            {"app": "api", "env": "prod", "service_name": "api"},
            {"app": "web", "env": "prod", "service_name": "web"},
        ])
    );
    let (status, _) = server.get("/loki/api/v1/series", &range).await;
    assert_eq!(status, 400);

    // Index stats answer from the indexes before any query runs.
    let mut stats = range.to_vec();
    stats.push(("query", r#"{} |= "needle""#));
    let (status, body) = server.get("/loki/api/v1/index/stats", &stats).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["streams"], 2);
    assert_eq!(body["entries"], 16);
    assert!(body["chunks"].as_u64().unwrap() >= 1, "{body}");
    assert!(body["bytes"].as_u64().unwrap() > 0);
    stats.pop();
    stats.push(("query", r#"{app="web"}"#));
    let (_, body) = server.get("/loki/api/v1/index/stats", &stats).await;
    assert_eq!(
        (body["streams"].as_u64(), body["entries"].as_u64()),
        (Some(1), Some(4))
    );

    let mut volume = range.to_vec();
    volume.push(("query", r#"{env="prod"}"#));
    volume.push(("targetLabels", "app"));
    let (status, body) = server.get("/loki/api/v1/index/volume", &volume).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "vector");
    let result = body["data"]["result"].as_array().unwrap();
    // Largest first: api has three times web's lines.
    assert_eq!(result[0]["metric"], json!({"app": "api"}));
    assert_eq!(result[1]["metric"], json!({"app": "web"}));
    let bytes: Vec<u64> = result
        .iter()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(bytes[0] > bytes[1] && bytes[1] > 0, "{bytes:?}");
    volume.push(("step", "300"));
    let (status, body) = server.get("/loki/api/v1/index/volume_range", &volume).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2);
    let points = |app: &str| -> Vec<u64> {
        result.iter().find(|s| s["metric"]["app"] == app).unwrap()["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_str().unwrap().parse().unwrap())
            .collect()
    };
    // One api line falls in the first five minutes, eleven in the next; web's four
    // all in the second.
    let api = points("api");
    assert_eq!(api.len(), 2, "{body}");
    assert!(api[0] * 5 < api[1], "{api:?}");
    assert_eq!(points("web").len(), 1);
}

#[tokio::test]
async fn errors_are_plain_text_with_loki_statuses() {
    let (_dir, server, t0) = start().await;
    let start = t0.to_string();
    for (query, expected) in [
        (r#"{app="api""#, "parse error"),
        (r#"{app="api"} | unpack"#, "unpack stage is not supported"),
        (
            r#"absent_over_time({app="api"}[1m])"#,
            "absent_over_time is not supported",
        ),
        (
            r#"rate({app="api"}[1m]) / on(app) rate({app="api"}[1m])"#,
            "on(…)",
        ),
    ] {
        let response = server
            .http
            .get(format!("{}/loki/api/v1/query_range", server.url))
            .query(&[("query", query), ("start", start.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = response.text().await.unwrap();
        assert!(text.contains(expected), "{query}: {text}");
    }
    let (status, body) = server
        .get("/loki/api/v1/query", &[("query", r#"{app="api"}"#)])
        .await;
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("instant"), "{body}");
    let (status, body) = server
        .get(
            "/loki/api/v1/query_range",
            &[
                ("query", r#"count_over_time({app="api"}[1m])"#),
                ("start", &(t0 - 86_400 * S).to_string()),
                ("end", &t0.to_string()),
                ("step", "1"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body.as_str().unwrap().contains("maximum resolution"),
        "{body}"
    );
    let (status, _) = server
        .get(
            "/loki/api/v1/query_range",
            &[("query", r#"{app="api"}"#), ("limit", "1000000")],
        )
        .await;
    assert_eq!(status, 400);
}

/// A grep teaches the filter cache which streams of a chunk hold no matching line: the
/// same grep again reads only the others, and lines that arrive later still count.
#[tokio::test]
async fn a_repeated_grep_reads_only_the_streams_that_can_match() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t0 = (now_ns() / S - 600) * S;
    let push = |streams: Vec<Value>| {
        let server = &server;
        async move {
            let body = json!({ "streams": streams }).to_string();
            let response = server
                .post("/loki/api/v1/push", "application/json", body)
                .await;
            assert_eq!(response.status(), 204);
        }
    };
    // Four streams of 20,000 lines each (20 pages); two lines of one stream match.
    let lines = |level: &str, needle_at: &[i64]| -> Vec<Value> {
        (0..20_000)
            .map(|i| {
                let body = if needle_at.contains(&i) {
                    format!("ERROR pq: deadlock detected in txn {i}")
                } else {
                    format!(
                        "{level} GET /api/item/{i} took {}ms user={} region=eu-{}",
                        i * 7 % 1000,
                        i * 31 % 977,
                        i % 5
                    )
                };
                json!([(t0 + i * 10_000_000).to_string(), body])
            })
            .collect()
    };
    for (app, level, needle_at) in [
        ("api", "info", &[][..]),
        ("api", "warn", &[]),
        ("api", "error", &[7_000, 19_000]),
        ("web", "info", &[]),
    ] {
        let values = lines(&level.to_uppercase(), needle_at);
        push(vec![
            json!({ "stream": { "app": app, "level": level }, "values": values }),
        ])
        .await;
    }
    server.flush().await;

    let time = (t0 / S + 600).to_string();
    let count = |query: &'static str| {
        let server = &server;
        let time = time.clone();
        async move {
            let before = server.metric("object_store_get_bytes_total").await;
            let (status, body) = server
                .get("/loki/api/v1/query", &[("query", query), ("time", &time)])
                .await;
            assert_eq!(status, 200, "{body}");
            let value = &body["data"]["result"][0]["value"][1];
            let fetched = server.metric("object_store_get_bytes_total").await - before;
            (value.as_str().unwrap_or("0").to_owned(), fetched)
        }
    };
    let needle = r#"sum(count_over_time({app=~".+"} |= "deadlock detected" [1h]))"#;
    // Footers and page indexes are cached by the first query.
    count(r#"sum(count_over_time({app=~".+"} |= "warm the footers" [1h]))"#).await;
    let (first, read_first) = count(needle).await;
    let (second, read_second) = count(needle).await;
    assert_eq!((first.as_str(), second.as_str()), ("2", "2"));
    assert!(
        read_second * 2 < read_first,
        "the second grep read {read_second} bytes, the first {read_first}"
    );
    // A regex is a different filter: nothing is known about it yet.
    let (matched, _) = count(r#"sum(count_over_time({app=~".+"} |~ "dead.ock" [1h]))"#).await;
    assert_eq!(matched, "2");

    // Matching lines in a stream the cache knows as empty in the old chunk: a new
    // chunk, and the head, are read whatever the cache says.
    let late = |i: i64| {
        json!([
            (t0 + i * S).to_string(),
            format!("WARN deadlock detected late {i}")
        ])
    };
    push(vec![
        json!({ "stream": { "app": "api", "level": "warn" }, "values": [late(1)] }),
    ])
    .await;
    server.flush().await;
    push(vec![
        json!({ "stream": { "app": "web", "level": "info" }, "values": [late(2)] }),
    ])
    .await;
    let (after, _) = count(needle).await;
    assert_eq!(after, "4");
    let (web, _) = count(r#"sum(count_over_time({app="web"} |= "deadlock detected" [1h]))"#).await;
    assert_eq!(web, "1");
}
