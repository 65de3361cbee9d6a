//! Deterministic telemetry for the benchmarks: OTLP log and trace requests, remote
//! write, OpenMetrics and Loki pushes whose shape is like real services' (templated
//! lines, a few services, random trace IDs); and the store they are written to.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use threadline::db::{Db, DbConfig};
use threadline::metrics::Metrics;
use threadline::wal::SyncPolicy;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

pub const T0: i64 = 1_700_000_000_000_000_000;

/// A store in `dir` that never cuts chunks on its own (benchmarks flush explicitly).
pub fn open_db(rt: &tokio::runtime::Runtime, dir: &std::path::Path, sync: SyncPolicy) -> Arc<Db> {
    let config = DbConfig {
        data_dir: dir.to_owned(),
        object_store: String::new(),
        wal_sync: sync,
        wal_segment_bytes: 64 << 20,
        wal_max_disk_bytes: u64::MAX,
        upload_timeout: threadline::storage::store::DEFAULT_UPLOAD_TIMEOUT,
        head_max_bytes: usize::MAX,
        head_max_age: Duration::from_secs(3600),
        compaction: Default::default(),
        retention: Default::default(),
    };
    rt.block_on(Db::open(config, Arc::new(Metrics::default())))
        .unwrap()
}

pub use threadline::generate::Rng;

fn string(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    })
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: string(value),
        ..Default::default()
    }
}

fn resource(service: &str, pod: u64) -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", service),
            kv("k8s.namespace.name", "shop"),
            kv("k8s.pod.name", &format!("{service}-{pod}")),
            kv("host.name", &format!("node-{}", pod % 3)),
        ],
        ..Default::default()
    })
}

pub const SERVICES: &[&str] = &[
    "checkout", "cart", "search", "payments", "frontend", "auth", "shipping", "email",
];

/// A log line from one of a few templates, ~100–250 bytes.
pub fn line(rng: &mut Rng) -> String {
    let user = rng.below(100_000);
    let ms = rng.below(2_000);
    match rng.below(5) {
        0 => format!(
            "10.0.{}.{} - - [14/Nov/2023:22:13:20 +0000] \"GET /api/v1/items/{} HTTP/1.1\" 200 {} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\" {ms}ms",
            rng.below(255),
            rng.below(255),
            rng.below(1_000_000),
            rng.below(50_000)
        ),
        1 => format!(
            "{{\"level\":\"info\",\"msg\":\"request served\",\"user_id\":\"u-{user}\",\"route\":\"/cart/{}\",\"duration_ms\":{ms},\"status\":200}}",
            rng.below(1000)
        ),
        2 => format!(
            "level=warn msg=\"slow query\" table=orders rows={} duration={ms}ms user=u-{user}",
            rng.below(10_000)
        ),
        3 => format!(
            "connection pool stats: active={} idle={} waiting={} max=64 acquired_total={}",
            rng.below(64),
            rng.below(64),
            rng.below(10),
            rng.below(10_000_000)
        ),
        _ => format!(
            "java.lang.IllegalStateException: cart {} is locked\n\tat com.shop.cart.CartService.update(CartService.java:{})\n\tat com.shop.http.Handler.handle(Handler.java:88)",
            rng.below(100_000),
            rng.below(900)
        ),
    }
}

