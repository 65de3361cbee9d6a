//! What compaction does for a store fed by small pushes: 1M log lines of 8 services
//! arrive in 1,000 pushes over one hour, and the head is cut after every second push,
//! so each service's partition holds 500 small chunks. A quarter of the lines belong
//! to traces that run for 20 pushes (about 70 s) across services, so a trace's lines
//! are spread over a few dozen small chunks. The same trace lookups and greps run
//! before and after compaction passes, against each other in the same run; the
//! compactor's time and memory are measured too.
//!
//! ```sh
//! cargo bench --bench compaction
//! ```
//!
//! Peak memory is the most bytes allocated at once during each pass above what was
//! allocated when it began (counted by the global allocator), and beside it the
//! process's resident high-water mark (`VmHWM`, reset before each pass), which also
//! holds what the allocator keeps after it is freed.

mod data;

/// The server's allocator, counting the bytes allocated and not yet freed.
#[global_allocator]
static ALLOCATOR: Counting = Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(live, Relaxed);
        unsafe { mimalloc::MiMalloc.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
            PEAK.fetch_max(live, Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) }
    }
}

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use data::{Rng, T0, logs_request, open_db};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use threadline::compact::Progress;
use threadline::ingest::{IngestRules, otlp};
use threadline::logql;
use threadline::metrics::Metrics;
use threadline::model::{Signal, Tenant, TraceId};
use threadline::query::logql::{Direction, LogRequest};
use threadline::query::{QueryConfig, QueryEngine};
use threadline::wal::SyncPolicy;

const HOUR: i64 = 3_600_000_000_000;
const PUSHES: i64 = 1_000;
const LINES_PER_PUSH: usize = 1_000;
const LOOKUPS: usize = 20;
const REPEATS: usize = 5;

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&rt, dir.path(), SyncPolicy::Buffered);
    let engine = Arc::new(QueryEngine::new(
        Arc::clone(&db),
        QueryConfig {
            timeout: Duration::from_secs(300),
            max_memory_bytes: 4 << 30,
            max_result_rows: 100_000,
            max_range: Duration::from_secs(31 * 86_400),
            max_concurrent: 32,
        },
    ));
    let tenant = Tenant::default_tenant();
    let rules = IngestRules::default();
    let hour = T0 / HOUR * HOUR;
    let mut rng = Rng::new(11);
    let mut traces = Traces::default();
    let started = Instant::now();
    for i in 0..PUSHES {
        let mut request = logs_request(&mut rng, LINES_PER_PUSH, hour + i * (HOUR / PUSHES));
        traces.assign(&mut request, &mut rng);
        let batch = otlp::logs_to_batch(&request, &rules, hour).batch;
        rt.block_on(db.write(&tenant, Signal::Logs, batch)).unwrap();
        if i % 2 == 1 {
            rt.block_on(db.flush(true)).unwrap();
        }
    }
    let chunks_before = Metrics::get(&db.metrics().chunks);
    println!(
        "ingested {} lines in {} pushes, {} flushes: {chunks_before} chunks ({:.1} s)",
        PUSHES as usize * LINES_PER_PUSH,
        PUSHES,
        PUSHES / 2,
        started.elapsed().as_secs_f64()
    );

    let ids = traces.finished[traces.finished.len() / 2..][..LOOKUPS].to_vec();
    let grep = LogRequest {
        query: logql::parse_log(r#"{service_name="checkout"} |= "slow query""#).unwrap(),
        start: hour,
        end: hour + HOUR,
        limit: 1_000,
        direction: Direction::Backward,
        categorize: false,
    };
    let before = measure(&rt, &engine, &tenant, &ids, &grep);

    let started = Instant::now();
    for pass in 1.. {
        let rss_before = status_kib("VmRSS");
        reset_peak_rss();
        let live_before = LIVE.load(Relaxed);
        PEAK.store(live_before, Relaxed);
        let pass_started = Instant::now();
        let report = rt
            .block_on(db.compact(i64::MAX, hour + HOUR, &|_: Progress| {}))
            .unwrap();
        assert_eq!(report.failed_merges, 0, "a merge failed");
        if report.merges == 0 {
            break;
        }
        println!(
            "pass {pass}: {} merges of {:.0} rows each, {} -> {} chunks, {:.1} MB read, \
             {:.1} MB written in {:.1} s; peak {:.1} MiB allocated above the {:.1} MiB \
             allocated before (RSS: {:.1} MiB above {:.1} MiB)",
            report.merges,
            report.rows_merged as f64 / report.merges as f64,
            report.chunks_before,
            report.chunks_after,
            report.bytes_read as f64 / 1e6,
            report.bytes_written as f64 / 1e6,
            pass_started.elapsed().as_secs_f64(),
            (PEAK.load(Relaxed) - live_before) as f64 / 1048576.0,
            live_before as f64 / 1048576.0,
            status_kib("VmHWM").saturating_sub(rss_before) as f64 / 1024.0,
            rss_before as f64 / 1024.0,
        );
    }
    let chunks_after = Metrics::get(&db.metrics().chunks);
    println!(
        "compaction: {chunks_before} -> {chunks_after} chunks ({:.1}x fewer) in {:.1} s",
        chunks_before as f64 / chunks_after.max(1) as f64,
        started.elapsed().as_secs_f64(),
    );

    let after = measure(&rt, &engine, &tenant, &ids, &grep);
    println!();
    println!("{:<44} {:>12} {:>12} {:>8}", "", "before", "after", "ratio");
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        println!("{name:<44} {b:>12.1} {a:>12.1} {:>7.2}x", b / a.max(1e-9));
    }
}

