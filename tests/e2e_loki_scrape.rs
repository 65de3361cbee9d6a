//! Loki push and scraping end to end: a captured winston-loki body, JSON pushes with
//! structured metadata, and scrapes of in-test targets serving OpenMetrics, the
//! classic text format and garbage.

mod common;

use std::time::Duration;

use axum::http::header;
use common::*;
use serde_json::json;
use threadline::config::{FileScrapeJob, RawConfig};

#[tokio::test]
async fn loki_push_protobuf_capture_and_json_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;

    // winston-loki sends snappy protobuf with no Content-Encoding header.
    let capture = std::fs::read("tests/fixtures/loki_push.snappy").unwrap();
    let response = server
        .post("/loki/api/v1/push", "application/x-protobuf", capture)
        .await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let rows = server
        .rows("SELECT service_name, labels['level'] AS level, body FROM logs")
        .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["service_name"], "jstest");
    assert_eq!(rows[0]["level"], "info");
    assert!(
        rows[0]["body"]
            .as_str()
            .unwrap()
            .starts_with("hello protobuf loki")
    );

    // JSON, gzipped, with structured metadata naming the trace.
    let t = now_ns();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let push = json!({"streams": [{
        "stream": {"job": "varlogs", "host": "web-1"},
        "values": [
            [t.to_string(), "GET /cart 200", {"traceID": trace, "user": "42"}],
            [(t + 1).to_string(), format!("retrying trace_id={trace}")]
        ]
    }]});
    let response = server
        .http
        .post(format!("{}/loki/api/v1/push", server.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip(push.to_string().as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let rows = server
        .rows(&format!(
            "SELECT service_name, attributes['user'] AS user FROM logs WHERE trace_id = '{trace}' ORDER BY timestamp"
        ))
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"service_name": "varlogs", "user": "42"}),
            json!({"service_name": "varlogs", "user": null})
        ]
    );
    let (_, doc) = server
        .get(&format!("/threadline/v1/traces/{trace}"), &[])
        .await;
    assert_eq!(doc["log_count"], 2);

    // Errors: bad labels refuse their entries, the rest is written; bad JSON is a 400;
    // an unknown content type a 415.
    let push = json!({"streams": [
        {"stream": {"bad-label": "x"}, "values": [[t.to_string(), "refused"]]},
        {"stream": {"job": "ok"}, "values": [[t.to_string(), "kept"]]}
    ]});
    let response = server
        .post("/loki/api/v1/push", "application/json", push.to_string())
        .await;
    assert_eq!(response.status(), 400);
    let body = json_body(response).await;
    assert!(
        body["error"].as_str().unwrap().contains("rejected 1 of 2"),
        "{body}"
    );
    assert_eq!(
        server
            .rows("SELECT body FROM logs WHERE body = 'kept'")
            .await
            .len(),
        1
    );
    let response = server
        .post("/loki/api/v1/push", "application/json", "{\"streams\": 3}")
        .await;
    assert_eq!(response.status(), 400);
    let response = server.post("/loki/api/v1/push", "text/plain", "x").await;
    assert_eq!(response.status(), 415);
}

const OPENMETRICS: &str = "# TYPE checkout_seconds histogram\n\
# UNIT checkout_seconds seconds\n\
checkout_seconds_bucket{le=\"0.5\"} 4\n\
checkout_seconds_bucket{le=\"+Inf\"} 5 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\",span_id=\"b7ad6b7169203331\"} 1.7 1700000000.5\n\
checkout_seconds_count 5\n\
checkout_seconds_sum 3.1\n\
checkout_seconds_created 1700000000\n\
# EOF\n";

/// Serves `/metrics` (OpenMetrics), `/text` (0.0.4) and `/garbage` on a free port.
async fn targets_server() -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(|headers: axum::http::HeaderMap| async move {
                let accept = headers[header::ACCEPT].to_str().unwrap().to_owned();
                assert!(
                    accept.starts_with("application/openmetrics-text"),
                    "{accept}"
                );
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    OPENMETRICS,
                )
            }),
        )
        .route(
            "/text",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    "# TYPE queue_depth gauge\nqueue_depth{queue=\"a\"} 3\n",
                )
            }),
        )
        .route(
            "/garbage",
            get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "queue_depth{ 3\n") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

