//! Writes the seeds of the decoder fuzz targets into `fuzz/seeds/<target>/`: the real
//! client payloads in `tests/fixtures/` (trimmed where they are large), the shapes the
//! unit and end-to-end tests send, and each in the other encodings a server accepts.
//! Run it again when a format changes (`cargo run -p threadline-fuzz --example seeds`);
//! it overwrites only its own files, never a kept crash.

use std::path::{Path, PathBuf};

use prost::Message;
use threadline::ingest::IngestRules;
use threadline::ingest::otlp::{self, Encoding};
use threadline::ingest::profiles::{ProfileRows, Received};
use threadline::ingest::{ContentEncoding, decompress, loki, otlp_metrics, remote_write};
use threadline::model::{Signal, Tenant};
use threadline::profile::{Frame, Profile, Sample, ValueType, pprof};
use threadline::proto::io::prometheus::write::v2;
use threadline::proto::prometheus as v1;
use threadline::proto::push::v1 as push;
use threadline::wal::record::{FRAME_HEADER, encode_frame_head, encode_rows};

const JSON: u8 = 1;
const PROTOBUF: u8 = 0;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = root.join("../tests/fixtures");
    let fixture = |name: &str| std::fs::read(fixtures.join(name)).expect("fixture");
    let seeds = Seeds(root.join("seeds"));
    let mut wal = Vec::new();

    // OTLP logs: the unit tests' JSON, and each as protobuf.
    for (name, json) in [
        ("unit-trace-ids-and-unknown-fields", LOGS_JSON),
        ("unit-long-lines", LOGS_LONG_LINES),
        ("e2e-severities", LOGS_E2E),
    ] {
        seeds.write(
            "otlp_logs",
            &format!("{name}.json"),
            [JSON],
            json.as_bytes(),
        );
        let request = otlp::decode_logs_request(json.as_bytes(), Encoding::Json).expect(name);
        seeds.write(
            "otlp_logs",
            &format!("{name}.pb"),
            [PROTOBUF],
            &request.encode_to_vec(),
        );
        let decoded = otlp::logs_to_batch(&request, &IngestRules::default(), 1);
        wal.push((Signal::Logs, decoded.batch));
    }

    // OTLP traces: the OpenTelemetry JS exporter's request, and the unit test's.
    let js_trace = fixture("js_trace.json");
    for (name, json) in [
        ("js-exporter", &js_trace[..]),
        ("unit-bad-ids", TRACES_BAD_IDS.as_bytes()),
    ] {
        seeds.write("otlp_traces", &format!("{name}.json"), [JSON], json);
        let request = otlp::decode_traces_request(json, Encoding::Json).expect(name);
        seeds.write(
            "otlp_traces",
            &format!("{name}.pb"),
            [PROTOBUF],
            &request.encode_to_vec(),
        );
        wal.push((
            Signal::Spans,
            otlp::traces_to_batch(&request, &IngestRules::default()).batch,
        ));
    }

    // OTLP metrics: every kind of point (unit test), and the end-to-end histogram.
    for (name, json) in [
        ("unit-every-kind", METRICS_JSON),
        ("e2e-histogram", METRICS_E2E),
    ] {
        seeds.write(
            "otlp_metrics",
            &format!("{name}.json"),
            [JSON],
            json.as_bytes(),
        );
        let request =
            otlp_metrics::decode_metrics_request(json.as_bytes(), Encoding::Json).expect(name);
        seeds.write(
            "otlp_metrics",
            &format!("{name}.pb"),
            [PROTOBUF],
            &request.encode_to_vec(),
        );
    }

    // Remote write 1.0: Prometheus's own request (captured after snappy) cut to a few
    // series, with an exemplar and metadata; as snappy (the default) and identity.
    let rw1 = fixture("rw1.pb");
    let full = v1::WriteRequest::decode(&rw1[..]).expect("rw1 is a WriteRequest");
    let mut cut = v1::WriteRequest {
        timeseries: full.timeseries.iter().take(4).cloned().collect(),
        metadata: full.metadata.iter().take(4).cloned().collect(),
    };
    cut.timeseries.extend(
        full.timeseries
            .iter()
            .filter(|t| !t.exemplars.is_empty())
            .take(2)
            .cloned(),
    );
    let cut = cut.encode_to_vec();
    seeds.write(
        "remote_write",
        "v1-prometheus-cut.snappy",
        [0],
        &snappy(&cut),
    );
    seeds.write("remote_write", "v1-prometheus-cut.pb", [2], &cut);
    let histogram = native_histogram_v1();
    seeds.write("remote_write", "v1-native-histogram.pb", [2], &histogram);
    let v2 = remote_write_v2();
    seeds.write("remote_write", "v2-e2e.snappy", [1], &snappy(&v2));
    seeds.write("remote_write", "v2-e2e.pb", [3], &v2);
    for body in [&cut, &histogram] {
        let (rows, _) = remote_write::decode_v1(body).expect("remote write seed");
        wal.extend(rows.finish().0);
    }

    // Loki push: winston-loki's snappy protobuf, the same unwrapped, and JSON.
    let loki_push = fixture("loki_push.snappy");
    seeds.write("loki_push", "winston-loki.snappy", [1], &loki_push);
    let raw = decompress(loki_push.into(), ContentEncoding::Snappy, 1 << 20).expect("snappy");
    seeds.write("loki_push", "winston-loki.pb", [2], &raw);
    seeds.write("loki_push", "e2e-streams.json", [0], LOKI_JSON.as_bytes());
    seeds.write(
        "loki_push",
        "structured-metadata.json",
        [0],
        LOKI_METADATA.as_bytes(),
    );
    for streams in [
        loki::decode_protobuf(&raw),
        loki::decode_json(LOKI_METADATA.as_bytes()),
    ] {
        let streams = streams.expect("loki seed");
        wal.push((
            Signal::Logs,
            loki::push_to_batch(&streams, &IngestRules::default(), 1).batch,
        ));
    }

    // pprof: Go's heap profile and Node's CPU profile, gzipped as sent, one raw, and a
    // small one whose samples carry trace and span labels.
    let node_cpu = fixture("node_cpu.pb.gz");
    let node_raw = pprof::inflate(node_cpu.clone().into(), 1 << 20).expect("gzip");
    let traced = traced_profile();
    seeds.write("pprof", "go-heap.pb.gz", [], &fixture("go_heap.pb.gz"));
    seeds.write("pprof", "node-cpu.pb.gz", [], &node_cpu);
    seeds.write("pprof", "node-cpu.pb", [], &node_raw);
    seeds.write(
        "pprof",
        "traced.pb",
        [],
        &pprof::encode(&traced).encode_to_vec(),
    );
    let mut rows = ProfileRows::default();
    for original in [&node_raw[..], &pprof::encode(&traced).encode_to_vec()] {
        let profile = pprof::decode(original).expect("profile seed");
        rows.add(Received {
            labels: vec![("service_name".into(), "shop".into())],
            profile: &profile,
            original,
            default_time: 1,
            default_duration: 0,
            id: Some("ab625a03-e71b-43f5-b742-ef7fcfd9967b"),
        })
        .expect("profile rows");
    }
    wal.extend(rows.finish());

    // Pyroscope /ingest: name, content type, format, units, then the body.
    let ingest = |name: &str, head: &str, body: &[u8]| {
        seeds.write("pyroscope_ingest", name, head.bytes(), body);
    };
    ingest(
        "folded",
        "shop.cpu{env=prod}\ntext/plain\n\n\n",
        b"main;work;hash 30\nmain;idle 5\n",
    );
    ingest(
        "folded-objects",
        "batch.alloc_objects\ntext/plain\nfolded\nobjects\n",
        b"main;alloc 7\n",
    );
    ingest(
        "pprof",
        "shop.cpu{env=prod}\napplication/octet-stream\npprof\n\n",
        &node_cpu,
    );
    let (before, after) = heap_profiles();
    let mut form = Vec::new();
    for (part, profile) in [("profile", &after), ("prev_profile", &before)] {
        form.extend_from_slice(format!("--b0undary\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"{part}.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        form.extend_from_slice(&pprof::encode_gzip(profile));
        form.extend_from_slice(b"\r\n");
    }
    form.extend_from_slice(b"--b0undary--\r\n");
    ingest(
        "multipart-delta",
        "shop.alloc_space\nmultipart/form-data; boundary=b0undary\npprof\n\n",
        &form,
    );

    // Pyroscope push: one series with a raw and a gzipped profile.
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
            samples: vec![
                push::RawSample {
                    raw_profile: pprof::encode(&traced).encode_to_vec(),
                    id: "ab625a03-e71b-43f5-b742-ef7fcfd9967b".into(),
                },
                push::RawSample {
                    raw_profile: node_cpu.clone(),
                    id: String::new(),
                },
            ],
        }],
    };
    seeds.write(
        "pyroscope_push",
        "e2e-series.pb",
        [],
        &request.encode_to_vec(),
    );

    // Expositions: the unit tests' OpenMetrics and text, the scrape test's histogram.
    seeds.write(
        "exposition",
        "unit-openmetrics.txt",
        [1],
        OPENMETRICS.as_bytes(),
    );
    seeds.write("exposition", "unit-text.txt", [0], TEXT.as_bytes());
    seeds.write(
        "exposition",
        "unit-escapes.txt",
        [0],
        TEXT_ESCAPES.as_bytes(),
    );
    seeds.write(
        "exposition",
        "e2e-histogram.txt",
        [1],
        SCRAPE_OPENMETRICS.as_bytes(),
    );

    // WAL records: every batch above, as the WAL writes it, for two tenants.
    for (i, (signal, batch)) in wal.iter().enumerate() {
        let tenant = Tenant::new(if i % 2 == 0 { "default" } else { "team-a" }).expect("tenant");
        let rows = encode_rows(batch).expect("encodes");
        let frame = [
            encode_frame_head(i as u64 + 1, &tenant, *signal, &rows),
            rows.bytes,
        ]
        .concat();
        let name = format!("{i:02}-{}.rec", signal.as_str());
        seeds.write("wal_record", &name, [], &frame[FRAME_HEADER..]);
    }
}

