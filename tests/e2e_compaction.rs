//! Compaction and retention over HTTP: an on-demand pass with its streamed progress,
//! queries running while it swaps chunks, the CLI, `/metrics`, and retention by
//! tenant and signal with its API.

mod common;

use common::{BIN, TestServer, logs_json, now_ns, settings};
use serde_json::Value;

const S: i64 = 1_000_000_000;

/// `pushes` OTLP pushes of 20 lines each, every one flushed into its own chunk; a
/// trace ID per push.
async fn small_chunks(server: &TestServer, service: &str, pushes: usize, start: i64) {
    for p in 0..pushes {
        let trace = format!("{:032x}", 0xabc000 + p);
        let records: Vec<(i64, &str, String, &str)> = (0..20)
            .map(|i| {
                let t = start + (p * 20 + i) as i64 * S / 10;
                (t, "INFO", format!("{service} push {p} line {i}"), "")
            })
            .collect();
        let records: Vec<(i64, &str, &str, &str)> = records
            .iter()
            .map(|(t, s, b, _)| (*t, *s, b.as_str(), trace.as_str()))
            .collect();
        server
            .push_json("/v1/logs", &logs_json(service, &records))
            .await;
        server.flush().await;
    }
}

async fn count(server: &TestServer) -> u64 {
    server.rows("SELECT count(*) AS n FROM logs").await[0]["n"]
        .as_u64()
        .unwrap()
}

/// A trace document's lines, in a fixed order (lines of one instant may come in any).
fn timeline(doc: &Value) -> Vec<String> {
    let mut lines: Vec<String> = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| format!("{} {}", item["timestamp"], item["body"]))
        .collect();
    lines.sort();
    lines
}

