//! Tenancy over HTTP: two tenants with identical labels and trace IDs never see each
//! other's rows on any query surface; tenant IDs are validated; bearer tokens decide
//! the tenant; per-tenant ingest limits answer 429 with `Retry-After`.

mod common;

use common::{TestServer, logs_json, now_ns, settings, spans_json};
use serde_json::{Value, json};
use threadline::config::{FileTenantLimits, FileToken};

const TRACE: &str = "5b8efff798038103d269b633813fc60c";
const SPAN: &str = "eee19b7ec3c1b174";

async fn send(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    tenant: Option<&str>,
    query: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> (u16, String) {
    let mut request = server
        .http
        .request(method, format!("{}{path}", server.url))
        .query(query);
    if let Some(tenant) = tenant {
        request = request.header("x-scope-orgid", tenant);
    }
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn metrics_json(value: f64, t: i64) -> Value {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
        "scopeMetrics": [{"metrics": [{
            "name": "temperature",
            "gauge": {"dataPoints": [{
                "timeUnixNano": t.to_string(),
                "asDouble": value,
                "exemplars": [{"timeUnixNano": t.to_string(), "asDouble": value,
                               "traceId": TRACE, "spanId": SPAN}],
            }]},
        }]}],
    }]})
}

/// Pushes one tenant's telemetry: identical labels and trace IDs for every tenant,
/// the tenant's name only in text, span names, stacks and values. `team-b` also has a
/// stream of its own (`deployment_environment="b-only"`).
async fn push_tenant(server: &TestServer, tenant: &str, value: f64) {
    let t = now_ns() - 1_000_000_000;
    let marker = format!("secret-of-{tenant}");
    let pushes = [
        ("/v1/logs", logs_json("api", &[(t, "INFO", &marker, TRACE)])),
        (
            "/v1/traces",
            spans_json("api", &[(TRACE, SPAN, "", &marker, t, 1_000_000, false)]),
        ),
        ("/v1/metrics", metrics_json(value, t)),
    ];
    for (path, body) in pushes {
        let (status, text) = send(
            server,
            reqwest::Method::POST,
            path,
            Some(tenant),
            &[],
            Some(("application/json", body.to_string())),
        )
        .await;
        assert_eq!(status, 200, "{tenant} {path}: {text}");
    }
    let loki = json!({"streams": [{
        "stream": {"service_name": "api"},
        "values": [[t.to_string(), format!("loki line {marker}")]],
    }]});
    let (status, text) = send(
        server,
        reqwest::Method::POST,
        "/loki/api/v1/push",
        Some(tenant),
        &[],
        Some(("application/json", loki.to_string())),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let folded = format!("main;{} 30\nmain;gc 5\n", marker.replace('-', "_"));
    let (status, text) = send(
        server,
        reqwest::Method::POST,
        "/ingest",
        Some(tenant),
        &[("name", "api.cpu"), ("format", "folded")],
        Some(("text/plain", folded)),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    if tenant == "team-b" {
        let mut only_b = logs_json("api", &[(t, "INFO", &marker, TRACE)]);
        only_b["resourceLogs"][0]["resource"]["attributes"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "deployment.environment", "value": {"stringValue": "b-only"}}));
        let (status, text) = send(
            server,
            reqwest::Method::POST,
            "/v1/logs",
            Some(tenant),
            &[],
            Some(("application/json", only_b.to_string())),
        )
        .await;
        assert_eq!(status, 200, "{text}");
    }
}

