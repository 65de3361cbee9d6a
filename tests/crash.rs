//! Crash harness: the real `threadline` binary is killed with `kill -9` again and again
//! while 36 pushers write to it over every ingest API, and restarted on the same data
//! directory each time; at the end every acknowledged record must be stored exactly
//! once, and no record at all more than once.
//!
//! Each record carries an ID no other record has: in a log line (OTLP/JSON,
//! OTLP/protobuf, Loki JSON, Loki snappy protobuf), a span name (OTLP/JSON and
//! protobuf), a sample's value (OTLP metrics, Prometheus remote write) or the leaf
//! frame of a profile sample (Pyroscope folded stacks) — never in a label, which would
//! make a stream per record. A pusher that gets a 2xx marks its records acknowledged;
//! on a connection error or any other status it moves on to new IDs, and the old ones
//! stay unacknowledged (allowed to be stored once, or not at all).
//!
//! Three rounds in four kill the server at a random moment after it starts (during WAL
//! replay, while it waits for flushes, in the middle of a push); every fourth starts
//! it with one failpoint listed in `THREADLINE_FAILPOINTS` (see `src/failpoint.rs`),
//! waits until the round has acknowledged a push and the server announces the point
//! on stderr, and kills it inside the pause: during WAL rotation, before a chunk
//! upload, between the chunk and its metadata, after the metadata, between the
//! chunks and the WAL truncation, between a merged chunk's upload and its commit,
//! between the commit and the swap in the catalog, and between a replaced chunk's
//! metadata deletion and its data's. The server runs with 64 KiB WAL segments and a
//! head cut after 1 s, so rotations and flushes happen all the time, and the harness
//! asks for a compaction pass every 300 ms, so chunks are merged, swapped and deleted
//! all the time too.
//!
//! After the last kill the pushers stop, the server starts once more, and the check
//! runs over SQL twice: on the replayed head, and again after it has been flushed.
//!
//! ```sh
//! # the CI version: 40 kills (30 at random, 10 at the 8 failpoints), ~2 minutes
//! cargo test --test crash -- --nocapture
//! # the long version: 300 kills (225 at random, 9 or 10 at each failpoint), ~10 minutes
//! THREADLINE_CRASH_ROUNDS=300 cargo test --test crash -- --nocapture
//! # the same schedule again: kill moments, batch sizes, failpoint order (the
//! # server's own timing, and so what each kill interrupts, still varies)
//! THREADLINE_CRASH_SEED=<the seed it printed> cargo test --test crash -- --nocapture
//! ```
//!
//! `THREADLINE_CRASH_BIN=<path>` runs another build of the server under the harness.
//!
//! A failure prints the offending IDs, their API and whether they were acknowledged,
//! and keeps the data directory and the server's log (whose path it printed first) for
//! a post-mortem.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{Value, json};
use threadline::failpoint;
use threadline::proto::logproto::{EntryAdapter, PushRequest, StreamAdapter};
use threadline::proto::prometheus as rw1;

/// The binary under test: this build's, unless `THREADLINE_CRASH_BIN` names another.
fn bin() -> String {
    std::env::var("THREADLINE_CRASH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_threadline").to_owned())
}

/// Kills in the CI version; `THREADLINE_CRASH_ROUNDS` overrides.
const DEFAULT_ROUNDS: usize = 40;
const PUSHERS_PER_API: usize = 4;
/// Flags of every start: rotations and flushes all the time.
const SERVE_FLAGS: &[&str] = &["--wal-segment-bytes", "65536", "--head-max-age", "1s"];
/// Flags of the starts that are killed: replaced chunks are deleted 2 s after a merge
/// (queries may take 1 s at most), so deletions happen all the time too.
const ROUND_FLAGS: &[&str] = &["--query-timeout", "1s", "--compaction-delete-delay", "2s"];
/// How often the harness asks for a compaction pass while a server runs.
const COMPACT_EVERY: Duration = Duration::from_millis(300);
/// A random kill comes this long after the start, at most.
const MAX_RANDOM_DELAY_MS: u64 = 3000;
/// How long a listed failpoint pauses; the kill comes within its first two thirds.
const FAILPOINT_PAUSE_MS: u64 = 1500;
const SERVICE: &str = "crash";