/// Runs `POST /threadline/v1/compact` and returns its JSON lines.
async fn compact(server: &TestServer, all: bool) -> Vec<Value> {
    let response = server
        .post(
            &format!("/threadline/v1/compact?all={all}"),
            "application/json",
            "",
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = response.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn a_pass_merges_small_chunks_while_queries_see_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let start = now_ns() - 600 * S;
    small_chunks(&server, "checkout", 30, start).await;
    small_chunks(&server, "cart", 10, start).await;
    assert_eq!(server.metric("chunks").await, 40);
    assert_eq!(count(&server).await, 800);
    let trace = format!("{:032x}", 0xabc000 + 7);
    let (status, before) = server
        .get(&format!("/threadline/v1/traces/{trace}"), &[])
        .await;
    assert_eq!(status, 200);

    // Queries run over and over while the pass swaps chunks in; each sees 800 rows.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (url, stop) = (server.url.clone(), std::sync::Arc::clone(&stop));
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut queries = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || queries == 0 {
                let response = http
                    .post(format!("{url}/threadline/v1/sql"))
                    .header("content-type", "application/sql")
                    .body("SELECT count(*) AS n, count(DISTINCT body) AS d FROM logs")
                    .send()
                    .await
                    .unwrap();
                let body = common::json_body(response).await;
                assert_eq!(body["rows"][0]["n"], 800, "{body}");
                assert_eq!(body["rows"][0]["d"], 800, "{body}");
                queries += 1;
            }
            queries
        })
    };
    let events = compact(&server, true).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(watcher.await.unwrap() > 0);

    assert_eq!(events[0]["event"], "planned", "{events:?}");
    assert_eq!(events[0]["merges"], 2);
    assert_eq!(events[0]["chunks"], 40);
    assert!(events.iter().any(|e| e["event"] == "merging"));
    assert_eq!(events.iter().filter(|e| e["event"] == "merged").count(), 2);
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done", "{done}");
    assert_eq!(done["chunks_before"], 40);
    assert_eq!(done["chunks_after"], 2);
    assert_eq!(done["rows_merged"], 800);

    assert_eq!(count(&server).await, 800);
    let (status, after) = server
        .get(&format!("/threadline/v1/traces/{trace}"), &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(after["log_count"], 40);
    assert_eq!(timeline(&after), timeline(&before));
    let (_, grep) = server
        .get(
            "/threadline/v1/query",
            &[("query", r#"{service_name="cart"} |= "push 3 line""#)],
        )
        .await;
    let lines: usize = grep["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["entries"].as_array().unwrap().len())
        .sum();
    assert_eq!(lines, 20, "{grep}");

    assert_eq!(server.metric("chunks").await, 2);
    assert_eq!(server.metric("chunks_retired").await, 40);
    assert_eq!(server.metric("compaction_runs_total").await, 1);
    assert_eq!(server.metric("compaction_chunks_merged_total").await, 40);
    assert_eq!(server.metric("compaction_chunks_written_total").await, 2);
    assert!(server.metric("compaction_bytes_written_total").await > 0);

    // The merged chunks stay in force across a restart.
    let server = server.restart().await;
    assert_eq!(server.metric("chunks").await, 2);
    assert_eq!(count(&server).await, 800);
}

/// By default a pass leaves alone the hours that may still be written to: the one
/// under way, and those that ended less than the head's age limit (here an hour) ago.
#[tokio::test]
async fn only_settled_hours_are_compacted_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let hour = 3600 * S;
    let this_hour = now_ns() / hour * hour;
    small_chunks(&server, "api", 3, this_hour).await;
    small_chunks(&server, "api", 3, this_hour - 2 * hour).await;
    let done = compact(&server, false).await.pop().unwrap();
    assert_eq!(
        (
            done["chunks_before"].as_u64(),
            done["chunks_after"].as_u64()
        ),
        (Some(6), Some(4))
    );
    let done = compact(&server, true).await.pop().unwrap();
    assert_eq!(done["chunks_after"], 2);
    assert_eq!(count(&server).await, 120);
}

#[tokio::test]
async fn the_cli_shows_the_progress_of_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    small_chunks(&server, "api", 4, now_ns() - 60 * S).await;
    let url = server.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(["compact", "--all", "--url", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("1 merges of 4 chunks"), "{stdout}");
    assert!(stdout.contains("merge 1/1: 100% of 80 rows"), "{stdout}");
    assert!(stdout.contains("merge 1/1 done: 4 chunks"), "{stdout}");
    assert!(
        stdout.contains("compaction done: 4 chunks -> 1"),
        "{stdout}"
    );
}

/// Logs are kept an hour, spans for ever, and tenant `audit` keeps logs a year: a pass
/// takes out what is past its period and the API says what is kept until when.
#[tokio::test]
async fn retention_by_tenant_and_signal() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("threadline.toml");
    std::fs::write(
        &config,
        r#"
[retention]
logs = "1h"

[tenants.audit]
retention_logs = "365d"
"#,
    )
    .unwrap();
    let mut raw = threadline::config::RawConfig::from_file(&config).unwrap();
    raw = raw.merge(settings(dir.path()));
    let server = TestServer::start_with(raw).await;
    let now = now_ns();
    small_chunks(&server, "old", 2, now - 3 * 3600 * S).await;
    small_chunks(&server, "new", 2, now - 60 * S).await;
    let audit = server
        .http
        .post(format!("{}/v1/logs", server.url))
        .header("x-scope-orgid", "audit")
        .header("content-type", "application/json")
        .body(logs_json("old", &[(now - 3 * 3600 * S, "INFO", "kept", "")]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(audit.status(), 200);
    server.flush().await;

    let (_, status) = server.get("/threadline/v1/retention", &[]).await;
    let logs = &status["signals"][0];
    assert_eq!(logs["signal"], "logs");
    assert_eq!(logs["period_seconds"], 3600);
    assert_eq!(logs["chunks"], 4);
    assert!(logs["deletes_before"].as_str().is_some(), "{status}");
    assert_eq!(status["signals"][1]["signal"], "spans");
    assert_eq!(status["signals"][1]["period_seconds"], Value::Null);

    let done = compact(&server, false).await.pop().unwrap();
    assert_eq!(done["chunks_expired"], 2, "{done}");
    assert_eq!(count(&server).await, 40);
    assert_eq!(server.metric("retention_chunks_expired_total").await, 2);
    let (_, status) = server.get("/threadline/v1/retention", &[]).await;
    assert_eq!(status["signals"][0]["chunks"], 2);

    let response = server
        .http
        .get(format!("{}/threadline/v1/retention", server.url))
        .header("x-scope-orgid", "audit")
        .send()
        .await
        .unwrap();
    let audit = common::json_body(response).await;
    assert_eq!(audit["signals"][0]["period_seconds"], 365 * 86400);
    assert_eq!(audit["signals"][0]["rows"], 1);
}

#[tokio::test]
async fn a_delete_delay_shorter_than_a_query_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let raw = threadline::config::RawConfig {
        query_timeout: Some("2m".into()),
        compaction_delete_delay: Some("1m".into()),
        ..settings(dir.path())
    };
    let error = threadline::config::Config::from_raw(raw)
        .unwrap_err()
        .to_string();
    assert!(error.contains("compaction_delete_delay"), "{error}");
    assert!(error.contains("longest query timeout"), "{error}");
}