/// Every query surface, asked as `tenant`: each answer must be a success and must
/// not mention another tenant's data.
async fn surfaces(server: &TestServer, tenant: Option<&str>) -> Vec<(String, String)> {
    let start = ((now_ns() / 1_000_000_000) - 3600).to_string();
    let end = ((now_ns() / 1_000_000_000) + 60).to_string();
    let range = [("start", start.as_str()), ("end", end.as_str())];
    let get = |path: &'static str, params: Vec<(&'static str, &'static str)>| (path, params);
    let gets = [
        get(
            "/threadline/v1/query",
            vec![("query", r#"{service_name="api"}"#)],
        ),
        get("/threadline/v1/labels", vec![]),
        get("/threadline/v1/label/deployment_environment/values", vec![]),
        get("/threadline/v1/series", vec![("match", "{}")]),
        get(
            "/threadline/v1/traces",
            vec![("logs", r#"{service_name="api"}"#)],
        ),
        get("/threadline/v1/samples", vec![("query", "temperature")]),
        get(
            "/loki/api/v1/query_range",
            vec![("query", r#"{service_name="api"}"#)],
        ),
        get("/loki/api/v1/labels", vec![]),
        get("/loki/api/v1/label/deployment_environment/values", vec![]),
        get("/loki/api/v1/series", vec![("match[]", "{}")]),
        get(
            "/api/search",
            vec![("q", r#"{resource.service.name="api"}"#)],
        ),
        get("/api/search/tag/name/values", vec![]),
        get("/api/v1/query", vec![("query", "sum(temperature)")]),
        get("/api/v1/series", vec![("match[]", "temperature")]),
        get("/api/v1/labels", vec![]),
        get("/api/v1/query_exemplars", vec![("query", "temperature")]),
        get(
            "/threadline/v1/profiles/merge",
            vec![
                ("profile_type", "process_cpu:samples:count:cpu:nanoseconds"),
                ("query", r#"{service_name="api"}"#),
                ("format", "folded"),
            ],
        ),
    ];
    let mut answers = Vec::new();
    for (path, params) in gets {
        let mut query: Vec<(&str, &str)> = params;
        if !path.starts_with("/threadline/v1/label") {
            query.extend(range);
        }
        let (status, text) = send(server, reqwest::Method::GET, path, tenant, &query, None).await;
        assert_eq!(status, 200, "{path}: {text}");
        answers.push((path.to_owned(), text));
    }
    for path in [
        format!("/threadline/v1/traces/{TRACE}"),
        format!("/threadline/v1/traces/{TRACE}/exemplars"),
        format!("/api/traces/{TRACE}"),
        format!("/api/v2/traces/{TRACE}"),
    ] {
        let (status, text) = send(server, reqwest::Method::GET, &path, tenant, &[], None).await;
        // A tenant without the trace is told so.
        assert!(status == 200 || status == 404, "{path}: {status} {text}");
        answers.push((path, text));
    }
    for sql in [
        "SELECT body FROM logs",
        "SELECT name FROM spans",
        "SELECT value, trace_id FROM exemplars",
        "SELECT functions FROM profile_samples",
        "SELECT * FROM traces",
    ] {
        let (status, text) = send(
            server,
            reqwest::Method::POST,
            "/threadline/v1/sql",
            tenant,
            &[],
            Some(("application/sql", sql.to_owned())),
        )
        .await;
        assert_eq!(status, 200, "{sql}: {text}");
        answers.push((sql.to_owned(), text));
    }
    let profile_types =
        json!({"start": (now_ns() / 1_000_000) - 3_600_000, "end": now_ns() / 1_000_000 + 60_000});
    let (status, text) = send(
        server,
        reqwest::Method::POST,
        "/querier.v1.QuerierService/LabelValues",
        tenant,
        &[],
        Some((
            "application/json",
            json!({"name": "service_name", "start": profile_types["start"], "end": profile_types["end"]})
                .to_string(),
        )),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    answers.push(("pyroscope label values".into(), text));
    answers
}

fn assert_isolated(answers: &[(String, String)], reader: &str, others: &[&str]) {
    for (surface, text) in answers {
        for other in others {
            let marker = format!("secret-of-{other}");
            let stack_marker = marker.replace('-', "_");
            assert!(
                !text.contains(&marker) && !text.contains(&stack_marker),
                "{reader} sees {other}'s data on {surface}: {text}"
            );
        }
        if reader != "team-b" {
            assert!(
                !text.contains("b-only"),
                "{reader} sees team-b's labels on {surface}: {text}"
            );
        }
    }
}

#[tokio::test]
async fn tenants_with_identical_labels_and_trace_ids_never_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    push_tenant(&server, "team-a", 1.0).await;
    push_tenant(&server, "team-b", 1000.0).await;

    for stage in ["head", "chunks"] {
        let a = surfaces(&server, Some("team-a")).await;
        assert_isolated(&a, "team-a", &["team-b"]);
        let seen = |surface: &str| &a.iter().find(|(s, _)| s == surface).unwrap().1;
        // Each surface did answer with team-a's own rows.
        for surface in [
            "/threadline/v1/query",
            "/loki/api/v1/query_range",
            "SELECT body FROM logs",
            "SELECT name FROM spans",
        ] {
            assert!(
                seen(surface).contains("secret-of-team-a"),
                "{stage} {surface}"
            );
        }
        assert!(seen("/threadline/v1/profiles/merge").contains("secret_of_team_a"));
        assert!(seen(&format!("/threadline/v1/traces/{TRACE}")).contains("secret-of-team-a"));
        let sum: Value = serde_json::from_str(seen("/api/v1/query")).unwrap();
        assert_eq!(sum["data"]["result"][0]["value"][1], "1", "{stage}: {sum}");
        let exemplars: Value = serde_json::from_str(seen("/api/v1/query_exemplars")).unwrap();
        assert_eq!(
            exemplars["data"].as_array().unwrap().len(),
            1,
            "{exemplars}"
        );

        let b = surfaces(&server, Some("team-b")).await;
        assert_isolated(&b, "team-b", &["team-a"]);
        let sum_b = &b.iter().find(|(s, _)| s == "/api/v1/query").unwrap().1;
        assert!(sum_b.contains("\"1000\""), "{stage}: {sum_b}");

        // Requests without the header belong to `default`, which has nothing.
        let none = surfaces(&server, None).await;
        assert_isolated(&none, "default", &["team-a", "team-b"]);

        server.flush().await;
    }
    assert!(dir.path().join("chunks/team-a/logs/api").is_dir());
    assert!(dir.path().join("chunks/team-b/logs/api").is_dir());
}

#[tokio::test]
async fn tenant_ids_that_could_escape_a_key_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let body = logs_json("api", &[(now_ns(), "INFO", "x", "")]).to_string();
    for bad in [
        "..",
        "../team-b",
        "team-a/../team-b",
        "a%2fb",
        "%2e%2e",
        "a.b",
        "a b",
        "tenant\\x",
        &"x".repeat(151),
    ] {
        let (status, text) = send(
            &server,
            reqwest::Method::POST,
            "/v1/logs",
            Some(bad),
            &[],
            Some(("application/json", body.clone())),
        )
        .await;
        assert_eq!(status, 400, "{bad:?}: {text}");
        assert!(text.contains("X-Scope-OrgID"), "{text}");
        // Query APIs refuse them the same way.
        let (status, _) = send(
            &server,
            reqwest::Method::GET,
            "/loki/api/v1/labels",
            Some(bad),
            &[],
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad:?}");
    }
    let (status, _) = send(
        &server,
        reqwest::Method::GET,
        "/threadline/v1/labels",
        Some("Team_42-x"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    // Nothing was written under a bad name.
    let tenants: Vec<_> = std::fs::read_dir(dir.path().join("chunks"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(tenants.is_empty(), "{tenants:?}");
}

#[tokio::test]
async fn required_tenant_header_is_enforced_except_on_probes() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = settings(dir.path());
    raw.require_tenant = Some(true);
    let server = TestServer::start_with(raw).await;
    let (status, text) = send(
        &server,
        reqwest::Method::GET,
        "/loki/api/v1/labels",
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("X-Scope-OrgID"), "{text}");
    let (status, _) = send(
        &server,
        reqwest::Method::GET,
        "/loki/api/v1/labels",
        Some("team-a"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    for probe in ["/healthz", "/ready", "/metrics"] {
        let (status, _) = send(&server, reqwest::Method::GET, probe, None, &[], None).await;
        assert_eq!(status, 200, "{probe}");
    }
}

#[tokio::test]
async fn bearer_tokens_decide_the_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = settings(dir.path());
    let token_a = "token-of-team-a-0123456789";
    let token_b = "token-of-team-b-0123456789";
    raw.auth_tokens = vec![
        FileToken {
            tenant: "team-a".into(),
            token: token_a.into(),
        },
        FileToken {
            tenant: "team-b".into(),
            token: token_b.into(),
        },
    ];
    let server = TestServer::start_with(raw).await;
    let push = |auth: Option<String>, tenant: Option<&'static str>| {
        let server = &server;
        async move {
            let mut request = server
                .http
                .post(format!("{}/v1/logs", server.url))
                .header("content-type", "application/json")
                .body(logs_json("api", &[(now_ns(), "INFO", "hello", "")]).to_string());
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            if let Some(tenant) = tenant {
                request = request.header("x-scope-orgid", tenant);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, challenge, response.text().await.unwrap())
        }
    };
    let (status, challenge, text) = push(None, None).await;
    assert_eq!(status, 401, "{text}");
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"threadline\""));
    assert!(text.contains("Bearer"), "{text}");
    let (status, _, _) = push(Some("Bearer wrong-token-0123456789".into()), None).await;
    assert_eq!(status, 401);
    // A prefix of a real token is no token.
    let (status, _, _) = push(Some(format!("Bearer {}", &token_a[..20])), None).await;
    assert_eq!(status, 401);
    // The header may repeat the token's tenant, never name another.
    let (status, _, text) = push(Some(format!("Bearer {token_a}")), Some("team-b")).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("belongs to tenant team-a"), "{text}");
    let (status, _, _) = push(Some(format!("Bearer {token_a}")), Some("team-a")).await;
    assert_eq!(status, 200);
    let (status, _, _) = push(Some(format!("Bearer {token_a}")), None).await;
    assert_eq!(status, 200);
    // Basic auth with the token as password, as Prometheus and Promtail can send.
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("anyone:{token_b}"));
    let (status, _, _) = push(Some(format!("Basic {basic}")), None).await;
    assert_eq!(status, 200);

    let count = |token: &'static str| {
        let server = &server;
        async move {
            let response = server
                .http
                .post(format!("{}/threadline/v1/sql", server.url))
                .bearer_auth(token)
                .body("SELECT count(*) AS n FROM logs")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body = common::json_body(response).await;
            body["rows"][0]["n"].as_i64().unwrap()
        }
    };
    assert_eq!(count(token_a).await, 2);
    assert_eq!(count(token_b).await, 1);
    // Probes answer without credentials; everything else needs them.
    for (path, expected) in [
        ("/healthz", 200),
        ("/ready", 200),
        ("/metrics", 200),
        ("/api/v1/status/buildinfo", 401),
        ("/loki/api/v1/labels", 401),
    ] {
        let (status, _) = send(&server, reqwest::Method::GET, path, None, &[], None).await;
        assert_eq!(status, expected, "{path}");
    }
}

#[tokio::test]
async fn ingest_rate_limit_answers_429_with_retry_after_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = settings(dir.path());
    let body = logs_json("api", &[(now_ns(), "INFO", "hello", "")]).to_string();
    // The default tenant may send two requests at once and one more per 100 s.
    raw.ingest_rate_bytes = Some(body.len() as u64 / 100 + 1);
    raw.ingest_burst_bytes = Some(body.len() as u64 * 2);
    raw.tenants.insert(
        "big".into(),
        FileTenantLimits {
            rate_bytes: Some(1 << 30),
            burst_bytes: Some(1 << 30),
            ..FileTenantLimits::default()
        },
    );
    let server = TestServer::start_with(raw).await;
    let post = |tenant: Option<&'static str>, body: String| {
        let server = &server;
        async move {
            let mut request = server
                .http
                .post(format!("{}/v1/logs", server.url))
                .header("content-type", "application/json")
                .body(body);
            if let Some(tenant) = tenant {
                request = request.header("x-scope-orgid", tenant);
            }
            request.send().await.unwrap()
        }
    };
    for _ in 0..2 {
        assert_eq!(post(None, body.clone()).await.status(), 200);
    }
    let refused = post(None, body.clone()).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((90..=101).contains(&retry_after), "{retry_after}");
    let text = refused.text().await.unwrap();
    assert!(text.contains("ingestion rate limit exceeded"), "{text}");
    // Other tenants have their own budgets; the overridden one a larger one.
    for _ in 0..5 {
        assert_eq!(post(Some("big"), body.clone()).await.status(), 200);
    }
    // A request larger than the burst can never pass: 413, not a retry.
    let big = logs_json(
        "api",
        &[(now_ns(), "INFO", &"x".repeat(body.len() * 2), "")],
    )
    .to_string();
    assert_eq!(post(Some("other"), big).await.status(), 413);
    assert_eq!(server.metric("limited_requests_total").await, 2);
    // Refused requests wrote nothing.
    let rows = server.rows("SELECT count(*) AS n FROM logs").await;
    assert_eq!(rows[0]["n"], 2);
}

#[tokio::test]
async fn active_stream_limit_refuses_new_streams_but_not_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = settings(dir.path());
    raw.max_active_streams = Some(2);
    raw.tenants.insert(
        "small".into(),
        FileTenantLimits {
            max_line_bytes: Some(8),
            max_body_bytes: Some(256),
            ..FileTenantLimits::default()
        },
    );
    let server = TestServer::start_with(raw).await;
    let push = |service: &str| logs_json(service, &[(now_ns(), "INFO", "hello", "")]);
    server.push_json("/v1/logs", &push("one")).await;
    server.push_json("/v1/logs", &push("two")).await;
    server.push_json("/v1/logs", &push("one")).await;
    let response = server
        .post("/v1/logs", "application/json", push("three").to_string())
        .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let text = response.text().await.unwrap();
    assert!(text.contains("limit of 2 active streams"), "{text}");
    let rows = server.rows("SELECT count(*) AS n FROM logs").await;
    assert_eq!(rows[0]["n"], 3);

    // Per-tenant line and body limits.
    let small = |body: String| {
        let server = &server;
        async move {
            server
                .http
                .post(format!("{}/v1/logs", server.url))
                .header("content-type", "application/json")
                .header("x-scope-orgid", "small")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let response = small(push("one").to_string()).await;
    assert_eq!(response.status(), 413, "the body is over 256 bytes");
    let line = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "longer than eight"}}]}]}]});
    let response = small(line.to_string()).await;
    assert_eq!(response.status(), 200);
    let body = common::json_body(response).await;
    assert_eq!(body["partialSuccess"]["rejectedLogRecords"], "1", "{body}");
}

