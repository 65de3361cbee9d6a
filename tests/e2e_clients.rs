//! Real clients with their default settings. The OpenTelemetry Python SDK is installed
//! from PyPI into a virtualenv on first use (see `common::python_venv`), so a plain
//! `cargo test` sets up everything it needs.

mod common;

use common::{TestServer, python_venv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentelemetry_python_sdk_with_default_settings() {
    let python = tokio::task::spawn_blocking(|| {
        python_venv(
            "otel-python-1.45",
            &[
                "opentelemetry-sdk==1.45.*",
                "opentelemetry-exporter-otlp-proto-http==1.45.*",
            ],
        )
    })
    .await
    .unwrap()
    .join("bin/python");
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/otel_python.py");
    // Only the standard variables: the endpoint, and gzip for the logs exporter.
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &server.url)
        .env("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let trace_id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(trace_id.len(), 32, "{trace_id} {stderr}");

    let (status, doc) = server
        .get(&format!("/threadline/v1/traces/{trace_id}"), &[])
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["span_count"], 2);
    assert_eq!(doc["log_count"], 2);
    assert_eq!(doc["services"], json!(["py-shop"]));
    let names: Vec<_> = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["name"]
                .as_str()
                .or(i["body"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "checkout",
            "charge card",
            "card declined, retrying",
            "order placed"
        ]
    );

    let (_, result) = server
        .get(
            "/threadline/v1/query",
            &[(
                "query",
                r#"{service_name="py-shop", severity="warn"} |= "declined""#,
            )],
        )
        .await;
    let stream = &result["streams"][0];
    assert_eq!(stream["labels"]["deployment_environment"], "test");
    assert_eq!(stream["entries"][0]["trace_id"], trace_id.as_str());
    let rows = server
        .rows(
            "SELECT attributes['attempt'] AS attempt, scope_name FROM logs WHERE severity = 'warn'",
        )
        .await;
    assert_eq!(rows, vec![json!({"attempt": "2", "scope_name": "shop"})]);
}