/// Traces in progress: each lives for `TRACE_PUSHES` pushes, and every traced line
/// belongs to one of them.
#[derive(Default)]
struct Traces {
    active: Vec<(TraceId, i64)>,
    finished: Vec<TraceId>,
    pushes: i64,
}

const ACTIVE_TRACES: usize = 200;
const TRACE_PUSHES: i64 = 20;

impl Traces {
    fn assign(&mut self, request: &mut ExportLogsServiceRequest, rng: &mut Rng) {
        self.pushes += 1;
        let now = self.pushes;
        let (done, active): (Vec<_>, Vec<_>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|(_, born)| now - born >= TRACE_PUSHES);
        self.finished.extend(done.into_iter().map(|(id, _)| id));
        self.active = active;
        while self.active.len() < ACTIVE_TRACES {
            // Staggered births, so traces end a few at a time.
            let born = now - rng.below(TRACE_PUSHES as u64) as i64 * i64::from(now == 1);
            let id = TraceId::from_bytes(&rng.trace_id()).unwrap();
            self.active.push((id, born));
        }
        let records = request
            .resource_logs
            .iter_mut()
            .flat_map(|r| &mut r.scope_logs)
            .flat_map(|s| &mut s.log_records);
        for record in records.filter(|r| !r.trace_id.is_empty()) {
            let (id, _) = self.active[rng.below(ACTIVE_TRACES as u64) as usize];
            record.trace_id = id.as_bytes().to_vec();
        }
    }
}

/// Median milliseconds of each query, and what the trace lookups read.
fn measure(
    rt: &tokio::runtime::Runtime,
    engine: &QueryEngine,
    tenant: &Tenant,
    ids: &[TraceId],
    grep: &LogRequest,
) -> Vec<(&'static str, f64)> {
    let metrics = Arc::clone(engine.db().metrics());
    let median = |run: &dyn Fn()| {
        let mut times: Vec<f64> = (0..REPEATS)
            .map(|_| {
                let start = Instant::now();
                run();
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[REPEATS / 2]
    };
    let lookups = || {
        for id in ids {
            let doc = rt.block_on(engine.trace(tenant, *id)).unwrap();
            assert!(doc.is_some());
        }
    };
    // A first run reads the chunks' footers; the measured ones find them cached.
    lookups();
    let bytes_before = Metrics::get(&metrics.object_store_get_bytes_total);
    let requests_before = Metrics::get(&metrics.object_store_get_requests_total);
    let selected_before = Metrics::get(&metrics.query_chunks_selected_total);
    lookups();
    let bytes = Metrics::get(&metrics.object_store_get_bytes_total) - bytes_before;
    let requests = Metrics::get(&metrics.object_store_get_requests_total) - requests_before;
    let selected = Metrics::get(&metrics.query_chunks_selected_total) - selected_before;
    let lookup_ms = median(&lookups);
    let grep_ms = median(&|| {
        let result = rt.block_on(engine.logs(tenant, grep)).unwrap();
        assert!(result.counts.returned > 0);
    });
    let count_ms = median(&|| {
        rt.block_on(engine.sql(tenant, "SELECT count(*) FROM logs"))
            .unwrap();
    });
    vec![
        ("trace lookup, ms per trace", lookup_ms / ids.len() as f64),
        (
            "trace lookup, chunks selected per trace",
            selected as f64 / ids.len() as f64,
        ),
        (
            "trace lookup, GET requests per trace",
            requests as f64 / ids.len() as f64,
        ),
        (
            "trace lookup, KiB read per trace",
            bytes as f64 / 1024.0 / ids.len() as f64,
        ),
        ("grep one service over the hour, ms", grep_ms),
        ("count(*) of 1M lines, ms", count_ms),
    ]
}

/// A field of `/proc/self/status`, in KiB (0 where there is none).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_default()
}

/// Resets `VmHWM` to the current RSS (Linux 4.0 and later).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