#[tokio::test]
async fn label_limits_refuse_the_records_of_streams_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = settings(dir.path());
    raw.max_label_value_bytes = Some(16);
    raw.tenants.insert(
        "few".into(),
        FileTenantLimits {
            max_labels_per_stream: Some(2),
            ..FileTenantLimits::default()
        },
    );
    let server = TestServer::start_with(raw).await;
    let t = now_ns().to_string();
    let push = |tenant: &'static str, streams: Value| {
        let server = &server;
        async move {
            send(
                server,
                reqwest::Method::POST,
                "/loki/api/v1/push",
                Some(tenant),
                &[],
                Some((
                    "application/json",
                    json!({ "streams": streams }).to_string(),
                )),
            )
            .await
        }
    };
    let streams = json!([
        {"stream": {"service_name": "api", "env": "prod"}, "values": [[t, "kept"]]},
        {"stream": {"service_name": "api", "env": "prod", "pod": "p-1"}, "values": [[t, "refused"], [t, "refused"]]},
        {"stream": {"service_name": "api", "env": "a value over sixteen bytes"}, "values": [[t, "refused"]]},
    ]);
    let (status, text) = push("few", streams.clone()).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("rejected 3 of 4"), "{text}");
    assert!(text.contains("3 labels, more than the 2 allowed"), "{text}");
    assert!(text.contains("max_label_value_bytes"), "{text}");
    // Other tenants keep the default label count; the value limit holds for all.
    let (status, text) = push("many", streams).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("rejected 1 of 4"), "{text}");
    for (tenant, expected) in [("few", 1), ("many", 3)] {
        let (status, text) = send(
            &server,
            reqwest::Method::POST,
            "/threadline/v1/sql",
            Some(tenant),
            &[],
            Some(("application/sql", "SELECT count(*) AS n FROM logs".into())),
        )
        .await;
        assert_eq!(status, 200);
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["rows"][0]["n"], expected, "{tenant}");
    }
    // OTLP reports the refusal as partial success.
    let mut body = logs_json("api", &[(now_ns(), "INFO", "x", "")]);
    body["resourceLogs"][0]["resource"]["attributes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "k8s.pod.name", "value": {"stringValue": "p-1"}}));
    let (status, text) = send(
        &server,
        reqwest::Method::POST,
        "/v1/logs",
        Some("few"),
        &[],
        Some(("application/json", body.to_string())),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("max_labels_per_stream"),
        "{answer}"
    );
}
