//! Tempo's API end to end, checked against what Grafana's Tempo data source reads:
//! trace by ID in protobuf (v1 `Trace`, v2 `TraceByIDResponse`) and JSON, TraceQL
//! search, tag names and values, echo and buildinfo.

mod common;

use common::*;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use serde_json::{Value, json};

const CART: &str = "5b8efff798038103d269b633813fc60c";
const SEARCH: &str = "0af7651916cd43dd8448eb211c80319c";
const MS: i64 = 1_000_000;

#[derive(Clone, PartialEq, Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
}

/// A checkout trace (root `POST /cart` 250 ms, child `charge card` failing with 500)
/// and a fast search trace.
async fn seed(server: &TestServer, t: i64) {
    server
        .push_json(
            "/v1/traces",
            &spans_json(
                "checkout",
                &[
                    (
                        CART,
                        "eee19b7ec3c1b174",
                        "",
                        "POST /cart",
                        t,
                        250 * MS,
                        false,
                    ),
                    (
                        CART,
                        "eee19b7ec3c1b175",
                        "eee19b7ec3c1b174",
                        "charge card",
                        t + 10 * MS,
                        200 * MS,
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
                    SEARCH,
                    "aaa19b7ec3c1b174",
                    "",
                    "GET /q",
                    t + 5 * MS,
                    5 * MS,
                    false,
                )],
            ),
        )
        .await;
}

