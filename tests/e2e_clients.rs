//! Real clients with their default settings, installed by the tests themselves on
//! first use under Cargo's target tmpdir: Python packages from PyPI into virtualenvs
//! (`common::python_venv`), Debian's Prometheus unpacked from its package
//! (`common::debian_package`), and Node packages by `npm ci` (`common::node_client`).
//! A client that cannot be installed fails its test with the reason.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{TestServer, debian_package, node_client, python_venv, settings};
use serde_json::{Value, json};
use threadline::config::{FileScrapeJob, RawConfig};

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

/// A child process killed when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `prometheus_client` example app; returns it and its `/metrics` address.
async fn exemplar_app(trace_id: &str) -> (Process, String) {
    let python = tokio::task::spawn_blocking(|| {
        python_venv("prometheus-client-0.26", &["prometheus-client==0.26.*"])
    })
    .await
    .unwrap()
    .join("bin/python");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/exemplar_app.py");
    let mut child = Command::new(python)
        .args([script, trace_id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().parse().expect("the app prints its port");
    (Process(child), format!("127.0.0.1:{port}"))
}

fn scrape_job(name: &str, interval: &str, target: &str) -> FileScrapeJob {
    toml::from_str(&format!(
        "job_name = {name:?}\nscrape_interval = {interval:?}\n[[static_configs]]\ntargets = [{target:?}]\n"
    ))
    .unwrap()
}

/// Polls a SQL query until its rows satisfy `done`, for at most `seconds`.
async fn eventually(
    server: &TestServer,
    sql: &str,
    seconds: u64,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut rows = Vec::new();
    for _ in 0..seconds * 4 {
        rows = server.rows(sql).await;
        if done(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    rows
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_python_client_exemplars_are_scraped() {
    let trace = "7d2b5f0c8a1e4f3b9c6d0a2e4b6c8d0f";
    let (_app, address) = exemplar_app(trace).await;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(RawConfig {
        scrape_configs: vec![scrape_job("shop", "300ms", &address)],
        ..settings(dir.path())
    })
    .await;
    let sql = format!(
        "SELECT DISTINCT metric, labels['le'] AS le, span_id FROM exemplars \
         WHERE trace_id = '{trace}' AND job = 'shop' ORDER BY metric"
    );
    let rows = eventually(&server, &sql, 30, |rows| rows.len() >= 2).await;
    assert_eq!(
        rows,
        vec![
            json!({"metric": "checkout_duration_seconds_bucket", "le": "0.5", "span_id": "b7ad6b7169203331"}),
            json!({"metric": "checkouts_total", "le": null, "span_id": null}),
        ]
    );
    // OpenMetrics `_created` became the counter's start time.
    let rows = server
        .rows("SELECT count(*) AS n FROM samples WHERE metric = 'checkouts_total' AND start_timestamp IS NOT NULL")
        .await;
    assert!(rows[0]["n"].as_u64().unwrap() > 0);
    let (_, body) = server
        .get(
            "/api/v1/query_exemplars",
            &[("query", "checkout_duration_seconds_bucket{job=\"shop\"}")],
        )
        .await;
    assert_eq!(body["data"][0]["exemplars"][0]["labels"]["trace_id"], trace);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_prometheus_remote_writes_exemplars_and_is_scraped() {
    let prometheus = tokio::task::spawn_blocking(|| debian_package("prometheus"))
        .await
        .unwrap()
        .join("usr/bin/prometheus");
    let trace = "1f2e3d4c5b6a79881f2e3d4c5b6a7988";
    let (_app, app_address) = exemplar_app(trace).await;
    let prometheus_address = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(RawConfig {
        scrape_configs: vec![scrape_job("prometheus", "1s", &prometheus_address)],
        ..settings(dir.path())
    })
    .await;
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: ['{app_address}']\n\
             remote_write:\n  - url: {}/api/v1/write\n    send_exemplars: true\n    queue_config:\n      batch_send_deadline: 1s\n",
            server.url
        ),
    )
    .unwrap();
    let _prometheus = Process(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prometheus_address}"))
            .arg("--enable-feature=exemplar-storage")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prometheus.display())),
    );

    // Remote write: the app's series and exemplars, under Prometheus's job name.
    let sql = format!(
        "SELECT DISTINCT metric FROM exemplars WHERE trace_id = '{trace}' AND job = 'app' ORDER BY metric"
    );
    let rows = eventually(&server, &sql, 60, |rows| rows.len() >= 2).await;
    assert_eq!(
        rows,
        vec![
            json!({"metric": "checkout_duration_seconds_bucket"}),
            json!({"metric": "checkouts_total"}),
        ]
    );
    let rows = server
        .rows("SELECT count(*) AS n FROM samples WHERE job = 'app' AND metric = 'up' AND value = 1")
        .await;
    assert!(rows[0]["n"].as_u64().unwrap() > 0);
    // Scraping Prometheus itself.
    let rows = eventually(
        &server,
        "SELECT DISTINCT labels['version'] AS version FROM samples WHERE job = 'prometheus' AND metric = 'prometheus_build_info'",
        30,
        |rows| !rows.is_empty(),
    )
    .await;
    assert!(
        rows[0]["version"].as_str().unwrap().starts_with("2."),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn winston_loki_pushes_snappy_protobuf() {
    let client = tokio::task::spawn_blocking(|| node_client("loki_node"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let trace = "0123456789abcdef0123456789abcdef";
    let output = tokio::process::Command::new("node")
        .arg(client.join("push.js"))
        .args([&server.url, trace])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows = eventually(
        &server,
        "SELECT labels['level'] AS level, trace_id FROM logs WHERE service_name = 'node-shop' ORDER BY level",
        10,
        |rows| rows.len() == 2,
    )
    .await;
    assert_eq!(
        rows,
        vec![
            json!({"level": "info", "trace_id": trace}),
            json!({"level": "warn", "trace_id": null}),
        ]
    );
}

/// `go tool pprof`'s own binary from Debian's Go package; it runs alone.
fn go_pprof() -> std::path::PathBuf {
    debian_package("golang-1.19-go").join("usr/lib/go-1.19/pkg/tool/linux_amd64/pprof")
}

/// Runs `pprof -top` on a profile file and returns what it printed.
fn pprof_top(pprof: &std::path::Path, file: &std::path::Path) -> String {
    let output = Command::new(pprof)
        .arg("-top")
        .arg(file)
        .env("HOME", file.parent().unwrap())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", pprof.display()));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "pprof -top failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// Fetches a merged profile as pprof into `file` and returns what `pprof -top` prints
/// of it.
async fn merged_pprof_top(
    server: &TestServer,
    pprof: &std::path::Path,
    profile_type: &str,
    selector: &str,
    file: &std::path::Path,
) -> String {
    let response = server
        .http
        .get(format!("{}/threadline/v1/profiles/merge", server.url))
        .query(&[
            ("profile_type", profile_type),
            ("query", selector),
            ("format", "pprof"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    std::fs::write(file, response.bytes().await.unwrap()).unwrap();
    pprof_top(pprof, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyroscope_python_sdk_pushes_cpu_profiles_with_span_labels() {
    let python =
        tokio::task::spawn_blocking(|| python_venv("pyroscope-io-1.4", &["pyroscope-io==1.4.*"]))
            .await
            .unwrap()
            .join("bin/python");
    let pprof = tokio::task::spawn_blocking(go_pprof).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/pyroscope_app.py"
    );
    let url = server.url.clone();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args([script, &url, "5", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success());

    // One profile per upload, under the SDK's labels.
    let rows = server
        .rows("SELECT count(*) AS n, min(labels['env']) AS env, min(labels['__name__']) AS name, min(labels['otel_scope_name']) AS scope FROM profiles WHERE service_name = 'pyapp'")
        .await;
    // Dotted label names are stored as OTLP resource attributes are.
    assert_eq!(rows[0]["scope"], "com.grafana.pyroscope/python");
    assert!(rows[0]["n"].as_u64().unwrap() >= 3, "{rows:?}");
    assert_eq!(rows[0]["env"], "test");
    assert_eq!(rows[0]["name"], "process_cpu");
    // Samples taken inside tag_wrapper name their span. The SDK sets and clears a
    // wrapper's tags one at a time, so a sample taken in between may carry only some.
    let distinct = |column: &str| {
        let server = &server;
        let sql = format!(
            "SELECT DISTINCT {column} AS v FROM profile_samples \
             WHERE array_has(functions, 'burn_alpha_checkout') AND {column} IS NOT NULL"
        );
        async move { server.rows(&sql).await }
    };
    assert_eq!(
        distinct("span_id").await,
        vec![json!({"v": "0102030405060708"})]
    );
    assert_eq!(distinct("span_name").await, vec![json!({"v": "checkout"})]);

    // The merged CPU profile, read by Go's pprof.
    let top = merged_pprof_top(
        &server,
        &pprof,
        "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
        "{service_name=\"pyapp\"}",
        &dir.path().join("merged.pb.gz"),
    )
    .await;
    assert!(top.contains("Type: cpu"), "{top}");
    assert!(top.contains("burn_alpha_checkout"), "{top}");
    assert!(top.contains("burn_beta_background"), "{top}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debian_prometheus_pprof_endpoints_are_scraped() {
    let prometheus = tokio::task::spawn_blocking(|| debian_package("prometheus"))
        .await
        .unwrap()
        .join("usr/bin/prometheus");
    let pprof = tokio::task::spawn_blocking(go_pprof).await.unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let job: FileScrapeJob = toml::from_str(&format!(
        "job_name = \"prometheus\"\nscrape_interval = \"2s\"\n\
         [profiling]\nkinds = [\"cpu\", \"allocs\", \"goroutine\", \"mutex\", \"block\"]\ncpu_duration = \"1s\"\n\
         [[static_configs]]\ntargets = [{address:?}]\n"
    ))
    .unwrap();
    let server = TestServer::start_with(RawConfig {
        scrape_configs: vec![job],
        ..settings(dir.path())
    })
    .await;
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1s\nscrape_configs: []\n",
    )
    .unwrap();
    let _prometheus = Process(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", prometheus.display())),
    );

    // Every kind is scraped (mutex and block profiles are empty: Prometheus does not
    // turn those rates on), under the target's job and instance.
    let rows = eventually(
        &server,
        "SELECT labels['__name__'] AS name, count(*) AS n FROM profiles GROUP BY 1 ORDER BY 1",
        60,
        |rows| rows.len() == 5 && rows.iter().all(|r| r["n"].as_u64().unwrap() >= 2),
    )
    .await;
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["block", "goroutines", "memory", "mutex", "process_cpu"]
    );
    let rows = server
        .rows("SELECT DISTINCT labels['job'] AS job, labels['instance'] AS instance FROM profiles")
        .await;
    assert_eq!(
        rows,
        vec![json!({"job": "prometheus", "instance": address})]
    );
    let rows = server
        .rows("SELECT DISTINCT profile_type FROM profile_samples WHERE profile_type LIKE 'goroutines:%' OR profile_type LIKE 'memory:inuse_space%' ORDER BY 1")
        .await;
    assert_eq!(
        rows,
        vec![
            json!({"profile_type": "goroutines:goroutine:count:goroutine:count"}),
            json!({"profile_type": "memory:inuse_space:bytes:space:bytes"}),
        ]
    );

    // The merged goroutine profile, read by Go's pprof.
    let top = merged_pprof_top(
        &server,
        &pprof,
        "goroutines:goroutine:count:goroutine:count",
        "{job=\"prometheus\"}",
        &dir.path().join("goroutines.pb.gz"),
    )
    .await;
    assert!(top.contains("Type: goroutine"), "{top}");
    assert!(top.contains("runtime.gopark"), "{top}");
}
