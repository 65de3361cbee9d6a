//! Pyroscope's query API end to end, in the binary protobuf Grafana's data source
//! sends and in protobuf JSON: profile types (and Grafana's health check), label
//! names and values, series, merged flame graphs, span profiles and time series.

mod common;

use common::{TestServer, json_body, now_ns};
use prost::Message;
use serde_json::{Value, json};
use threadline::profile::{Frame, Profile, Sample, ValueType, pprof};
use threadline::proto::querier::v1 as pb;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const SLOW_SPAN: &str = "1111111111111111";
const SECOND: i64 = 1_000_000_000;

/// A CPU profile over main → checkout → {hash, rpc}; samples are (stack, ns, span).
fn cpu_profile(time: i64, samples: &[(&[u32], i64, &str)]) -> Profile {
    let functions = ["main", "checkout", "hash", "rpc"];
    Profile {
        time_nanos: time,
        duration_nanos: 10 * SECOND,
        period_type: ValueType::new("cpu", "nanoseconds"),
        period: 10_000_000,
        sample_types: vec![ValueType::new("cpu", "nanoseconds")],
        frames: functions
            .iter()
            .map(|f| Frame {
                function: (*f).into(),
                file: "shop.go".into(),
                line: 1,
            })
            .collect(),
        samples: samples
            .iter()
            .map(|(stack, value, span)| Sample {
                stack: stack.to_vec(),
                values: vec![*value],
                labels: if span.is_empty() {
                    vec![]
                } else {
                    vec![("span_id".into(), (*span).into())]
                },
            })
            .collect(),
    }
}

async fn push(server: &TestServer, labels: &str, profile: &Profile) {
    let response = server
        .post(
            &format!("/threadline/v1/profiles?{labels}"),
            "application/octet-stream",
            pprof::encode(profile).encode_to_vec(),
        )
        .await;
    assert_eq!(response.status(), 204);
}

/// Two `shop` profiles 10 s apart and one `cart` profile, from `t0`.
async fn start() -> (tempfile::TempDir, TestServer, i64) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t0 = (now_ns() / (60 * SECOND) - 10) * 60 * SECOND;
    push(
        &server,
        "service_name=shop&env=prod",
        &cpu_profile(t0, &[(&[0, 1, 2], 300, SLOW_SPAN), (&[0, 1, 3], 100, "")]),
    )
    .await;
    push(
        &server,
        "service_name=shop&env=prod",
        &cpu_profile(t0 + 10 * SECOND, &[(&[0, 1, 2], 50, "")]),
    )
    .await;
    push(
        &server,
        "service_name=cart&env=prod",
        &cpu_profile(t0, &[(&[0, 3], 7, "")]),
    )
    .await;
    (dir, server, t0)
}

async fn call_proto<Req: Message, Resp: Message + Default>(
    server: &TestServer,
    method: &str,
    request: &Req,
) -> Resp {
    let response = server
        .http
        .post(format!("{}/querier.v1.QuerierService/{method}", server.url))
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .body(request.encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{method}");
    assert_eq!(response.headers()["content-type"], "application/proto");
    Resp::decode(response.bytes().await.unwrap()).unwrap()
}

async fn call_json(server: &TestServer, method: &str, request: Value) -> (u16, Value) {
    let response = server
        .http
        .post(format!("{}/querier.v1.QuerierService/{method}", server.url))
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, json_body(response).await)
}

fn ms(ns: i64) -> i64 {
    ns / 1_000_000
}