async fn get_bytes(server: &TestServer, path: &str, accept: &str) -> (u16, Vec<u8>) {
    let response = server
        .http
        .get(format!("{}{path}", server.url))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn trace_by_id_in_protobuf_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    seed(&server, now_ns() - 60_000 * MS).await;
    server.flush().await;

    // v2 first, as Grafana asks.
    let (status, body) = get_bytes(
        &server,
        &format!("/api/v2/traces/{CART}"),
        "application/protobuf",
    )
    .await;
    assert_eq!(status, 200);
    let trace = TraceByIdResponse::decode(body.as_slice())
        .unwrap()
        .trace
        .unwrap();
    assert_eq!(trace.resource_spans.len(), 1);
    let resource = trace.resource_spans[0].resource.as_ref().unwrap();
    let service = resource
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.clone());
    assert_eq!(
        service,
        Some(
            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                "checkout".into()
            )
        )
    );
    let spans = &trace.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].name, "POST /cart");
    assert_eq!(hex(&spans[0].trace_id), CART);
    assert!(spans[0].parent_span_id.is_empty());
    assert_eq!(hex(&spans[1].parent_span_id), "eee19b7ec3c1b174");
    assert_eq!(spans[1].kind, 2);
    assert_eq!(spans[1].status.as_ref().unwrap().code, 2);
    assert_eq!(
        spans[1].end_time_unix_nano - spans[1].start_time_unix_nano,
        200 * MS as u64
    );
    assert_eq!(
        trace.resource_spans[0].scope_spans[0]
            .scope
            .as_ref()
            .unwrap()
            .name,
        "test"
    );

    // v1 protobuf is the bare trace.
    let (status, body) = get_bytes(
        &server,
        &format!("/api/traces/{CART}"),
        "application/protobuf",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        TracesData::decode(body.as_slice())
            .unwrap()
            .resource_spans
            .len(),
        1
    );

    // JSON: hex IDs, times as strings.
    let (status, body) = server.get(&format!("/api/v2/traces/{CART}"), &[]).await;
    assert_eq!(status, 200);
    let span = &body["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][1];
    assert_eq!(span["traceId"], CART, "{body}");
    assert_eq!(span["name"], "charge card");
    assert!(span["startTimeUnixNano"].is_string(), "{span}");
    let (_, body) = server.get(&format!("/api/traces/{CART}"), &[]).await;
    assert_eq!(body["batches"].as_array().unwrap().len(), 1);

    // Unknown traces are 404 on both versions (Grafana falls back from v2 on 404);
    // short IDs are left-padded; bad IDs are 400.
    for path in ["/api/v2/traces/", "/api/traces/"] {
        let (status, _) = server
            .get(&format!("{path}11111111111111111111111111111111"), &[])
            .await;
        assert_eq!(status, 404, "{path}");
        let (status, _) = server.get(&format!("{path}not-hex"), &[]).await;
        assert_eq!(status, 400, "{path}");
    }
    // Tempo pads short IDs with leading zeros.
    let (status, _) = server
        .get("/api/traces/af7651916cd43dd8448eb211c80319c", &[])
        .await;
    assert_eq!(status, 200);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn search(server: &TestServer, t: i64, q: &str, extra: &[(&str, &str)]) -> Value {
    let start = (t / 1_000_000_000 - 60).to_string();
    let end = (t / 1_000_000_000 + 60).to_string();
    let mut query = vec![("q", q), ("start", &start), ("end", &end)];
    query.extend_from_slice(extra);
    let (status, body) = server.get("/api/search", &query).await;
    assert_eq!(status, 200, "{q}: {body}");
    body
}

fn trace_ids(body: &Value) -> Vec<String> {
    body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn traceql_search() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns() - 60_000 * MS;
    seed(&server, t).await;

    // What Grafana's search builder sends, field types as its parser reads them.
    let body = search(
        &server,
        t,
        r#"{resource.service.name="checkout" && status=error && duration>100ms && span.http.status_code>=500}"#,
        &[("limit", "20"), ("spss", "3")],
    )
    .await;
    let trace = &body["traces"][0];
    assert_eq!(trace["traceID"], CART, "{body}");
    assert_eq!(trace["rootServiceName"], "checkout");
    assert_eq!(trace["rootTraceName"], "POST /cart");
    assert_eq!(trace["startTimeUnixNano"], t.to_string());
    assert_eq!(trace["durationMs"], 250);
    let spans = trace["spanSets"][0]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0]["spanID"], "eee19b7ec3c1b175");
    assert_eq!(spans[0]["durationNanos"], (200 * MS).to_string());
    assert!(spans[0]["startTimeUnixNano"].is_string());
    assert_eq!(trace["spanSets"][0]["matched"], 1);
    assert_eq!(trace["spanSet"], trace["spanSets"][0]);
    assert!(body["metrics"].is_object());

    // Every trace, newest first; limit applies.
    assert_eq!(
        trace_ids(&search(&server, t, "{}", &[]).await),
        [SEARCH, CART]
    );
    assert_eq!(
        trace_ids(&search(&server, t, "{}", &[("limit", "1")]).await),
        [SEARCH]
    );
    // Spanset operators.
    assert_eq!(
        trace_ids(
            &search(
                &server,
                t,
                r#"{ name = "POST /cart" } > { name = "charge card" }"#,
                &[]
            )
            .await
        ),
        [CART]
    );
    assert!(
        trace_ids(
            &search(
                &server,
                t,
                r#"{ name = "charge card" } > { name = "POST /cart" }"#,
                &[]
            )
            .await
        )
        .is_empty()
    );
    assert_eq!(
        trace_ids(
            &search(
                &server,
                t,
                r#"{ name = "GET /q" } || { status = error }"#,
                &[]
            )
            .await
        ),
        [SEARCH, CART]
    );
    assert!(
        trace_ids(
            &search(
                &server,
                t,
                r#"{ name = "GET /q" } && { status = error }"#,
                &[]
            )
            .await
        )
        .is_empty()
    );
    assert_eq!(
        trace_ids(
            &search(
                &server,
                t,
                r#"{ .service.name =~ "check.*" } | count() > 1"#,
                &[]
            )
            .await
        ),
        [CART]
    );
    // Trace-level intrinsics and the legacy parameters.
    assert_eq!(
        trace_ids(&search(&server, t, r#"{ rootServiceName = "search" }"#, &[]).await),
        [SEARCH]
    );
    assert_eq!(
        trace_ids(&search(&server, t, "{ traceDuration > 100ms }", &[]).await),
        [CART]
    );
    assert_eq!(
        trace_ids(&search(&server, t, "{}", &[("minDuration", "100ms")]).await),
        [CART]
    );
    assert_eq!(
        trace_ids(&search(&server, t, "{}", &[("maxDuration", "100ms")]).await),
        [SEARCH]
    );
    assert_eq!(
        trace_ids(&search(&server, t, "{}", &[("tags", "service.name=search")]).await),
        [SEARCH]
    );
    // Outside the time range there is nothing.
    let (_, body) = server
        .get(
            "/api/search",
            &[("q", "{}"), ("start", "1000"), ("end", "2000")],
        )
        .await;
    assert!(trace_ids(&body).is_empty());

    let (status, body) = server
        .get("/api/search", &[("q", r#"{ rootName = "x" } && {}"#)])
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("one spanset filter"),
        "{body}"
    );
    assert_eq!(
        trace_ids(
            &search(
                &server,
                t,
                r#"{ rootName = "GET /q" || rootName = "POST /cart" }"#,
                &[]
            )
            .await
        ),
        [SEARCH, CART]
    );
    let (status, body) = server.get("/api/search", &[("q", "{ nope = 1 }")]).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown intrinsic"),
        "{body}"
    );
}

#[tokio::test]
async fn tags_values_echo_and_buildinfo() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns() - 60_000 * MS;
    seed(&server, t).await;
    let start = (t / 1_000_000_000 - 60).to_string();
    let end = (t / 1_000_000_000 + 60).to_string();
    let range = [("start", start.as_str()), ("end", end.as_str())];

    let (status, body) = server.get("/api/echo", &[]).await;
    assert_eq!((status, body), (200, json!("echo")));
    let (_, body) = server.get("/api/status/buildinfo", &[]).await;
    assert!(body["version"].as_str().unwrap().starts_with('2'));

    let (status, body) = server.get("/api/search/tags", &range).await;
    assert_eq!(status, 200, "{body}");
    let names = body["tagNames"].as_array().unwrap();
    assert!(names.contains(&json!("service.name")), "{body}");
    assert!(names.contains(&json!("http.status_code")), "{body}");

    let (_, body) = server.get("/api/v2/search/tags", &range).await;
    let scopes = body["scopes"].as_array().unwrap();
    let scope = |name: &str| {
        scopes
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} scope in {body}"))["tags"]
            .clone()
    };
    assert!(
        scope("resource")
            .as_array()
            .unwrap()
            .contains(&json!("service.name"))
    );
    assert!(
        scope("span")
            .as_array()
            .unwrap()
            .contains(&json!("http.status_code"))
    );
    assert!(
        scope("intrinsic")
            .as_array()
            .unwrap()
            .contains(&json!("duration"))
    );

    let (_, body) = server
        .get("/api/v2/search/tag/resource.service.name/values", &range)
        .await;
    assert_eq!(
        body["tagValues"],
        json!([{"type": "string", "value": "checkout"}, {"type": "string", "value": "search"}])
    );
    let (_, body) = server.get("/api/v2/search/tag/status/values", &range).await;
    assert_eq!(
        body["tagValues"][0],
        json!({"type": "keyword", "value": "error"})
    );
    let (_, body) = server
        .get("/api/v2/search/tag/span.http.status_code/values", &range)
        .await;
    assert_eq!(
        body["tagValues"],
        json!([{"type": "string", "value": "200"}, {"type": "string", "value": "500"}])
    );
    let (_, body) = server.get("/api/v2/search/tag/name/values", &range).await;
    assert_eq!(body["tagValues"].as_array().unwrap().len(), 3);
    let (_, body) = server
        .get("/api/search/tag/service.name/values", &range)
        .await;
    assert_eq!(body["tagValues"], json!(["checkout", "search"]));
    let (_, body) = server
        .get("/api/search/tag/http.status_code/values", &range)
        .await;
    assert_eq!(body["tagValues"], json!(["200", "500"]));
}