struct Seeds(PathBuf);

impl Seeds {
    fn write(&self, target: &str, name: &str, head: impl IntoIterator<Item = u8>, body: &[u8]) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).expect("seed directory");
        let mut bytes: Vec<u8> = head.into_iter().collect();
        bytes.extend_from_slice(body);
        std::fs::write(dir.join(name), bytes).expect("seed written");
    }
}

/// Snappy's block format with every byte a literal: valid, if not small.
fn snappy(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 60_000 * 3 + 8);
    let mut len = data.len() as u64;
    while len >= 0x80 {
        out.push(len as u8 | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    for chunk in data.chunks(1 << 16) {
        // Tag 61 << 2: a literal whose length - 1 follows in two bytes.
        out.push(61 << 2);
        out.extend_from_slice(&((chunk.len() - 1) as u16).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

fn native_histogram_v1() -> Vec<u8> {
    let histogram = v1::Histogram {
        count: Some(v1::histogram::Count::CountInt(3)),
        sum: 2.5,
        schema: 0,
        positive_spans: vec![v1::BucketSpan {
            offset: 0,
            length: 2,
        }],
        positive_deltas: vec![2, -1],
        timestamp: 1_700_000_000_000,
        ..Default::default()
    };
    let custom = v1::Histogram {
        count: Some(v1::histogram::Count::CountFloat(4.0)),
        sum: 3.0,
        schema: -53,
        custom_values: vec![0.1, 1.0],
        positive_spans: vec![v1::BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_counts: vec![1.0, 2.0, 1.0],
        timestamp: 1_700_000_000_000,
        ..Default::default()
    };
    let label = |name: &str, value: &str| v1::Label {
        name: name.into(),
        value: value.into(),
    };
    v1::WriteRequest {
        timeseries: vec![v1::TimeSeries {
            labels: vec![label("__name__", "latency_seconds"), label("job", "api")],
            histograms: vec![histogram, custom],
            exemplars: vec![v1::Exemplar {
                labels: vec![label("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")],
                value: 0.7,
                timestamp: 1_700_000_000_000,
            }],
            ..Default::default()
        }],
        metadata: vec![v1::MetricMetadata {
            r#type: v1::metric_metadata::MetricType::Histogram as i32,
            metric_family_name: "latency_seconds".into(),
            unit: "seconds".into(),
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The end-to-end test's 2.0 request: interned symbols, a counter with an exemplar,
/// metadata and a created time, and a native histogram.
fn remote_write_v2() -> Vec<u8> {
    let t = 1_700_000_000_000;
    let symbols = [
        "",
        "__name__",
        "http_request_duration_seconds",
        "job",
        "api",
        "trace_id",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "seconds",
        "http_requests_total",
    ];
    v2::Request {
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        timeseries: vec![
            v2::TimeSeries {
                labels_refs: vec![1, 8, 3, 4],
                samples: vec![v2::Sample {
                    value: 10.0,
                    timestamp: t,
                }],
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![5, 6],
                    value: 1.0,
                    timestamp: t,
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Counter as i32,
                    help_ref: 0,
                    unit_ref: 0,
                }),
                created_timestamp: t - 60_000,
                histograms: Vec::new(),
            },
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4],
                histograms: vec![v1::Histogram {
                    count: Some(v1::histogram::Count::CountInt(3)),
                    sum: 2.5,
                    schema: 0,
                    positive_spans: vec![v1::BucketSpan {
                        offset: 0,
                        length: 2,
                    }],
                    positive_deltas: vec![2, -1],
                    timestamp: t,
                    ..Default::default()
                }],
                metadata: Some(v2::Metadata {
                    r#type: v2::metadata::MetricType::Histogram as i32,
                    help_ref: 0,
                    unit_ref: 7,
                }),
                ..Default::default()
            },
        ],
    }
    .encode_to_vec()
}

fn frames(names: &[&str]) -> Vec<Frame> {
    names
        .iter()
        .map(|f| Frame {
            function: (*f).into(),
            file: "shop.go".into(),
            line: 7,
        })
        .collect()
}

/// A CPU profile whose samples carry the labels tracing integrations set.
fn traced_profile() -> Profile {
    Profile {
        time_nanos: 1_700_000_000_000_000_000,
        duration_nanos: 10_000_000_000,
        period_type: ValueType::new("cpu", "nanoseconds"),
        period: 10_000_000,
        sample_types: vec![
            ValueType::new("samples", "count"),
            ValueType::new("cpu", "nanoseconds"),
        ],
        frames: frames(&["main", "checkout", "charge"]),
        samples: vec![
            Sample {
                stack: vec![0, 1, 2],
                values: vec![4, 40_000_000],
                labels: vec![
                    ("trace_id".into(), "4bf92f3577b34da6a3ce929d0e0e4736".into()),
                    ("span_id".into(), "00f067aa0ba902b7".into()),
                    ("span_name".into(), "POST /checkout".into()),
                ],
            },
            Sample {
                stack: vec![0, 1],
                values: vec![1, 10_000_000],
                labels: Vec::new(),
            },
        ],
    }
}

/// Two cumulative heap profiles of one process, a few seconds apart.
fn heap_profiles() -> (Profile, Profile) {
    let heap = |values: &[(u32, i64, i64)]| Profile {
        sample_types: vec![
            ValueType::new("alloc_space", "bytes"),
            ValueType::new("inuse_space", "bytes"),
        ],
        period_type: ValueType::new("space", "bytes"),
        frames: frames(&["main", "checkout", "rpc", "cache"]),
        samples: values
            .iter()
            .map(|&(leaf, alloc, inuse)| Sample {
                stack: vec![0, leaf],
                values: vec![alloc, inuse],
                labels: Vec::new(),
            })
            .collect(),
        ..Profile::default()
    };
    (heap(&[(1, 100, 10)]), heap(&[(1, 180, 12), (3, 30, 1)]))
}

const LOGS_JSON: &str = r#"{"resourceLogs":[{"resource":{"attributes":[
    {"key":"service.name","value":{"stringValue":"checkout"}},
    {"key":"service.instance.id","value":{"stringValue":"i-1"}}]},
  "scopeLogs":[{"scope":{"name":"app"},"someFutureField":1,"logRecords":[
    {"timeUnixNano":"1700000000000000000","severityText":"WARN","body":{"stringValue":"slow trace_id=0af7651916cd43dd8448eb211c80319c"},
     "attributes":[{"key":"user","value":{"intValue":42}}]},
    {"timeUnixNano":1700000000000000001,"severityNumber":17,"body":{"stringValue":"boom"},
     "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}]}"#;

const LOGS_LONG_LINES: &str = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"12345"}},{"body":{"stringValue":"1234"}}]}]}]}"#;

