//! OTLP/HTTP ingest end to end: encodings, responses and every error status.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde_json::json;

fn proto_logs(service: &str, lines: &[&str], t: i64) -> ExportLogsServiceRequest {
    let string = |s: &str| AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(string(service)),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: lines
                    .iter()
                    .map(|l| LogRecord {
                        time_unix_nano: t as u64,
                        severity_text: "INFO".into(),
                        body: Some(string(l)),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test]
async fn protobuf_gzip_and_json_are_accepted_and_answered_in_kind() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns();

    let body = proto_logs("billing", &["invoice sent", "invoice paid"], t).encode_to_vec();
    let response = server
        .http
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzip(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let decoded = ExportLogsServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(decoded.partial_success, None);

    let answer = server
        .push_json(
            "/v1/logs",
            &logs_json("billing", &[(t + 1, "WARN", "invoice late", "")]),
        )
        .await;
    assert_eq!(answer, json!({}));

    // The very next query sees all three.
    let rows = server
        .rows("SELECT severity, body FROM logs WHERE service_name = 'billing' ORDER BY timestamp, body")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"severity": "info", "body": "invoice paid"}),
            json!({"severity": "info", "body": "invoice sent"}),
            json!({"severity": "warn", "body": "invoice late"}),
        ]
    );
}

#[tokio::test]
async fn javascript_exporter_payload_is_accepted() {
    // Captured from @opentelemetry/exporter-trace-otlp-http 0.223: intValue as numbers.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/js_trace.json"
    ))
    .unwrap();
    let response = server.post("/v1/traces", "application/json", body).await;
    assert_eq!(response.status(), 200);
    let rows = server
        .rows("SELECT trace_id, name, service_name, kind FROM spans")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"trace_id": "106d1610172116c3cf884191802b3cb1", "name": "js-op", "service_name": "unknown_service:node", "kind": "internal"})
        ]
    );
}

#[tokio::test]
async fn partial_success_names_what_was_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns();
    let body = spans_json(
        "api",
        &[
            (
                "5b8efff798038103d269b633813fc60c",
                "eee19b7ec3c1b174",
                "",
                "ok",
                t,
                10,
                false,
            ),
            (
                "5b8efff798038103d269b633813fc6",
                "eee19b7ec3c1b175",
                "",
                "short id",
                t,
                10,
                false,
            ),
        ],
    );
    let answer = server.push_json("/v1/traces", &body).await;
    assert_eq!(answer["partialSuccess"]["rejectedSpans"], "1");
    assert_eq!(
        answer["partialSuccess"]["errorMessage"],
        "rejected 1 of 2 spans: trace id must be 16 bytes, got 15"
    );
    assert_eq!(
        server.rows("SELECT name FROM spans").await,
        vec![json!({"name": "ok"})]
    );

    // The same over protobuf.
    let request = serde_json::from_value::<
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
    >(body)
    .unwrap();
    let response = server
        .post(
            "/v1/traces",
            "application/x-protobuf",
            request.encode_to_vec(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let decoded = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(decoded.partial_success.unwrap().rejected_spans, 1);
}

#[tokio::test]
async fn bad_input_gets_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = settings(dir.path());
    raw.max_body_bytes = Some(64 * 1024);
    let server = TestServer::start_with(raw).await;
    let valid = logs_json("api", &[(now_ns(), "INFO", "hello", "")]).to_string();

    // 415: a content type OTLP does not define, and an unknown content encoding.
    let response = server.post("/v1/logs", "text/plain", valid.clone()).await;
    assert_eq!(response.status(), 415);
    let response = server
        .http
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body(valid.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);

    // 400: undecodable protobuf, JSON and gzip.
    let response = server
        .post("/v1/logs", "application/x-protobuf", vec![0xff, 0xff, 0xff])
        .await;
    assert_eq!(response.status(), 400);
    let response = server
        .post("/v1/traces", "application/json", "{\"resourceSpans\": 7}")
        .await;
    assert_eq!(response.status(), 400);
    let body = json_body(response).await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid OTLP JSON"),
        "{body}"
    );
    let response = server
        .http
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body("not gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // 413: a plain body over the limit, and a small gzip body that inflates past it.
    let response = server
        .post("/v1/logs", "application/json", vec![b' '; 65 * 1024])
        .await;
    assert_eq!(response.status(), 413);
    let bomb = gzip(&vec![b' '; 4 << 20]);
    assert!(bomb.len() < 64 * 1024);
    let response = server
        .http
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body = json_body(response).await;
    assert_eq!(
        body["message"],
        "request body exceeds the limit of 65536 bytes after decompression"
    );

    // 400: a tenant ID that could change an object key.
    let response = server
        .http
        .post(format!("{}/v1/logs", server.url))
        .header("content-type", "application/json")
        .header("x-scope-orgid", "../etc")
        .body(valid.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Nothing of the above was stored.
    let (status, body) = server.sql("SELECT count(*) AS n FROM logs").await;
    assert_eq!(status, 200);
    assert_eq!(body["rows"], json!([{"n": 0}]));
}

#[tokio::test]
async fn a_chunked_body_without_length_is_limited_while_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = settings(dir.path());
    raw.max_body_bytes = Some(1024);
    let server = TestServer::start_with(raw).await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b' '; 100])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = server.post("/v1/logs", "application/json", body).await;
    assert_eq!(response.status(), 413);
}
