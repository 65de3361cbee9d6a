//! The query API end to end: label-matcher queries, SQL, labels, trace lookup, tenants,
//! restarts and index pruning.

mod common;

use common::*;
use serde_json::json;

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const OTHER_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// A checkout trace with a failing payment call, its log lines (one carrying the trace
/// ID only in its text), and unrelated noise from another service.
async fn seed(server: &TestServer, t: i64) {
    server
        .push_json(
            "/v1/traces",
            &spans_json(
                "checkout",
                &[
                    (
                        TRACE,
                        "eee19b7ec3c1b174",
                        "",
                        "POST /cart",
                        t,
                        250_000_000,
                        true,
                    ),
                    (
                        TRACE,
                        "eee19b7ec3c1b175",
                        "eee19b7ec3c1b174",
                        "charge card",
                        t + 10_000_000,
                        200_000_000,
                        true,
                    ),
                ],
            ),
        )
        .await;
    server
        .push_json(
            "/v1/traces",
            &spans_json(
                "search",
                &[(
                    OTHER_TRACE,
                    "aaa19b7ec3c1b174",
                    "",
                    "GET /q",
                    t,
                    5_000_000,
                    false,
                )],
            ),
        )
        .await;
    server
        .push_json(
            "/v1/logs",
            &logs_json(
                "checkout",
                &[
                    (
                        t + 20_000_000,
                        "ERROR",
                        "payment declined for cart 42",
                        TRACE,
                    ),
                    (
                        t + 30_000_000,
                        "WARN",
                        &format!("retrying trace_id={TRACE} attempt=2"),
                        "",
                    ),
                    (t + 40_000_000, "INFO", "cart 43 created", ""),
                ],
            ),
        )
        .await;
    server
        .push_json(
            "/v1/logs",
            &logs_json("search", &[(t + 5, "INFO", "query took 12ms", OTHER_TRACE)]),
        )
        .await;
}