const LOGS_E2E: &str = r#"{"resourceLogs":[{"resource":{"attributes":[
    {"key":"service.name","value":{"stringValue":"billing"}},
    {"key":"k8s.namespace.name","value":{"stringValue":"prod"}}]},
  "scopeLogs":[{"scope":{"name":"billing","attributes":[{"key":"lib","value":{"boolValue":true}}]},"logRecords":[
    {"timeUnixNano":"1700000000000000002","observedTimeUnixNano":"1700000000000000003","severityText":"info","body":{"stringValue":"invoice sent"}},
    {"severityNumber":13,"body":{"kvlistValue":{"values":[{"key":"amount","value":{"doubleValue":12.5}}]}},
     "attributes":[{"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a"},{"bytesValue":"AQI="}]}}}]}]}]}]}"#;

const TRACES_BAD_IDS: &str = r#"{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[
    {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok","kind":2,
     "startTimeUnixNano":"10","endTimeUnixNano":"25",
     "events":[{"timeUnixNano":"12","name":"retry","attributes":[{"key":"n","value":{"intValue":"2"}}]}],
     "links":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}],
     "status":{"code":2,"message":"card declined"}},
    {"traceId":"5b8efff798038103d269b633813fc6","spanId":"eee19b7ec3c1b174","name":"short"}]}]}]}"#;