#[tokio::test]
async fn grafana_calls_in_protobuf() {
    let (_dir, server, t0) = start().await;
    server.flush().await;
    let (start, end) = (ms(t0 - 60 * SECOND), ms(t0 + 60 * SECOND));

    // The health check asks about 1 s to 4 s after the epoch.
    let health: pb::ProfileTypesResponse = call_proto(
        &server,
        "ProfileTypes",
        &pb::ProfileTypesRequest {
            start: 1000,
            end: 4000,
        },
    )
    .await;
    assert!(health.profile_types.is_empty());
    let types: pb::ProfileTypesResponse = call_proto(
        &server,
        "ProfileTypes",
        &pb::ProfileTypesRequest { start, end },
    )
    .await;
    assert_eq!(
        types.profile_types,
        [pb::ProfileType {
            id: CPU.into(),
            name: "process_cpu".into(),
            sample_type: "cpu".into(),
            sample_unit: "nanoseconds".into(),
            period_type: "cpu".into(),
            period_unit: "nanoseconds".into(),
        }]
    );

    let names: pb::LabelNamesResponse = call_proto(
        &server,
        "LabelNames",
        &pb::LabelNamesRequest {
            matchers: vec!["{}".into()],
            start,
            end,
        },
    )
    .await;
    assert!(
        names.names.contains(&"service_name".to_owned()),
        "{names:?}"
    );
    assert!(names.names.contains(&"env".to_owned()));
    let values: pb::LabelValuesResponse = call_proto(
        &server,
        "LabelValues",
        &pb::LabelValuesRequest {
            name: "service_name".into(),
            matchers: vec![String::new()],
            start,
            end,
        },
    )
    .await;
    assert_eq!(values.names, ["cart", "shop"]);

    let merged: pb::SelectMergeStacktracesResponse = call_proto(
        &server,
        "SelectMergeStacktraces",
        &pb::SelectMergeStacktracesRequest {
            profile_type_id: CPU.into(),
            label_selector: r#"{service_name="shop"}"#.into(),
            start,
            end,
            max_nodes: Some(16384),
        },
    )
    .await;
    let graph = merged.flamegraph.unwrap();
    assert_eq!(graph.total, 450);
    assert_eq!(graph.names[0], "total");
    assert_eq!(graph.levels[0].values, [0, 450, 0, 0]);
    assert_eq!(graph.max_self, 350);

    // Trace to profiles: the samples of one span.
    let span: pb::SelectMergeSpanProfileResponse = call_proto(
        &server,
        "SelectMergeSpanProfile",
        &pb::SelectMergeSpanProfileRequest {
            profile_type_id: CPU.into(),
            label_selector: "{}".into(),
            span_selector: vec![SLOW_SPAN.into()],
            start,
            end,
            max_nodes: None,
        },
    )
    .await;
    assert_eq!(span.flamegraph.unwrap().total, 300);

    let series: pb::SelectSeriesResponse = call_proto(
        &server,
        "SelectSeries",
        &pb::SelectSeriesRequest {
            profile_type_id: CPU.into(),
            label_selector: "{}".into(),
            start: ms(t0),
            end: ms(t0 + 60 * SECOND),
            group_by: vec!["service_name".into()],
            step: 10.0,
            aggregation: None,
            limit: None,
        },
    )
    .await;
    let shop = series
        .series
        .iter()
        .find(|s| s.labels[0].value == "shop")
        .unwrap();
    assert_eq!(
        shop.points,
        [
            pb::Point {
                value: 400.0,
                timestamp: ms(t0)
            },
            pb::Point {
                value: 50.0,
                timestamp: ms(t0 + 10 * SECOND)
            },
        ]
    );
    assert_eq!(series.series.len(), 2);
}

#[tokio::test]
async fn protobuf_json_and_errors() {
    let (_dir, server, t0) = start().await;
    let (start, end) = (ms(t0 - 60 * SECOND), ms(t0 + 60 * SECOND));

    let (status, body) = call_json(
        &server,
        "ProfileTypes",
        json!({"start": start.to_string(), "end": end}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["profileTypes"][0]["ID"], CPU);
    assert_eq!(body["profileTypes"][0]["sampleType"], "cpu");

    let (_, body) = call_json(
        &server,
        "SelectMergeStacktraces",
        json!({"profileTypeID": CPU, "labelSelector": "{service_name=\"cart\"}", "start": start, "end": end}),
    )
    .await;
    assert_eq!(body["flamegraph"]["total"], "7", "{body}");
    assert_eq!(body["flamegraph"]["names"][0], "total");
    assert_eq!(
        body["flamegraph"]["levels"][0]["values"],
        json!(["0", "7", "0", "0"])
    );

    let (_, body) = call_json(
        &server,
        "Series",
        json!({"matchers": ["{service_name=\"shop\"}"], "labelNames": ["service_name"], "start": start, "end": end}),
    )
    .await;
    assert_eq!(
        body["labelsSet"],
        json!([{"labels": [{"name": "service_name", "value": "shop"}]}])
    );

    let (_, body) = call_json(
        &server,
        "SelectSeries",
        json!({"profileTypeID": CPU, "labelSelector": "{}", "start": ms(t0), "end": ms(t0 + 60 * SECOND),
               "step": 60, "aggregation": "TIME_SERIES_AGGREGATION_TYPE_AVERAGE"}),
    )
    .await;
    // Three profiles in the first minute, 457 in all: their average.
    let point = &body["series"][0]["points"][0];
    assert_eq!(point["timestamp"], ms(t0).to_string(), "{body}");
    assert!((point["value"].as_f64().unwrap() - 457.0 / 3.0).abs() < 1e-9);

    // Errors in Connect's shape.
    for (method, request, code) in [
        (
            "SelectMergeStacktraces",
            json!({"profileTypeID": "cpu", "start": start, "end": end}),
            "invalid_argument",
        ),
        (
            "SelectMergeStacktraces",
            json!({"profileTypeID": CPU, "labelSelector": "{a=", "start": start, "end": end}),
            "invalid_argument",
        ),
        (
            "SelectMergeSpanProfile",
            json!({"profileTypeID": CPU, "spanSelector": ["xyz"], "start": start, "end": end}),
            "invalid_argument",
        ),
        (
            "SelectSeries",
            json!({"profileTypeID": CPU, "start": start, "end": end, "step": 0}),
            "invalid_argument",
        ),
        ("ProfileTypes", json!({"start": "soon"}), "invalid_argument"),
    ] {
        let (status, body) = call_json(&server, method, request).await;
        assert_eq!(status, 400, "{method}: {body}");
        assert_eq!(body["code"], code, "{method}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let response = server
        .http
        .post(format!(
            "{}/querier.v1.QuerierService/ProfileTypes",
            server.url
        ))
        .header("content-type", "application/proto")
        .body(vec![0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(json_body(response).await["code"], "invalid_argument");
}