fn job(name: &str, path: &str, targets: &[&str]) -> FileScrapeJob {
    let text = format!(
        "job_name = {name:?}\nscrape_interval = \"200ms\"\nmetrics_path = {path:?}\n[[static_configs]]\ntargets = {targets:?}\nlabels = {{ env = \"test\" }}\n"
    );
    toml::from_str(&text).unwrap()
}

#[tokio::test]
async fn scrapes_store_series_and_exemplars_and_report_failures() {
    let dir = tempfile::tempdir().unwrap();
    let address = targets_server().await;
    // A port nothing listens on: bind, read the port, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let server = TestServer::start_with(RawConfig {
        scrape_configs: vec![
            job("shop", "/metrics", &[&address]),
            job("queues", "/text", &[&address]),
            job("broken", "/garbage", &[&address]),
            job("gone", "/metrics", &[&closed]),
        ],
        ..settings(dir.path())
    })
    .await;

    // Wait until every target has been scraped at least twice.
    let mut targets = json!(null);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, body) = server.get("/api/v1/targets", &[]).await;
        assert_eq!(status, 200);
        targets = body["data"]["activeTargets"].clone();
        let scraped = targets
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["health"] != "unknown");
        let ups = server
            .rows("SELECT count(*) AS n FROM samples WHERE metric = 'up'")
            .await;
        if scraped && ups[0]["n"].as_u64().unwrap() >= 8 {
            break;
        }
    }
    let health = |job: &str| {
        targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["labels"]["job"] == job)
            .unwrap()
            .clone()
    };
    assert_eq!(health("shop")["health"], "up", "{targets}");
    assert_eq!(health("queues")["health"], "up", "{targets}");
    let broken = health("broken");
    assert_eq!(broken["health"], "down");
    assert!(
        broken["lastError"].as_str().unwrap().contains("line 1"),
        "{broken}"
    );
    assert_eq!(health("gone")["health"], "down");
    assert_eq!(health("shop")["labels"]["instance"], address.as_str());

    let up = server
        .rows("SELECT job, max(value) AS up FROM samples WHERE metric = 'up' GROUP BY job ORDER BY job")
        .await;
    assert_eq!(
        up,
        vec![
            json!({"job": "broken", "up": 0.0}),
            json!({"job": "gone", "up": 0.0}),
            json!({"job": "queues", "up": 1.0}),
            json!({"job": "shop", "up": 1.0}),
        ]
    );
    let rows = server
        .rows(
            "SELECT metric_type, unit, labels['env'] AS env, start_timestamp FROM samples \
             WHERE metric = 'checkout_seconds_count' LIMIT 1",
        )
        .await;
    assert_eq!(rows[0]["metric_type"], "histogram");
    assert_eq!(rows[0]["unit"], "seconds");
    assert_eq!(rows[0]["env"], "test");
    assert_eq!(rows[0]["start_timestamp"], "2023-11-14T22:13:20Z");
    let rows = server
        .rows("SELECT count(*) AS n FROM samples WHERE metric = 'checkout_seconds_created'")
        .await;
    assert_eq!(rows[0]["n"], 0, "_created is a start time, not a series");
    let rows = server
        .rows("SELECT count(*) AS n FROM samples WHERE metric = 'queue_depth' AND job = 'queues'")
        .await;
    assert!(rows[0]["n"].as_u64().unwrap() >= 1);
    let rows = server
        .rows("SELECT DISTINCT labels['le'] AS le, value, span_id, timestamp FROM exemplars WHERE trace_id = '0af7651916cd43dd8448eb211c80319c'")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"le": "+Inf", "value": 1.7, "span_id": "b7ad6b7169203331", "timestamp": "2023-11-14T22:13:20.500Z"})
        ]
    );
    let rows = server
        .rows("SELECT count(*) AS n FROM samples WHERE metric IN ('scrape_duration_seconds', 'scrape_samples_scraped') AND job = 'shop'")
        .await;
    assert!(rows[0]["n"].as_u64().unwrap() >= 2);
}
