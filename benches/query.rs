//! Read-path speed.
//!
//! `grep_kernel_*`: the whole-buffer substring search against arrow's per-row `contains`
//! kernel on the same array, in the same run (the ratio is the result).
//! `grep_query_1m_lines`: a `{…} |= "needle"` label-matcher query over 1M log lines in
//! chunks, end to end through DataFusion; throughput is body bytes scanned.
//! `trace_lookup_1m_spans_100_chunks`: a trace lookup with no time range over 1M spans
//! in 100 chunks.
//! `exemplar_lookup_by_trace_*`: the exemplars naming one trace, with no time range,
//! among 50k exemplars (and 500k samples) written by 50 remote-write requests, each
//! flushed into its own chunks (8 jobs, so 400 exemplar chunks).

#[path = "data.rs"]
mod data;

/// The allocator the server binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, StringArray};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use data::{Rng, SERVICES, T0, line, logs_request, open_db, remote_write_request, traces_request};
use threadline::ingest::IngestRules;
use threadline::ingest::{otlp, remote_write};
use threadline::logql;
use threadline::model::{Signal, Tenant, TraceId};
use threadline::query::grep::contains;
use threadline::query::log_metrics::MetricRequest;
use threadline::query::logql::{Direction, LogRequest};
use threadline::query::otlp::traces_data;
use threadline::query::{QueryConfig, QueryEngine};
use threadline::wal::SyncPolicy;

fn engine(dir: &std::path::Path, rt: &tokio::runtime::Runtime) -> Arc<QueryEngine> {
    let db = open_db(rt, dir, SyncPolicy::Buffered);
    Arc::new(QueryEngine::new(
        db,
        QueryConfig {
            timeout: Duration::from_secs(300),
            max_memory_bytes: 4 << 30,
            max_result_rows: 100_000,
            max_range: Duration::from_secs(31 * 86_400),
            max_concurrent: 32,
        },
    ))
}

fn grep_kernel(c: &mut Criterion) {
    let mut rng = Rng::new(3);
    let lines: Vec<String> = (0..1_000_000).map(|_| line(&mut rng)).collect();
    let array = StringArray::from(lines);
    let bytes = array.value_data().len() as u64;
    let mut group = c.benchmark_group("grep_kernel");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(20);
    group.bench_function("grep_kernel_1m_lines_whole_buffer", |b| {
        b.iter(|| contains(&array, b"needle-not-there"))
    });
    group.bench_function("grep_kernel_1m_lines_arrow_per_row_baseline", |b| {
        let needle = arrow::array::Scalar::new(StringArray::from(vec!["needle-not-there"]));
        b.iter(|| arrow::compute::kernels::comparison::contains(&array, &needle).unwrap())
    });
    group.finish();
}