const METRICS_JSON: &str = r#"{"resourceMetrics":[{
  "resource":{"attributes":[
    {"key":"service.name","value":{"stringValue":"checkout"}},
    {"key":"service.instance.id","value":{"stringValue":"pod-1"}},
    {"key":"host.arch","value":{"stringValue":"arm64"}}]},
  "scopeMetrics":[{"scope":{"name":"app"},"metrics":[
    {"name":"orders","unit":"{order}","sum":{"isMonotonic":true,"aggregationTemporality":2,
      "dataPoints":[{"timeUnixNano":"2000","startTimeUnixNano":"1000","asInt":"7",
        "attributes":[{"key":"region","value":{"stringValue":"eu"}}],
        "exemplars":[{"timeUnixNano":"1500","asDouble":1,
          "traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331"}]}]}},
    {"name":"queue.depth","gauge":{"dataPoints":[{"timeUnixNano":"2000","asDouble":3.5}]}},
    {"name":"latency","unit":"s","histogram":{"aggregationTemporality":2,"dataPoints":[
      {"timeUnixNano":"2000","count":"3","sum":1.2,"bucketCounts":["1","2","0"],"explicitBounds":[0.1,1],
       "exemplars":[{"timeUnixNano":"1900","asDouble":0.5,"traceId":"0af7651916cd43dd8448eb211c80319c"}]}]}},
    {"name":"size","unit":"By","exponentialHistogram":{"aggregationTemporality":2,"dataPoints":[
      {"timeUnixNano":"2000","count":"3","sum":10,"scale":0,"zeroCount":"1",
       "positive":{"offset":1,"bucketCounts":["2"]}}]}},
    {"name":"rpc.duration","unit":"ms","summary":{"dataPoints":[
      {"timeUnixNano":"2000","count":"4","sum":8,
       "quantileValues":[{"quantile":0.5,"value":1.5},{"quantile":0.99,"value":4}]}]}}
  ]}]}]}"#;