/// `records` log records spread over the services, one resource per service.
pub fn logs_request(rng: &mut Rng, records: usize, t: i64) -> ExportLogsServiceRequest {
    let per_service = records.div_ceil(SERVICES.len());
    let resource_logs = SERVICES
        .iter()
        .enumerate()
        .map(|(s, service)| ResourceLogs {
            resource: resource(service, s as u64),
            scope_logs: vec![ScopeLogs {
                log_records: (0..per_service)
                    .map(|i| {
                        let traced = rng.below(4) == 0;
                        LogRecord {
                            time_unix_nano: (t + i as i64 * 1_000) as u64,
                            severity_text: ["INFO", "INFO", "INFO", "WARN", "ERROR"]
                                [rng.below(5) as usize]
                                .into(),
                            body: string(&line(rng)),
                            attributes: vec![kv("thread", &format!("worker-{}", rng.below(16)))],
                            trace_id: if traced {
                                rng.trace_id().to_vec()
                            } else {
                                Vec::new()
                            },
                            span_id: if traced {
                                rng.next_u64().to_be_bytes().to_vec()
                            } else {
                                Vec::new()
                            },
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// `traces` traces of `spans_per_trace` spans for one service; returns the trace IDs.
pub fn traces_request(
    rng: &mut Rng,
    service: &str,
    traces: usize,
    spans_per_trace: usize,
    t: i64,
) -> (ExportTraceServiceRequest, Vec<Vec<u8>>) {
    let mut ids = Vec::with_capacity(traces);
    let mut spans = Vec::with_capacity(traces * spans_per_trace);
    for i in 0..traces {
        let trace_id = rng.trace_id().to_vec();
        let root = rng.next_u64().to_be_bytes().to_vec();
        let start = t + i as i64 * 1_000_000;
        for s in 0..spans_per_trace {
            let span_id = if s == 0 {
                root.clone()
            } else {
                rng.next_u64().to_be_bytes().to_vec()
            };
            spans.push(Span {
                trace_id: trace_id.clone(),
                span_id,
                parent_span_id: if s == 0 { Vec::new() } else { root.clone() },
                name: format!("op-{}", rng.below(20)),
                kind: 2,
                start_time_unix_nano: (start + s as i64 * 1_000) as u64,
                end_time_unix_nano: (start + s as i64 * 1_000 + rng.below(50_000_000) as i64)
                    as u64,
                attributes: vec![
                    kv("http.route", "/api/v1/items"),
                    kv("user.id", &format!("u-{}", rng.below(100_000))),
                ],
                ..Default::default()
            });
        }
        ids.push(trace_id);
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service, 0),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (request, ids)
}

/// Metric families as exporters expose them: (name, type, extra label).
const FAMILIES: &[(&str, &str)] = &[
    ("http_requests_total", "counter"),
    ("http_request_duration_seconds", "histogram"),
    ("process_resident_memory_bytes", "gauge"),
    ("db_queries_total", "counter"),
    ("queue_depth", "gauge"),
];

const BUCKETS: &[&str] = &["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"];

/// One series of a scrape: its name and labels (without job/instance).
fn series_labels(rng: &mut Rng, i: usize) -> (String, Vec<(String, String)>) {
    let (family, kind) = FAMILIES[i % FAMILIES.len()];
    let mut labels = vec![
        (
            "method".to_owned(),
            ["GET", "POST", "PUT"][i % 3].to_owned(),
        ),
        ("route".to_owned(), format!("/api/v1/r{}", (i / 15) % 200)),
        (
            "status".to_owned(),
            ["200", "404", "500"][(i / 3) % 3].to_owned(),
        ),
    ];
    let name = if kind == "histogram" {
        labels.push((
            "le".to_owned(),
            BUCKETS[rng.below(BUCKETS.len() as u64) as usize].to_owned(),
        ));
        format!("{family}_bucket")
    } else {
        family.to_owned()
    };
    (name, labels)
}

/// A remote-write request as Prometheus sends it: one sample per series, 1 in 10
/// series with an exemplar.
pub fn remote_write_request(
    rng: &mut Rng,
    series: usize,
    t_ms: i64,
) -> threadline::proto::prometheus::WriteRequest {
    use threadline::proto::prometheus::{Exemplar, Label, Sample, TimeSeries, WriteRequest};
    let label = |name: &str, value: &str| Label {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let timeseries = (0..series)
        .map(|i| {
            let (name, extra) = series_labels(rng, i);
            let mut labels = vec![
                label("__name__", &name),
                label("job", SERVICES[i % SERVICES.len()]),
                label("instance", &format!("10.0.0.{}:9090", i % 20)),
            ];
            labels.extend(extra.iter().map(|(n, v)| label(n, v)));
            let exemplars = if i % 10 == 0 {
                let trace = threadline::model::to_hex(&rng.trace_id());
                vec![Exemplar {
                    labels: vec![label("trace_id", &trace)],
                    value: 0.25,
                    timestamp: t_ms,
                }]
            } else {
                Vec::new()
            };
            TimeSeries {
                labels,
                samples: vec![Sample {
                    value: rng.below(1_000_000) as f64,
                    timestamp: t_ms,
                }],
                exemplars,
                histograms: Vec::new(),
            }
        })
        .collect();
    WriteRequest {
        timeseries,
        metadata: Vec::new(),
    }
}

/// An OpenMetrics exposition of `series` series, 1 in 10 with an exemplar.
pub fn openmetrics_text(rng: &mut Rng, series: usize) -> String {
    let mut by_family: Vec<Vec<String>> = vec![Vec::new(); FAMILIES.len()];
    for i in 0..series {
        let (name, labels) = series_labels(rng, i);
        let (family, kind) = FAMILIES[i % FAMILIES.len()];
        let name = if kind == "counter" {
            name.trim_end_matches("_total").to_owned() + "_total"
        } else {
            name
        };
        let body: Vec<String> = labels
            .iter()
            .map(|(n, v)| format!("{n}=\"{v}\""))
            .chain([format!("pod=\"p{i}\"")])
            .collect();
        let mut line = format!("{name}{{{}}} {}", body.join(","), rng.below(1_000_000));
        if i % 10 == 0 {
            let trace = threadline::model::to_hex(&rng.trace_id());
            line.push_str(&format!(" # {{trace_id=\"{trace}\"}} 0.25 1700000000.123"));
        }
        let _ = family;
        by_family[i % FAMILIES.len()].push(line);
    }
    let mut text = String::new();
    for ((family, kind), lines) in FAMILIES.iter().zip(by_family) {
        let family = family.trim_end_matches("_total");
        text.push_str(&format!(
            "# TYPE {family} {kind}\n# HELP {family} Generated.\n"
        ));
        for line in lines {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text.push_str("# EOF\n");
    text
}

/// A Loki push of `lines` lines over a few streams.
pub fn loki_push(rng: &mut Rng, lines: usize, t: i64) -> threadline::proto::logproto::PushRequest {
    use threadline::proto::logproto::{EntryAdapter, PushRequest, StreamAdapter};
    let per_stream = lines.div_ceil(SERVICES.len());
    let streams = SERVICES
        .iter()
        .map(|service| StreamAdapter {
            labels: format!("{{app=\"{service}\", namespace=\"shop\", level=\"info\"}}"),
            entries: (0..per_stream)
                .map(|i| EntryAdapter {
                    timestamp: Some(prost_types::Timestamp {
                        seconds: t / 1_000_000_000,
                        nanos: (i % 1_000_000) as i32,
                    }),
                    line: line(rng),
                    structured_metadata: Vec::new(),
                })
                .collect(),
            hash: 0,
        })
        .collect();
    PushRequest { streams }
}

/// A Go-like CPU profile of one service. Its stacks come from one fixed pool of 500
/// paths through a call tree of 300 functions (10 to 40 frames deep), drawn with a
/// skew towards the hot ones, as a service's repeated profiles share their stacks;
/// about a third of the samples name a span. Gzipped, as `/debug/pprof/profile`
/// serves it.
pub fn cpu_profile_gzip(rng: &mut Rng, time: i64, samples: usize) -> Vec<u8> {
    use threadline::profile::{Frame, Profile, Sample, ValueType, pprof};
    const FUNCTIONS: u64 = 300;
    const STACKS: u64 = 500;
    let frames: Vec<Frame> = (0..FUNCTIONS)
        .map(|i| Frame {
            function: format!(
                "github.com/acme/shop/internal/pkg{}.(*Handler{}).Method{}",
                i % 23,
                i % 7,
                i
            ),
            file: format!("/src/shop/internal/pkg{}/handler{}.go", i % 23, i % 7),
            line: 20 + (i as i64 * 37) % 400,
        })
        .collect();
    // The pool: each stack a walk through the call tree from a seed of its own.
    let stack = |n: u64| {
        let mut walk = Rng::new(n + 1);
        let depth = 10 + walk.below(31);
        let mut f = walk.below(4);
        (0..depth)
            .map(|_| {
                let here = f as u32;
                f = (f * 7 + 1 + walk.below(3) * 13) % FUNCTIONS;
                here
            })
            .collect::<Vec<u32>>()
    };
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        // Skewed: the product of two uniform draws favours low (hot) stack numbers.
        let n = rng.below(STACKS) * rng.below(STACKS) / STACKS;
        let count = 1 + rng.below(5) as i64;
        let labels = if rng.below(3) == 0 {
            vec![("span_id".to_owned(), format!("{:016x}", rng.next_u64()))]
        } else {
            Vec::new()
        };
        out.push(Sample {
            stack: stack(n),
            values: vec![count, count * 10_000_000],
            labels,
        });
    }
    let profile = Profile {
        time_nanos: time,
        duration_nanos: 10_000_000_000,
        period_type: ValueType::new("cpu", "nanoseconds"),
        period: 10_000_000,
        sample_types: vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
        ],
        frames,
        samples: out,
    };
    pprof::encode_gzip(&profile)
}