/// The records of one request: their IDs, the API, and whether the push was acknowledged.
struct Sent {
    first: u64,
    count: u64,
    api: Api,
    acked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Api {
    OtlpLogsJson,
    OtlpLogsProto,
    OtlpTracesJson,
    OtlpTracesProto,
    OtlpMetrics,
    LokiJson,
    LokiProto,
    RemoteWrite,
    PyroscopeFolded,
}

const APIS: [Api; 9] = [
    Api::OtlpLogsJson,
    Api::OtlpLogsProto,
    Api::OtlpTracesJson,
    Api::OtlpTracesProto,
    Api::OtlpMetrics,
    Api::LokiJson,
    Api::LokiProto,
    Api::RemoteWrite,
    Api::PyroscopeFolded,
];

/// Where a record's ID is found again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Table {
    Logs,
    Spans,
    Samples,
    ProfileSamples,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::OtlpLogsJson => "otlp_logs_json",
            Api::OtlpLogsProto => "otlp_logs_proto",
            Api::OtlpTracesJson => "otlp_traces_json",
            Api::OtlpTracesProto => "otlp_traces_proto",
            Api::OtlpMetrics => "otlp_metrics",
            Api::LokiJson => "loki_json",
            Api::LokiProto => "loki_proto",
            Api::RemoteWrite => "remote_write",
            Api::PyroscopeFolded => "pyroscope_folded",
        }
    }

    fn table(self) -> Table {
        match self {
            Api::OtlpLogsJson | Api::OtlpLogsProto | Api::LokiJson | Api::LokiProto => Table::Logs,
            Api::OtlpTracesJson | Api::OtlpTracesProto => Table::Spans,
            Api::OtlpMetrics | Api::RemoteWrite => Table::Samples,
            Api::PyroscopeFolded => Table::ProfileSamples,
        }
    }
}

/// splitmix64: small, seedable, good enough to pick moments and sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.below(256)))
            .collect()
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn line(api: Api, pusher: usize, id: u64) -> String {
    format!("crash id={id} api={} pusher={pusher}", api.name())
}

fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    }
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(string(value)),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![attribute("service.name", SERVICE)],
        ..Default::default()
    })
}

/// One push: path, content type, content encoding and body.
struct Request {
    path: String,
    content_type: &'static str,
    encoding: Option<&'static str>,
    body: Vec<u8>,
}