const METRICS_E2E: &str = r#"{"resourceMetrics":[{
  "resource":{"attributes":[
    {"key":"service.name","value":{"stringValue":"checkout"}},
    {"key":"service.instance.id","value":{"stringValue":"pod-7"}}]},
  "scopeMetrics":[{"metrics":[
    {"name":"http.server.request.duration","unit":"s","histogram":{
      "aggregationTemporality":2,
      "dataPoints":[{
        "timeUnixNano":"1700000000000000000",
        "attributes":[{"key":"http.route","value":{"stringValue":"/pay"}}],
        "count":"2","sum":2.7,
        "bucketCounts":["1","0","1"],"explicitBounds":[0.5,1.0],
        "exemplars":[{"timeUnixNano":"1700000000000000000","asDouble":2.5,
                      "traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7"}]
      }]}}]}]}]}"#;

const LOKI_JSON: &str = r#"{"streams":[
  {"stream":{"app":"api","env":"prod"},"values":[["1700000000000000000","GET /api 200"],["1700000000100000000","GET /api 500"]]},
  {"stream":{"app":"web","env":"prod"},"values":[[1700000000200000000,"GET / 200"]]}]}"#;

const LOKI_METADATA: &str = r#"{"streams":[
  {"stream":{"service_name":"shop","level":"warn"},"values":[
    ["1700000000000000000","card declined",{"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","user":"7"}],
    ["1700000000000000001","retrying trace_id=0af7651916cd43dd8448eb211c80319c",null]]}]}"#;

