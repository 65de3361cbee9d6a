//! Profiles end to end over HTTP: pprof push, Pyroscope's ingest and push APIs,
//! pprof scraping, merged profiles in three formats, and both hops across the trace
//! ID (span → profile, function → traces).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{TestServer, gzip, json_body, now_ns, settings, spans_json};
use prost::Message;
use serde_json::Value;
use threadline::config::RawConfig;
use threadline::profile::{Frame, Profile, Sample, ValueType, pprof};
use threadline::proto::push::v1 as push;

const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const SLOW_CHECKOUT: &str = "1111111111111111";
const FAST_CHECKOUT: &str = "2222222222222222";
const SECOND: i64 = 1_000_000_000;

/// A CPU profile over `functions`; each sample is (stack of function indexes root
/// first, nanoseconds, span ID or "").
fn cpu_profile(time: i64, samples: &[(&[u32], i64, &str)]) -> Profile {
    let functions = ["main", "checkout", "hash", "rpc", "gc"];
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
                line: 7,
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

fn heap_profile(time: i64, samples: &[(&[u32], i64, i64)]) -> Profile {
    let mut p = cpu_profile(time, &[]);
    p.period_type = ValueType::new("space", "bytes");
    p.sample_types = vec![
        ValueType::new("alloc_space", "bytes"),
        ValueType::new("inuse_space", "bytes"),
    ];
    p.samples = samples
        .iter()
        .map(|(stack, alloc, inuse)| Sample {
            stack: stack.to_vec(),
            values: vec![*alloc, *inuse],
            labels: vec![],
        })
        .collect();
    p
}

async fn merge(server: &TestServer, params: &[(&str, &str)]) -> reqwest::Response {
    server
        .http
        .get(format!("{}/threadline/v1/profiles/merge", server.url))
        .query(params)
        .send()
        .await
        .unwrap()
}

async fn folded(server: &TestServer, params: &[(&str, &str)]) -> String {
    let mut params = params.to_vec();
    params.push(("format", "folded"));
    let response = merge(server, &params).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn count(server: &TestServer, sql: &str) -> u64 {
    server.rows(sql).await[0]["n"].as_u64().unwrap()
}

#[tokio::test]
async fn pprof_push_and_merged_profiles_in_three_formats() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/go_heap.pb.gz"
    ))
    .unwrap();
    let response = server
        .post(
            "/threadline/v1/profiles?service_name=prometheus&env=test",
            "application/octet-stream",
            raw.clone(),
        )
        .await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());

    let fixture = pprof::decode(&pprof::inflate(raw.into(), 1 << 26).unwrap()).unwrap();
    let inuse = 3;
    let expected: i64 = fixture.samples.iter().map(|s| s.values[inuse]).sum();
    let rows = server
        .rows("SELECT service_name, labels['env'] AS env, labels['__name__'] AS name, sample_count FROM profiles")
        .await;
    assert_eq!(rows[0]["service_name"], "prometheus");
    assert_eq!(rows[0]["env"], "test");
    assert_eq!(rows[0]["name"], "memory");
    assert_eq!(rows[0]["sample_count"], fixture.samples.len());

    let profile_type = "memory:inuse_space:bytes:space:bytes";
    let start = (fixture.time_nanos - 3600 * SECOND).to_string();
    let end = (fixture.time_nanos + 3600 * SECOND).to_string();
    let params = [
        ("profile_type", profile_type),
        ("query", "{service_name=\"prometheus\"}"),
        ("start", start.as_str()),
        ("end", end.as_str()),
    ];
    let sum: i64 = server
        .rows(&format!(
            "SELECT sum(value) AS n FROM profile_samples WHERE profile_type = '{profile_type}'"
        ))
        .await[0]["n"]
        .as_i64()
        .unwrap();
    assert_eq!(sum, expected);

    // Flame graph JSON.
    let body = json_body(merge(&server, &params).await).await;
    assert_eq!(body["flamegraph"]["total"], expected, "{body}");
    assert_eq!(body["unit"], "bytes");
    assert_eq!(body["flamegraph"]["names"][0], "total");

    // Folded stacks sum to the same total and start at the root.
    let text = folded(&server, &params).await;
    let folded_total: i64 = text
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<i64>().unwrap())
        .sum();
    assert_eq!(folded_total, expected);
    assert!(
        text.lines()
            .all(|l| l.starts_with("runtime.") || l.contains(';') || !l.is_empty())
    );

    // pprof, gzipped, with the files and lines of the frames.
    let mut pprof_params = params.to_vec();
    pprof_params.push(("format", "pprof"));
    let response = merge(&server, &pprof_params).await;
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
    let merged = pprof::decode(&pprof::inflate(bytes, 1 << 26).unwrap()).unwrap();
    assert_eq!(
        merged.sample_types,
        [ValueType::new("inuse_space", "bytes")]
    );
    assert_eq!(
        merged.samples.iter().map(|s| s.values[0]).sum::<i64>(),
        expected
    );
    assert!(
        merged
            .frames
            .iter()
            .any(|f| f.file.ends_with(".go") && f.line > 0)
    );

    // Other profile types and ranges merge to nothing; bad parameters are 400.
    let body = json_body(
        merge(
            &server,
            &[("profile_type", "memory:inuse_space:bytes:space:bytes")],
        )
        .await,
    )
    .await;
    assert_eq!(
        body["flamegraph"]["total"], 0,
        "the default range is the last hour"
    );
    for bad in [
        vec![],
        vec![("profile_type", "memory")],
        vec![("profile_type", CPU), ("format", "svg")],
        vec![("profile_type", CPU), ("span_id", SLOW_CHECKOUT)],
        vec![("profile_type", CPU), ("query", "{service_name=")],
    ] {
        let response = merge(&server, &bad).await;
        assert_eq!(response.status(), 400, "{bad:?}");
    }

    // Not a profile: 400, nothing stored.
    let response = server
        .post(
            "/threadline/v1/profiles?service_name=x",
            "application/octet-stream",
            &b"\x0a\xff\xff"[..],
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("pprof"));
    assert_eq!(
        count(&server, "SELECT count(*) AS n FROM profiles").await,
        1
    );
}