#[tokio::test]
async fn label_matchers_and_line_filters() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns() - 1_000_000_000;
    seed(&server, t).await;

    let query = |q: &'static str| {
        let server = &server;
        async move {
            let (status, body) = server.get("/threadline/v1/query", &[("query", q)]).await;
            assert_eq!(status, 200, "{q}: {body}");
            body["streams"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| {
                    s["entries"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|e| e["line"].as_str().unwrap().to_owned())
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        query(r#"{service_name="checkout", severity=~"warn|error"}"#).await,
        vec![
            format!("retrying trace_id={TRACE} attempt=2"),
            "payment declined for cart 42".into()
        ]
    );
    assert_eq!(
        query(r#"{service_name="checkout"} |= "cart" != "43""#).await,
        vec!["payment declined for cart 42"]
    );
    assert_eq!(
        query(r#"{service_name=~".+"} |~ "took \\d+ms""#).await,
        vec!["query took 12ms"]
    );
    assert_eq!(
        query(r#"{service_name="checkout"} !~ "cart|retry""#).await,
        Vec::<String>::new()
    );
    assert_eq!(
        query(r#"{service_name="nope"}"#).await,
        Vec::<String>::new()
    );
    assert_eq!(query(r#"{} |= "12ms""#).await, vec!["query took 12ms"]);

    // Grouped by stream with labels; the extracted trace ID is filled in.
    let (_, body) = server
        .get(
            "/threadline/v1/query",
            &[
                ("query", r#"{severity="warn"}"#),
                ("direction", "forward"),
                ("limit", "5"),
            ],
        )
        .await;
    let stream = &body["streams"][0];
    assert_eq!(
        stream["labels"],
        json!({"service_name": "checkout", "severity": "warn"})
    );
    assert_eq!(stream["entries"][0]["trace_id"], TRACE);

    // Errors say where.
    let (status, body) = server
        .get(
            "/threadline/v1/query",
            &[("query", r#"{service_name="checkout" |= "x""#)],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "syntax error at column 26: expected ',' or '}'"
    );
    let (status, _) = server
        .get(
            "/threadline/v1/query",
            &[("query", "{a=\"b\"}"), ("limit", "0")],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .get(
            "/threadline/v1/query",
            &[("query", "{a=\"b\"}"), ("start", "soon")],
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn sql_surface_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns();
    seed(&server, t).await;

    let rows = server
        .rows("SELECT name, duration_ns, status_code, attributes['http.status_code'] AS code FROM spans WHERE trace_id = '5b8efff798038103d269b633813fc60c' ORDER BY start_time")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"name": "POST /cart", "duration_ns": 250000000, "status_code": "error", "code": "500"}),
            json!({"name": "charge card", "duration_ns": 200000000, "status_code": "error", "code": "500"}),
        ]
    );
    let rows = server
        .rows("SELECT trace_id, span_count, error_count, services FROM traces ORDER BY trace_id")
        .await;
    assert_eq!(
        rows[1],
        json!({"trace_id": TRACE, "span_count": 2, "error_count": 2, "services": ["checkout"]})
    );

    // JSON body form, CSV and Arrow formats.
    let response = server
        .post(
            "/threadline/v1/sql?format=csv",
            "application/json",
            json!({"query": "SELECT count(*) AS n FROM logs"}).to_string(),
        )
        .await;
    assert_eq!(response.text().await.unwrap(), "n\n4\n");
    let response = server
        .post(
            "/threadline/v1/sql?format=arrow",
            "application/sql",
            "SELECT 1 AS one",
        )
        .await;
    let reader = arrow::ipc::reader::StreamReader::try_new(
        std::io::Cursor::new(response.bytes().await.unwrap()),
        None,
    )
    .unwrap();
    assert_eq!(reader.schema().field(0).name(), "one");

    // 64-bit stream IDs are strings in JSON (numbers above 2^53 lose digits in most
    // clients); nulls are written, not left out.
    let rows = server
        .rows("SELECT stream_id, severity_number FROM logs LIMIT 1")
        .await;
    assert!(
        rows[0]["stream_id"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok(),
        "{rows:?}"
    );
    assert!(rows[0]["severity_number"].is_null());

    // Filters reach the Parquet reader once (they were once set by the scan and pushed
    // down again by DataFusion, so every row was tested twice).
    server.flush().await;
    let rows = server
        .rows("EXPLAIN SELECT body FROM logs WHERE line_contains(body, 'cart')")
        .await;
    let plan = rows
        .iter()
        .map(|r| r["plan"].as_str().unwrap_or_default())
        .collect::<String>();
    let scan = plan
        .lines()
        .find(|l| l.contains("DataSourceExec: file_groups"))
        .unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(scan.matches("line_contains(body").count(), 1, "{scan}");

    // Unknown endpoints and methods say so in the same error shape.
    let (status, body) = server.get("/threadline/v1/nope", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no such endpoint: /threadline/v1/nope"))
    );
    let (status, body) = server.get("/threadline/v1/sql", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("GET is not allowed on /threadline/v1/sql"))
    );

    // User errors are 400 with DataFusion's message; nothing may write or read files.
    for (sql, expect) in [
        ("SELEC 1", "SQL error"),
        ("SELECT nope FROM logs", "nope"),
        ("SELECT * FROM metrics", "metrics"),
        ("CREATE TABLE x AS SELECT 1", "DDL not supported"),
        ("COPY logs TO '/tmp/x.parquet'", "not supported"),
        ("SELECT * FROM read_parquet('/etc/passwd')", "read_parquet"),
    ] {
        let (status, body) = server.sql(sql).await;
        assert_eq!(status, 400, "{sql}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(expect), "{sql}: {message}");
    }
}

#[tokio::test]
async fn trace_lookup_joins_spans_and_logs_without_a_time_range() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    // Long ago: a lookup must not need to know when.
    let t = 1_600_000_000_000_000_000;
    seed(&server, t).await;
    server.flush().await;

    let (status, doc) = server
        .get(&format!("/threadline/v1/traces/{TRACE}"), &[])
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["span_count"], 2);
    assert_eq!(doc["log_count"], 2);
    assert_eq!(doc["services"], json!(["checkout"]));
    assert_eq!(doc["duration_ns"], 250_000_000);
    let kinds: Vec<_> = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["signal"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["span", "span", "log", "log"]);
    assert_eq!(
        doc["timeline"][3]["body"],
        format!("retrying trace_id={TRACE} attempt=2")
    );
    assert_eq!(doc["timeline"][0]["start_time"], "2020-09-13T12:26:40Z");

    let (status, _) = server
        .get(
            "/threadline/v1/traces/00000000000000000000000000000001",
            &[],
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = server.get("/threadline/v1/traces/xyz", &[]).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "trace id must be 32 hex digits, got 3 characters"
    );
}

#[tokio::test]
async fn labels_values_and_series() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    seed(&server, now_ns()).await;

    let (_, body) = server.get("/threadline/v1/labels", &[]).await;
    assert_eq!(body["labels"], json!(["service_name", "severity"]));
    let (_, body) = server
        .get("/threadline/v1/label/service_name/values", &[])
        .await;
    assert_eq!(body["values"], json!(["checkout", "search"]));
    let (_, body) = server
        .get(
            "/threadline/v1/label/severity/values",
            &[("query", r#"{service_name="checkout"}"#)],
        )
        .await;
    assert_eq!(body["values"], json!(["error", "info", "warn"]));
    let (_, body) = server
        .get(
            "/threadline/v1/label/service_name/values",
            &[
                ("start", "2000-01-01T00:00:00Z"),
                ("end", "2000-01-02T00:00:00Z"),
            ],
        )
        .await;
    assert_eq!(body["values"], json!([]));
    let (_, body) = server
        .get(
            "/threadline/v1/series",
            &[("match", r#"{service_name="search"}"#), ("signal", "spans")],
        )
        .await;
    assert_eq!(body["series"].as_array().unwrap().len(), 1);
    assert_eq!(
        body["series"][0]["labels"],
        json!({"service_name": "search"})
    );
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let body = logs_json("api", &[(now_ns(), "INFO", "secret of team a", "")]).to_string();
    let response = server
        .http
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .header("x-scope-orgid", "team-a")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.flush().await;
    let count = |tenant: Option<&'static str>| {
        let server = &server;
        async move {
            let mut request = server
                .http
                .post(format!("{}/threadline/v1/sql", server.url))
                .body("SELECT count(*) AS n FROM logs");
            if let Some(t) = tenant {
                request = request.header("x-scope-orgid", t);
            }
            let body = json_body(request.send().await.unwrap()).await;
            body["rows"][0]["n"].as_i64().unwrap()
        }
    };
    assert_eq!(count(Some("team-a")).await, 1);
    assert_eq!(count(Some("team-b")).await, 0);
    assert_eq!(count(None).await, 0);
    assert!(dir.path().join("chunks/team-a/logs/api").is_dir());
}

#[tokio::test]
async fn data_survives_restarts_from_chunks_and_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns();
    server
        .push_json("/v1/logs", &logs_json("api", &[(t, "INFO", "first", "")]))
        .await;
    server.flush().await;
    server
        .push_json(
            "/v1/logs",
            &logs_json("api", &[(t + 1, "INFO", "second", "")]),
        )
        .await;
    // A graceful restart flushes the head; the metadata alone finds the chunks again.
    let server = server.restart().await;
    let rows = server
        .rows("SELECT body FROM logs ORDER BY timestamp")
        .await;
    assert_eq!(
        rows,
        vec![json!({"body": "first"}), json!({"body": "second"})]
    );
    assert_eq!(server.metric("chunks").await, 2);
    assert_eq!(server.metric("head_rows").await, 0);
}

#[tokio::test]
async fn indexes_prune_chunks_for_label_queries_and_trace_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns();
    // Ten services, each flushed as its own chunk, each with its own trace.
    for i in 0..10 {
        let trace = format!("{:032x}", i + 1);
        let service = format!("svc{i}");
        server
            .push_json(
                "/v1/logs",
                &logs_json(
                    &service,
                    &[(t + i, "INFO", &format!("hello from {service}"), &trace)],
                ),
            )
            .await;
        server
            .push_json(
                "/v1/traces",
                &spans_json(
                    &service,
                    &[(&trace, "eee19b7ec3c1b174", "", "op", t + i, 1000, false)],
                ),
            )
            .await;
    }
    server.flush().await;
    assert_eq!(server.metric("chunks").await, 20);

    let bytes_before = server.metric("object_store_get_bytes_total").await;
    let (_, body) = server
        .get(
            "/threadline/v1/query",
            &[("query", r#"{service_name="svc3"} |= "hello""#)],
        )
        .await;
    assert_eq!(body["streams"][0]["entries"][0]["line"], "hello from svc3");
    assert_eq!(body["stats"]["chunks_selected"], 1, "{body}");
    assert_eq!(body["stats"]["chunks_pruned"], 9);
    let bytes_label = server.metric("object_store_get_bytes_total").await - bytes_before;
    // Everything read came from one chunk object.
    let sizes: Vec<u64> = walk(&dir.path().join("chunks/default/logs"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert_eq!(sizes.len(), 10);
    assert!(
        bytes_label > 0 && bytes_label <= *sizes.iter().max().unwrap(),
        "{bytes_label} {sizes:?}"
    );

    let (_, doc) = server
        .get(&format!("/threadline/v1/traces/{:032x}", 8), &[])
        .await;
    assert_eq!(doc["span_count"], 1);
    assert_eq!(doc["log_count"], 1);
    // One chunk per signal out of ten each.
    assert_eq!(doc["stats"]["chunks_selected"], 2, "{doc}");
    assert_eq!(doc["stats"]["chunks_pruned"], 18);

    // A scan the indexes cannot narrow reads every chunk.
    let before = server.metric("object_store_get_bytes_total").await;
    server
        .rows("SELECT count(*) FROM logs WHERE body LIKE '%hello%'")
        .await;
    let bytes_full = server.metric("object_store_get_bytes_total").await - before;
    assert!(
        bytes_full >= 5 * bytes_label,
        "full scan {bytes_full} vs selective {bytes_label}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Span metrics count what happened: a span kept with probability p counts 1 / p,
/// from its tracestate threshold or its `sampling.probability` attribute.
#[tokio::test]
async fn span_metrics_correct_for_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns();
    let span = |id: &str, name: &str, extra: serde_json::Value| {
        let mut span = json!({
            "traceId": TRACE, "spanId": id, "name": name, "kind": 2,
            "startTimeUnixNano": t.to_string(),
            "endTimeUnixNano": (t + 20_000_000_000i64).to_string(),
        });
        for (k, v) in extra.as_object().unwrap() {
            span[k] = v.clone();
        }
        span
    };
    let request = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "pay"}}]},
        "scopeSpans": [{"spans": [
            span("eee19b7ec3c1b174", "quarter", json!({"traceState": "ot=th:c"})),
            span("eee19b7ec3c1b175", "half", json!({"attributes": [
                {"key": "sampling.probability", "value": {"doubleValue": 0.5}}]})),
            span("eee19b7ec3c1b176", "all", json!({})),
        ]}]
    }]});
    server.push_json("/v1/traces", &request).await;
    let rows = server
        .rows("SELECT operation, requests, sampled_spans FROM span_metrics ORDER BY operation")
        .await;
    assert_eq!(
        rows,
        [
            json!({"operation": "all", "requests": 1.0, "sampled_spans": 1}),
            json!({"operation": "half", "requests": 2.0, "sampled_spans": 1}),
            json!({"operation": "quarter", "requests": 4.0, "sampled_spans": 1}),
        ]
    );
    // Twenty seconds is past the last bound.
    let rows = server
        .rows("SELECT DISTINCT CAST(le_ms AS VARCHAR) AS le, exemplar_trace_id FROM span_duration_histogram")
        .await;
    assert_eq!(rows, [json!({"le": "inf", "exemplar_trace_id": TRACE})]);
}