const OPENMETRICS: &str = r#"# TYPE http_request_duration_seconds histogram
# UNIT http_request_duration_seconds seconds
# HELP http_request_duration_seconds Time spent serving a request.
http_request_duration_seconds_bucket{le="0.1",path="/api"} 3 # {trace_id="0af7651916cd43dd8448eb211c80319c"} 0.067 1520879607.789
http_request_duration_seconds_bucket{le="+Inf",path="/api"} 5
http_request_duration_seconds_count{path="/api"} 5
http_request_duration_seconds_sum{path="/api"} 1.25
http_request_duration_seconds_created{path="/api"} 1520430000.123
# TYPE jobs counter
jobs_total{queue="a\"b\\c\nd"} 7 1520879607.5
jobs_created{queue="a\"b\\c\nd"} 1520430000
# TYPE temperature gauge
temperature NaN
temperature{room="x"} -Inf
# EOF
"#;

const TEXT: &str = "# HELP up Whether up.\n# TYPE up gauge\nup{job=\"a\"} 1 1700000000000\n\nrequests_total 3\nrequests_created 1.7e9\n";

const TEXT_ESCAPES: &str = "up{path=\"C:\\temp\\x\"} 1\n# TYPE q summary\nq{quantile=\"0.5\"} 0.25\nq_sum 10\nq_count 40\n";

const SCRAPE_OPENMETRICS: &str = "# TYPE checkout_seconds histogram\n\
# UNIT checkout_seconds seconds\n\
checkout_seconds_bucket{le=\"0.5\"} 4\n\
checkout_seconds_bucket{le=\"+Inf\"} 5 # {trace_id=\"0af7651916cd43dd8448eb211c80319c\",span_id=\"b7ad6b7169203331\"} 1.7 1700000000.5\n\
checkout_seconds_count 5\n\
checkout_seconds_sum 3.1\n\
checkout_seconds_created 1700000000\n\
# EOF\n";
