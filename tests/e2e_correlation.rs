//! One trace across every signal, followed the way Grafana follows it: from a metric's
//! exemplar (Prometheus API) to the trace (Tempo API), its log lines (Loki API) and the
//! profile of its slow span (Pyroscope API); then Threadline's own trace document with
//! its span tree, the trace bundle export, and the reverse hops back to trace IDs.

mod common;

use std::io::Read;

use common::*;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use serde_json::{Value, json};
use threadline::profile::{Frame, Profile, Sample, ValueType, pprof};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const ROOT: &str = "00f067aa0ba902b7";
const SLOW: &str = "1111111111111111";
const GRANDCHILD: &str = "2222222222222222";
const S: i64 = 1_000_000_000;
const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

fn histogram_with_exemplar(t: i64) -> Value {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "http.server.request.duration", "unit": "s", "histogram": {
                "aggregationTemporality": 2,
                "dataPoints": [{
                    "timeUnixNano": t.to_string(),
                    "count": "2", "sum": 2.7,
                    "bucketCounts": ["1", "0", "1"], "explicitBounds": [0.5, 1.0],
                    "exemplars": [{"timeUnixNano": t.to_string(), "asDouble": 2.5,
                                   "traceId": TRACE, "spanId": SLOW}]
                }]
            }}
        ]}]
    }]})
}

fn profile(t: i64) -> Profile {
    Profile {
        time_nanos: t,
        duration_nanos: 10 * S,
        period_type: ValueType::new("cpu", "nanoseconds"),
        period: 10_000_000,
        sample_types: vec![ValueType::new("cpu", "nanoseconds")],
        frames: ["main", "charge", "sha256"]
            .iter()
            .map(|f| Frame {
                function: (*f).into(),
                file: "pay.go".into(),
                line: 3,
            })
            .collect(),
        samples: vec![
            Sample {
                stack: vec![0, 1, 2],
                values: vec![900],
                labels: vec![("span_id".into(), SLOW.into())],
            },
            Sample {
                stack: vec![0],
                values: vec![40],
                labels: vec![],
            },
        ],
    }
}

