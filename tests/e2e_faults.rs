//! Storage faults end to end: a WAL at its disk bound refuses pushes with 503 and
//! `Retry-After`, having stored nothing of them, and every acknowledged push is kept.

mod common;

use common::*;
use serde_json::json;
use threadline::config::RawConfig;

/// With a tiny `wal.max_disk_bytes` and no flush to free it, pushes are acknowledged
/// until the WAL reaches the bound, then refused (OTLP and Loki alike) with 503 and
/// `Retry-After`; a flush makes room again; every acknowledged push is stored exactly
/// once, and no refused one at all, before and after a restart.
#[tokio::test]
async fn a_full_wal_refuses_pushes_with_503_and_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(RawConfig {
        wal_segment_bytes: Some(1024),
        wal_max_disk_bytes: Some(32 * 1024),
        ..settings(dir.path())
    })
    .await;
    let t = now_ns();
    let push = |i: usize| {
        let line = format!("push-{i:03}");
        logs_json("faults", &[(t + i as i64, "INFO", &line, "")])
    };
    let mut acknowledged = Vec::new();
    let refused = loop {
        let i = acknowledged.len();
        let response = server
            .post("/v1/logs", "application/json", push(i).to_string())
            .await;
        match response.status().as_u16() {
            200 => acknowledged.push(format!("push-{i:03}")),
            503 => break (format!("push-{i:03}"), response),
            other => panic!("push {i}: {other} {}", response.text().await.unwrap()),
        }
        assert!(
            acknowledged.len() < 1000,
            "the disk bound never refused a push"
        );
    };
    let (refused_line, response) = refused;
    assert!(acknowledged.len() >= 2, "room for some pushes first");
    assert!(response.headers().contains_key("retry-after"));
    let body = json_body(response).await;
    assert_eq!(body["code"], 14, "UNAVAILABLE: {body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("write-ahead log is full"), "{message}");

    let loki = json!({"streams": [{
        "stream": {"service_name": "faults"},
        "values": [[(t + 5000).to_string(), "from loki"]],
    }]});
    let response = server
        .post("/loki/api/v1/push", "application/json", loki.to_string())
        .await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(server.metric("wal_disk_full_refusals_total").await >= 2);

    let stored = |rows: Vec<serde_json::Value>| -> Vec<String> {
        rows.iter()
            .map(|r| r["body"].as_str().unwrap().to_owned())
            .collect()
    };
    let query = "SELECT body FROM logs WHERE service_name = 'faults' ORDER BY body";
    assert_eq!(stored(server.rows(query).await), acknowledged);
    assert!(!acknowledged.contains(&refused_line));

    // Written to chunks, the WAL's segments go and pushes are taken again.
    server.flush().await;
    server.push_json("/v1/logs", &push(999)).await;
    acknowledged.push("push-999".to_owned());
    assert_eq!(stored(server.rows(query).await), acknowledged);

    let server = server.restart().await;
    assert_eq!(stored(server.rows(query).await), acknowledged);
}