#[tokio::test]
async fn pyroscope_ingest_pprof_multipart_and_folded() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let now = now_ns();
    let from = (now / SECOND - 10).to_string();
    let until = (now / SECOND).to_string();

    // Raw pprof, kind from the name's suffix, labels from its braces.
    let cpu = cpu_profile(now, &[(&[0, 1, 2], 30, ""), (&[0, 4], 5, "")]);
    let path =
        format!("/ingest?name=shop.cpu%7Benv%3Dprod%7D&from={from}&until={until}&format=pprof");
    let response = server
        .post(&path, "application/octet-stream", pprof::encode_gzip(&cpu))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let rows = server
        .rows("SELECT service_name, labels['env'] AS env, labels['__name__'] AS name, profile_types FROM profiles")
        .await;
    assert_eq!(rows[0]["service_name"], "shop");
    assert_eq!(rows[0]["env"], "prod");
    assert_eq!(rows[0]["name"], "process_cpu");

    // A multipart form with the previous cumulative profile: allocations are stored
    // as their growth.
    let before = heap_profile(0, &[(&[0, 1], 100, 10)]);
    let after = heap_profile(0, &[(&[0, 1], 180, 12), (&[0, 3], 30, 1)]);
    let boundary = "b0undary";
    let mut form = Vec::new();
    for (name, profile) in [("profile", &after), ("prev_profile", &before)] {
        form.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        form.extend_from_slice(&pprof::encode_gzip(profile));
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let path = format!("/ingest?name=shop.alloc_space&from={from}&until={until}&format=pprof");
    let response = server
        .post(
            &path,
            &format!("multipart/form-data; boundary={boundary}"),
            form,
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let rows = server
        .rows("SELECT functions[-1] AS leaf, value FROM profile_samples WHERE profile_type = 'memory:alloc_space:bytes:space:bytes' ORDER BY value")
        .await;
    let allocs: Vec<(String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["leaf"].as_str().unwrap().to_owned(),
                r["value"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        allocs,
        [("rpc".to_owned(), 30), ("checkout".to_owned(), 80)]
    );

    // Folded stacks, Pyroscope's default format.
    let path =
        format!("/ingest?name=batch.cpu&from={from}&until={until}&sampleRate=100&spyName=pyspy");
    let response = server
        .post(&path, "text/plain", "main;work;hash 30\nmain;idle 5\n")
        .await;
    assert_eq!(response.status(), 200);
    let start = (now - 60 * SECOND).to_string();
    let text = folded(
        &server,
        &[
            ("profile_type", "process_cpu:samples:count:cpu:nanoseconds"),
            ("query", "{service_name=\"batch\"}"),
            ("start", start.as_str()),
        ],
    )
    .await;
    assert_eq!(text, "main;idle 5\nmain;work;hash 30\n");

    // Mistakes are 400 or 415 and store nothing.
    let profiles = count(&server, "SELECT count(*) AS n FROM profiles").await;
    for (path, body, status) in [
        ("/ingest?format=pprof", pprof::encode_gzip(&cpu), 400),
        (
            "/ingest?name=a.cpu%7Benv%3Dprod&format=pprof",
            pprof::encode_gzip(&cpu),
            400,
        ),
        ("/ingest?name=a.cpu&format=jfr", b"x".to_vec(), 415),
        (
            "/ingest?name=a.cpu&format=pprof",
            b"not a profile".to_vec(),
            400,
        ),
        ("/ingest?name=a.cpu", b"main;work lots".to_vec(), 400),
        ("/ingest?name=a.cpu&from=yesterday", b"main 1".to_vec(), 400),
        ("/ingest?name=a.cpu&sampleRate=0", b"main 1".to_vec(), 400),
    ] {
        let response = server.post(path, "application/octet-stream", body).await;
        assert_eq!(response.status(), status, "{path}");
    }
    let response = server
        .post(
            "/ingest?name=a.cpu&format=pprof",
            "multipart/form-data; boundary=zz",
            "--zz\r\n",
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        count(&server, "SELECT count(*) AS n FROM profiles").await,
        profiles
    );
}

#[tokio::test]
async fn pyroscope_push_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let now = now_ns();
    let label = |name: &str, value: &str| push::LabelPair {
        name: name.into(),
        value: value.into(),
    };
    let request = push::PushRequest {
        series: vec![push::RawProfileSeries {
            labels: vec![
                label("__name__", "process_cpu"),
                label("service_name", "pyapp"),
                label("env", "test"),
            ],
            samples: vec![push::RawSample {
                raw_profile: pprof::encode(&cpu_profile(now, &[(&[0, 1, 2], 40, SLOW_CHECKOUT)]))
                    .encode_to_vec(),
                id: "ab625a03-e71b-43f5-b742-ef7fcfd9967b".into(),
            }],
        }],
    };
    let response = server
        .http
        .post(format!("{}/push.v1.PusherService/Push", server.url))
        .header("content-type", "application/proto")
        .header("content-encoding", "gzip")
        .body(gzip(&request.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/proto");
    let rows = server
        .rows("SELECT p.profile_id, s.span_id, s.value FROM profiles p, profile_samples s")
        .await;
    assert_eq!(
        rows[0]["profile_id"],
        "ab625a03-e71b-43f5-b742-ef7fcfd9967b"
    );
    assert_eq!(rows[0]["span_id"], SLOW_CHECKOUT);
    assert_eq!(rows[0]["value"], 40);

    let response = server
        .post("/push.v1.PusherService/Push", "application/json", "{}")
        .await;
    assert_eq!(response.status(), 415);
    let response = server
        .post(
            "/push.v1.PusherService/Push",
            "application/proto",
            &b"\xff\xff"[..],
        )
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn profiles_and_traces_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let t0 = now_ns() - 60 * SECOND;
    server
        .push_json(
            "/v1/traces",
            &spans_json(
                "shop",
                &[
                    (TRACE, SLOW_CHECKOUT, "", "checkout", t0, 3 * SECOND, false),
                    (
                        TRACE,
                        FAST_CHECKOUT,
                        SLOW_CHECKOUT,
                        "checkout",
                        t0 + SECOND,
                        SECOND / 2,
                        false,
                    ),
                ],
            ),
        )
        .await;
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let other_span = "3333333333333333";
    let mut profile = cpu_profile(
        t0,
        &[
            (&[0, 1, 2], 300, SLOW_CHECKOUT),
            (&[0, 1, 3], 100, FAST_CHECKOUT),
            (&[0, 4], 20, ""),
            (&[0, 1, 2], 50, other_span),
        ],
    );
    // The last sample names its trace itself.
    profile.samples[3]
        .labels
        .push(("trace_id".into(), other_trace.into()));
    let response = server
        .post(
            "/threadline/v1/profiles?service_name=shop",
            "application/octet-stream",
            pprof::encode(&profile).encode_to_vec(),
        )
        .await;
    assert_eq!(response.status(), 204);

    // The trace document has the profile samples per span.
    let (status, doc) = server
        .get(&format!("/threadline/v1/traces/{TRACE}"), &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(doc["profile_sample_count"], 2, "{doc}");
    let profiles = doc["profiles"].as_array().unwrap();
    assert_eq!(profiles[0]["span_id"], SLOW_CHECKOUT);
    assert_eq!(profiles[0]["value"], 300);
    assert_eq!(profiles[0]["profile_type"], CPU);
    assert_eq!(profiles[0]["top_functions"][0]["function"], "hash");
    assert_eq!(profiles[1]["span_id"], FAST_CHECKOUT);
    // A trace known only from its profile samples.
    let (status, doc) = server
        .get(&format!("/threadline/v1/traces/{other_trace}"), &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(doc["profiles"][0]["value"], 50);

    // Trace → profile: one trace, one span, every slow checkout span.
    let by_trace = folded(&server, &[("profile_type", CPU), ("trace_id", TRACE)]).await;
    assert_eq!(by_trace, "main;checkout;hash 300\nmain;checkout;rpc 100\n");
    let by_span = folded(
        &server,
        &[
            ("profile_type", CPU),
            ("trace_id", TRACE),
            ("span_id", FAST_CHECKOUT),
        ],
    )
    .await;
    assert_eq!(by_span, "main;checkout;rpc 100\n");
    let start = (t0 - 60 * SECOND).to_string();
    let slow = folded(
        &server,
        &[
            ("profile_type", CPU),
            ("start", start.as_str()),
            (
                "span_filter",
                "name = 'checkout' AND duration_ns > 2000000000",
            ),
        ],
    )
    .await;
    assert_eq!(slow, "main;checkout;hash 300\n");
    for filter in ["name = ", "1; DROP TABLE spans", "no_such_column = 1"] {
        let response = merge(
            &server,
            &[
                ("profile_type", CPU),
                ("start", start.as_str()),
                ("span_filter", filter),
            ],
        )
        .await;
        assert_eq!(response.status(), 400, "{filter}");
    }

    // Profile → trace: the traces whose samples ran a function, most time first.
    let (status, body) = server
        .get(
            "/threadline/v1/profiles/traces",
            &[
                ("function", "hash"),
                ("profile_type", CPU),
                ("start", start.as_str()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let traces: Vec<(String, i64)> = body["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["trace_id"].as_str().unwrap().to_owned(),
                t["value"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        traces,
        [(TRACE.to_owned(), 300), (other_trace.to_owned(), 50)]
    );
    assert_eq!(
        body["traces"][0]["span_ids"],
        serde_json::json!([SLOW_CHECKOUT])
    );
    for params in [vec![], vec![("function", "hash")]] {
        let (status, _) = server.get("/threadline/v1/profiles/traces", &params).await;
        assert_eq!(status, 400, "{params:?}");
    }
}

/// Serves `/metrics` and a Go-style `/debug/pprof/heap` whose allocation totals grow
/// by 50 bytes per request.
async fn pprof_target() -> String {
    use axum::routing::get;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    let served = Arc::new(AtomicI64::new(0));
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(|| async { "# TYPE up_total counter\nup_total 1\n" }),
        )
        .route(
            "/debug/pprof/heap",
            get(move || {
                let n = served.fetch_add(1, Ordering::SeqCst);
                async move {
                    let profile = heap_profile(0, &[(&[0, 1], 100 + 50 * n, 7)]);
                    pprof::encode_gzip(&profile)
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.to_string()
}

#[tokio::test]
async fn scraped_heap_profiles_store_allocation_growth() {
    let dir = tempfile::tempdir().unwrap();
    let address = pprof_target().await;
    let job = toml::from_str(&format!(
        "job_name = \"shop\"\nscrape_interval = \"300ms\"\n[profiling]\nkinds = [\"heap\"]\n[[static_configs]]\ntargets = [{address:?}]\nlabels = {{ env = \"test\" }}\n"
    ))
    .unwrap();
    let server = TestServer::start_with(RawConfig {
        scrape_configs: vec![job],
        ..settings(dir.path())
    })
    .await;
    let mut rows = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = server
            .rows("SELECT value FROM profile_samples WHERE profile_type = 'memory:alloc_space:bytes:space:bytes'")
            .await;
        if rows.len() >= 2 {
            break;
        }
    }
    // The first scrape has nothing to compare with; each later one grew by 50.
    assert!(rows.len() >= 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["value"] == 50), "{rows:?}");
    let labels = server
        .rows("SELECT labels['job'] AS job, labels['instance'] AS instance, labels['env'] AS env, service_name, labels['__name__'] AS name FROM profiles LIMIT 1")
        .await;
    let labels: HashMap<String, Value> = serde_json::from_value(labels[0].clone()).unwrap();
    assert_eq!(labels["job"], "shop");
    assert_eq!(labels["instance"], address.as_str());
    assert_eq!(labels["env"], "test");
    assert_eq!(labels["service_name"], "shop");
    assert_eq!(labels["name"], "memory");
    // The same target's metrics carry the same job and instance.
    let up = server
        .rows("SELECT labels['instance'] AS instance FROM samples WHERE metric = 'up' LIMIT 1")
        .await;
    assert_eq!(up[0]["instance"], address.as_str());
    let (_, targets) = server.get("/api/v1/targets", &[]).await;
    let urls: Vec<&str> = targets["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["scrapeUrl"].as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&format!("http://{address}/debug/pprof/heap").as_str()),
        "{urls:?}"
    );
}
