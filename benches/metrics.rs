//! Metric and Loki ingest throughput, per core.
//!
//! `remote_write_ingest_*`: snappy decompression, protobuf decode, conversion, the WAL
//! with the default fsync policy, and the head, for one remote-write request of 10k
//! series (Prometheus's default `max_samples_per_send` is 2,000; 10k is a busy shard).
//! `scrape_parse_10k_series`: parsing one OpenMetrics exposition and building its rows.
//! `loki_push_ingest_*`: the same path as remote write for a snappy protobuf push.

#[path = "data.rs"]
mod data;

/// The allocator the server binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use data::{Rng, T0, loki_push, open_db, openmetrics_text, remote_write_request};
use prost::Message;
use threadline::ingest::exposition::{self, Format};
use threadline::ingest::{ContentEncoding, IngestRules, decompress, loki, remote_write};
use threadline::model::{Signal, Tenant};
use threadline::scrape::rows::exposition_rows;
use threadline::wal::SyncPolicy;

fn snappy(data: &[u8]) -> bytes::Bytes {
    snap::raw::Encoder::new().compress_vec(data).unwrap().into()
}

fn remote_write_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let series = 10_000;
    let body =
        snappy(&remote_write_request(&mut Rng::new(3), series, T0 / 1_000_000).encode_to_vec());
    let tenant = Tenant::default_tenant();
    let mut group = c.benchmark_group("remote_write");
    group.throughput(Throughput::Elements(series as u64));
    group.sample_size(20);
    group.bench_function("remote_write_decode_only_10k_samples", |b| {
        b.iter(|| {
            let raw = decompress(body.clone(), ContentEncoding::Snappy, 64 << 20).unwrap();
            remote_write::decode_v1(&raw).unwrap().0.finish()
        })
    });
    for (name, sync) in [
        ("fsync", SyncPolicy::Fsync),
        ("buffered", SyncPolicy::Buffered),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(&rt, dir.path(), sync);
        group.bench_function(format!("remote_write_ingest_10k_samples_{name}"), |b| {
            b.iter(|| {
                let raw = decompress(body.clone(), ContentEncoding::Snappy, 64 << 20).unwrap();
                let (batches, _) = remote_write::decode_v1(&raw).unwrap().0.finish();
                rt.block_on(db.write_all(&tenant, batches)).unwrap();
            })
        });
        db.close();
    }
    group.finish();
}

fn scrape_bench(c: &mut Criterion) {
    let text = openmetrics_text(&mut Rng::new(5), 10_000);
    let target = vec![
        ("job".to_owned(), "api".to_owned()),
        ("instance".to_owned(), "10.0.0.1:9090".to_owned()),
    ];
    let mut group = c.benchmark_group("scrape");
    group.throughput(Throughput::Elements(10_000));
    group.sample_size(30);
    group.bench_function("scrape_parse_only_10k_series", |b| {
        b.iter(|| exposition::parse(&text, Format::OpenMetrics).unwrap())
    });
    group.bench_function("scrape_parse_and_rows_10k_series", |b| {
        b.iter(|| {
            let parsed = exposition::parse(&text, Format::OpenMetrics).unwrap();
            exposition_rows(&parsed, &target, T0).unwrap().finish()
        })
    });
    group.finish();
}

fn loki_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lines = 2_000;
    let body = snappy(&loki_push(&mut Rng::new(9), lines, T0).encode_to_vec());
    let rules = IngestRules::default();
    let tenant = Tenant::default_tenant();
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(&rt, dir.path(), SyncPolicy::Fsync);
    let mut group = c.benchmark_group("loki_push");
    group.throughput(Throughput::Elements(lines as u64));
    group.sample_size(30);
    group.bench_function("loki_push_ingest_2k_lines_fsync", |b| {
        b.iter(|| {
            let raw = decompress(body.clone(), ContentEncoding::Snappy, 64 << 20).unwrap();
            let streams = loki::decode_protobuf(&raw).unwrap();
            let decoded = loki::push_to_batch(&streams, &rules, T0);
            rt.block_on(db.write(&tenant, Signal::Logs, decoded.batch))
                .unwrap();
        })
    });
    db.close();
    group.finish();
}

criterion_group!(benches, remote_write_bench, scrape_bench, loki_bench);
criterion_main!(benches);