fn request(api: Api, pusher: usize, ids: &[u64], rng: &mut Rng) -> Request {
    let t = now_ns();
    let json_request = |path: &str, body: Value| Request {
        path: path.into(),
        content_type: "application/json",
        encoding: None,
        body: body.to_string().into_bytes(),
    };
    let proto_request = |path: &str, body: Vec<u8>| Request {
        path: path.into(),
        content_type: "application/x-protobuf",
        encoding: None,
        body,
    };
    let snappy = |data: Vec<u8>| snap::raw::Encoder::new().compress_vec(&data).unwrap();
    match api {
        Api::OtlpLogsJson => {
            let records: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    json!({
                        "timeUnixNano": (t + i as i64).to_string(),
                        "severityText": "INFO",
                        "body": {"stringValue": line(api, pusher, *id)},
                    })
                })
                .collect();
            json_request(
                "/v1/logs",
                json!({"resourceLogs": [{
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICE}}]},
                    "scopeLogs": [{"logRecords": records}],
                }]}),
            )
        }
        Api::OtlpLogsProto => {
            let records = ids
                .iter()
                .enumerate()
                .map(|(i, id)| LogRecord {
                    time_unix_nano: (t + i as i64) as u64,
                    severity_text: "INFO".into(),
                    body: Some(string(&line(api, pusher, *id))),
                    ..Default::default()
                })
                .collect();
            let body = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: resource(),
                    scope_logs: vec![ScopeLogs {
                        log_records: records,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            proto_request("/v1/logs", body.encode_to_vec())
        }
        Api::OtlpTracesJson => {
            let trace = rng.hex(16);
            let spans: Vec<Value> = ids
                .iter()
                .map(|id| {
                    json!({
                        "traceId": trace, "spanId": rng.hex(8), "name": format!("crash-{id}"),
                        "kind": 2, "startTimeUnixNano": t.to_string(),
                        "endTimeUnixNano": (t + 1_000_000).to_string(),
                    })
                })
                .collect();
            json_request(
                "/v1/traces",
                json!({"resourceSpans": [{
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICE}}]},
                    "scopeSpans": [{"spans": spans}],
                }]}),
            )
        }
        Api::OtlpTracesProto => {
            let trace: Vec<u8> = (0..16).map(|_| rng.below(256) as u8).collect();
            let spans = ids
                .iter()
                .map(|id| Span {
                    trace_id: trace.clone(),
                    span_id: (0..8).map(|_| rng.below(256) as u8).collect(),
                    name: format!("crash-{id}"),
                    kind: 2,
                    start_time_unix_nano: t as u64,
                    end_time_unix_nano: t as u64 + 1_000_000,
                    ..Default::default()
                })
                .collect();
            let body = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: resource(),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            proto_request("/v1/traces", body.encode_to_vec())
        }
        Api::OtlpMetrics => {
            let points = ids
                .iter()
                .enumerate()
                .map(|(i, id)| NumberDataPoint {
                    attributes: vec![attribute("pusher", &pusher.to_string())],
                    time_unix_nano: (t + i as i64 * 1_000_000) as u64,
                    value: Some(number_data_point::Value::AsDouble(*id as f64)),
                    ..Default::default()
                })
                .collect();
            let body = ExportMetricsServiceRequest {
                resource_metrics: vec![ResourceMetrics {
                    resource: resource(),
                    scope_metrics: vec![ScopeMetrics {
                        metrics: vec![Metric {
                            name: "crash_otlp".into(),
                            data: Some(metric::Data::Gauge(Gauge {
                                data_points: points,
                            })),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            proto_request("/v1/metrics", body.encode_to_vec())
        }
        Api::LokiJson => {
            let values: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| json!([(t + i as i64).to_string(), line(api, pusher, *id)]))
                .collect();
            json_request(
                "/loki/api/v1/push",
                json!({"streams": [{
                    "stream": {"service_name": SERVICE, "api": api.name()},
                    "values": values,
                }]}),
            )
        }
        Api::LokiProto => {
            let entries = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    let t = t + i as i64;
                    EntryAdapter {
                        timestamp: Some(prost_types::Timestamp {
                            seconds: t / 1_000_000_000,
                            nanos: (t % 1_000_000_000) as i32,
                        }),
                        line: line(api, pusher, *id),
                        structured_metadata: Vec::new(),
                    }
                })
                .collect();
            let body = PushRequest {
                streams: vec![StreamAdapter {
                    labels: format!("{{service_name=\"{SERVICE}\", api=\"{}\"}}", api.name()),
                    entries,
                    hash: 0,
                }],
            };
            proto_request("/loki/api/v1/push", snappy(body.encode_to_vec()))
        }
        Api::RemoteWrite => {
            let label = |name: &str, value: &str| rw1::Label {
                name: name.into(),
                value: value.into(),
            };
            let body = rw1::WriteRequest {
                timeseries: vec![rw1::TimeSeries {
                    labels: vec![
                        label("__name__", "crash_rw"),
                        label("job", SERVICE),
                        label("pusher", &pusher.to_string()),
                    ],
                    samples: ids
                        .iter()
                        .enumerate()
                        .map(|(i, id)| rw1::Sample {
                            value: *id as f64,
                            timestamp: t / 1_000_000 + i as i64,
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            Request {
                encoding: Some("snappy"),
                ..proto_request("/api/v1/write", snappy(body.encode_to_vec()))
            }
        }
        Api::PyroscopeFolded => {
            let body: String = ids
                .iter()
                .map(|id| format!("main;handle;crash_{id} {}\n", 1 + rng.below(9)))
                .collect();
            Request {
                path: format!("/ingest?name={SERVICE}.cpu&format=folded"),
                content_type: "text/plain",
                encoding: None,
                body: body.into_bytes(),
            }
        }
    }
}

/// What the pushers share with the harness.
struct Shared {
    /// The running server's URL; `None` between a kill and the next start.
    url: tokio::sync::watch::Receiver<Option<String>>,
    stop: AtomicBool,
    next_id: AtomicU64,
    acked_pushes: AtomicU64,
}

/// Push outcomes per API: status code (0 for a connection error) → count.
type Outcomes = HashMap<(Api, u16), u64>;

async fn pusher(shared: Arc<Shared>, api: Api, index: usize, seed: u64) -> (Vec<Sent>, Outcomes) {
    let mut rng = Rng(seed);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut sent = Vec::new();
    let mut outcomes = Outcomes::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(url) = shared.url.borrow().clone() else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let count = 1 + rng.below(8);
        let first = shared.next_id.fetch_add(count, Ordering::SeqCst);
        let ids: Vec<u64> = (first..first + count).collect();
        let req = request(api, index, &ids, &mut rng);
        let mut builder = http
            .post(format!("{url}{}", req.path))
            .header("content-type", req.content_type)
            .body(req.body);
        if let Some(encoding) = req.encoding {
            builder = builder
                .header("content-encoding", encoding)
                .header("x-prometheus-remote-write-version", "0.1.0");
        }
        let status = match builder.send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        };
        let acked = (200..300).contains(&status);
        *outcomes.entry((api, status)).or_default() += 1;
        sent.push(Sent {
            first,
            count,
            api,
            acked,
        });
        if acked {
            shared.acked_pushes.fetch_add(1, Ordering::SeqCst);
        } else {
            // Refused or starting: do not spin.
            tokio::time::sleep(Duration::from_millis(10 + rng.below(40))).await;
        }
    }
    (sent, outcomes)
}

/// Asks the running server for a compaction pass of every window, over and over, so
/// that merges, their commits and the deletion of replaced chunks happen all the time.
/// Returns how many passes ran to their end.
async fn compactor(shared: Arc<Shared>) -> u64 {
    let http = reqwest::Client::new();
    let mut passes = 0;
    while !shared.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(COMPACT_EVERY).await;
        let Some(url) = shared.url.borrow().clone() else {
            continue;
        };
        let pass = http
            .post(format!("{url}/threadline/v1/compact?all=true"))
            .send()
            .await;
        if let Ok(response) = pass
            && let Ok(body) = response.text().await
            && body.contains(r#""event":"done""#)
        {
            passes += 1;
        }
    }
    passes
}

/// The real binary, its stdout and stderr appended to one log, failpoint
/// announcements passed on.
struct Server {
    child: Child,
    url: String,
    failpoints: mpsc::Receiver<String>,
}

impl Server {
    fn start(data: &Path, log: &Arc<Mutex<File>>, extra: &[&str], failpoints: &str) -> Self {
        let mut child = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(SERVE_FLAGS)
            .args(extra)
            .env("THREADLINE_LOG", "info")
            .env(failpoint::ENV, failpoints)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let out_log = Arc::clone(log);
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(rest) = line.split("addr=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = addr_tx.send(addr.to_owned());
                }
                let _ = writeln!(out_log.lock().unwrap(), "{line}");
            }
        });
        let (fp_tx, fp_rx) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let err_log = Arc::clone(log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(name) = line.strip_prefix("failpoint reached: ") {
                    let _ = fp_tx.send(name.to_owned());
                }
                let _ = writeln!(err_log.lock().unwrap(), "stderr: {line}");
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not start listening within 60 s"));
        Self {
            child,
            url: format!("http://{addr}"),
            failpoints: fp_rx,
        }
    }

    /// Panics if the server exited on its own: after a crash it must come back.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the server exited by itself ({status}); see its log");
        }
    }

    fn kill(&mut self) {
        self.assert_running();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// How a round ends.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// This long after the start.
    Random(Duration),
    /// Inside the pause at this failpoint, this long after it is announced.
    At(&'static str, Duration),
}

fn schedule(rounds: usize, rng: &mut Rng) -> Vec<Kill> {
    (0..rounds)
        .map(|round| {
            if round % 4 == 3 {
                let point = failpoint::ALL[(round / 4) % failpoint::ALL.len()];
                Kill::At(
                    point,
                    Duration::from_millis(rng.below(FAILPOINT_PAUSE_MS * 2 / 3)),
                )
            } else {
                Kill::Random(Duration::from_millis(50 + rng.below(MAX_RANDOM_DELAY_MS)))
            }
        })
        .collect()
}

/// Waits for `until`, checking that the server stays up.
fn wait_for(server: &mut Server, what: &str, limit: Duration, mut until: impl FnMut() -> bool) {
    let start = Instant::now();
    while !until() {
        server.assert_running();
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs one round: start, push, kill. Returns when the server was killed, and for a
/// failpoint round when the point was reached, in ms after the start.
fn round(
    kill: Kill,
    data: &Path,
    log: &Arc<Mutex<File>>,
    url: &tokio::sync::watch::Sender<Option<String>>,
    shared: &Shared,
) -> (u128, Option<u128>) {
    let failpoints = match kill {
        Kill::At(point, _) => format!("{point}={FAILPOINT_PAUSE_MS}"),
        Kill::Random(_) => String::new(),
    };
    let started = Instant::now();
    let mut server = Server::start(data, log, ROUND_FLAGS, &failpoints);
    url.send_replace(Some(server.url.clone()));
    let reached = match kill {
        Kill::Random(after) => {
            while started.elapsed() < after {
                server.assert_running();
                std::thread::sleep(Duration::from_millis(10));
            }
            None
        }
        Kill::At(point, after) => {
            // Only an announcement after this round's first acknowledged push counts:
            // `wal.rotate` is also reached once while the store opens.
            let before = shared.acked_pushes.load(Ordering::SeqCst);
            wait_for(
                &mut server,
                "a push acknowledged",
                Duration::from_secs(120),
                || shared.acked_pushes.load(Ordering::SeqCst) > before,
            );
            while server.failpoints.try_recv().is_ok() {}
            let announced = Instant::now();
            loop {
                server.assert_running();
                match server.failpoints.recv_timeout(Duration::from_millis(100)) {
                    Ok(name) if name == point => break,
                    Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        panic!("the server closed stderr before reaching {point}")
                    }
                }
                assert!(
                    announced.elapsed() < Duration::from_secs(120),
                    "failpoint {point} not reached within 120 s"
                );
            }
            let reached = started.elapsed().as_millis();
            std::thread::sleep(after);
            Some(reached)
        }
    };
    server.kill();
    url.send_replace(None);
    (started.elapsed().as_millis(), reached)
}

/// Every ID found in the store, per table, with how often it was found.
fn stored(rt: &tokio::runtime::Runtime, url: &str) -> HashMap<(Table, u64), u32> {
    let queries = [
        (Table::Logs, "SELECT body FROM logs"),
        (Table::Spans, "SELECT name FROM spans"),
        (
            Table::Samples,
            "SELECT value FROM samples WHERE metric IN ('crash_otlp', 'crash_rw')",
        ),
        (
            Table::ProfileSamples,
            "SELECT functions[-1] FROM profile_samples",
        ),
    ];
    let http = reqwest::Client::new();
    let mut found = HashMap::new();
    for (table, sql) in queries {
        // CSV: millions of rows stay small, and no value here needs quoting.
        let text = rt.block_on(async {
            let response = http
                .post(format!("{url}/threadline/v1/sql?format=csv"))
                .body(sql)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let truncated = response.headers().get("x-threadline-truncated").cloned();
            let text = response.text().await.unwrap();
            assert!(status.is_success(), "{sql}: {status} {text}");
            assert_eq!(truncated.unwrap(), "false", "{sql}: result truncated");
            text
        });
        for value in text.lines().skip(1) {
            let id = match table {
                Table::Samples => value.parse::<f64>().ok().map(|v| v as u64),
                Table::Logs => value
                    .split_once("id=")
                    .and_then(|(_, rest)| rest.split(' ').next())
                    .and_then(|id| id.parse().ok()),
                Table::Spans => value.strip_prefix("crash-").and_then(|id| id.parse().ok()),
                Table::ProfileSamples => {
                    value.strip_prefix("crash_").and_then(|id| id.parse().ok())
                }
            };
            let id = id.unwrap_or_else(|| panic!("{sql}: no ID in {value:?}"));
            *found.entry((table, id)).or_default() += 1;
        }
    }
    found
}

#[derive(Debug, Default)]
struct Verdict {
    records: u64,
    acked: u64,
    unacked_stored: u64,
    lost: Vec<(u64, Api)>,
    duplicated: Vec<(u64, Api, bool, u32)>,
    unknown: Vec<(Table, u64, u32)>,
}

impl Verdict {
    fn ok(&self) -> bool {
        self.lost.is_empty() && self.duplicated.is_empty() && self.unknown.is_empty()
    }
}

fn check(sent: &[Sent], mut found: HashMap<(Table, u64), u32>) -> Verdict {
    let mut verdict = Verdict::default();
    for s in sent {
        for id in s.first..s.first + s.count {
            verdict.records += 1;
            verdict.acked += s.acked as u64;
            let times = found.remove(&(s.api.table(), id)).unwrap_or(0);
            match (s.acked, times) {
                (true, 0) => verdict.lost.push((id, s.api)),
                (false, 1) => verdict.unacked_stored += 1,
                (_, 0 | 1) => {}
                (acked, n) => verdict.duplicated.push((id, s.api, acked, n)),
            }
        }
    }
    verdict.unknown = found.into_iter().map(|((t, id), n)| (t, id, n)).collect();
    verdict
}

fn report(what: &str, verdict: &Verdict) {
    println!(
        "{what}: {} records sent, {} acknowledged, {} unacknowledged but stored once; \
         lost {}, duplicated {}, never sent {}",
        verdict.records,
        verdict.acked,
        verdict.unacked_stored,
        verdict.lost.len(),
        verdict.duplicated.len(),
        verdict.unknown.len()
    );
    let mut per_api: HashMap<(&str, &str), u64> = HashMap::new();
    for (_, api) in &verdict.lost {
        *per_api.entry(("lost", api.name())).or_default() += 1;
    }
    for (_, api, _, _) in &verdict.duplicated {
        *per_api.entry(("duplicated", api.name())).or_default() += 1;
    }
    let mut per_api: Vec<_> = per_api.into_iter().collect();
    per_api.sort();
    for ((what, api), n) in per_api {
        println!("  {what} from {api}: {n}");
    }
    for (id, api) in verdict.lost.iter().take(20) {
        println!("  lost: id {id} ({})", api.name());
    }
    for (id, api, acked, n) in verdict.duplicated.iter().take(20) {
        println!(
            "  duplicated: id {id} ({}, acknowledged: {acked}) stored {n} times",
            api.name()
        );
    }
    for (table, id, n) in verdict.unknown.iter().take(20) {
        println!("  never sent: id {id} in {table:?}, {n} times");
    }
}

#[test]
fn acknowledged_records_survive_kill_9_exactly_once() {
    let rounds = env_u64("THREADLINE_CRASH_ROUNDS").map_or(DEFAULT_ROUNDS, |r| r as usize);
    let seed = env_u64("THREADLINE_CRASH_SEED").unwrap_or_else(|| now_ns() as u64);
    println!("crash harness: seed {seed}, {rounds} kills (THREADLINE_CRASH_SEED to repeat)");
    let mut rng = Rng(seed);
    let plan = schedule(rounds, &mut rng);

    // Kept if the test fails, for a post-mortem; removed once it passes.
    let dir = tempfile::Builder::new()
        .prefix("threadline-crash-")
        .tempdir()
        .unwrap()
        .keep();
    let data = dir.join("data");
    let log_path = dir.join("server.log");
    let log = Arc::new(Mutex::new(File::create(&log_path).unwrap()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    let (url_tx, url_rx) = tokio::sync::watch::channel(None);
    let shared = Arc::new(Shared {
        url: url_rx,
        stop: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        acked_pushes: AtomicU64::new(0),
    });
    let pushers: Vec<_> = APIS
        .iter()
        .flat_map(|api| (0..PUSHERS_PER_API).map(move |i| (*api, i)))
        .enumerate()
        .map(|(n, (api, i))| {
            let pusher_seed = rng.next() ^ n as u64;
            rt.spawn(pusher(Arc::clone(&shared), api, i, pusher_seed))
        })
        .collect();
    let compactor = rt.spawn(compactor(Arc::clone(&shared)));
    println!(
        "{} pushers over {} APIs; data and server log in {}",
        pushers.len(),
        APIS.len(),
        dir.display()
    );

    let started = Instant::now();
    let mut kills: HashMap<&str, usize> = HashMap::new();
    for (n, kill) in plan.iter().enumerate() {
        let acked_before = shared.acked_pushes.load(Ordering::SeqCst);
        writeln!(log.lock().unwrap(), "=== round {n}: {kill:?}").unwrap();
        let (killed, reached) = round(*kill, &data, &log, &url_tx, &shared);
        let name = match kill {
            Kill::Random(_) => "random",
            Kill::At(point, _) => point,
        };
        *kills.entry(name).or_default() += 1;
        println!(
            "round {n:>3}: kill {name:<22} {:>5} ms after the start{}, {:>5} pushes acknowledged",
            killed,
            reached.map_or(String::new(), |ms| format!(" (reached at {ms} ms)")),
            shared.acked_pushes.load(Ordering::SeqCst) - acked_before,
        );
    }
    shared.stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    let mut outcomes = Outcomes::new();
    for pusher in pushers {
        let (s, o) = rt.block_on(pusher).unwrap();
        sent.extend(s);
        for (k, v) in o {
            *outcomes.entry(k).or_default() += v;
        }
    }
    let passes = rt.block_on(compactor).unwrap();
    let pushing = started.elapsed();

    // The last start: no kill, and room for every ID in one result.
    writeln!(log.lock().unwrap(), "=== final start").unwrap();
    let mut server = Server::start(
        &data,
        &log,
        &[
            "--query-max-rows",
            "100000000",
            "--query-timeout",
            "600s",
            "--compaction-delete-delay",
            "601s",
        ],
        "",
    );
    let http = reqwest::Client::new();
    let ready_url = format!("{}/ready", server.url);
    wait_for(&mut server, "ready", Duration::from_secs(300), || {
        rt.block_on(http.get(&ready_url).send())
            .is_ok_and(|r| r.status().is_success())
    });
    let replayed = check(&sent, stored(&rt, &server.url));
    // Once the replayed head has been cut into chunks (1 s old, plus a flush period).
    std::thread::sleep(Duration::from_secs(3));
    let flushed = check(&sent, stored(&rt, &server.url));
    server.kill();

    let mut by_api: Vec<_> = outcomes.into_iter().collect();
    by_api.sort_by_key(|((api, status), _)| (api.name(), *status));
    for ((api, status), n) in by_api {
        let status = if status == 0 {
            "no answer".to_owned()
        } else {
            status.to_string()
        };
        println!("  {:<18} {status:>9}: {n} pushes", api.name());
    }
    let mut kinds: Vec<_> = kills.into_iter().collect();
    kinds.sort();
    println!(
        "{} kills in {:.1} s ({}), seed {seed}",
        plan.len(),
        pushing.as_secs_f64(),
        kinds
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("{passes} compaction passes ran to their end");
    report("after the last restart", &replayed);
    report("after its head was flushed", &flushed);
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        replayed.ok() && flushed.ok(),
        "acknowledged records lost or records duplicated (seed {seed}); data and log kept in {}",
        dir.display()
    );
    assert!(replayed.acked > 0, "nothing was acknowledged");
    assert!(passes > 0, "no compaction pass ran to its end");
    std::fs::remove_dir_all(&dir).unwrap();
}
