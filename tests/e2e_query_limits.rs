//! Query safety end to end: the longest range a query may cover, the number of queries
//! running at once, and a client that goes away cancelling its query.

mod common;

use std::time::{Duration, Instant};

use common::*;
use threadline::config::RawConfig;

const DAY_S: i64 = 86_400;

/// A query that runs until it is stopped.
const ENDLESS: &str = "SELECT sum(value % 7) FROM generate_series(1, 1000000000000)";

#[tokio::test]
async fn ranges_past_the_limit_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let raw = RawConfig {
        query_max_range: Some("7d".into()),
        ..settings(dir.path())
    };
    let server = TestServer::start_with(raw).await;
    let end = now_ns() / 1_000_000_000;
    let start = (end - 8 * DAY_S).to_string();
    let end = end.to_string();
    for (path, query) in [
        ("/loki/api/v1/query_range", r#"{app="api"}"#),
        (
            "/loki/api/v1/query_range",
            r#"count_over_time({app="api"}[1h])"#,
        ),
        ("/api/v1/query_range", "up"),
        ("/api/search", "{}"),
    ] {
        let key = if path == "/api/search" { "q" } else { "query" };
        let (status, body) = server
            .get(
                path,
                &[
                    (key, query),
                    ("start", &start),
                    ("end", &end),
                    ("step", "3600"),
                ],
            )
            .await;
        assert_eq!(status, 400, "{path}: {body}");
        let text = body.to_string();
        assert!(text.contains("query.max_range"), "{path}: {text}");
        assert!(text.contains("covers 8d"), "{path}: {text}");
    }
}

async fn sql_with_timeout(server: &TestServer, sql: &str, timeout: Duration) -> Option<u16> {
    server
        .http
        .post(format!("{}/threadline/v1/sql", server.url))
        .body(sql.to_owned())
        .timeout(timeout)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn a_dropped_client_cancels_its_query_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let raw = RawConfig {
        query_max_concurrent: Some(1),
        query_timeout: Some("60s".into()),
        ..settings(dir.path())
    };
    let server = TestServer::start_with(raw).await;
    // The client gives up after half a second.
    assert_eq!(
        sql_with_timeout(&server, ENDLESS, Duration::from_millis(500)).await,
        None
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric("query_cancelled_total").await == 0 {
        assert!(Instant::now() < deadline, "the query was not cancelled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its slot is free again: the only slot.
    let started = Instant::now();
    let (status, body) = server.sql("SELECT 1 AS one").await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn queries_waiting_past_the_concurrency_limit_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let raw = RawConfig {
        query_max_concurrent: Some(1),
        query_timeout: Some("1s".into()),
        ..settings(dir.path())
    };
    let server = TestServer::start_with(raw).await;
    let long = Duration::from_secs(30);
    // The first holds the only slot until its time limit; the others spend most of
    // theirs waiting for it.
    let first = sql_with_timeout(&server, ENDLESS, long);
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sql_with_timeout(&server, ENDLESS, long).await
    };
    let third = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let response = server
            .http
            .post(format!("{}/threadline/v1/sql", server.url))
            .body(ENDLESS)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry = response.headers().get("retry-after").is_some();
        (status, retry, json_body(response).await)
    };
    let (first, second, (status, retry, body)) = tokio::join!(first, second, third);
    assert_eq!(first, Some(503), "the first query hits its time limit");
    assert_eq!(second, Some(503));
    assert_eq!(status, 503, "{body}");
    assert!(retry);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("query.max_concurrent"),
        "{body}"
    );
    assert!(server.metric("query_rejected_total").await >= 1);
}

/// The samples a metric query holds count against one budget for the whole query, not
/// one per range aggregation.
#[tokio::test]
async fn a_metric_query_holds_its_samples_against_one_budget() {
    let dir = tempfile::tempdir().unwrap();
    let raw = RawConfig {
        // 256 samples of 16 bytes.
        query_max_memory_bytes: Some(4096),
        ..settings(dir.path())
    };
    let server = TestServer::start_with(raw).await;
    let t = now_ns() - 60_000_000_000;
    let values: Vec<serde_json::Value> = (0..200)
        .map(|i| serde_json::json!([(t + i * 1_000_000).to_string(), format!("line {i}")]))
        .collect();
    let push = serde_json::json!({"streams": [{"stream": {"app": "a"}, "values": values}]});
    let response = server
        .post("/loki/api/v1/push", "application/json", push.to_string())
        .await;
    assert_eq!(response.status(), 204);
    let query = |q: &'static str| {
        let server = &server;
        async move {
            server
                .get(
                    "/loki/api/v1/query",
                    &[("query", q), ("time", &(t + 1_000_000_000).to_string())],
                )
                .await
        }
    };
    let (status, body) = query(r#"sum(count_over_time({app="a"}[10m]))"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "200");
    let (status, body) =
        query(r#"sum(count_over_time({app="a"}[10m])) + sum(count_over_time({app="a"}[10m]))"#)
            .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.as_str().unwrap().contains("query.max_memory_bytes"),
        "{body}"
    );
}

/// `[tenants.<id>]` query limits apply to that tenant alone, and each tenant has its
/// own concurrency slots: one tenant's busy queries never hold up another's.
#[tokio::test]
async fn tenants_have_their_own_query_limits_and_slots() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = RawConfig {
        query_max_concurrent: Some(1),
        query_timeout: Some("60s".into()),
        ..settings(dir.path())
    };
    raw.tenants.insert(
        "tight".into(),
        threadline::config::FileTenantLimits {
            query_timeout: Some("1s".into()),
            query_max_range: Some("1d".into()),
            ..Default::default()
        },
    );
    let server = TestServer::start_with(raw).await;
    let sql = |tenant: &'static str, sql: &'static str| {
        let server = &server;
        async move {
            let response = server
                .http
                .post(format!("{}/threadline/v1/sql", server.url))
                .header("x-scope-orgid", tenant)
                .body(sql)
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            response.ok().map(|r| r.status().as_u16())
        }
    };
    // The default tenant's only slot is taken by an endless query for the whole test;
    // the tight tenant's endless query stops at its own one-second limit.
    let endless = sql("default", ENDLESS);
    let tight = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let status = sql("tight", ENDLESS).await;
        let quick = sql("tight", "SELECT 1").await;
        (status, started.elapsed(), quick)
    };
    let (status, elapsed, quick) = tokio::select! {
        _ = endless => panic!("the endless query ended"),
        result = tight => result,
    };
    assert_eq!(status, Some(503));
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert_eq!(quick, Some(200), "the tight tenant's slot is its own");

    let end = now_ns() / 1_000_000_000;
    let start = (end - 2 * DAY_S).to_string();
    let end = end.to_string();
    let range = |tenant: &'static str| {
        let (start, end) = (start.clone(), end.clone());
        let server = &server;
        async move {
            let response = server
                .http
                .get(format!("{}/loki/api/v1/query_range", server.url))
                .header("x-scope-orgid", tenant)
                .query(&[
                    ("query", r#"{app="api"}"#),
                    ("start", &start),
                    ("end", &end),
                ])
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, text) = range("tight").await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("at most 24h0m"), "{text}");
    assert_eq!(range("other").await.0, 200);
}
