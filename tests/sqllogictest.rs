//! Runs the sqllogictest files in `sql/` against a store holding a small, fixed data
//! set: half of it in chunks, half still in the head, so both read paths answer. The
//! data: a checkout trace (logs, spans and a CPU profile whose samples name its spans)
//! in chunks, and a search trace still in the head.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use serde_json::json;
use sqllogictest::{DBOutput, DefaultColumnType};
use threadline::db::{Db, DbConfig};
use threadline::ingest::IngestRules;
use threadline::ingest::otlp::{self, Encoding};
use threadline::ingest::profiles::{ProfileRows, Received};
use threadline::metrics::Metrics;
use threadline::model::{Signal, Tenant};
use threadline::profile::{Frame, Profile, Sample, ValueType, pprof};
use threadline::query::{QueryConfig, QueryEngine, QueryError};
use threadline::wal::SyncPolicy;

const T0: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;

fn resource(service: &str) -> serde_json::Value {
    json!({"attributes": [
        {"key": "service.name", "value": {"stringValue": service}},
        {"key": "k8s.namespace.name", "value": {"stringValue": "shop"}},
        {"key": "process.pid", "value": {"intValue": "4242"}}
    ]})
}

fn logs(service: &str, records: &[(i64, &str, &str, &str)]) -> serde_json::Value {
    let records: Vec<_> = records
        .iter()
        .map(|(t, sev, body, trace)| {
            let mut r = json!({"timeUnixNano": (T0 + t * MS).to_string(), "severityText": sev, "body": {"stringValue": body},
                "attributes": [{"key": "user.id", "value": {"stringValue": "u-1"}}]});
            if !trace.is_empty() {
                r["traceId"] = json!(trace);
            }
            r
        })
        .collect();
    json!({"resourceLogs": [{"resource": resource(service), "scopeLogs": [{"scope": {"name": "app"}, "logRecords": records}]}]})
}

fn spans(service: &str, spans: &[(&str, &str, &str, &str, i64, i64, i32)]) -> serde_json::Value {
    let spans: Vec<_> = spans
        .iter()
        .map(|(trace, span, parent, name, start, ms, status)| {
            json!({"traceId": trace, "spanId": span, "parentSpanId": parent, "name": name, "kind": 2,
                "startTimeUnixNano": (T0 + start * MS).to_string(), "endTimeUnixNano": (T0 + (start + ms) * MS).to_string(),
                "status": {"code": status},
                "events": [{"timeUnixNano": (T0 + start * MS).to_string(), "name": "begin"}]})
        })
        .collect();
    json!({"resourceSpans": [{"resource": resource(service), "scopeSpans": [{"scope": {"name": "http"}, "spans": spans}]}]})
}

const A: &str = "5b8efff798038103d269b633813fc60c";
const B: &str = "0af7651916cd43dd8448eb211c80319c";

async fn load(db: &Db) {
    let tenant = Tenant::default_tenant();
    let rules = IngestRules::default();
    let write_logs = |body: serde_json::Value| {
        let request =
            otlp::decode_logs_request(body.to_string().as_bytes(), Encoding::Json).unwrap();
        otlp::logs_to_batch(&request, &rules, T0).batch
    };
    let write_spans = |body: serde_json::Value| {
        let request =
            otlp::decode_traces_request(body.to_string().as_bytes(), Encoding::Json).unwrap();
        otlp::traces_to_batch(&request, &rules).batch
    };
    // First half: flushed to chunks.
    db.write(
        &tenant,
        Signal::Logs,
        write_logs(logs(
            "checkout",
            &[
                (0, "INFO", "cart 41 created", ""),
                (10, "ERROR", "payment declined for cart 42", A),
                (20, "WARN", &format!("retry trace_id={A}"), ""),
            ],
        )),
    )
    .await
    .unwrap();
    db.write(
        &tenant,
        Signal::Spans,
        write_spans(spans(
            "checkout",
            &[
                (A, "eee19b7ec3c1b174", "", "POST /cart", 0, 250, 2),
                (
                    A,
                    "eee19b7ec3c1b175",
                    "eee19b7ec3c1b174",
                    "charge card",
                    5,
                    200,
                    2,
                ),
            ],
        )),
    )
    .await
    .unwrap();
    for (signal, batch) in cpu_profile() {
        db.write(&tenant, signal, batch).await.unwrap();
    }
    db.flush(true).await.unwrap();
    // Second half: still in the head.
    db.write(
        &tenant,
        Signal::Logs,
        write_logs(logs(
            "search",
            &[
                (30, "INFO", "query took 12ms", B),
                (40, "DEBUG", "cache hit", ""),
            ],
        )),
    )
    .await
    .unwrap();
    db.write(
        &tenant,
        Signal::Spans,
        write_spans(spans(
            "search",
            &[(B, "aaa19b7ec3c1b174", "", "GET /search", 30, 12, 1)],
        )),
    )
    .await
    .unwrap();
}