async fn seed(server: &TestServer, t: i64) {
    server
        .push_json(
            "/v1/traces",
            &spans_json(
                "checkout",
                &[
                    (TRACE, ROOT, "", "POST /pay", t, 3 * S, false),
                    (TRACE, SLOW, ROOT, "charge card", t + S / 10, 2 * S, true),
                    (TRACE, GRANDCHILD, SLOW, "sign", t + S / 5, S / 10, false),
                ],
            ),
        )
        .await;
    server
        .push_json(
            "/v1/logs",
            &logs_json(
                "checkout",
                &[
                    (t + S, "ERROR", "card declined", TRACE),
                    (t + S, "INFO", "unrelated", ""),
                ],
            ),
        )
        .await;
    server
        .push_json("/v1/metrics", &histogram_with_exemplar(t + 2 * S))
        .await;
    let response = server
        .post(
            "/threadline/v1/profiles?service_name=checkout",
            "application/octet-stream",
            pprof::encode(&profile(t)).encode_to_vec(),
        )
        .await;
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn from_an_exemplar_to_logs_spans_and_a_profile() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns() - 120 * S;
    seed(&server, t).await;
    server.flush().await;
    let start = (t / S - 300).to_string();
    let end = (t / S + 300).to_string();

    // 1. The panel's exemplar names the trace.
    let (status, body) = server
        .get(
            "/api/v1/query_exemplars",
            &[
                (
                    "query",
                    "histogram_quantile(0.9, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))",
                ),
                ("start", &start),
                ("end", &end),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let exemplar = &body["data"][0]["exemplars"][0];
    assert_eq!(exemplar["labels"]["trace_id"], TRACE);
    assert_eq!(exemplar["labels"]["span_id"], SLOW);

    // 2. Tempo: the trace, with no time range.
    let response = server
        .http
        .get(format!("{}/api/v2/traces/{TRACE}", server.url))
        .header("accept", "application/protobuf")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    #[derive(Clone, PartialEq, Message)]
    struct TraceByIdResponse {
        #[prost(message, optional, tag = "1")]
        trace: Option<TracesData>,
    }
    let trace = TraceByIdResponse::decode(response.bytes().await.unwrap())
        .unwrap()
        .trace
        .unwrap();
    assert_eq!(trace.resource_spans[0].scope_spans[0].spans.len(), 3);

    // 3. Loki: trace to logs, as Grafana builds it.
    let (status, body) = server
        .get(
            "/loki/api/v1/query_range",
            &[
                (
                    "query",
                    &format!(r#"{{service_name="checkout"}} | trace_id="{TRACE}""#),
                ),
                ("start", &start),
                ("end", &end),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let streams = body["data"]["result"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{body}");
    assert_eq!(streams[0]["values"][0][1], "card declined");

    // 4. Pyroscope: trace to profiles, by the span's ID.
    let response = server
        .http
        .post(format!(
            "{}/querier.v1.QuerierService/SelectMergeSpanProfile",
            server.url
        ))
        .header("content-type", "application/json")
        .body(
            json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"checkout\"}",
                   "spanSelector": [SLOW], "start": (t - 300 * S) / 1_000_000,
                   "end": (t + 300 * S) / 1_000_000})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let body = json_body(response).await;
    assert_eq!(body["flamegraph"]["total"], "900", "{body}");
    assert!(
        body["flamegraph"]["names"]
            .as_array()
            .unwrap()
            .contains(&json!("sha256"))
    );

    // 5. Threadline's trace document: the span tree, depth first.
    let (status, doc) = server
        .get(&format!("/threadline/v1/traces/{TRACE}"), &[])
        .await;
    assert_eq!(status, 200);
    let tree: Vec<(String, u64, Value)> = doc["tree"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["span_id"].as_str().unwrap().to_owned(),
                s["depth"].as_u64().unwrap(),
                s["children"].clone(),
            )
        })
        .collect();
    assert_eq!(
        tree,
        [
            (ROOT.to_owned(), 0, json!([SLOW])),
            (SLOW.to_owned(), 1, json!([GRANDCHILD])),
            (GRANDCHILD.to_owned(), 2, json!([])),
        ]
    );
    assert_eq!(doc["log_count"], 1);
    assert_eq!(doc["exemplar_count"], 1);
    assert_eq!(doc["profiles"][0]["span_id"], SLOW);
}

#[tokio::test]
async fn trace_bundle_and_reverse_hops() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t = now_ns() - 120 * S;
    seed(&server, t).await;
    let start = (t / S - 300).to_string();
    let end = (t / S + 300).to_string();

    // The bundle as OTLP/JSON.
    let (status, body) = server
        .get(
            &format!("/threadline/v1/traces/{TRACE}"),
            &[("format", "otlp")],
        )
        .await;
    assert_eq!(status, 200);
    let spans = &body["traces"]["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert_eq!(spans.as_array().unwrap().len(), 3, "{body}");
    let logs = &body["logs"]["resourceLogs"][0]["scopeLogs"][0]["logRecords"];
    assert_eq!(logs[0]["body"]["stringValue"], "card declined", "{body}");
    assert_eq!(logs[0]["traceId"], TRACE);

    // The bundle as Parquet files in a tar archive, one per signal.
    let response = server
        .http
        .get(format!("{}/threadline/v1/traces/{TRACE}", server.url))
        .query(&[("format", "parquet")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-tar");
    let archive = response.bytes().await.unwrap();
    let mut files = std::collections::BTreeMap::new();
    let mut at = 0;
    while at + 512 <= archive.len() && archive[at] != 0 {
        let header = &archive[at..at + 512];
        let name = std::str::from_utf8(&header[..100])
            .unwrap()
            .trim_end_matches('\0')
            .to_owned();
        let size =
            usize::from_str_radix(std::str::from_utf8(&header[124..135]).unwrap(), 8).unwrap();
        files.insert(name, archive.slice(at + 512..at + 512 + size));
        at += 512 + size.div_ceil(512) * 512;
    }
    let rows = |name: &str| -> usize {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            files[name].clone(),
        )
        .unwrap()
        .build()
        .unwrap();
        reader.map(|b| b.unwrap().num_rows()).sum()
    };
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        [
            "exemplars.parquet",
            "logs.parquet",
            "profile_samples.parquet",
            "spans.parquet"
        ]
    );
    assert_eq!(rows("spans.parquet"), 3);
    assert_eq!(rows("logs.parquet"), 1);
    assert_eq!(rows("exemplars.parquet"), 1);
    assert_eq!(rows("profile_samples.parquet"), 1);
    let mut magic = [0u8; 4];
    files["spans.parquet"]
        .as_ref()
        .read_exact(&mut magic)
        .unwrap();
    assert_eq!(&magic, b"PAR1");

    let (status, _) = server
        .get(
            "/threadline/v1/traces/11111111111111111111111111111111",
            &[("format", "parquet")],
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .get(
            &format!("/threadline/v1/traces/{TRACE}"),
            &[("format", "xml")],
        )
        .await;
    assert_eq!(status, 400);

    // Reverse hops: from a log query and from a metric's exemplars to trace IDs.
    let (status, body) = server
        .get(
            "/threadline/v1/traces",
            &[
                ("logs", r#"{service_name="checkout"} |= "declined""#),
                ("start", &start),
                ("end", &end),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["traces"][0]["trace_id"], TRACE);
    assert_eq!(body["traces"][0]["count"], 1);
    assert_eq!(body["traces"].as_array().unwrap().len(), 1);
    let (_, body) = server
        .get(
            "/threadline/v1/traces",
            &[
                ("exemplars", "http_server_request_duration_seconds_bucket"),
                ("start", &start),
                ("end", &end),
            ],
        )
        .await;
    assert_eq!(body["traces"][0]["trace_id"], TRACE, "{body}");
    let (status, _) = server.get("/threadline/v1/traces", &[]).await;
    assert_eq!(status, 400);
}