fn grep_query(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), &rt);
    let tenant = Tenant::default_tenant();
    let rules = IngestRules::default();
    let mut rng = Rng::new(5);
    let mut body_bytes = 0u64;
    // 100 requests of 10k lines, 36 s apart: 1M lines over an hour, 10 chunks.
    for i in 0..100 {
        let request = logs_request(&mut rng, 10_000, T0 + i * 36_000_000_000);
        let batch = otlp::logs_to_batch(&request, &rules, T0).batch;
        body_bytes += batch
            .column_by_name("body")
            .unwrap()
            .as_string::<i32>()
            .value_data()
            .len() as u64;
        rt.block_on(engine.db().write(&tenant, Signal::Logs, batch))
            .unwrap();
        if i % 10 == 9 {
            rt.block_on(engine.db().flush(true)).unwrap();
        }
    }
    let request = |q: &str| LogRequest {
        query: logql::parse_log(q).unwrap(),
        start: T0 - 1,
        end: T0 + 1_000_000_000_000,
        limit: 100,
        direction: Direction::Backward,
        categorize: false,
    };
    let mut group = c.benchmark_group("grep_query");
    group.throughput(Throughput::Bytes(body_bytes));
    group.sample_size(10);
    let all = request(r#"{service_name=~".+"} |= "needle-not-there""#);
    group.bench_function("grep_query_1m_lines_all_streams", |b| {
        b.iter(|| rt.block_on(engine.logs(&tenant, &all)).unwrap())
    });
    let sql = "SELECT count(*) FROM logs WHERE body LIKE '%needle-not-there%'";
    group.bench_function("grep_query_1m_lines_sql_like_baseline", |b| {
        b.iter(|| rt.block_on(engine.sql(&tenant, sql)).unwrap())
    });
    group.finish();

    // What Grafana's Explore sends for one service over the hour: the newest 1,000
    // matching lines, and the log-volume histogram beside them.
    let mut group = c.benchmark_group("loki_query_range");
    group.sample_size(20);
    let mut selective = request(r#"{service_name="checkout"} |= "slow query""#);
    selective.limit = 1_000;
    selective.end = T0 + 3_600_000_000_000;
    group.bench_function("loki_query_range_1h_1m_lines_one_service_grep", |b| {
        b.iter(|| {
            let result = rt.block_on(engine.logs(&tenant, &selective)).unwrap();
            assert_eq!(result.counts.returned, 1_000);
        })
    });
    // A parser and a label filter after the grep: the pipeline may drop lines, so
    // the newest are found window by window.
    let mut parsed =
        request(r#"{service_name="checkout"} |= "request served" | json | duration_ms > 1500"#);
    parsed.end = T0 + 3_600_000_000_000;
    group.bench_function(
        "loki_query_range_1h_1m_lines_one_service_json_filter",
        |b| {
            b.iter(|| {
                let result = rt.block_on(engine.logs(&tenant, &parsed)).unwrap();
                assert_eq!(result.counts.returned, 100);
            })
        },
    );
    let volume = MetricRequest {
        expr: match logql::parse(
            r#"sum by (severity) (count_over_time({service_name="checkout"} |= "slow query" [1m]))"#,
        )
        .unwrap()
        {
            logql::Query::Metric(m) => m,
            logql::Query::Log(_) => unreachable!("a metric query"),
        },
        start: T0,
        end: T0 + 3_600_000_000_000,
        step: 60_000_000_000,
    };
    group.bench_function("loki_volume_1h_1m_lines_one_service_grep", |b| {
        b.iter(|| rt.block_on(engine.log_metrics(&tenant, &volume)).unwrap())
    });
    group.finish();
    let _ = SERVICES;
}

/// `flushes` chunks of 10k spans (1,000 traces of 10 spans, one service each), each
/// `spacing` after the last; the trace IDs.
fn load_traces(
    engine: &QueryEngine,
    rt: &tokio::runtime::Runtime,
    seed: u64,
    flushes: usize,
    spacing: i64,
) -> Vec<Vec<u8>> {
    let tenant = Tenant::default_tenant();
    let rules = IngestRules::default();
    let mut rng = Rng::new(seed);
    let mut ids = Vec::new();
    for i in 0..flushes {
        let service = SERVICES[i % SERVICES.len()];
        let (request, trace_ids) =
            traces_request(&mut rng, service, 1_000, 10, T0 + i as i64 * spacing);
        ids.extend(trace_ids);
        let batch = otlp::traces_to_batch(&request, &rules).batch;
        rt.block_on(engine.db().write(&tenant, Signal::Spans, batch))
            .unwrap();
        rt.block_on(engine.db().flush(true)).unwrap();
    }
    ids
}

fn trace_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), &rt);
    let tenant = Tenant::default_tenant();
    // 1M spans in 100 chunks.
    let ids = load_traces(&engine, &rt, 9, 100, 3_600_000_000_000 / 10);
    let mut group = c.benchmark_group("trace_lookup");
    group.sample_size(50);
    let mut pick = Rng::new(1);
    group.bench_function("trace_lookup_1m_spans_100_chunks", |b| {
        b.iter(|| {
            let id = TraceId::from_bytes(&ids[pick.below(ids.len() as u64) as usize]).unwrap();
            let doc = rt.block_on(engine.trace(&tenant, id)).unwrap().unwrap();
            assert_eq!(doc.span_count, 10);
        })
    });
    group.finish();
}

/// Tempo's trace by ID (the spans as OTLP) among 10M spans in 1,000 chunks.
fn tempo_trace_by_id(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), &rt);
    let tenant = Tenant::default_tenant();
    // 10M spans in 1,000 chunks.
    let ids = load_traces(&engine, &rt, 11, 1_000, 3_600_000_000_000 / 100);
    let labels = IngestRules::default().label_attributes;
    let mut group = c.benchmark_group("tempo_trace_by_id");
    group.sample_size(50);
    let mut pick = Rng::new(2);
    group.bench_function("tempo_trace_by_id_10m_spans_1000_chunks", |b| {
        b.iter(|| {
            let id = TraceId::from_bytes(&ids[pick.below(ids.len() as u64) as usize]).unwrap();
            let batches = rt.block_on(engine.trace_spans(&tenant, id)).unwrap();
            let trace = traces_data(&batches, &labels).unwrap();
            assert_eq!(trace.resource_spans[0].scope_spans[0].spans.len(), 10);
        })
    });
    group.finish();
}

fn exemplar_lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), &rt);
    let tenant = Tenant::default_tenant();
    let mut rng = Rng::new(13);
    let mut ids = Vec::new();
    for i in 0..50 {
        let request = remote_write_request(&mut rng, 10_000, T0 / 1_000_000 + i * 60_000);
        for series in &request.timeseries {
            for exemplar in &series.exemplars {
                ids.push(TraceId::from_hex(&exemplar.labels[0].value).unwrap());
            }
        }
        let body = prost::Message::encode_to_vec(&request);
        let (batches, _) = remote_write::decode_v1(&body).unwrap().0.finish();
        rt.block_on(engine.db().write_all(&tenant, batches))
            .unwrap();
        rt.block_on(engine.db().flush(true)).unwrap();
    }
    let mut group = c.benchmark_group("exemplar_lookup");
    group.sample_size(50);
    let mut pick = Rng::new(1);
    group.bench_function("exemplar_lookup_by_trace_50k_exemplars_400_chunks", |b| {
        b.iter(|| {
            let id = ids[pick.below(ids.len() as u64) as usize];
            let found = rt.block_on(engine.trace_exemplars(&tenant, id)).unwrap();
            assert_eq!(found.series.len(), 1);
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    grep_kernel,
    grep_query,
    trace_lookup,
    tempo_trace_by_id,
    exemplar_lookup
);
criterion_main!(benches);