/// A CPU profile of the checkout service taken while trace A ran: its samples name
/// the spans they ran for, as tracing integrations label them.
fn cpu_profile() -> Vec<(Signal, arrow::array::RecordBatch)> {
    let names = [
        "main", "handle", "charge", "hash", "rpc", "render", "gc", "walk",
    ];
    let frames = names
        .iter()
        .enumerate()
        .map(|(i, name)| Frame {
            function: (*name).into(),
            file: "shop.go".into(),
            line: i as i64 + 10,
        })
        .collect();
    let span = |id: &str, name: &str| {
        vec![
            ("span_id".to_owned(), id.to_owned()),
            ("span_name".to_owned(), name.to_owned()),
        ]
    };
    let charge = span("eee19b7ec3c1b175", "charge card");
    let sample = |stack: &[u32], value: i64, labels: &Vec<(String, String)>| Sample {
        stack: stack.to_vec(),
        values: vec![value],
        labels: labels.clone(),
    };
    let profile = Profile {
        time_nanos: T0 + 5 * MS,
        duration_nanos: 10_000 * MS,
        period_type: ValueType::new("cpu", "nanoseconds"),
        period: 10_000_000,
        sample_types: vec![ValueType::new("cpu", "nanoseconds")],
        frames,
        samples: vec![
            sample(&[0, 1, 2, 3], 300, &charge),
            sample(&[0, 1, 2, 4], 100, &charge),
            sample(&[0, 1, 5], 50, &span("eee19b7ec3c1b174", "POST /cart")),
            sample(&[0, 6], 20, &vec![]),
            sample(&[0, 7, 7], 10, &vec![]),
        ],
    };
    let mut rows = ProfileRows::default();
    rows.add(Received {
        labels: vec![("service_name".into(), "checkout".into())],
        profile: &profile,
        original: &pprof::encode_gzip(&profile),
        default_time: T0,
        default_duration: 0,
        id: None,
    })
    .unwrap();
    rows.finish()
}

struct Session {
    engine: Arc<QueryEngine>,
}

#[derive(Debug)]
struct Error(QueryError);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {}

#[async_trait]
impl sqllogictest::AsyncDB for Session {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        let output = self
            .engine
            .sql(&Tenant::default_tenant(), sql)
            .await
            .map_err(Error)?;
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &output.batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error(QueryError::Execution(e.to_string())))?;
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| match f.value(row).to_string() {
                            s if s.is_empty() => "(empty)".to_owned(),
                            s => s,
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; output.schema.fields().len()],
            rows,
        })
    }

    async fn shutdown(&mut self) {}

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let dir = tempfile::tempdir().unwrap();
    let config = DbConfig {
        data_dir: dir.path().to_owned(),
        object_store: String::new(),
        wal_sync: SyncPolicy::Buffered,
        wal_segment_bytes: 1 << 20,
        wal_max_disk_bytes: u64::MAX,
        upload_timeout: threadline::storage::store::DEFAULT_UPLOAD_TIMEOUT,
        head_max_bytes: 1 << 30,
        head_max_age: Duration::from_secs(3600),
        compaction: Default::default(),
        retention: Default::default(),
    };
    let db = Db::open(config, Arc::new(Metrics::default()))
        .await
        .unwrap();
    load(&db).await;
    let engine = Arc::new(QueryEngine::new(
        db,
        QueryConfig {
            timeout: Duration::from_secs(60),
            max_memory_bytes: 256 << 20,
            max_result_rows: 1000,
            max_range: Duration::from_secs(31 * 86_400),
            max_concurrent: 32,
        },
    ));
    let sql_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<_> = std::fs::read_dir(&sql_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {}", sql_dir.display());
    for file in files {
        let engine = Arc::clone(&engine);
        let mut runner = sqllogictest::Runner::new(move || {
            let engine = Arc::clone(&engine);
            async move { Ok(Session { engine }) }
        });
        runner
            .run_file_async(&file)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    }
}
