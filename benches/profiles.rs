//! Profile ingest, storage and merging.
//!
//! `profile_decode_and_rows`: one gzipped CPU profile (400 samples, two sample types)
//! inflated, decoded and turned into rows; `profile_ingest_fsync` the same made
//! durable (WAL fsync) in the head, one profile per request.
//! `merge_1000_cpu_profiles`: 1,000 such profiles of one service, flushed to chunks,
//! merged into one profile (the folded-stack / flame-graph path, and the pprof path
//! that also reads files and lines).
//! Before the timings, it prints the stored bytes per profile (Parquet chunks of both
//! tables) against the gzipped pprof size.

#[path = "data.rs"]
mod data;

/// The allocator the server binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use data::{Rng, T0, cpu_profile_gzip, open_db};
use threadline::db::Db;
use threadline::ingest::profiles::{ProfileRows, Received};
use threadline::model::{Selector, Tenant};
use threadline::profile::pprof;
use threadline::query::profiles::{ProfileQuery, Scope};
use threadline::query::{QueryConfig, QueryEngine};
use threadline::wal::SyncPolicy;

const SAMPLES: usize = 400;
const PROFILES: usize = 1000;
const CPU: &str = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

/// Inflate, decode and build the rows of one profile.
fn rows(gz: &[u8]) -> Vec<(threadline::model::Signal, arrow::array::RecordBatch)> {
    let original = pprof::inflate(gz.to_vec().into(), 64 << 20).unwrap();
    let profile = pprof::decode(&original).unwrap();
    let mut rows = ProfileRows::default();
    rows.add(Received {
        labels: vec![("service_name".into(), "shop".into())],
        profile: &profile,
        original: &original,
        default_time: T0,
        default_duration: 0,
        id: None,
    })
    .unwrap();
    rows.finish()
}

fn ingest(rt: &tokio::runtime::Runtime, db: &Db, gz: &[u8]) {
    rt.block_on(db.write_all(&Tenant::default_tenant(), rows(gz)))
        .unwrap();
}

/// Bytes of the Parquet chunks under `dir` whose key has the segment `table`.
fn parquet_bytes(dir: &std::path::Path, table: &str) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet")
                && path.components().any(|c| c.as_os_str() == table)
            {
                total += std::fs::metadata(&path).unwrap().len();
            }
        }
    }
    total
}

fn profile_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rng = Rng::new(11);
    let profiles: Vec<Vec<u8>> = (0..PROFILES)
        .map(|i| cpu_profile_gzip(&mut rng, T0 + i as i64 * 10_000_000_000, SAMPLES))
        .collect();

    let mut group = c.benchmark_group("profiles");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("profile_decode_and_rows", |b| {
        b.iter(|| {
            next += 1;
            rows(&profiles[next % PROFILES])
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&rt, dir.path(), SyncPolicy::Fsync);
    group.bench_function("profile_ingest_fsync", |b| {
        b.iter(|| {
            ingest(&rt, &db, &profiles[next % PROFILES]);
            next += 1;
        })
    });
    db.close();

    // 1,000 profiles of one service in chunks.
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&rt, dir.path(), SyncPolicy::Buffered);
    for gz in &profiles {
        ingest(&rt, &db, gz);
    }
    rt.block_on(db.flush(true)).unwrap();
    let gzip_bytes: usize = profiles.iter().map(Vec::len).sum();
    let whole = parquet_bytes(dir.path(), "profiles");
    let samples = parquet_bytes(dir.path(), "profile_samples");
    let stored = whole + samples;
    eprintln!(
        "stored: {:.0} bytes per profile in Parquet ({:.0} in profiles, {:.0} in profile_samples), gzip pprof {:.0} bytes: {:.2}x",
        stored as f64 / PROFILES as f64,
        whole as f64 / PROFILES as f64,
        samples as f64 / PROFILES as f64,
        gzip_bytes as f64 / PROFILES as f64,
        stored as f64 / gzip_bytes as f64
    );

    let engine = QueryEngine::new(
        Arc::clone(&db),
        QueryConfig {
            timeout: Duration::from_secs(60),
            max_memory_bytes: 1 << 30,
            max_result_rows: 1000,
            max_range: Duration::from_secs(31 * 86_400),
            max_concurrent: 32,
        },
    );
    let query = ProfileQuery {
        profile_type: CPU.parse().unwrap(),
        selector: Selector::parse("{service_name=\"shop\"}").unwrap(),
        range: Some((T0, T0 + PROFILES as i64 * 10_000_000_000)),
        scope: Scope::All,
    };
    let tenant = Tenant::default_tenant();
    group.throughput(Throughput::Elements(PROFILES as u64));
    group.sample_size(10);
    for (name, with_lines) in [
        ("merge_1000_cpu_profiles", false),
        ("merge_1000_cpu_profiles_pprof", true),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let result = rt
                    .block_on(engine.merge_profile(&tenant, &query, with_lines))
                    .unwrap();
                assert_eq!(result.samples, PROFILES * SAMPLES);
                result.merged.total()
            })
        });
    }
    group.finish();
    db.close();
}

criterion_group!(benches, profile_bench);
criterion_main!(benches);
